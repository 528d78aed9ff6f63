#include "orders/order_manager.hpp"

#include <algorithm>
#include <cstdlib>

namespace bot4::orders {
namespace {

// Floor/ceil of a/b for b > 0 (C++ division truncates toward zero, wrong for negatives).
int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && (a < 0)); }
int64_t ceil_div(int64_t a, int64_t b) { return a / b + ((a % b != 0) && (a > 0)); }

bool is_protective(const Order& o) { return o.role == OrderRole::StopLeg || o.role == OrderRole::TargetLeg; }

}  // namespace

bool orders_cross(const Order& a, const Order& b) {
  if (a.side == b.side) return false;
  if (a.type == OrderType::Stop || b.type == OrderType::Stop) return false;
  if (a.type == OrderType::Market || b.type == OrderType::Market) return true;
  const Order& buy = is_buy(a.side) ? a : b;
  const Order& sell = is_buy(a.side) ? b : a;
  return buy.price_ticks >= sell.price_ticks;
}

OrderManager::OrderManager(const OrderManagerConfig& cfg)
    : cfg_(cfg), dedup_(cfg.dedup_capacity, cfg.dedup_ttl_ns) {}

Order* OrderManager::get(OrderId id) {
  auto it = orders_.find(id);
  return it == orders_.end() ? nullptr : &it->second;
}

const Order* OrderManager::find(OrderId id) const {
  auto it = orders_.find(id);
  return it == orders_.end() ? nullptr : &it->second;
}

const BracketLegs* OrderManager::bracket(OrderId entry_id) const {
  auto it = brackets_.find(entry_id);
  return it == brackets_.end() ? nullptr : &it->second;
}

int64_t OrderManager::bracket_open(const BracketLegs& g) const {
  int64_t open = find(g.entry)->filled_lots;
  if (g.stop) open -= find(g.stop)->filled_lots;
  if (g.target) open -= find(g.target)->filled_lots;
  return open;
}

std::vector<OrderId> OrderManager::order_ids() const {
  std::vector<OrderId> ids;
  ids.reserve(orders_.size());
  for (const auto& [id, o] : orders_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<OrderEvent> OrderManager::drain_events() {
  std::vector<OrderEvent> out;
  out.swap(sm_.events());
  return out;
}

SubmitResult OrderManager::submit(const OrderIntent& intent, Timestamp now) {
  if (auto hit = dedup_.lookup(intent.client_id, now)) {
    // Replay: the venue may or may not have seen the first attempt; either way no second order.
    sm_.count(Reason::DuplicateClientId);
    hit->duplicate = true;
    return *hit;
  }
  SubmitResult r = submit_new(intent, now);
  dedup_.insert(intent.client_id, r, now);
  return r;
}

Order& OrderManager::create(const OrderIntent& intent, OrderType type, OrderRole role, Side side, int64_t price,
                            int64_t qty) {
  Order o;
  o.client_id = intent.client_id;
  o.order_id = next_id_++;
  o.side = side;
  o.type = type;
  o.role = role;
  o.reduce_only = intent.reduce_only || role == OrderRole::StopLeg || role == OrderRole::TargetLeg;
  o.price_ticks = type == OrderType::Market ? 0 : price;
  o.qty_lots = qty;
  return orders_.emplace(o.order_id, o).first->second;
}

SubmitResult OrderManager::submit_new(const OrderIntent& in, Timestamp now) {
  if (in.qty_lots <= 0) return {sm_.count(Reason::BadQuantity), 0, false};
  const bool market = in.kind == IntentKind::Market ||
                      (in.kind == IntentKind::Bracket && in.entry_type == OrderType::Market);
  if (!market && in.price_ticks <= 0) return {sm_.count(Reason::BadPrice), 0, false};
  if (in.kind == IntentKind::Bracket && in.entry_type == OrderType::Stop) return {sm_.count(Reason::BadPrice), 0, false};
  if (in.reduce_only && in.kind != IntentKind::Bracket) {
    // Reduce-only must shrink the position without flipping it.
    const int64_t signed_qty = side_sign(in.side) * in.qty_lots;
    if (position_ == 0 || (position_ > 0) == (signed_qty > 0) || in.qty_lots > std::abs(position_))
      return {sm_.count(Reason::ReduceOnly), 0, false};
  }
  const OrderRole role = in.kind == IntentKind::Bracket ? OrderRole::Entry : OrderRole::Single;
  Order& o = create(in, market ? OrderType::Market : OrderType::Limit, role, in.side, in.price_ticks, in.qty_lots);
  const OrderId id = o.order_id;
  const bool accepted = self_trade_check(o, now);
  Order& placed = orders_.at(id);  // self_trade_check does not insert, but stay safe on references
  sm_.emit_new(placed, now);
  if (role == OrderRole::Entry) {
    BracketLegs g;
    g.entry = id;
    g.stop_distance = in.stop_distance_ticks >= 0 ? in.stop_distance_ticks : cfg_.stop_distance_ticks;
    g.target_distance = in.target_distance_ticks >= 0 ? in.target_distance_ticks : cfg_.target_distance_ticks;
    placed.group_id = id;
    brackets_.emplace(id, g);
  }
  if (!accepted) {
    sm_.reject(placed, now, Reason::SelfTrade);
    sm_.count(Reason::SelfTrade);
    return {Reason::SelfTrade, id, false};
  }
  return {Reason::Ok, id, false};
}

bool OrderManager::self_trade_check(Order& n, Timestamp now) {
  std::vector<Order*> crossing;
  bool touches_protection = false;
  for (auto& [id, r] : orders_) {
    if (id == n.order_id || !r.working() || !orders_cross(n, r)) continue;
    crossing.push_back(&r);
    touches_protection |= is_protective(r);
  }
  if (crossing.empty()) return true;
  ++stp_actions_;
  StpPolicy policy = touches_protection ? StpPolicy::CancelNew : cfg_.stp;
  switch (policy) {
    case StpPolicy::CancelNew:
      return false;
    case StpPolicy::CancelResting:
    case StpPolicy::CancelBoth:
      for (Order* r : crossing) sm_.cancel(*r, now, Reason::SelfTrade);
      return policy == StpPolicy::CancelResting;
    case StpPolicy::DecrementBoth: {
      // Best-priced resting first, the order a real match would take them in.
      std::sort(crossing.begin(), crossing.end(), [&](const Order* a, const Order* b) {
        if (a->price_ticks != b->price_ticks)
          return is_buy(n.side) ? a->price_ticks < b->price_ticks : a->price_ticks > b->price_ticks;
        return a->order_id < b->order_id;
      });
      const int64_t original = n.qty_lots;
      for (Order* r : crossing) {
        if (n.qty_lots == 0) break;
        const int64_t d = std::min(n.qty_lots, r->open_lots());
        n.qty_lots -= d;
        if (r->open_lots() == d)
          sm_.cancel(*r, now, Reason::SelfTrade);
        else
          sm_.replace(*r, r->qty_lots - d, r->price_ticks, now);
      }
      if (n.qty_lots == 0) {
        n.qty_lots = original;  // keep the request as asked in the New/Reject events
        return false;
      }
      return true;
    }
  }
  return false;
}


void OrderManager::protect_leg(const Order& leg, Timestamp now) {
  // A working target leg must not rest against an own non-protective order: cancel the latter.
  for (auto& [id, r] : orders_) {
    if (!r.working() || is_protective(r) || !orders_cross(leg, r)) continue;
    ++stp_actions_;
    sm_.cancel(r, now, Reason::SelfTrade);
  }
}

Reason OrderManager::on_ack(OrderId id, Timestamp ts) {
  Order* o = get(id);
  if (!o) return sm_.count(Reason::UnknownOrder);
  return sm_.ack(*o, ts);
}

Reason OrderManager::on_cancel(OrderId id, Timestamp ts) {
  Order* o = get(id);
  if (!o) return sm_.count(Reason::UnknownOrder);
  return sm_.cancel(*o, ts);
}

Reason OrderManager::on_reject(OrderId id, Timestamp ts) {
  Order* o = get(id);
  if (!o) return sm_.count(Reason::UnknownOrder);
  return sm_.reject(*o, ts);
}

Reason OrderManager::on_expire(OrderId id, Timestamp ts) {
  Order* o = get(id);
  if (!o) return sm_.count(Reason::UnknownOrder);
  return sm_.expire(*o, ts);
}

std::size_t OrderManager::cancel_all(Timestamp ts) {
  std::size_t n = 0;
  for (OrderId id : order_ids()) {
    Order& o = orders_.at(id);
    if (o.working() && sm_.cancel(o, ts) == Reason::Ok) ++n;
  }
  return n;
}

Reason OrderManager::on_fill(OrderId id, int64_t qty, int64_t price, Timestamp ts) {
  Order* o = get(id);
  if (!o) return sm_.count(Reason::UnknownOrder);
  if (is_terminal(o->state)) return sm_.count(Reason::ClosedOrder);
  if (qty <= 0) return sm_.count(Reason::BadQuantity);
  // A limit order never fills at a worse price than its limit; a fill that does is a bad report.
  if (o->type == OrderType::Limit &&
      (is_buy(o->side) ? price > o->price_ticks : price < o->price_ticks))
    return sm_.count(Reason::BadPrice);
  BracketLegs* g = nullptr;
  if (o->group_id) g = &brackets_.at(o->group_id);
  if (g && is_protective(*o) && qty > bracket_open(*g)) return sm_.count(Reason::Overfill);
  if (Reason r = sm_.fill(*o, qty, price, ts); r != Reason::Ok) return r;
  position_ += side_sign(o->side) * qty;
  if (g && o->role == OrderRole::Entry) on_entry_fill(*g, ts);
  else if (g) on_leg_fill(*g, *o, ts);
  return Reason::Ok;
}

void OrderManager::on_entry_fill(BracketLegs& g, Timestamp ts) {
  const Order entry = orders_.at(g.entry);  // copy: legs are inserted below (rehash-safe)
  const int64_t f = entry.filled_lots;
  const bool long_entry = is_buy(entry.side);
  const int64_t lo = floor_div(entry.fill_notional, f), hi = ceil_div(entry.fill_notional, f);
  const int64_t stop_px = long_entry ? lo - g.stop_distance : hi + g.stop_distance;
  const int64_t target_px = long_entry ? hi + g.target_distance : lo - g.target_distance;
  const int64_t open = bracket_open(g);
  const Side exit_side = opposite(entry.side);
  if (g.stop == 0) {
    // OTO: the first fill releases the OCO pair, sized to what is actually held.
    OrderIntent leg_intent;
    leg_intent.client_id = entry.client_id;
    Order& stop = create(leg_intent, OrderType::Stop, OrderRole::StopLeg, exit_side, stop_px, open);
    g.stop = stop.order_id;
    Order& target = create(leg_intent, OrderType::Limit, OrderRole::TargetLeg, exit_side, target_px, open);
    g.target = target.order_id;
    Order& s = orders_.at(g.stop);
    Order& t = orders_.at(g.target);
    s.group_id = t.group_id = g.entry;
    s.parent_id = t.parent_id = g.entry;
    s.oco_peer_id = g.target;
    t.oco_peer_id = g.stop;
    sm_.emit_new(s, ts);
    sm_.emit_new(t, ts);
  } else {
    Order& s = orders_.at(g.stop);
    Order& t = orders_.at(g.target);
    if (s.working()) sm_.replace(s, s.filled_lots + open, stop_px, ts);
    if (t.working()) sm_.replace(t, t.filled_lots + open, target_px, ts);
  }
  const Order& t = orders_.at(g.target);
  if (t.working()) protect_leg(t, ts);
}

void OrderManager::on_leg_fill(BracketLegs& g, const Order& leg, Timestamp ts) {
  // The exit has begun: stop entering, so the legs can never be outgrown again.
  Order& entry = orders_.at(g.entry);
  if (entry.working()) sm_.cancel(entry, ts);
  Order& peer = orders_.at(leg.oco_peer_id);
  if (!peer.working()) return;
  const int64_t open = bracket_open(g);
  // OCO: reduce the other leg by the same quantity, or cancel it once the position is closed.
  if (open == 0)
    sm_.cancel(peer, ts);
  else
    sm_.replace(peer, peer.filled_lots + open, peer.price_ticks, ts);
}

}  // namespace bot4::orders
