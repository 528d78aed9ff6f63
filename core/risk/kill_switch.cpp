#include "risk/kill_switch.hpp"

#include <cmath>

namespace bot4::risk {

const char* trip_reason_name(TripReason r) noexcept {
  switch (r) {
    case TripReason::None: return "none";
    case TripReason::Drawdown: return "drawdown";
    case TripReason::ConsecutiveRejects: return "consecutive_rejects";
    case TripReason::Latency: return "latency";
    case TripReason::Manual: return "manual";
  }
  return "unknown";
}

void KillSwitch::trip(TripReason reason) noexcept {
  if (tripped() || reason == TripReason::None) return;  // keep the first cause
  reason_ = reason;
  cancel_all_pending_ = true;
}

bool KillSwitch::on_equity(double equity) noexcept {
  if (!std::isfinite(equity)) return tripped();
  if (equity > peak_) peak_ = equity;
  drawdown_ = peak_ > 0.0 ? (peak_ - equity) / peak_ : 0.0;
  if (drawdown_ >= cfg_.max_drawdown && peak_ > 0.0) trip(TripReason::Drawdown);
  return tripped();
}

bool KillSwitch::on_reject() noexcept {
  ++consecutive_rejects_;
  if (cfg_.max_consecutive_rejects > 0 && consecutive_rejects_ >= cfg_.max_consecutive_rejects)
    trip(TripReason::ConsecutiveRejects);
  return tripped();
}

bool KillSwitch::on_latency(int64_t latency_ns) noexcept {
  if (cfg_.max_latency_ns > 0 && latency_ns > cfg_.max_latency_ns) trip(TripReason::Latency);
  return tripped();
}

bool KillSwitch::take_cancel_all() noexcept {
  const bool pending = cancel_all_pending_;
  cancel_all_pending_ = false;
  return pending;
}

void KillSwitch::reset() noexcept {
  reason_ = TripReason::None;
  cancel_all_pending_ = false;
  peak_ = 0.0;
  drawdown_ = 0.0;
  consecutive_rejects_ = 0;
}

}  // namespace bot4::risk
