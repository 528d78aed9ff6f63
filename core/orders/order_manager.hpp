#pragma once
// Order manager for one instrument: idempotent submission, brackets (entry OTO -> OCO(stop,
// target)) with partial-fill resizing and VWAP repricing, and self-trade prevention.
//
// Model: the manager owns the local view of every order. Requests it makes itself (leg
// creation, resize, STP or OCO cancels) are applied at once and emitted as events; the caller
// drains the events and forwards them to the venue / simulator, which answers with on_ack /
// on_fill / on_cancel / on_reject / on_expire. Every call returns a Reason (status code); every
// non-Ok reason is also counted.
//
// Bracket rules (what the property tests check):
//  - legs are created on the entry's first fill, sized to the open filled quantity
//    open = entry.filled - stop.filled - target.filled, and every working leg always has
//    qty - filled == open;
//  - each entry fill reprices the legs from the fill VWAP V (exact rational) rounded AWAY from V,
//    so the real distance is never smaller than configured:
//      long : stop = floor(V) - stop_dist,  target = ceil(V)  + target_dist
//      short: stop = ceil(V)  + stop_dist,  target = floor(V) - target_dist;
//  - a fill on a leg means the exit has started: the entry's working remainder is cancelled
//    (so legs can never be outgrown again), and the peer leg is reduced by the same quantity
//    (cancelled when nothing stays open) in the same call, so stop.filled + target.filled never
//    exceeds entry.filled; a leg fill above `open` is refused as Overfill.
//
// Self-trade prevention (at submission): a new buy crosses an own working sell when the buy is
// a market order, the sell is a market order, or buy price >= sell price (and vice versa).
// Stop orders are triggers, not resting liquidity, and never count. Policies:
//  CancelNew      - the new order is rejected (Reason::SelfTrade);
//  CancelResting  - every crossing own order is cancelled, the new order goes through;
//  CancelBoth     - both;
//  DecrementBoth  - the new order and each crossing order are reduced by the overlap (a resting
//                   order reduced to nothing is cancelled; a new order reduced to nothing is
//                   rejected).
// Protective legs are never cancelled or shrunk by a new order's STP: if one is crossed, the
// policy falls back to CancelNew. Conversely, when a target leg is created or repriced, any own
// working non-protective order it would cross (the bracket's own entry remainder included) is
// cancelled, because protection wins over a fresh entry.
#include <cstddef>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "orders/client_id_cache.hpp"
#include "orders/order.hpp"
#include "orders/order_state_machine.hpp"

namespace bot4::orders {

enum class StpPolicy : uint8_t { CancelNew = 0, CancelResting = 1, CancelBoth = 2, DecrementBoth = 3 };
enum class IntentKind : uint8_t { Limit = 0, Market = 1, Bracket = 2 };

struct OrderManagerConfig {
  std::size_t dedup_capacity = 10'000;
  int64_t dedup_ttl_ns = 300'000'000'000;  // 5 minutes
  StpPolicy stp = StpPolicy::CancelNew;
  int64_t stop_distance_ticks = 10;
  int64_t target_distance_ticks = 20;
};

struct OrderIntent {
  IntentKind kind = IntentKind::Limit;
  uint64_t client_id = 0;
  Side side = Side::Bid;
  int64_t price_ticks = 0;  // limit price (Limit, or a Bracket whose entry_type is Limit)
  int64_t qty_lots = 0;
  bool reduce_only = false;
  OrderType entry_type = OrderType::Limit;  // Bracket only: Limit or Market
  int64_t stop_distance_ticks = -1;         // Bracket only: -1 = config default
  int64_t target_distance_ticks = -1;
};

struct BracketLegs {
  OrderId entry = 0;
  OrderId stop = 0;    // 0 until the entry's first fill
  OrderId target = 0;
  int64_t stop_distance = 0;
  int64_t target_distance = 0;
};

class OrderManager {
 public:
  explicit OrderManager(const OrderManagerConfig& cfg = {});

  SubmitResult submit(const OrderIntent& intent, Timestamp now);

  Reason on_ack(OrderId id, Timestamp ts);
  Reason on_fill(OrderId id, int64_t qty, int64_t price, Timestamp ts);
  Reason on_cancel(OrderId id, Timestamp ts);
  Reason on_reject(OrderId id, Timestamp ts);
  Reason on_expire(OrderId id, Timestamp ts);
  std::size_t cancel_all(Timestamp ts);

  const Order* find(OrderId id) const;
  const BracketLegs* bracket(OrderId entry_id) const;
  // Open filled quantity of a bracket still to be closed by its legs.
  int64_t bracket_open(const BracketLegs& g) const;
  int64_t position() const { return position_; }
  std::vector<OrderId> order_ids() const;
  const OrderManagerConfig& config() const { return cfg_; }
  const OrderStateMachine& state_machine() const { return sm_; }
  const ClientIdCache& dedup() const { return dedup_; }
  uint64_t stp_actions() const { return stp_actions_; }

  // Moves the pending events out; the caller owns them.
  std::vector<OrderEvent> drain_events();

 private:
  SubmitResult submit_new(const OrderIntent& intent, Timestamp now);
  Order* get(OrderId id);
  Order& create(const OrderIntent& intent, OrderType type, OrderRole role, Side side, int64_t price, int64_t qty);
  // Applies the STP policy to a fresh (not yet announced) order; false if it must be rejected.
  bool self_trade_check(Order& o, Timestamp now);
  void protect_leg(const Order& leg, Timestamp now);
  void on_entry_fill(BracketLegs& g, Timestamp ts);
  void on_leg_fill(BracketLegs& g, const Order& leg, Timestamp ts);

  OrderManagerConfig cfg_;
  OrderStateMachine sm_;
  ClientIdCache dedup_;
  std::unordered_map<OrderId, Order> orders_;
  std::unordered_map<OrderId, BracketLegs> brackets_;  // keyed by entry id (= group id)
  OrderId next_id_ = 1;
  int64_t position_ = 0;
  uint64_t stp_actions_ = 0;
};

// The crossing rule used by STP (exposed for tests): would these two own orders trade?
bool orders_cross(const Order& a, const Order& b);

}  // namespace bot4::orders
