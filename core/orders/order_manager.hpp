#pragma once
// Order manager for one instrument: idempotent submission, contingent groups (brackets, OCO, OTO)
// with partial-fill resizing and VWAP repricing, cancels that stay pending until the venue
// confirms them, self-trade prevention across groups, and bounded memory.
//
// Model: the manager owns the local view of every order. Requests it makes itself (leg
// creation, resize, cancels) are applied at once to the local view and emitted as events; the
// caller drains the events and forwards them to the venue / simulator, which answers with
// on_ack / on_fill / on_cancel / on_reject / on_expire. Every call returns a Reason (status
// code); every non-Ok reason is also counted. The venue is assumed to process one session's
// requests in the order they were emitted (per-connection sequencing, as real venues and the
// simulator do): a Cancel emitted before a New takes effect before that New.
//
// Cancels (config.confirm_cancels = true): request_cancel(id) and every cancel the manager makes
// itself (OCO peer, STP, cancel_all, a bracket's entry remainder once its exit has begun) move
// the order to PendingCancel and emit one Cancel event (state PendingCancel: forward it). The
// order keeps accepting fills -- they happened at the venue -- and becomes Cancelled on the
// venue's confirmation (on_cancel), or Filled if it fills completely first (a later on_cancel is
// then a counted ClosedOrder). on_cancel on a working order that is not pending is an unsolicited
// venue cancel: terminal at once. A held (never sent) order is cancelled locally at once (Cancel
// event with state Cancelled: do not forward). confirm_cancels = false is the transitional
// legacy mode (every cancel terminal at once) kept only until the engine confirms cancels.
//
// Brackets (entry OTO -> OCO(stop, target)), what the property tests check:
//  - exited = sum of fills over every leg the bracket ever had; open = entry.filled - exited;
//  - the current pair of legs is created on the entry's first fill, sized to open; every active
//    (working, not cancel-pending) current leg always has qty - filled == open;
//  - each entry fill reprices the legs from the fill VWAP V (exact rational) rounded AWAY from V,
//    so the real distance is never smaller than configured:
//      long : stop = floor(V) - stop_dist,  target = ceil(V)  + target_dist
//      short: stop = ceil(V)  + stop_dist,  target = floor(V) - target_dist;
//  - a fill on any leg means the exit has started: the entry's working remainder is cancelled
//    (pending), and the other active legs are reduced to the new open quantity in the same call
//    (cancelled when open reaches 0), so exited never exceeds entry.filled; a leg fill above
//    open is refused as Overfill (the legs are reduce-only at the venue, which caps them the
//    same way);
//  - fills racing cancels: an entry fill that arrives while the entry is cancel-pending still
//    creates/resizes/reprices the legs. If no current leg is active any more (e.g. the target
//    closed the position and the stop is cancel-pending) a fresh pair is created for the new
//    open quantity; the old legs stay "retired": a late fill on one is still accounted (it
//    reduces open and the current pair) within the open quantity;
//  - cancel_all, or an explicit request_cancel of a leg, halts the group: no new legs are
//    created for it afterwards (the caller took over -- e.g. the kill switch flattens, and must
//    account fills that raced its cancel_all), fills are still accounted.
//  - a leg the venue itself cancels / rejects / expires is not replaced while its peer works.
//
// OCO (IntentKind::Oco, two orders of any type): a fill of q on one reduces the other's open
// quantity by q in the same call (cancel request when nothing remains). A cancel / reject /
// expire of one leaves the other alone. Locally emulated OCO has the usual race: a fill on the
// peer that the venue executed before the cancel arrived is still accounted (it is real; a
// cancel-pending order keeps its quantity), so the two may together fill more than one leg's
// quantity -- use a bracket (reduce-only legs) where that must never happen. A fill beyond an
// order's local open quantity (e.g. racing a reduce) is refused as Overfill, counted.
//
// OTO (IntentKind::Oto): a parent plus a contingent child (Limit or Stop). The child is created
// and released (New) on the parent's first fill, sized to the parent's filled quantity, and
// grown (Replace) on further parent fills; if the child filled completely meanwhile, a new child
// is released for the rest. If the parent ends (cancelled / rejected / expired) with nothing
// filled, the child is never sent. A child cancelled / rejected / expired is not replaced.
//
// Self-trade prevention. Crossing: a buy and an own sell cross when either is a market order or
// buy price >= sell price; stops are triggers, not resting liquidity, and never count. Only
// active, sent orders count (a cancel-pending order's cancel precedes anything sent later).
//  At submission (also an OTO child's release), per policy:
//   CancelNew      - the new order is rejected (Reason::SelfTrade);
//   CancelResting  - every crossing own order is cancelled, the new order goes through;
//   CancelBoth     - both;
//   DecrementBoth  - the new order and each crossing order are reduced by the overlap (a resting
//                    order reduced to nothing is cancelled; a new order reduced to nothing is
//                    rejected).
//  Protective legs (held ones included) are never cancelled or shrunk by a new order's STP: if
//  one is crossed, the policy falls back to CancelNew. When a target leg is created or repriced,
//  any own active non-protective order it would cross is cancelled first (protection wins over a
//  fresh entry). Across groups (a long bracket's sell target vs a short bracket's buy target)
//  neither leg may be cancelled -- that would drop protection -- and netting them would book
//  fills that never happened, so the later target is HELD BACK: kept locally (sized and priced
//  as usual, no New sent) and released (New) as soon as it no longer crosses any active sent
//  order; a sent target repriced into such a cross is pulled (cancel requested) and replaced by
//  a held one. Stops are always sent, so a filled position is never left without its stop. This
//  mirrors what an OMS with emulated contingent orders does (hold the trigger-less child locally
//  until it may be released) rather than relying on venue-side STP, which would expire one leg.
//  Invariant: no two active, sent own orders ever cross.
//
// Memory: a terminal order (a group's orders: once the whole group is finished) is moved to a
// FIFO of the `retain_closed` most recent closed orders (still visible to find()) and erased
// after that; finished groups are erased. Ids are assigned in increasing order, so an event for
// an id below next id that is no longer stored is a ClosedOrder (counted), any other id is an
// UnknownOrder. live_orders() counts working orders.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "orders/client_id_cache.hpp"
#include "orders/order.hpp"
#include "orders/order_state_machine.hpp"

namespace bot4::orders {

enum class StpPolicy : uint8_t { CancelNew = 0, CancelResting = 1, CancelBoth = 2, DecrementBoth = 3 };
enum class IntentKind : uint8_t { Limit = 0, Market = 1, Bracket = 2, Oco = 3, Oto = 4, Stop = 5 };
enum class GroupKind : uint8_t { Bracket = 0, Oco = 1, Oto = 2 };

struct OrderManagerConfig {
  std::size_t dedup_capacity = 10'000;
  int64_t dedup_ttl_ns = 300'000'000'000;  // 5 minutes
  StpPolicy stp = StpPolicy::CancelNew;
  int64_t stop_distance_ticks = 10;
  int64_t target_distance_ticks = 20;
  // true: cancels stay PendingCancel until the venue confirms them (on_cancel). false is the
  // transitional legacy mode (terminal at once) until the engine forwards confirmations.
  bool confirm_cancels = false;
  std::size_t retain_closed = 1024;  // closed orders kept for find() before they are erased
};

// The second order of an Oco intent, or the contingent child of an Oto intent.
struct LegSpec {
  Side side = Side::Bid;
  OrderType type = OrderType::Limit;  // Oco: Limit, Market or Stop; Oto child: Limit or Stop
  int64_t price_ticks = 0;            // limit / trigger price; unused for Market
  int64_t qty_lots = 0;               // Oco: the second order's quantity; Oto: unused (follows fills)
};

struct OrderIntent {
  IntentKind kind = IntentKind::Limit;
  uint64_t client_id = 0;
  Side side = Side::Bid;
  int64_t price_ticks = 0;  // limit (or stop trigger) price of the (first) order; unused for Market
  int64_t qty_lots = 0;
  bool reduce_only = false;
  OrderType entry_type = OrderType::Limit;  // Bracket: Limit|Market; Oco first order / Oto parent: any
  int64_t stop_distance_ticks = -1;         // Bracket only: -1 = config default
  int64_t target_distance_ticks = -1;
  LegSpec second;                           // Oco: the second order; Oto: the child
};

// A contingent group, keyed by its first order's id (= Order::group_id of every member). The
// name is historical: brackets came first.
struct BracketLegs {
  GroupKind kind = GroupKind::Bracket;
  OrderId entry = 0;   // Bracket: entry; Oco: first order; Oto: parent
  OrderId stop = 0;    // Bracket: current stop leg (0 until the entry's first fill)
  OrderId target = 0;  // Bracket: current target leg
  OrderId second = 0;  // Oco: second order; Oto: current child (0 until released)
  int64_t stop_distance = 0;
  int64_t target_distance = 0;
  int64_t exited_lots = 0;  // Bracket: fills over all legs ever; Oto: fills of retired children
  LegSpec child;            // Oto: the child to release
  bool halted = false;      // no more legs / children are created (cancel_all, explicit leg cancel)
  bool done = false;        // every member is terminal; erased with its first evicted member
  std::vector<OrderId> members;
};

class OrderManager {
 public:
  explicit OrderManager(const OrderManagerConfig& cfg = {});

  SubmitResult submit(const OrderIntent& intent, Timestamp now);

  // Ask the venue to cancel (see header comment). Ok, or UnknownOrder / ClosedOrder /
  // CancelPending (a repeat: counted, not re-sent).
  Reason request_cancel(OrderId id, Timestamp ts);
  Reason on_ack(OrderId id, Timestamp ts);
  Reason on_fill(OrderId id, int64_t qty, int64_t price, Timestamp ts);
  // Venue confirmation of a cancel (or an unsolicited venue cancel).
  Reason on_cancel(OrderId id, Timestamp ts);
  Reason on_reject(OrderId id, Timestamp ts);
  Reason on_expire(OrderId id, Timestamp ts);
  // Cancels (requests) every active order and halts every group; returns how many.
  std::size_t cancel_all(Timestamp ts);

  // Live orders and the `retain_closed` most recently closed ones; nullptr otherwise.
  const Order* find(OrderId id) const;
  const BracketLegs* bracket(OrderId entry_id) const;  // Bracket groups only
  const BracketLegs* group(OrderId group_id) const;    // any group kind
  // Open filled quantity of a bracket still to be closed by its legs.
  int64_t bracket_open(const BracketLegs& g) const;
  int64_t position() const { return position_; }
  std::vector<OrderId> order_ids() const;  // every stored order (live + retained closed)
  std::size_t live_orders() const { return orders_.size() - terminal_stored_; }
  std::size_t stored_orders() const { return orders_.size(); }
  std::size_t live_groups() const { return groups_.size(); }
  uint64_t evicted() const { return evicted_; }
  const OrderManagerConfig& config() const { return cfg_; }
  const OrderStateMachine& state_machine() const { return sm_; }
  const ClientIdCache& dedup() const { return dedup_; }
  uint64_t stp_actions() const { return stp_actions_; }
  uint64_t held_releases() const { return held_releases_; }

  // Moves the pending events out; the caller owns them.
  std::vector<OrderEvent> drain_events();

 private:
  SubmitResult submit_new(const OrderIntent& intent, Timestamp now);
  SubmitResult submit_oco(const OrderIntent& intent, Timestamp now);
  SubmitResult submit_oto(const OrderIntent& intent, Timestamp now);
  Order* get(OrderId id);
  // Looks an id up for a venue event; counts UnknownOrder / ClosedOrder when it is not stored.
  Order* lookup(OrderId id, Reason& why);
  Order& create(uint64_t client_id, bool reduce_only, OrderType type, OrderRole role, Side side, int64_t price,
                int64_t qty);
  BracketLegs& add_group(GroupKind kind, Order& first);
  void join(BracketLegs& g, Order& o);
  // Applies the STP policy to a fresh (not yet announced) order; false if it must be rejected.
  bool self_trade_check(Order& o, Timestamp now);
  // Cancel made by the manager itself: pending (or terminal in legacy mode); local if held.
  void cancel_internal(Order& o, Timestamp ts, Reason why = Reason::Ok);
  // Cancels active non-protective orders crossing `leg`; true if an active sent protective
  // order of another group crosses it (then it must be held).
  bool clear_for_target(const Order& leg, Timestamp now);
  void hold(Order& t);  // keep a target leg back (not sent) until it no longer crosses
  bool reduce_only_ok(Side side, int64_t qty) const;
  void update_target(BracketLegs& g, Order& t, int64_t open, int64_t price, Timestamp now);
  void sync_bracket(BracketLegs& g, Timestamp ts);
  void sync_oto(BracketLegs& g, Timestamp ts);
  void on_group_fill(BracketLegs& g, Order& o, int64_t qty, Timestamp ts);
  // End of every mutating call: release held legs, retire terminal orders, evict.
  void settle(Timestamp ts);
  void settle_terminal();
  void release_held(Timestamp ts);
  void retire(OrderId id);
  bool group_done(const BracketLegs& g) const;

  OrderManagerConfig cfg_;
  OrderStateMachine sm_;
  ClientIdCache dedup_;
  std::unordered_map<OrderId, Order> orders_;
  std::unordered_map<OrderId, BracketLegs> groups_;  // keyed by the first order's id (= group id)
  std::vector<OrderId> held_;                         // held (unsent) target legs
  std::deque<OrderId> closed_;                        // retained closed orders, oldest first
  std::size_t swept_ = 0;                             // events already scanned by settle()
  std::size_t terminal_stored_ = 0;                   // terminal orders still in orders_
  OrderId next_id_ = 1;
  int64_t position_ = 0;
  uint64_t stp_actions_ = 0;
  uint64_t held_releases_ = 0;
  uint64_t evicted_ = 0;
};

// The crossing rule used by STP (exposed for tests): would these two own orders trade?
bool orders_cross(const Order& a, const Order& b);

}  // namespace bot4::orders
