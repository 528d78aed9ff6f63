# cython: language_level=3
# bot4's strategy interface for Cython (the C++ one in bot4/strategy/strategy.hpp, as declared
# there). A Cython strategy is a cdef class whose methods the core calls directly from its event
# loop, without the GIL:
#
#     from bot4.strategy_api cimport *
#
#     cdef class MyStrategy:
#         cdef void on_decision(self, DecisionContext* ctx) noexcept nogil:
#             ...                                  # read ctx, call ctx.exec.submit(...) etc.
#         def __bot4_callbacks__(self):
#             return callbacks(self, _decide)      # the table the engine calls
#
#     cdef void _decide(void* self, DecisionContext* ctx) noexcept nogil:
#         (<MyStrategy>self).on_decision(ctx)      # a borrowed cast: no reference count, no GIL
#
# Build and load it with bot4.strategies.make("my_strategy.pyx") (bot4.cython_build). Prices are
# integer ticks, sizes integer lots, times int64 ns, as in the C++ interface.
from libc.stdint cimport int8_t, int64_t, uint8_t, uint32_t, uint64_t
from libcpp cimport bool as cbool
from libcpp.vector cimport vector
from cpython.pycapsule cimport PyCapsule_New, PyCapsule_GetPointer

cdef extern from "bot4/common/types.hpp" namespace "bot4" nogil:
    ctypedef uint64_t OrderId
    ctypedef uint32_t InstrumentId
    cdef enum class Side(uint8_t):
        Bid
        Ask
    const int64_t kNoBidPrice
    const int64_t kNoAskPrice

cdef extern from "bot4/orders/order.hpp" namespace "bot4::orders" nogil:
    cdef enum class OrderState(uint8_t):
        New
        Acknowledged
        PartiallyFilled
        Filled
        Cancelled
        Rejected
        Expired
        PendingCancel
    cdef enum class OrderType(uint8_t):
        Limit
        Market
        Stop
    cdef enum class OrderRole(uint8_t):
        Single
        Entry
        StopLeg
        TargetLeg
        OcoLeg
        OtoParent
        OtoChild
    cdef enum class Reason(uint8_t):
        Ok
    const char* reason_name(Reason r)
    cdef cppclass Order:
        uint64_t client_id
        OrderId order_id
        Side side
        OrderType type
        OrderState state
        OrderRole role
        cbool reduce_only
        int64_t price_ticks
        int64_t qty_lots
        int64_t filled_lots
        int64_t fill_notional
        uint64_t group_id
        int64_t open_lots()
        cbool working()
        cbool active()

cdef extern from "bot4/orders/order_manager.hpp" namespace "bot4::orders" nogil:
    cdef enum class GroupKind(uint8_t):
        Bracket
        Oco
        Oto
    cdef cppclass LegSpec:
        Side side
        OrderType type
        int64_t price_ticks
        int64_t qty_lots
    cdef cppclass BracketLegs:
        GroupKind kind
        OrderId entry
        OrderId stop
        OrderId target
        OrderId second

cdef extern from "bot4/book/l2_book.hpp" namespace "bot4::book" nogil:
    cdef cppclass L2Book:
        int64_t best_bid()
        int64_t best_ask()
        int64_t best_bid_qty()
        int64_t best_ask_qty()
        int64_t qty_at(Side side, int64_t price)      # in libbot4_core (linked by cython_build)
        size_t depth(Side side, size_t n, int64_t* out)

cdef extern from "bot4/strategy/strategy.hpp" namespace "bot4::strategy" nogil:
    cdef enum class DecisionAction(int8_t):
        None_ "bot4::strategy::DecisionAction::None"
        OrderSent
        CancelSent
        CloseSent
        Rejected
    cdef enum class ExecPolicy(uint8_t):
        Passive
        Aggressive
    cdef enum class OrderKind(uint8_t):
        Limit
        Market
        Stop
        Bracket
        Oco
        Oto

    cdef cppclass OrderSpec:
        OrderKind kind
        Side side
        int64_t price_ticks
        int64_t qty_lots             # 0 = sized by the risk stage from `probability`
        double probability
        int64_t max_qty_lots
        cbool reduce_only
        OrderKind entry_type
        int64_t stop_ticks           # -1 = the engine default
        int64_t target_ticks
        LegSpec second
        uint64_t client_id

    cdef cppclass TargetSpec:
        int64_t position_lots
        ExecPolicy policy
        cbool bracket
        int64_t stop_ticks
        int64_t target_ticks

    cdef cppclass Outcome:
        cbool ok
        OrderId order_id
        Reason order_reason
        uint8_t risk_reason
        cbool sized_zero

    cdef cppclass Execution:
        Outcome submit(const OrderSpec& order)
        Outcome target(const TargetSpec& target)
        cbool cancel(OrderId id)
        Outcome replace(OrderId id, int64_t price_ticks, int64_t qty_lots)
        void flatten()
        const Order* order(OrderId id)
        const BracketLegs* group(OrderId first_id)
        void open_orders(vector[const Order*]& out)
        size_t live_orders()

    cdef cppclass BookTop:
        int64_t bid_price
        int64_t bid_qty
        int64_t ask_price
        int64_t ask_qty
        cbool two_sided()
        int64_t mid()

    cdef cppclass RiskHeadroom:
        int64_t long_lots
        int64_t short_lots
        int64_t open_orders
        cbool kill_switch

    cdef cppclass DecisionContext:
        int64_t ts
        InstrumentId instrument
        uint32_t slot
        double tick_size
        double lot_size
        BookTop top
        const L2Book* book
        const float* features
        size_t n_features
        const double* models
        size_t n_models
        int64_t position
        double average_entry
        double realised
        double unrealised
        double fees
        double equity
        cbool flattening
        RiskHeadroom headroom
        Execution* exec
        int8_t signal                # written by the strategy: +1 / -1 / 0, recorded
        cbool has_ensemble           # an [ensemble] is configured (bot4 ensemble stage)
        double ensemble              # its combined P(up) after the breaker (NaN without one)
        double size_scale            # the breaker's size multiplier (1 without one)
        double model(size_t i)       # NaN when there is no model i
        double probability()         # ensemble when configured, else model(0)
        double feature(size_t i)

    cdef cppclass FillInfo:
        int64_t ts
        InstrumentId instrument
        OrderId order_id
        Side side
        int64_t price_ticks
        int64_t qty_lots
        double fee
        cbool maker
        OrderRole role
        int64_t position

    cdef cppclass RejectInfo:
        int64_t ts
        InstrumentId instrument
        OrderId order_id
        cbool by_venue
        Reason reason

ctypedef void (*decision_fn)(void* self, DecisionContext* ctx) noexcept nogil
ctypedef void (*fill_fn)(void* self, const FillInfo* fill) noexcept nogil
ctypedef void (*reject_fn)(void* self, const RejectInfo* reject) noexcept nogil

cdef extern from "bot4/strategy/callback_strategy.hpp" namespace "bot4::strategy" nogil:
    uint64_t plugin_abi()
    cdef cppclass StrategyCallbacks:
        uint64_t abi
        void* self
        decision_fn on_decision
        fill_fn on_fill
        reject_fn on_reject
        cbool book_only
        cbool holds_inventory


cdef inline void _free_callbacks(object capsule) noexcept:
    cdef StrategyCallbacks* cb = <StrategyCallbacks*>PyCapsule_GetPointer(capsule, b"bot4.StrategyCallbacks")
    del cb


cdef inline object callbacks(object owner, decision_fn on_decision, fill_fn on_fill=NULL,
                             reject_fn on_reject=NULL, bint book_only=False, bint holds_inventory=False):
    """The table __bot4_callbacks__() returns: `owner` (the strategy object, kept alive by the
    engine for the run) is passed back as `self` to each function."""
    cdef StrategyCallbacks* cb = new StrategyCallbacks()
    cb.abi = plugin_abi()
    cb.self = <void*>owner
    cb.on_decision = on_decision
    cb.on_fill = on_fill
    cb.on_reject = on_reject
    cb.book_only = book_only
    cb.holds_inventory = holds_inventory
    return PyCapsule_New(<void*>cb, b"bot4.StrategyCallbacks", _free_callbacks)
