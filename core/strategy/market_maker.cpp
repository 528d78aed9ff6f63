#include "strategy/market_maker.hpp"

#include <cmath>
#include <cstdlib>

#include "features/feature_catalog.hpp"

namespace bot4::strategy {

bool MarketMaker::live(const Execution& ex, const Quote& q) const {
  if (q.id == 0) return false;
  const orders::Order* o = ex.order(q.id);
  return o != nullptr && o->working();
}

void MarketMaker::manage(DecisionContext& ctx, Quote& q, Side side, int64_t want) {
  Execution& ex = *ctx.exec;
  if (live(ex, q)) {
    const orders::Order* o = ex.order(q.id);
    if (o->state == orders::OrderState::PendingCancel) return;  // wait for the venue to confirm
    const bool moved = want == 0 || std::llabs(want - q.price) >= cfg_.requote_ticks;
    const bool old = cfg_.max_quote_age_ns > 0 && ctx.ts - q.placed >= cfg_.max_quote_age_ns;
    if (moved || old) {
      ex.cancel(q.id);
      if (want != 0) ++requotes_;
    }
    return;  // keep its queue place; a replacement goes out once the cancel is confirmed
  }
  q.id = 0;
  if (want == 0) return;
  OrderSpec spec;
  spec.kind = OrderKind::Limit;
  spec.side = side;
  spec.price_ticks = want;
  spec.qty_lots = cfg_.quote_lots;
  const Outcome r = ex.submit(spec);
  if (r.ok) q = Quote{r.order_id, want, ctx.ts};
}

void MarketMaker::on_decision(DecisionContext& ctx) {
  ctx.signal = 0;
  if (ctx.flattening) return;
  const BookTop& top = ctx.top;
  int64_t want_bid = 0, want_ask = 0;
  const double vpin = ctx.feature(features::f_vpin);
  const double burst = ctx.feature(features::f_cancel_burst);
  const bool toxic = (cfg_.pull_vpin > 0.0 && std::isfinite(vpin) && vpin >= cfg_.pull_vpin) ||
                     (cfg_.pull_on_cancel_burst && std::isfinite(burst) && burst >= 1.0);
  if (toxic) ++pulls_;
  if (!toxic && top.two_sided() && top.bid_qty > 0 && top.ask_qty > 0) {
    const double bq = static_cast<double>(top.bid_qty), aq = static_cast<double>(top.ask_qty);
    const double fair = (static_cast<double>(top.bid_price) * aq + static_cast<double>(top.ask_price) * bq) / (bq + aq);
    const double skew = cfg_.skew_ticks_per_lot * static_cast<double>(ctx.position);
    want_bid = std::min<int64_t>(static_cast<int64_t>(std::floor(fair - cfg_.half_spread_ticks - skew)), top.bid_price);
    want_ask = std::max<int64_t>(static_cast<int64_t>(std::ceil(fair + cfg_.half_spread_ticks - skew)), top.ask_price);
    if (ctx.position + cfg_.quote_lots > cfg_.max_inventory_lots) want_bid = 0;
    if (-ctx.position + cfg_.quote_lots > cfg_.max_inventory_lots) want_ask = 0;
    if (want_bid <= 0) want_bid = 0;
    ctx.signal = static_cast<int8_t>(ctx.position > 0 ? -1 : ctx.position < 0 ? 1 : 0);
  }
  manage(ctx, bid_, Side::Bid, want_bid);
  manage(ctx, ask_, Side::Ask, want_ask);
}

}  // namespace bot4::strategy
