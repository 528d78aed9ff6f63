#include "risk/pre_trade_checks.hpp"

#include <algorithm>

namespace bot4::risk {

namespace {
__extension__ typedef __int128 i128;
i128 abs128(i128 v) { return v < 0 ? -v : v; }
size_t side_index(Side s) { return s == Side::Bid ? 0 : 1; }
}  // namespace

const char* reject_reason_name(RejectReason r) noexcept {
  switch (r) {
    case RejectReason::Ok: return "ok";
    case RejectReason::BadOrder: return "BadOrder";
    case RejectReason::DuplicateId: return "DuplicateId";
    case RejectReason::KillSwitch: return "KillSwitch";
    case RejectReason::ReduceOnly: return "ReduceOnly";
    case RejectReason::PriceCollar: return "PriceCollar";
    case RejectReason::MaxOpenOrders: return "MaxOpenOrders";
    case RejectReason::MaxPosition: return "MaxPosition";
    case RejectReason::MaxNotional: return "MaxNotional";
    case RejectReason::RateLimit: return "RateLimit";
    case RejectReason::Count: break;
  }
  return "unknown";
}

TokenBucket::TokenBucket(int64_t capacity, int64_t per_second) noexcept
    : capacity_(std::max<int64_t>(capacity, 0)),
      per_second_(std::max<int64_t>(per_second, 0)),
      tokens_(capacity_ * kScale) {}  // starts full

bool TokenBucket::try_take(int64_t now_ns) noexcept {
  if (!enabled()) return true;
  const int64_t cap = capacity_ * kScale;
  if (!started_) {
    started_ = true;
    last_ns_ = now_ns;
  }
  if (now_ns > last_ns_) {
    // Clamp elapsed so elapsed × per_second cannot overflow; beyond it the bucket is full anyway.
    int64_t elapsed = now_ns - last_ns_;
    if (per_second_ > 0) {
      const int64_t full_after = cap / per_second_ + 1;
      elapsed = std::min(elapsed, full_after);
      tokens_ = std::min(cap, tokens_ + elapsed * per_second_);
    }
    last_ns_ = now_ns;  // a clock going backwards never adds tokens
  }
  if (tokens_ < kScale) return false;
  tokens_ -= kScale;
  return true;
}

PreTradeChecks::PreTradeChecks(const PreTradeConfig& cfg, KillSwitch* kill_switch)
    : cfg_(cfg), kill_switch_(kill_switch), bucket_(cfg.rate_capacity, cfg.rate_per_second) {
  orders_.reserve(static_cast<size_t>(std::max<int64_t>(cfg.max_open_orders, 16)) * 2);
}

void PreTradeChecks::set_config(const PreTradeConfig& cfg) noexcept {
  const bool rate_changed = cfg.rate_capacity != cfg_.rate_capacity || cfg.rate_per_second != cfg_.rate_per_second;
  cfg_ = cfg;
  if (rate_changed) bucket_ = TokenBucket(cfg.rate_capacity, cfg.rate_per_second);
}

bool PreTradeChecks::reduces(Side side, int64_t qty) const noexcept {
  // Reducing = even if every live same-side order and this one fill, |position| shrinks and the
  // sign does not flip.
  if (side == Side::Bid) return position_ < 0 && position_ + sides_[0].inflight_qty + sides_[0].open_qty + qty <= 0;
  return position_ > 0 && position_ - sides_[1].inflight_qty - sides_[1].open_qty - qty >= 0;
}

RejectReason PreTradeChecks::evaluate(const OrderIntent& o) noexcept {
  if (o.qty <= 0 || o.price <= 0 || o.mid <= 0 || (o.side != Side::Bid && o.side != Side::Ask))
    return RejectReason::BadOrder;
  if (orders_.count(o.order_id)) return RejectReason::DuplicateId;
  if (kill_switch_ && kill_switch_->tripped() && !reduces(o.side, o.qty)) return RejectReason::KillSwitch;
  if (reduce_only_ && !reduces(o.side, o.qty)) return RejectReason::ReduceOnly;

  const i128 dev = abs128(static_cast<i128>(o.price) - o.mid);
  if (cfg_.collar_ticks > 0 && dev > cfg_.collar_ticks) return RejectReason::PriceCollar;
  if (cfg_.collar_bps > 0 && dev * 10'000 > static_cast<i128>(cfg_.collar_bps) * o.mid)
    return RejectReason::PriceCollar;

  if (live_orders() >= cfg_.max_open_orders) return RejectReason::MaxOpenOrders;

  // Same-side worst case: every live order on this side fills, and this one too.
  const SideExposure& s = sides_[side_index(o.side)];
  const i128 signed_pos = o.side == Side::Bid ? position_ : -static_cast<i128>(position_);
  const i128 lots = signed_pos + s.inflight_qty + s.open_qty + o.qty;
  if (lots > cfg_.max_position_lots) return RejectReason::MaxPosition;
  // Notional: position marked at mid plus live same-side orders at their limit prices.
  const i128 notional = signed_pos * notional_px(o.mid) + s.notional + static_cast<i128>(o.qty) * notional_px(o.price);
  if (notional > cfg_.max_notional) return RejectReason::MaxNotional;

  // Last, so a token is only spent on an order that passes everything else.
  if (!bucket_.try_take(o.now_ns)) return RejectReason::RateLimit;
  return RejectReason::Ok;
}

RejectReason PreTradeChecks::check(const OrderIntent& o) noexcept {
  const RejectReason r = evaluate(o);
  ++counts_[static_cast<size_t>(r)];
  if (r != RejectReason::Ok) {
    if (kill_switch_) kill_switch_->on_reject();
    return r;
  }
  if (kill_switch_) kill_switch_->on_accept();
  orders_.emplace(o.order_id, Live{o.side, false, o.qty, o.price});
  SideExposure& s = sides_[side_index(o.side)];
  s.inflight_qty += o.qty;
  s.orders += 1;
  s.notional += static_cast<i128>(o.qty) * notional_px(o.price);
  return r;
}

void PreTradeChecks::remove(std::unordered_map<uint64_t, Live>::iterator it) noexcept {
  SideExposure& s = sides_[side_index(it->second.side)];
  (it->second.acked ? s.open_qty : s.inflight_qty) -= it->second.remaining;
  s.notional -= static_cast<i128>(it->second.remaining) * notional_px(it->second.price);
  s.orders -= 1;
  orders_.erase(it);
}

bool PreTradeChecks::on_ack(uint64_t order_id) noexcept {
  auto it = orders_.find(order_id);
  if (it == orders_.end()) return false;
  if (it->second.acked) return true;  // duplicate ack: idempotent
  SideExposure& s = sides_[side_index(it->second.side)];
  s.inflight_qty -= it->second.remaining;
  s.open_qty += it->second.remaining;
  it->second.acked = true;
  return true;
}

bool PreTradeChecks::on_fill(uint64_t order_id, int64_t qty) noexcept {
  auto it = orders_.find(order_id);
  if (it == orders_.end() || qty <= 0) return false;
  Live& o = it->second;
  const int64_t q = std::min(qty, o.remaining);
  SideExposure& s = sides_[side_index(o.side)];
  (o.acked ? s.open_qty : s.inflight_qty) -= q;
  s.notional -= static_cast<i128>(q) * notional_px(o.price);
  o.remaining -= q;
  position_ += o.side == Side::Bid ? q : -q;
  if (o.remaining == 0) {
    s.orders -= 1;
    orders_.erase(it);
  }
  return true;
}

bool PreTradeChecks::on_cancel(uint64_t order_id) noexcept {
  auto it = orders_.find(order_id);
  if (it == orders_.end()) return false;
  remove(it);
  return true;
}

bool PreTradeChecks::on_venue_reject(uint64_t order_id) noexcept {
  auto it = orders_.find(order_id);
  if (it == orders_.end()) return false;
  remove(it);
  if (kill_switch_) kill_switch_->on_reject();
  return true;
}

}  // namespace bot4::risk
