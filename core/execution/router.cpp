#include "execution/router.hpp"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "book/l2_book.hpp"
#include "common/saturating.hpp"

namespace bot4::execution {

namespace {
VenueOrderType to_venue(orders::OrderType t) {
  switch (t) {
    case orders::OrderType::Market: return VenueOrderType::Market;
    case orders::OrderType::Stop: return VenueOrderType::Stop;
    default: return VenueOrderType::Limit;
  }
}
orders::OrderType to_order_type(strategy::OrderKind k) {
  switch (k) {
    case strategy::OrderKind::Market: return orders::OrderType::Market;
    case strategy::OrderKind::Stop: return orders::OrderType::Stop;
    default: return orders::OrderType::Limit;
  }
}
// The venue request for a New or Replace of order `o` (its current side, type, price, size).
VenueRequest order_request(VenueRequestKind kind, const orders::Order& o) {
  VenueRequest req;
  req.kind = kind;
  req.id = o.order_id;
  req.side = o.side;
  req.type = to_venue(o.type);
  req.price = o.price_ticks;
  req.qty = o.qty_lots;
  req.reduce_only = o.reduce_only;
  return req;
}
bool protective(orders::OrderRole r) {
  return r == orders::OrderRole::StopLeg || r == orders::OrderRole::TargetLeg || r == orders::OrderRole::OcoLeg ||
         r == orders::OrderRole::OtoChild;
}
constexpr uint64_t kKeyTag = uint64_t{1} << 62;  // pre-trade check ids of our intents
}  // namespace

Router::Router(const RouterSetup& setup, Venue* venue, risk::KillSwitch* kill, const risk::PositionSizer* sizer,
               portfolio::Ledger* ledger, engine::EngineResult* out)
    : setup_(setup), venue_(venue), kill_(kill), sizer_(sizer), ledger_(ledger), out_(out), om_(setup.orders),
      checks_(setup.pre_trade, kill) {
  // An inverse contract's notional does not move with its price: q F quote units.
  if (setup.inverse) checks_.set_notional_price(inverse_notional_ticks(setup.contract_size, setup.tick_size));
}

int64_t inverse_notional_ticks(double contract_size, double tick_size) {
  if (!(contract_size > 0.0) || !(tick_size > 0.0) || !std::isfinite(contract_size)) return 0;
  const double ticks = contract_size / tick_size;
  const double whole = std::round(ticks);
  if (!(whole >= 1.0) || whole > 9.0e15 || std::fabs(ticks - whole) > 1e-9 * whole) return 0;
  return static_cast<int64_t>(whole);
}

void Router::set_book(const book::L2Book* b) { book_ = b; }

int64_t Router::mid_ticks() const {
  if (book_ == nullptr) return 0;
  if (book_->best_bid() == kNoBidPrice || book_->best_ask() == kNoAskPrice) return 0;
  return mid_of(book_->best_bid(), book_->best_ask());
}

void Router::forward_events(int64_t now) {
  auto events = om_.drain_events();
  for (const auto& e : events) {
    const auto kind = static_cast<orders::OrderEventKind>(e.kind);
    const orders::Order* o = om_.find(e.order_id);
    engine::OrderRec r{now, e.order_id, e.price_ticks, e.qty_lots, e.filled_lots, e.side,
                       static_cast<uint8_t>(o ? o->type : orders::OrderType::Limit), e.state, e.kind, e.role, e.reason, 0,
                       setup_.instrument, 0};
    if (kind == orders::OrderEventKind::New && o != nullptr && protective(o->role) &&
        ptc_key_.find(e.order_id) == ptc_key_.end()) {
      // Legs created by a group (protective legs, OCO second orders, OTO children) are tracked by
      // the checks but never refused: refusing one would leave a position unprotected.
      const int64_t price = o->price_ticks > 0 ? o->price_ticks : mid_ticks();
      risk::OrderIntent ri{e.order_id, o->side, o->qty_lots, price, mid_ticks(), now};
      if (checks_.check(ri) == risk::RejectReason::Ok) {
        ptc_key_[e.order_id] = e.order_id;
      } else {
        ++out_->counters.leg_risk_bypass;
        r.flags |= engine::kOrderRiskExempt;
      }
    }
    out_->orders.push_back(r);
    switch (kind) {
      case orders::OrderEventKind::New: {
        if (o == nullptr) break;
        sent_at_[e.order_id] = now;
        venue_->send(order_request(VenueRequestKind::New, *o), now);
        break;
      }
      case orders::OrderEventKind::Cancel:
        if (static_cast<orders::OrderState>(e.state) == orders::OrderState::PendingCancel) {
          // A cancel request: the order stays at the venue (and in the exposure) until confirmed.
          VenueRequest req;
          req.kind = VenueRequestKind::Cancel;
          req.id = e.order_id;
          venue_->send(req, now);
          break;
        }
        [[fallthrough]];  // cancelled for good (confirmed, or never sent): exposure goes
      case orders::OrderEventKind::Reject: {
        auto it = ptc_key_.find(e.order_id);
        if (it != ptc_key_.end()) {
          checks_.on_cancel(it->second);
          ptc_key_.erase(it);
        }
        if (kind == orders::OrderEventKind::Reject && strategy_ != nullptr)
          strategy_->on_reject(strategy::RejectInfo{now, setup_.instrument, e.order_id, false,
                                                    static_cast<orders::Reason>(e.reason)});
        break;
      }
      case orders::OrderEventKind::Replace: {
        if (o == nullptr) break;
        venue_->send(order_request(VenueRequestKind::Replace, *o), now);
        break;
      }
      default:
        break;
    }
  }
}

// Latency trigger of the kill switch: each order's send-to-ack round trip as the venue defines
// it (not the machine's own compute time, which would make a backtest irreproducible, and not a
// recording's ts_local - ts_exchange, which carries a clock offset and exchange-side batching).
void Router::note_latency(int64_t ns) {
  const bool was = kill_->tripped();
  kill_->on_latency(ns);
  if (!was && kill_->tripped()) ++out_->counters.kill_switch_trips;
}

template <typename It>
void Router::release_checks(It it, bool venue_reject) {
  if (it == ptc_key_.end()) return;
  if (venue_reject) checks_.on_venue_reject(it->second);
  else checks_.on_cancel(it->second);
  ptc_key_.erase(it);
}

void Router::poll_venue(int64_t now) {
  venue_->poll(now, responses_);
  if (responses_.empty()) return;
  for (const auto& s : responses_) apply(s, now);
  forward_events(now);
}

void Router::on_response(const VenueResponse& s, int64_t now) {
  apply(s, now);
  forward_events(now);
}

void Router::apply(const VenueResponse& s, int64_t now) {
  orders::Reason r = orders::Reason::Ok;
  auto it = ptc_key_.find(s.id);
  switch (s.kind) {
    case VenueResponseKind::Ack:
      r = om_.on_ack(s.id, s.local_ts);
      if (it != ptc_key_.end()) checks_.on_ack(it->second);
      if (auto st = sent_at_.find(s.id); st != sent_at_.end()) {
        note_latency(s.local_ts - st->second);
        sent_at_.erase(st);
      }
      break;
    case VenueResponseKind::Fill: {
      const orders::Order* o = om_.find(s.id);
      // A venue fill is real whatever the local state: account it, then tell the manager.
      ledger_->fill(setup_.ledger_slot, s.side, s.price, s.qty, s.fee);
      const int64_t pos = position();
      if (it != ptc_key_.end()) checks_.on_fill(it->second, s.qty);
      else checks_.set_position(pos);
      r = om_.on_fill(s.id, s.qty, s.price, s.local_ts);
      // Recorded when the engine applies it: responses are delivered at the engine's events, so
      // one received between two events is applied (and recorded) at the next.
      const int64_t applied = now == INT64_MAX ? s.local_ts : std::max(s.local_ts, now);
      const auto role = o ? o->role : orders::OrderRole::Single;
      out_->fills.push_back(engine::FillRec{applied, s.id, s.price, s.qty, s.fee, static_cast<uint8_t>(s.side),
                                            static_cast<uint8_t>(s.maker), static_cast<uint8_t>(role),
                                            static_cast<uint8_t>(r == orders::Reason::Ok), setup_.instrument});
      if (checks_.position() != pos) checks_.set_position(pos);
      if (o != nullptr && !o->working() && it != ptc_key_.end()) ptc_key_.erase(it);
      if (strategy_ != nullptr)
        strategy_->on_fill(strategy::FillInfo{applied, setup_.instrument, s.id, s.side, s.price, s.qty, s.fee,
                                              s.maker, role, pos});
      break;
    }
    case VenueResponseKind::Expire:
      sent_at_.erase(s.id);
      r = om_.on_expire(s.id, s.local_ts);
      release_checks(it, /*venue_reject=*/false);
      break;
    case VenueResponseKind::Reject:
      sent_at_.erase(s.id);
      r = om_.on_reject(s.id, s.local_ts);
      release_checks(it, /*venue_reject=*/true);
      if (strategy_ != nullptr)
        strategy_->on_reject(strategy::RejectInfo{s.local_ts, setup_.instrument, s.id, true, r});
      break;
    case VenueResponseKind::Cancelled:
      sent_at_.erase(s.id);
      r = om_.on_cancel(s.id, s.local_ts);  // confirmation: the Cancel event releases the exposure
      break;
  }
  if (r != orders::Reason::Ok) ++out_->counters.om_event_rejections;
}

void Router::begin_decision(const DecisionInputs& in) {
  in_ = in;
  in_decision_ = true;
  action_ = strategy::DecisionAction::None;
}

strategy::DecisionAction Router::end_decision() {
  in_decision_ = false;
  if (flattening_) return flatten_step();
  // A position nothing protects any more (a fill raced a cancel after its group ended, or a
  // residue of a close) is flattened rather than left open.
  if (position() != 0 && om_.live_orders() == 0 && (strategy_ == nullptr || !strategy_->holds_inventory())) {
    ++out_->counters.orphan_closes;
    start_flatten(in_.now);
    return flatten_step();
  }
  return action_;
}

void Router::start_flatten(int64_t now) {
  flattening_ = true;
  om_.cancel_all(now);
  forward_events(now);
}

void Router::flatten() {
  if (flattening_) return;
  ++out_->counters.exits;
  start_flatten(in_.now);
}

// One step of the flatten state machine: CloseSent when a close went out, Rejected when it was
// refused, None while waiting.
strategy::DecisionAction Router::flatten_step() {
  using strategy::DecisionAction;
  if (close_id_ != 0) {
    const orders::Order* c = om_.find(close_id_);
    if (c != nullptr && c->working()) return DecisionAction::None;  // the close is in flight
    close_id_ = 0;
  }
  const int64_t pos = position();
  if (pos == 0) {
    if (om_.live_orders() == 0) flattening_ = kill_->tripped();  // done (a tripped switch stays armed)
    return DecisionAction::None;
  }
  if (om_.live_orders() != 0 || !in_.top.two_sided()) return DecisionAction::None;  // cancels unconfirmed / no book
  const Side side = pos > 0 ? Side::Ask : Side::Bid;
  const int64_t qty = std::abs(pos);
  const uint64_t cid = next_client_++;
  const uint64_t key = cid | kKeyTag;
  risk::OrderIntent ri{key, side, qty, side == Side::Bid ? in_.top.ask_price : in_.top.bid_price, in_.top.mid(),
                       in_.now};
  if (checks_.check(ri) != risk::RejectReason::Ok) {
    ++out_->counters.risk_rejected;
    return DecisionAction::Rejected;
  }
  orders::OrderIntent oi;
  oi.kind = orders::IntentKind::Market;
  oi.client_id = cid;
  oi.side = side;
  oi.qty_lots = qty;
  oi.reduce_only = true;
  const auto res = om_.submit(oi, in_.now);
  if (res.status != orders::Reason::Ok || res.order_id == 0) {
    checks_.on_cancel(key);
    ++out_->counters.om_rejected;
    return DecisionAction::Rejected;
  }
  ptc_key_[res.order_id] = key;
  close_id_ = res.order_id;
  ++out_->counters.closes;
  if (kill_->tripped()) ++out_->counters.kill_switch_closes;
  return DecisionAction::CloseSent;
}

// The risk stage's size for an order that left it open; 0 (counted) when there is none.
int64_t Router::size_order(const strategy::OrderSpec& o, int64_t price) {
  risk::SizingInput in;
  in.p = o.probability;
  in.current_vol = in_.period_vol;
  if (!(in.current_vol > 0.0)) {
    ++out_->counters.vol_unknown;
    return 0;
  }
  in.crisis_regime = in_.crisis;
  if (in.crisis_regime) ++out_->counters.crisis_entries;
  const risk::SizeResult sr = sizer_->size(in);
  // Quote units per lot_size (inverse: the face value, whatever the price; linear: price x multiplier).
  const double price_q = setup_.inverse ? setup_.contract_size
                                        : static_cast<double>(price) * setup_.tick_size * setup_.contract_size;
  // The ensemble breaker's size scale (1 without an ensemble) on the risk units, before rounding to lots.
  const double units = o.reduce_only || !(in_.size_scale < 1.0) ? std::abs(sr.size) : std::abs(sr.size) * in_.size_scale;
  int64_t qty = sr.status == risk::SizeStatus::Ok ? risk::to_lots(units, in_.equity, price_q, setup_.lot_size) : 0;
  const int64_t cap = o.max_qty_lots > 0 ? o.max_qty_lots : setup_.pre_trade.max_position_lots;
  qty = std::min(qty, cap);
  if (qty <= 0) ++out_->counters.size_zero;
  return qty;
}

strategy::Outcome Router::submit(const strategy::OrderSpec& o) {
  using strategy::DecisionAction;
  using strategy::OrderKind;
  strategy::Outcome out;
  if (flattening_) {
    ++out_->counters.flattening_ignored;
    return out;
  }
  const bool market = o.kind == OrderKind::Market || (o.kind == OrderKind::Bracket && o.entry_type == OrderKind::Market) ||
                      ((o.kind == OrderKind::Oco || o.kind == OrderKind::Oto) && o.entry_type == OrderKind::Market);
  // The price the checks see: the limit/trigger, or for a market order the touch it would take.
  int64_t price = o.price_ticks;
  if (market && price <= 0) price = o.side == Side::Bid ? in_.top.ask_price : in_.top.bid_price;
  int64_t qty = o.qty_lots;
  if (qty <= 0) {
    qty = size_order(o, price);
    if (qty <= 0) {
      out.sized_zero = true;
      return out;
    }
  } else if (in_.size_scale < 1.0 && !o.reduce_only) {
    // The ensemble breaker scales a size the strategy fixed (whole lots, rounded down).
    qty = static_cast<int64_t>(std::floor(static_cast<double>(qty) * in_.size_scale));
    if (qty <= 0) {
      ++out_->counters.size_zero;
      out.sized_zero = true;
      return out;
    }
  }
  const uint64_t cid = o.client_id != 0 ? o.client_id : next_client_++;
  const uint64_t key = (o.client_id != 0 ? next_key_++ : cid) | kKeyTag | (o.client_id != 0 ? uint64_t{1} << 61 : 0);
  risk::OrderIntent ri{key, o.side, qty, price, in_.top.mid(), in_.now};
  const risk::RejectReason rr = checks_.check(ri);
  if (rr != risk::RejectReason::Ok) {
    ++out_->counters.risk_rejected;
    out.risk_reason = static_cast<uint8_t>(rr);
    note(DecisionAction::Rejected);
    return out;
  }
  kill_->on_accept();
  orders::OrderIntent oi;
  switch (o.kind) {
    case OrderKind::Limit: oi.kind = orders::IntentKind::Limit; break;
    case OrderKind::Market: oi.kind = orders::IntentKind::Market; break;
    case OrderKind::Stop: oi.kind = orders::IntentKind::Stop; break;
    case OrderKind::Bracket: oi.kind = orders::IntentKind::Bracket; break;
    case OrderKind::Oco: oi.kind = orders::IntentKind::Oco; break;
    case OrderKind::Oto: oi.kind = orders::IntentKind::Oto; break;
  }
  oi.client_id = cid;
  oi.side = o.side;
  oi.price_ticks = o.price_ticks > 0 || !market ? o.price_ticks : price;
  oi.qty_lots = qty;
  oi.reduce_only = o.reduce_only;
  oi.entry_type = to_order_type(o.entry_type);
  oi.stop_distance_ticks = o.stop_ticks;
  oi.target_distance_ticks = o.target_ticks;
  oi.second = o.second;
  const auto res = om_.submit(oi, in_.now);
  out.order_id = res.order_id;
  out.order_reason = res.status;
  if (res.duplicate) {  // an idempotent repeat: the original stands, nothing new went out
    checks_.on_cancel(key);
    out.ok = res.status == orders::Reason::Ok || res.status == orders::Reason::DuplicateClientId;
    return out;
  }
  if (res.status != orders::Reason::Ok || res.order_id == 0) {
    checks_.on_cancel(key);
    ++out_->counters.om_rejected;
    note(DecisionAction::Rejected);
    return out;
  }
  ptc_key_[res.order_id] = key;
  ++out_->counters.orders_sent;
  note(DecisionAction::OrderSent);
  out.ok = true;
  return out;
}

strategy::Outcome Router::target(const strategy::TargetSpec& t) {
  strategy::Outcome out;
  if (flattening_) {
    ++out_->counters.flattening_ignored;
    return out;
  }
  if (om_.live_orders() != 0) return out;  // one step at a time: wait for what is working
  const int64_t pos = position();
  const int64_t delta = t.position_lots - pos;
  if (delta == 0) {
    out.ok = true;
    return out;
  }
  strategy::OrderSpec o;
  o.side = delta > 0 ? Side::Bid : Side::Ask;
  o.qty_lots = std::abs(delta);
  const bool aggressive = t.policy == strategy::ExecPolicy::Aggressive;
  o.price_ticks = aggressive ? 0 : (o.side == Side::Bid ? in_.top.bid_price : in_.top.ask_price);
  const bool reducing = pos != 0 && (pos > 0) != (delta > 0) && std::abs(delta) <= std::abs(pos);
  if (t.bracket && !reducing) {
    o.kind = strategy::OrderKind::Bracket;
    o.entry_type = aggressive ? strategy::OrderKind::Market : strategy::OrderKind::Limit;
    o.stop_ticks = t.stop_ticks;
    o.target_ticks = t.target_ticks;
  } else {
    o.kind = aggressive ? strategy::OrderKind::Market : strategy::OrderKind::Limit;
    o.reduce_only = reducing;
  }
  if (!aggressive && !in_.top.two_sided()) return out;
  return submit(o);
}

bool Router::cancel(OrderId id) {
  if (om_.request_cancel(id, in_.now) != orders::Reason::Ok) return false;
  ++out_->counters.cancels_sent;
  note(strategy::DecisionAction::CancelSent);
  return true;
}

strategy::Outcome Router::replace(OrderId id, int64_t price_ticks, int64_t qty_lots) {
  strategy::Outcome out;
  const orders::Order* o = om_.find(id);
  if (o == nullptr || !o->active() || o->role != orders::OrderRole::Single) {
    out.order_reason = o == nullptr ? orders::Reason::UnknownOrder : orders::Reason::IllegalTransition;
    return out;
  }
  strategy::OrderSpec spec;
  spec.kind = o->type == orders::OrderType::Market ? strategy::OrderKind::Market
              : o->type == orders::OrderType::Stop ? strategy::OrderKind::Stop
                                                   : strategy::OrderKind::Limit;
  spec.side = o->side;
  spec.price_ticks = price_ticks;
  spec.qty_lots = qty_lots;
  spec.reduce_only = o->reduce_only;
  if (!cancel(id)) return out;
  return submit(spec);
}

void Router::open_orders(std::vector<const orders::Order*>& out) const {
  out.clear();
  for (OrderId id : om_.order_ids()) {
    const orders::Order* o = om_.find(id);
    if (o != nullptr && o->working()) out.push_back(o);
  }
}

strategy::RiskHeadroom Router::headroom() const {
  strategy::RiskHeadroom h;
  const auto& cfg = setup_.pre_trade;
  const int64_t pos = position();
  const auto& b = checks_.buys();
  const auto& s = checks_.sells();
  h.long_lots = std::max<int64_t>(0, cfg.max_position_lots - (pos + b.open_qty + b.inflight_qty));
  h.short_lots = std::max<int64_t>(0, cfg.max_position_lots - (-pos + s.open_qty + s.inflight_qty));
  h.open_orders = std::max<int64_t>(0, cfg.max_open_orders - checks_.live_orders());
  h.kill_switch = kill_->tripped();
  return h;
}

}  // namespace bot4::execution
