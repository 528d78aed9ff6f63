#pragma once
// The strategy interface. At each decision point the engine hands a strategy a read-only view of
// its instrument (DecisionContext) and an execution handle through which it states intents: a
// target position (turned into orders by the execution router under an execution policy) or
// explicit orders (limit, market, stop, OCO, OTO, bracket, cancel, replace, flatten). Intents are
// checked and routed at once: the call returns the outcome (order id, or why it was refused), so
// a strategy never has to guess what happened to what it asked for. Fills and rejections of its
// orders are told to it as they arrive.
//
// Strategies are written in C++ against this header (installed with bot4; find_package(bot4)),
// in Cython (bot4/strategy.pxd) or in Python (bot4.Strategy); built-ins are configured from TOML.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "common/saturating.hpp"
#include "common/types.hpp"
#include "orders/order.hpp"
#include "orders/order_manager.hpp"

namespace bot4::book {
class L2Book;
}

namespace bot4::strategy {

// What a decision ended in (DecisionRec::action). Numbering is part of the result format.
enum class DecisionAction : int8_t {
  None = 0,
  OrderSent = 1,      // an order (or group) went out
  CancelSent = 2,     // a cancel was requested
  CloseSent = 3,      // a reduce-only market close went out (flatten)
  Rejected = 4,       // the pre-trade checks or the order manager refused an intent
};
const char* decision_action_name(DecisionAction a) noexcept;

enum class ExecPolicy : uint8_t {
  Passive = 0,     // limit at our own touch
  Aggressive = 1,  // market order
};

enum class OrderKind : uint8_t { Limit = 0, Market = 1, Stop = 2, Bracket = 3, Oco = 4, Oto = 5 };

// An explicit order (or contingent group). qty_lots == 0 asks the risk sizer for the size, from
// `probability` (P(up), the sizer's input) and the engine's volatility estimate, capped at
// max_qty_lots (or the pre-trade position cap when 0).
struct OrderSpec {
  OrderKind kind = OrderKind::Limit;
  Side side = Side::Bid;
  int64_t price_ticks = 0;           // limit / trigger price; unused for Market
  int64_t qty_lots = 0;              // 0 = sized by the risk stage
  double probability = 0.5;          // sizer input when qty_lots == 0
  int64_t max_qty_lots = 0;          // cap on a sized quantity (0 = the position cap)
  bool reduce_only = false;
  OrderKind entry_type = OrderKind::Limit;  // Bracket: Limit or Market entry; Oco first / Oto parent: any
  int64_t stop_ticks = -1;           // Bracket: stop distance from the entry VWAP (-1 = engine default)
  int64_t target_ticks = -1;         // Bracket: target distance (-1 = engine default)
  orders::LegSpec second;            // Oco: the second order; Oto: the child
  uint64_t client_id = 0;            // idempotency key (0 = assigned); a repeat inside the TTL is not re-sent
};

// A target position: the router sends what moves the position there (nothing while an order of
// the instrument is still working), under `policy`, optionally protected by a bracket.
struct TargetSpec {
  int64_t position_lots = 0;         // signed target
  ExecPolicy policy = ExecPolicy::Passive;
  bool bracket = false;
  int64_t stop_ticks = -1;
  int64_t target_ticks = -1;
};

struct Outcome {
  bool ok = false;
  OrderId order_id = 0;            // the order (group: its first order) when one was created
  orders::Reason order_reason = orders::Reason::Ok;  // order manager's verdict
  uint8_t risk_reason = 0;         // risk::RejectReason when the pre-trade checks refused (0 = Ok)
  bool sized_zero = false;         // the sizer gave no size (or no volatility yet): nothing sent
};

// The strategy's handle on execution for its instrument. Implemented by the execution router.
class Execution {
 public:
  virtual ~Execution() = default;
  virtual Outcome submit(const OrderSpec& order) = 0;
  virtual Outcome target(const TargetSpec& target) = 0;
  virtual bool cancel(OrderId id) = 0;                               // request (pending until confirmed)
  virtual Outcome replace(OrderId id, int64_t price_ticks, int64_t qty_lots) = 0;  // cancel + new order
  virtual void flatten() = 0;                                        // cancel all, then close the position
  virtual const orders::Order* order(OrderId id) const = 0;          // live or recently closed
  virtual const orders::BracketLegs* group(OrderId first_id) const = 0;
  virtual void open_orders(std::vector<const orders::Order*>& out) const = 0;
  virtual size_t live_orders() const = 0;
};

struct BookTop {
  int64_t bid_price = 0;  // kNoBidPrice when the side is empty
  int64_t bid_qty = 0;
  int64_t ask_price = 0;  // kNoAskPrice when the side is empty
  int64_t ask_qty = 0;
  bool two_sided() const { return bid_price != kNoBidPrice && ask_price != kNoAskPrice && bid_price < ask_price; }
  int64_t mid() const { return two_sided() ? mid_of(bid_price, ask_price) : 0; }
};

struct RiskHeadroom {
  int64_t long_lots = 0;    // lots more that may be bought under the position cap (incl. working orders)
  int64_t short_lots = 0;   // lots more that may be sold
  int64_t open_orders = 0;  // orders more that may be open
  bool kill_switch = false; // tripped: nothing but closes goes out
};

// Read-only view at one decision point; valid only during the call.
struct DecisionContext {
  int64_t ts = 0;                      // local time, ns
  InstrumentId instrument = 0;
  uint32_t slot = 0;                   // instrument's index in this engine
  double tick_size = 1.0;
  double lot_size = 1.0;
  BookTop top;
  const book::L2Book* book = nullptr;  // depth view (the book as received so far)
  const float* features = nullptr;     // the feature row (nullptr when the decision has none)
  size_t n_features = 0;
  const double* models = nullptr;      // each loaded model's output (P(up)); NaN if undefined
  size_t n_models = 0;
  int64_t position = 0;                // lots
  double average_entry = 0.0;          // ticks (0 when flat)
  double realised = 0.0;               // quote units
  double unrealised = 0.0;
  double fees = 0.0;
  double equity = 0.0;                 // starting equity + total P&L, quote units
  bool flattening = false;             // the router is flattening (kill switch or a flatten intent)
  RiskHeadroom headroom;
  Execution* exec = nullptr;
  int8_t signal = 0;                   // written by the strategy: its view (+1 long, -1 short, 0 flat), recorded
  // The ensemble stage (inference/ensemble.hpp), when the engine config has one: the combined
  // P(up) after the disagreement breaker, and the breaker's size multiplier (the router applies it
  // to entry sizes; told here so a strategy may read it). Without an ensemble: false, NaN, 1.
  bool has_ensemble = false;
  double ensemble = std::nan("");
  double size_scale = 1.0;

  double model(size_t i = 0) const { return i < n_models ? models[i] : std::nan(""); }
  // The probability to trade on: the ensemble's when configured, else slot 0's.
  double probability() const { return has_ensemble ? ensemble : model(0); }
  double feature(size_t i) const { return features != nullptr && i < n_features ? features[i] : std::nan(""); }
};

struct FillInfo {
  int64_t ts = 0;
  InstrumentId instrument = 0;
  OrderId order_id = 0;
  Side side = Side::Bid;
  int64_t price_ticks = 0;
  int64_t qty_lots = 0;
  double fee = 0.0;
  bool maker = false;
  orders::OrderRole role = orders::OrderRole::Single;
  int64_t position = 0;  // after the fill
};

struct RejectInfo {
  int64_t ts = 0;
  InstrumentId instrument = 0;
  OrderId order_id = 0;
  bool by_venue = false;   // a venue reject (else refused locally)
  orders::Reason reason = orders::Reason::Ok;
};

class Strategy {
 public:
  virtual ~Strategy() = default;
  virtual const char* name() const = 0;
  // Called at every decision point of the strategy's instrument.
  virtual void on_decision(DecisionContext& ctx) = 0;
  virtual void on_fill(const FillInfo& /*fill*/) {}
  virtual void on_reject(const RejectInfo& /*reject*/) {}
  // True: a decision at every book message of the instrument, whatever the feature config says,
  // without a model call (a strategy that reads only the book).
  virtual bool book_only() const { return false; }
  // True: the strategy holds inventory on purpose (a market maker), so the router does not
  // flatten a position that no working order protects.
  virtual bool holds_inventory() const { return false; }
};

}  // namespace bot4::strategy
