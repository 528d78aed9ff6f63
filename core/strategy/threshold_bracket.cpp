#include "strategy/threshold_bracket.hpp"

#include <cmath>

namespace bot4::strategy {

bool ThresholdBracket::entry_working(const Execution& ex) const {
  if (entry_id_ == 0) return false;
  const orders::Order* o = ex.order(entry_id_);
  return o != nullptr && o->working();
}

bool ThresholdBracket::any_working(const Execution& ex) const {
  if (entry_working(ex)) return true;
  if (entry_id_ != 0) {
    if (const orders::BracketLegs* g = ex.group(entry_id_); g != nullptr && g->kind == orders::GroupKind::Bracket) {
      for (OrderId id : {g->stop, g->target}) {
        const orders::Order* o = id ? ex.order(id) : nullptr;
        if (o != nullptr && o->working()) return true;
      }
    }
  }
  return false;
}

void ThresholdBracket::on_decision(DecisionContext& ctx) {
  const double p = ctx.probability();  // the ensemble's when configured, else slot 0's
  const double thr = cfg_.long_threshold;
  int8_t target = 0;
  if (std::isfinite(p)) target = p >= thr ? 1 : (p <= 1.0 - thr ? -1 : 0);
  ctx.signal = target;
  Execution& ex = *ctx.exec;
  if (ctx.flattening) return;
  // Exit signal on an open position: the model turned against it (flip), or no longer backs it.
  if (ctx.position != 0 && std::isfinite(p)) {
    const int8_t dir = ctx.position > 0 ? 1 : -1;
    const double p_side = dir > 0 ? p : 1.0 - p;
    const bool flip = cfg_.exit_on_flip && target == -dir;
    const bool weak = cfg_.exit_threshold > 0.0 && p_side < cfg_.exit_threshold;
    if (flip || weak) {
      ex.flatten();
      return;
    }
  }
  if (entry_working(ex)) {
    const orders::Order* o = ex.order(entry_id_);
    if (o->state == orders::OrderState::PendingCancel) return;  // awaiting the venue
    const int8_t dir = o->side == Side::Bid ? 1 : -1;
    const bool stale = cfg_.order_ttl_ns > 0 && ctx.ts - entry_sent_ts_ >= cfg_.order_ttl_ns;
    if (o->filled_lots == 0 && (stale || target != dir)) ex.cancel(entry_id_);  // fills may still come
    return;
  }
  // A position with nothing working is the router's to protect (it flattens it).
  if (target == 0 || ctx.position != 0 || any_working(ex) || !ctx.top.two_sided()) return;
  if (ctx.ts - last_entry_ts_ < cfg_.min_gap_ns) return;

  OrderSpec o;
  o.kind = OrderKind::Bracket;
  o.side = target > 0 ? Side::Bid : Side::Ask;
  o.entry_type = cfg_.market_entry ? OrderKind::Market : OrderKind::Limit;
  o.price_ticks = o.side == Side::Bid ? (cfg_.market_entry ? ctx.top.ask_price : ctx.top.bid_price)
                                      : (cfg_.market_entry ? ctx.top.bid_price : ctx.top.ask_price);
  o.qty_lots = cfg_.fixed_qty_lots;
  o.probability = p;
  o.max_qty_lots = cfg_.max_qty_lots;
  o.stop_ticks = cfg_.stop_ticks;
  o.target_ticks = cfg_.target_ticks;
  const Outcome r = ex.submit(o);
  if (r.ok) {
    entry_id_ = r.order_id;
    entry_sent_ts_ = ctx.ts;
    last_entry_ts_ = ctx.ts;
  }
}

}  // namespace bot4::strategy
