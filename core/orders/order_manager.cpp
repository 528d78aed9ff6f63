#include "orders/order_manager.hpp"

#include <algorithm>
#include <cstdlib>

namespace bot4::orders {
namespace {

// Floor/ceil of a/b for b > 0 (C++ division truncates toward zero, wrong for negatives).
int64_t floor_div(int64_t a, int64_t b) { return a / b - ((a % b != 0) && (a < 0)); }
int64_t ceil_div(int64_t a, int64_t b) { return a / b + ((a % b != 0) && (a > 0)); }

bool is_protective(const Order& o) { return o.role == OrderRole::StopLeg || o.role == OrderRole::TargetLeg; }
bool price_ok(OrderType t, int64_t price) { return t == OrderType::Market || price > 0; }
bool by_id(const Order* a, const Order* b) { return a->order_id < b->order_id; }

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

Order* OrderManager::lookup(OrderId id, Reason& why) {
  if (Order* o = get(id)) {
    why = Reason::Ok;
    return o;
  }
  // Ids are handed out in increasing order: below next_id_ it existed and was evicted.
  why = sm_.count(id != 0 && id < next_id_ ? Reason::ClosedOrder : Reason::UnknownOrder);
  return nullptr;
}

const BracketLegs* OrderManager::group(OrderId group_id) const {
  auto it = groups_.find(group_id);
  return it == groups_.end() ? nullptr : &it->second;
}

const BracketLegs* OrderManager::bracket(OrderId entry_id) const {
  const BracketLegs* g = group(entry_id);
  return g && g->kind == GroupKind::Bracket ? g : nullptr;
}

int64_t OrderManager::bracket_open(const BracketLegs& g) const {
  const Order* e = find(g.entry);  // the entry stays stored as long as its group
  return (e ? e->filled_lots : 0) - g.exited_lots;
}

std::vector<OrderId> OrderManager::order_ids() const {
  std::vector<OrderId> ids;
  ids.reserve(orders_.size());
  for (const auto& [id, o] : orders_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  return ids;
}

std::vector<OrderEvent> OrderManager::drain_events() {
  settle_terminal();
  std::vector<OrderEvent> out;
  out.swap(sm_.events());
  swept_ = 0;
  return out;
}

// ---- submission -----------------------------------------------------------------------------

SubmitResult OrderManager::submit(const OrderIntent& intent, Timestamp now) {
  if (auto hit = dedup_.lookup(intent.client_id, now)) {
    // Replay: the venue may or may not have seen the first attempt; either way no second order.
    sm_.count(Reason::DuplicateClientId);
    hit->duplicate = true;
    return *hit;
  }
  SubmitResult r = submit_new(intent, now);
  dedup_.insert(intent.client_id, r, now);
  settle(now);
  return r;
}

Order& OrderManager::create(uint64_t client_id, bool reduce_only, OrderType type, OrderRole role, Side side,
                            int64_t price, int64_t qty) {
  Order o;
  o.client_id = client_id;
  o.order_id = next_id_++;
  o.side = side;
  o.type = type;
  o.role = role;
  o.reduce_only = reduce_only || is_protective(o);
  o.price_ticks = type == OrderType::Market ? 0 : price;
  o.qty_lots = qty;
  // unordered_map is node based: references stay valid across later inserts (not erases; only
  // settle() erases, at the end of a public call).
  return orders_.emplace(o.order_id, o).first->second;
}

BracketLegs& OrderManager::add_group(GroupKind kind, Order& first) {
  BracketLegs g;
  g.kind = kind;
  g.entry = first.order_id;
  g.members.push_back(first.order_id);
  first.group_id = first.order_id;
  return groups_.emplace(first.order_id, std::move(g)).first->second;
}

void OrderManager::join(BracketLegs& g, Order& o) {
  o.group_id = g.entry;
  g.members.push_back(o.order_id);
}

bool OrderManager::reduce_only_ok(Side side, int64_t qty) const {
  // Reduce-only must shrink the position without flipping it.
  const int64_t signed_qty = side_sign(side) * qty;
  return !(position_ == 0 || (position_ > 0) == (signed_qty > 0) || qty > std::abs(position_));
}

SubmitResult OrderManager::submit_new(const OrderIntent& in, Timestamp now) {
  if (in.kind == IntentKind::Oco) return submit_oco(in, now);
  if (in.kind == IntentKind::Oto) return submit_oto(in, now);
  if (in.qty_lots <= 0) return {sm_.count(Reason::BadQuantity), 0, false};
  const bool market = in.kind == IntentKind::Market ||
                      (in.kind == IntentKind::Bracket && in.entry_type == OrderType::Market);
  if (!market && in.price_ticks <= 0) return {sm_.count(Reason::BadPrice), 0, false};
  if (in.kind == IntentKind::Bracket && in.entry_type == OrderType::Stop) return {sm_.count(Reason::BadPrice), 0, false};
  if (in.stop_distance_ticks < -1 || in.target_distance_ticks < -1) return {sm_.count(Reason::BadPrice), 0, false};
  if (in.reduce_only && in.kind != IntentKind::Bracket && !reduce_only_ok(in.side, in.qty_lots))
    return {sm_.count(Reason::ReduceOnly), 0, false};
  const OrderRole role = in.kind == IntentKind::Bracket ? OrderRole::Entry : OrderRole::Single;
  const OrderType type = market ? OrderType::Market : in.kind == IntentKind::Stop ? OrderType::Stop : OrderType::Limit;
  Order& o = create(in.client_id, in.reduce_only, type, role, in.side, in.price_ticks, in.qty_lots);
  const bool accepted = self_trade_check(o, now);
  sm_.emit_new(o, now);
  if (role == OrderRole::Entry) {
    BracketLegs& g = add_group(GroupKind::Bracket, o);
    g.stop_distance = in.stop_distance_ticks >= 0 ? in.stop_distance_ticks : cfg_.stop_distance_ticks;
    g.target_distance = in.target_distance_ticks >= 0 ? in.target_distance_ticks : cfg_.target_distance_ticks;
  }
  if (!accepted) {
    sm_.reject(o, now, Reason::SelfTrade);
    sm_.count(Reason::SelfTrade);
    return {Reason::SelfTrade, o.order_id, false};
  }
  return {Reason::Ok, o.order_id, false};
}

SubmitResult OrderManager::submit_oco(const OrderIntent& in, Timestamp now) {
  const LegSpec& b2 = in.second;
  if (in.qty_lots <= 0 || b2.qty_lots <= 0) return {sm_.count(Reason::BadQuantity), 0, false};
  if (!price_ok(in.entry_type, in.price_ticks) || !price_ok(b2.type, b2.price_ticks))
    return {sm_.count(Reason::BadPrice), 0, false};
  if (in.reduce_only && (!reduce_only_ok(in.side, in.qty_lots) || !reduce_only_ok(b2.side, b2.qty_lots)))
    return {sm_.count(Reason::ReduceOnly), 0, false};
  Order& a = create(in.client_id, in.reduce_only, in.entry_type, OrderRole::OcoLeg, in.side, in.price_ticks,
                    in.qty_lots);
  Order& b = create(in.client_id, in.reduce_only, b2.type, OrderRole::OcoLeg, b2.side, b2.price_ticks, b2.qty_lots);
  BracketLegs& g = add_group(GroupKind::Oco, a);
  join(g, b);
  g.second = b.order_id;
  a.oco_peer_id = b.order_id;
  b.oco_peer_id = a.order_id;
  // Two legs that would trade with each other are refused outright; then each leg passes STP
  // (a group is accepted or refused as a whole).
  bool ok = !orders_cross(a, b);
  ok = ok && self_trade_check(a, now);
  ok = ok && self_trade_check(b, now);
  sm_.emit_new(a, now);
  sm_.emit_new(b, now);
  if (!ok) {
    sm_.reject(a, now, Reason::SelfTrade);
    sm_.reject(b, now, Reason::SelfTrade);
    sm_.count(Reason::SelfTrade);
    return {Reason::SelfTrade, a.order_id, false};
  }
  return {Reason::Ok, a.order_id, false};
}

SubmitResult OrderManager::submit_oto(const OrderIntent& in, Timestamp now) {
  if (in.qty_lots <= 0) return {sm_.count(Reason::BadQuantity), 0, false};
  const LegSpec& c = in.second;
  if (!price_ok(in.entry_type, in.price_ticks) || c.type == OrderType::Market || c.price_ticks <= 0)
    return {sm_.count(Reason::BadPrice), 0, false};
  if (in.reduce_only && !reduce_only_ok(in.side, in.qty_lots)) return {sm_.count(Reason::ReduceOnly), 0, false};
  Order& p = create(in.client_id, in.reduce_only, in.entry_type, OrderRole::OtoParent, in.side, in.price_ticks,
                    in.qty_lots);
  const bool accepted = self_trade_check(p, now);
  sm_.emit_new(p, now);
  BracketLegs& g = add_group(GroupKind::Oto, p);
  g.child = c;
  if (!accepted) {
    sm_.reject(p, now, Reason::SelfTrade);
    sm_.count(Reason::SelfTrade);
    return {Reason::SelfTrade, p.order_id, false};
  }
  return {Reason::Ok, p.order_id, false};
}

// ---- self-trade prevention ------------------------------------------------------------------

bool OrderManager::self_trade_check(Order& n, Timestamp now) {
  std::vector<Order*> crossing;
  bool touches_protection = false;
  for (auto& [id, r] : orders_) {
    // Active orders only: a cancel-pending one is gone before anything sent after its cancel.
    if (id == n.order_id || !r.active() || !orders_cross(n, r)) continue;
    crossing.push_back(&r);
    touches_protection |= is_protective(r);  // held targets included: protection wins
  }
  if (crossing.empty()) return true;
  std::sort(crossing.begin(), crossing.end(), by_id);
  ++stp_actions_;
  StpPolicy policy = touches_protection ? StpPolicy::CancelNew : cfg_.stp;
  switch (policy) {
    case StpPolicy::CancelNew:
      return false;
    case StpPolicy::CancelResting:
    case StpPolicy::CancelBoth:
      for (Order* r : crossing) cancel_internal(*r, now, Reason::SelfTrade);
      return policy == StpPolicy::CancelResting;
    case StpPolicy::DecrementBoth: {
      // Best-priced resting first, the order a real match would take them in.
      std::stable_sort(crossing.begin(), crossing.end(), [&](const Order* a, const Order* b) {
        return is_buy(n.side) ? a->price_ticks < b->price_ticks : a->price_ticks > b->price_ticks;
      });
      const int64_t original = n.qty_lots;
      for (Order* r : crossing) {
        if (n.qty_lots == 0) break;
        const int64_t d = std::min(n.qty_lots, r->open_lots());
        n.qty_lots -= d;
        if (r->open_lots() == d)
          cancel_internal(*r, now, Reason::SelfTrade);
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

void OrderManager::cancel_internal(Order& o, Timestamp ts, Reason why) {
  if (!o.active()) return;
  if (o.held || !cfg_.confirm_cancels) {
    sm_.cancel(o, ts, why);  // never sent (nothing to confirm), or legacy immediate mode
    return;
  }
  sm_.request_cancel(o, ts, why);
}

bool OrderManager::clear_for_target(const Order& leg, Timestamp now) {
  bool blocked = false;
  std::vector<Order*> victims;
  for (auto& [id, r] : orders_) {
    if (id == leg.order_id || !r.active() || r.held || !orders_cross(leg, r)) continue;
    if (is_protective(r)) blocked = true;  // another group's sent target: never cancelled
    else victims.push_back(&r);
  }
  std::sort(victims.begin(), victims.end(), by_id);
  for (Order* v : victims) {
    ++stp_actions_;
    cancel_internal(*v, now, Reason::SelfTrade);  // protection wins over a fresh order
  }
  return blocked;
}

void OrderManager::hold(Order& t) {
  ++stp_actions_;
  t.held = true;
  held_.push_back(t.order_id);
}

void OrderManager::update_target(BracketLegs& g, Order& t, int64_t open, int64_t price, Timestamp now) {
  if (t.held) {  // not at the venue: resize/reprice locally, released by settle()
    t.qty_lots = t.filled_lots + open;
    t.price_ticks = price;
    return;
  }
  Order probe = t;
  probe.price_ticks = price;
  if (!clear_for_target(probe, now)) {
    sm_.replace(t, t.filled_lots + open, price, now);
    return;
  }
  // The repriced target would cross another group's target: pull it and hold a replacement.
  cancel_internal(t, now, Reason::SelfTrade);
  Order& n = create(t.client_id, true, OrderType::Limit, OrderRole::TargetLeg, t.side, price, open);
  join(g, n);
  n.parent_id = g.entry;
  n.oco_peer_id = g.stop;
  if (Order* s = get(g.stop)) s->oco_peer_id = n.order_id;
  g.target = n.order_id;
  hold(n);
}

// ---- groups ---------------------------------------------------------------------------------

void OrderManager::sync_bracket(BracketLegs& g, Timestamp ts) {
  const Order& entry = orders_.at(g.entry);
  const int64_t open = entry.filled_lots - g.exited_lots;
  Order* s = g.stop ? get(g.stop) : nullptr;
  Order* t = g.target ? get(g.target) : nullptr;
  const bool s_act = s && s->active();
  const bool t_act = t && t->active();
  if (open <= 0) {  // position closed: the OCO's other leg goes
    if (s_act) cancel_internal(*s, ts);
    if (t_act) cancel_internal(*t, ts);
    return;
  }
  const int64_t f = entry.filled_lots;
  const bool long_entry = is_buy(entry.side);
  const int64_t lo = floor_div(entry.fill_notional, f), hi = ceil_div(entry.fill_notional, f);
  const int64_t stop_px = long_entry ? lo - g.stop_distance : hi + g.stop_distance;
  const int64_t target_px = long_entry ? hi + g.target_distance : lo - g.target_distance;
  if (!s_act && !t_act) {
    if (g.halted) return;
    // OTO: the first fill (or a fill that raced the previous pair's exit) releases an OCO pair
    // sized to what is actually held.
    const Side exit_side = opposite(entry.side);
    const uint64_t cid = entry.client_id;
    Order& ns = create(cid, true, OrderType::Stop, OrderRole::StopLeg, exit_side, stop_px, open);
    Order& nt = create(cid, true, OrderType::Limit, OrderRole::TargetLeg, exit_side, target_px, open);
    join(g, ns);
    join(g, nt);
    ns.parent_id = nt.parent_id = g.entry;
    ns.oco_peer_id = nt.order_id;
    nt.oco_peer_id = ns.order_id;
    g.stop = ns.order_id;
    g.target = nt.order_id;
    // Cancels of own orders the target would cross go out first, then the pair's two News.
    const bool blocked = clear_for_target(nt, ts);
    sm_.emit_new(ns, ts);
    if (blocked) hold(nt);
    else sm_.emit_new(nt, ts);
    return;
  }
  if (s_act) sm_.replace(*s, s->filled_lots + open, stop_px, ts);
  if (t_act) update_target(g, *t, open, target_px, ts);
}

void OrderManager::sync_oto(BracketLegs& g, Timestamp ts) {
  if (g.halted) return;
  const Order& p = orders_.at(g.entry);
  Order* c = g.second ? get(g.second) : nullptr;
  if (c && c->state == OrderState::Filled) {  // done: the rest goes to a new child
    g.exited_lots += c->filled_lots;
    c = nullptr;
    g.second = 0;
  }
  const int64_t need = p.filled_lots - g.exited_lots;
  if (need <= 0) return;
  if (c == nullptr) {
    const LegSpec& k = g.child;
    Order& n = create(p.client_id, p.reduce_only, k.type, OrderRole::OtoChild, k.side, k.price_ticks, need);
    join(g, n);
    n.parent_id = p.order_id;
    g.second = n.order_id;
    const bool ok = self_trade_check(n, ts);
    sm_.emit_new(n, ts);
    if (!ok) {
      sm_.reject(n, ts, Reason::SelfTrade);
      sm_.count(Reason::SelfTrade);
    }
  } else if (c->active()) {
    sm_.replace(*c, need, c->price_ticks, ts);
  }
  // A child cancelled / rejected / expired (or cancel-pending) is not replaced.
}

void OrderManager::on_group_fill(BracketLegs& g, Order& o, int64_t qty, Timestamp ts) {
  switch (g.kind) {
    case GroupKind::Bracket:
      if (o.role != OrderRole::Entry) {
        g.exited_lots += qty;
        // The exit has begun: stop entering (fills already in flight are still protected).
        cancel_internal(orders_.at(g.entry), ts);
      }
      sync_bracket(g, ts);
      break;
    case GroupKind::Oco: {
      Order* peer = get(o.oco_peer_id);
      if (peer == nullptr || !peer->active()) break;
      if (peer->open_lots() > qty)
        sm_.replace(*peer, peer->qty_lots - qty, peer->price_ticks, ts);
      else
        cancel_internal(*peer, ts);
      break;
    }
    case GroupKind::Oto:
      if (o.order_id == g.entry) sync_oto(g, ts);
      break;
  }
}

// ---- venue events ---------------------------------------------------------------------------

Reason OrderManager::request_cancel(OrderId id, Timestamp ts) {
  Reason why;
  Order* o = lookup(id, why);
  if (!o) return why;
  if (is_terminal(o->state)) return sm_.count(Reason::ClosedOrder);
  if (o->state == OrderState::PendingCancel) return sm_.count(Reason::CancelPending);
  if (o->group_id && (is_protective(*o) || o->role == OrderRole::OtoChild)) {
    // The caller takes the group's exit over: no replacement legs / children from now on.
    auto it = groups_.find(o->group_id);
    if (it != groups_.end()) it->second.halted = true;
  }
  cancel_internal(*o, ts);
  settle(ts);
  return Reason::Ok;
}

Reason OrderManager::on_ack(OrderId id, Timestamp ts) {
  Reason why;
  Order* o = lookup(id, why);
  if (!o) return why;
  if (o->held && o->working()) return sm_.count(Reason::IllegalTransition);  // never sent
  Reason r = sm_.ack(*o, ts);
  if (r == Reason::Ok) settle(ts);
  return r;
}

Reason OrderManager::on_cancel(OrderId id, Timestamp ts) {
  Reason why;
  Order* o = lookup(id, why);
  if (!o) return why;
  if (o->held && o->working()) return sm_.count(Reason::IllegalTransition);
  Reason r = sm_.cancel(*o, ts);
  if (r == Reason::Ok) settle(ts);
  return r;
}

Reason OrderManager::on_reject(OrderId id, Timestamp ts) {
  Reason why;
  Order* o = lookup(id, why);
  if (!o) return why;
  if (o->held && o->working()) return sm_.count(Reason::IllegalTransition);
  Reason r = sm_.reject(*o, ts);
  if (r == Reason::Ok) settle(ts);
  return r;
}

Reason OrderManager::on_expire(OrderId id, Timestamp ts) {
  Reason why;
  Order* o = lookup(id, why);
  if (!o) return why;
  if (o->held && o->working()) return sm_.count(Reason::IllegalTransition);
  Reason r = sm_.expire(*o, ts);
  if (r == Reason::Ok) settle(ts);
  return r;
}

std::size_t OrderManager::cancel_all(Timestamp ts) {
  for (auto& [id, g] : groups_) g.halted = true;
  std::size_t n = 0;
  for (OrderId id : order_ids()) {
    Order& o = orders_.at(id);
    if (!o.active()) continue;
    cancel_internal(o, ts);
    ++n;
  }
  settle(ts);
  return n;
}

Reason OrderManager::on_fill(OrderId id, int64_t qty, int64_t price, Timestamp ts) {
  Reason why;
  Order* o = lookup(id, why);
  if (!o) return why;
  if (is_terminal(o->state)) return sm_.count(Reason::ClosedOrder);
  if (o->held && o->working()) return sm_.count(Reason::IllegalTransition);  // never sent: cannot fill
  if (qty <= 0) return sm_.count(Reason::BadQuantity);
  if (price <= 0) return sm_.count(Reason::BadPrice);
  // A limit order never fills at a worse price than its limit; a fill that does is a bad report.
  if (o->type == OrderType::Limit && (is_buy(o->side) ? price > o->price_ticks : price < o->price_ticks))
    return sm_.count(Reason::BadPrice);
  BracketLegs* g = nullptr;
  if (o->group_id) {
    auto it = groups_.find(o->group_id);
    if (it != groups_.end()) g = &it->second;
  }
  if (g && g->kind == GroupKind::Bracket && is_protective(*o) && qty > bracket_open(*g))
    return sm_.count(Reason::Overfill);
  if (Reason r = sm_.fill(*o, qty, price, ts); r != Reason::Ok) return r;
  position_ += side_sign(o->side) * qty;
  if (g) on_group_fill(*g, *o, qty, ts);
  settle(ts);
  return Reason::Ok;
}

// ---- held legs, retirement, eviction --------------------------------------------------------

void OrderManager::release_held(Timestamp ts) {
  if (held_.empty()) return;
  std::sort(held_.begin(), held_.end());
  std::vector<OrderId> keep;
  for (OrderId id : held_) {
    Order* t = get(id);
    if (t == nullptr || !t->working() || !t->held) continue;
    if (clear_for_target(*t, ts)) {
      keep.push_back(id);
      continue;
    }
    t->held = false;
    ++held_releases_;
    sm_.emit_new(*t, ts);
  }
  held_.swap(keep);
}

bool OrderManager::group_done(const BracketLegs& g) const {
  for (OrderId m : g.members) {
    const Order* o = find(m);
    if (o != nullptr && o->working()) return false;
  }
  return true;
}

void OrderManager::retire(OrderId id) {
  closed_.push_back(id);
  while (closed_.size() > cfg_.retain_closed) {
    const OrderId victim = closed_.front();
    closed_.pop_front();
    auto it = orders_.find(victim);
    if (it == orders_.end()) continue;
    if (it->second.group_id) groups_.erase(it->second.group_id);  // finished: all members retired
    orders_.erase(it);
    --terminal_stored_;
    ++evicted_;
  }
}

void OrderManager::settle_terminal() {
  // Pass 1: every order that became terminal since the last sweep (one terminal event each; all
  // still stored, nothing is erased before pass 2).
  auto& ev = sm_.events();
  std::vector<OrderId> ended;
  for (; swept_ < ev.size(); ++swept_) {
    if (!is_terminal(static_cast<OrderState>(ev[swept_].state))) continue;
    if (get(ev[swept_].order_id) == nullptr) continue;
    ended.push_back(ev[swept_].order_id);
    ++terminal_stored_;
  }
  // Pass 2: standalone orders retire at once; a group's orders once the whole group is done.
  for (OrderId id : ended) {
    Order* o = get(id);
    if (o == nullptr) continue;  // already retired and evicted with its group
    auto it = o->group_id ? groups_.find(o->group_id) : groups_.end();
    if (it == groups_.end()) {
      retire(id);
      continue;
    }
    BracketLegs& g = it->second;
    if (g.done || !group_done(g)) continue;
    g.done = true;
    const std::vector<OrderId> members = g.members;  // retire() may erase the group
    for (OrderId m : members) retire(m);
  }
}

void OrderManager::settle(Timestamp ts) {
  release_held(ts);
  settle_terminal();
}

}  // namespace bot4::orders
