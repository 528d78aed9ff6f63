# cython: language_level=3, boundscheck=False, wraparound=False
"""The built-in threshold_bracket rule written as a Cython strategy: the engine calls
on_decision from its loop without the GIL (see bot4/strategy_api.pxd).

    bot4 backtest --strategy examples/cython_strategy/threshold.pyx ...
    bot4.strategies.make("examples/cython_strategy/threshold.pyx", {"long_threshold": 0.52})

p >= long_threshold -> long; p <= 1 - long_threshold -> short; else flat. An entry (a bracket:
stop and take-profit legs from the entry's fill VWAP) goes out only when flat with nothing
working; an unfilled entry older than order_ttl_ns, or facing a flat/opposite signal, is
cancelled; an open position is flattened when the signal turns against it (exit_on_flip) or
P(its side) < exit_threshold.
"""
from libc.math cimport isfinite
from libc.stdint cimport int8_t, int64_t

from bot4.strategy_api cimport (DecisionContext, Execution, GroupKind, Order, OrderId, OrderKind, OrderSpec,
                                OrderState, Outcome, BracketLegs, Side, callbacks)


cdef class Threshold:
    cdef public double long_threshold, exit_threshold
    cdef public bint exit_on_flip, market_entry
    cdef public int64_t stop_ticks, target_ticks, order_ttl_ns, fixed_qty_lots, max_qty_lots, min_gap_ns
    cdef OrderId entry_id
    cdef int64_t entry_sent_ts, last_entry_ts
    cdef public long decisions

    def __init__(self, double long_threshold=0.55, double exit_threshold=0.0, bint exit_on_flip=True,
                 bint market_entry=False, int64_t stop_ticks=20, int64_t target_ticks=30,
                 int64_t order_ttl_ns=5_000_000_000, int64_t fixed_qty_lots=0, int64_t max_qty_lots=0,
                 int64_t min_gap_ns=0):
        if not 0.0 <= long_threshold <= 1.0:
            raise ValueError("long_threshold: expected a probability in [0, 1]")
        if not 0.0 <= exit_threshold < 1.0:
            raise ValueError("exit_threshold: expected a probability in [0, 1)")
        if min(stop_ticks, target_ticks, order_ttl_ns, fixed_qty_lots, max_qty_lots, min_gap_ns) < 0:
            raise ValueError("ticks, times and sizes must be >= 0")
        self.long_threshold, self.exit_threshold = long_threshold, exit_threshold
        self.exit_on_flip, self.market_entry = exit_on_flip, market_entry
        self.stop_ticks, self.target_ticks, self.order_ttl_ns = stop_ticks, target_ticks, order_ttl_ns
        self.fixed_qty_lots, self.max_qty_lots, self.min_gap_ns = fixed_qty_lots, max_qty_lots, min_gap_ns
        self.entry_id = 0
        self.entry_sent_ts = 0
        self.last_entry_ts = -(2 ** 62)
        self.decisions = 0

    def __bot4_callbacks__(self):
        return callbacks(self, _on_decision)

    def stats(self):
        return {"decisions": self.decisions}

    cdef bint entry_working(self, Execution* ex) noexcept nogil:
        if self.entry_id == 0:
            return False
        cdef const Order* o = ex.order(self.entry_id)
        return o != NULL and o.working()

    cdef bint any_working(self, Execution* ex) noexcept nogil:
        if self.entry_working(ex):
            return True
        cdef const BracketLegs* g
        cdef const Order* o
        if self.entry_id != 0:
            g = ex.group(self.entry_id)
            if g != NULL and g.kind == GroupKind.Bracket:
                if g.stop != 0:
                    o = ex.order(g.stop)
                    if o != NULL and o.working():
                        return True
                if g.target != 0:
                    o = ex.order(g.target)
                    if o != NULL and o.working():
                        return True
        return False

    cdef void on_decision(self, DecisionContext* ctx) noexcept nogil:
        cdef double p = ctx.model(0)
        cdef double thr = self.long_threshold
        cdef int8_t target = 0, d
        cdef double p_side
        cdef Execution* ex = ctx.exec
        cdef const Order* o
        cdef OrderSpec spec
        cdef Outcome r
        self.decisions += 1
        if isfinite(p):
            target = 1 if p >= thr else (-1 if p <= 1.0 - thr else 0)
        ctx.signal = target
        if ctx.flattening:
            return
        # the model turned against the open position (flip), or no longer backs it
        if ctx.position != 0 and isfinite(p):
            d = 1 if ctx.position > 0 else -1
            p_side = p if d > 0 else 1.0 - p
            if (self.exit_on_flip and target == -d) or (self.exit_threshold > 0.0 and p_side < self.exit_threshold):
                ex.flatten()
                return
        if self.entry_working(ex):
            o = ex.order(self.entry_id)
            if o.state == OrderState.PendingCancel:
                return  # awaiting the venue
            d = 1 if o.side == Side.Bid else -1
            if o.filled_lots == 0 and ((self.order_ttl_ns > 0 and ctx.ts - self.entry_sent_ts >= self.order_ttl_ns)
                                       or target != d):
                ex.cancel(self.entry_id)  # fills may still come
            return
        # a position with nothing working is the router's to protect (it flattens it)
        if target == 0 or ctx.position != 0 or self.any_working(ex) or not ctx.top.two_sided():
            return
        if ctx.ts - self.last_entry_ts < self.min_gap_ns:
            return
        spec.kind = OrderKind.Bracket
        spec.side = Side.Bid if target > 0 else Side.Ask
        spec.entry_type = OrderKind.Market if self.market_entry else OrderKind.Limit
        if spec.side == Side.Bid:
            spec.price_ticks = ctx.top.ask_price if self.market_entry else ctx.top.bid_price
        else:
            spec.price_ticks = ctx.top.bid_price if self.market_entry else ctx.top.ask_price
        spec.qty_lots = self.fixed_qty_lots
        spec.probability = p
        spec.max_qty_lots = self.max_qty_lots
        spec.stop_ticks = self.stop_ticks
        spec.target_ticks = self.target_ticks
        r = ex.submit(spec)
        if r.ok:
            self.entry_id = r.order_id
            self.entry_sent_ts = ctx.ts
            self.last_entry_ts = ctx.ts


cdef void _on_decision(void* self, DecisionContext* ctx) noexcept nogil:
    (<Threshold>self).on_decision(ctx)
