#pragma once
// Order record and the enums every order component shares. Prices are integer ticks and
// quantities integer lots (DESIGN.md §3); the fill VWAP is kept as an exact integer notional so
// that leg repricing is reproducible and never drifts with float accumulation.
#include <cstdint>

#include "common/types.hpp"

namespace bot4::orders {

enum class OrderState : uint8_t {
  New = 0,             // created locally / sent, not yet acknowledged by the venue
  Acknowledged = 1,
  PartiallyFilled = 2,
  Filled = 3,
  Cancelled = 4,
  Rejected = 5,
  Expired = 6,
  // Cancel requested, not yet confirmed by the venue. Still working: fills keep arriving (and are
  // accounted) until the venue confirms (-> Cancelled) or the order fills completely (-> Filled).
  // Appended so the numeric values above stay stable.
  PendingCancel = 7,
};

enum class OrderType : uint8_t { Limit = 0, Market = 1, Stop = 2 };

// Role inside a contingent group; Single means a standalone order. StopLeg / TargetLeg are a
// bracket's protective (reduce-only) legs; OCO / OTO members are not protective.
enum class OrderRole : uint8_t { Single = 0, Entry = 1, StopLeg = 2, TargetLeg = 3, OcoLeg = 4, OtoParent = 5, OtoChild = 6 };

enum class OrderEventKind : uint8_t { New = 0, Ack = 1, Fill = 2, Cancel = 3, Reject = 4, Replace = 5, Expire = 6 };

// Names of the enums above, indexed by value (result records and bindings use these).
inline constexpr const char* kOrderStateNames[] = {"new", "acknowledged", "partially_filled", "filled",
                                                   "cancelled", "rejected", "expired", "pending_cancel"};
inline constexpr const char* kOrderTypeNames[] = {"limit", "market", "stop"};
inline constexpr const char* kOrderRoleNames[] = {"single", "entry", "stop", "target", "oco", "oto_parent", "oto_child"};
inline constexpr const char* kOrderEventKindNames[] = {"new", "ack", "fill", "cancel", "reject", "replace", "expire"};

// Status codes for every operation; non-Ok values are counted rejections (never exceptions).
enum class Reason : uint8_t {
  Ok = 0,
  UnknownOrder,       // event for an order id the manager never created
  ClosedOrder,        // event for an order already Filled/Cancelled/Rejected/Expired
  IllegalTransition,  // e.g. ack of an already acknowledged order, reject after ack
  Overfill,           // fill beyond the order's (or the bracket's) open quantity
  BadQuantity,        // qty <= 0
  BadPrice,           // limit fill worse than the limit, non-positive limit price
  SelfTrade,          // refused by self-trade prevention
  ReduceOnly,         // reduce-only order that would grow or flip the position
  DuplicateClientId,  // resubmission inside the TTL: original result returned (counted, not an error)
  CancelPending,      // cancel requested again while the first request is unconfirmed (counted, not re-sent)
  Count
};

inline constexpr bool is_terminal(OrderState s) {
  return s == OrderState::Filled || s == OrderState::Cancelled || s == OrderState::Rejected ||
         s == OrderState::Expired;
}

inline constexpr bool is_buy(Side s) { return s == Side::Bid; }
inline constexpr int64_t side_sign(Side s) { return s == Side::Bid ? 1 : -1; }
inline constexpr Side opposite(Side s) { return s == Side::Bid ? Side::Ask : Side::Bid; }

struct Order {
  uint64_t client_id = 0;
  OrderId order_id = 0;  // assigned by the manager (stands in for the venue id in a backtest)
  Side side = Side::Bid;
  OrderType type = OrderType::Limit;
  OrderState state = OrderState::New;
  OrderRole role = OrderRole::Single;
  bool reduce_only = false;
  int64_t price_ticks = 0;     // limit price, or trigger price for Stop; unused for Market
  int64_t qty_lots = 0;        // total quantity (filled + open)
  int64_t filled_lots = 0;
  int64_t fill_notional = 0;   // sum(fill price ticks * lots): VWAP = fill_notional / filled_lots
  uint64_t group_id = 0;       // contingent group (bracket), 0 if none
  OrderId parent_id = 0;       // OTO parent (the entry) for legs
  OrderId oco_peer_id = 0;     // the other OCO leg
  bool acked = false;          // the venue acknowledged it (tells a late reject/ack from a stray one)
  bool held = false;           // created locally but held back (not sent) by self-trade prevention;
                               // no venue event can refer to it until it is released (emits New)

  int64_t open_lots() const { return qty_lots - filled_lots; }
  bool working() const { return !is_terminal(state); }
  // Working and not being cancelled: may be resized/repriced, counts for self-trade prevention
  // (when not held).
  bool active() const { return working() && state != OrderState::PendingCancel; }
};

}  // namespace bot4::orders
