#pragma once
// Kill switch: trips on max drawdown (equity vs running peak), N consecutive rejects, or a
// latency breach. Once tripped the owner must cancel all resting orders (a one-shot action
// handed out by take_cancel_all()) and the pre-trade checks admit only orders that reduce
// |position| until reset(). The first trip reason is kept; later triggers do not overwrite it.
#include <cstdint>

#include "risk/risk_config.hpp"

namespace bot4::risk {

enum class TripReason : uint8_t { None = 0, Drawdown, ConsecutiveRejects, Latency, Manual };
const char* trip_reason_name(TripReason r) noexcept;

class KillSwitch {
 public:
  explicit KillSwitch(const KillSwitchConfig& cfg) noexcept : cfg_(cfg) {}
  const KillSwitchConfig& config() const noexcept { return cfg_; }
  // A live config change (control plane): new triggers from the next update on; a trip, its
  // reason, the equity peak and the reject streak are kept.
  void set_config(const KillSwitchConfig& cfg) noexcept { cfg_ = cfg; }

  // Each returns true when the switch is tripped after the update.
  bool on_equity(double equity) noexcept;    // currency; drawdown = (peak − equity) / peak
  bool on_reject() noexcept;                 // a pre-trade or venue rejection
  void on_accept() noexcept { consecutive_rejects_ = 0; }
  bool on_latency(int64_t latency_ns) noexcept;
  void trip(TripReason reason) noexcept;     // manual / external trip

  bool tripped() const noexcept { return reason_ != TripReason::None; }
  TripReason reason() const noexcept { return reason_; }
  // The "cancel all" action: true exactly once per trip, so the owner issues one mass cancel.
  bool take_cancel_all() noexcept;
  bool cancel_all_pending() const noexcept { return cancel_all_pending_; }

  double peak_equity() const noexcept { return peak_; }
  double drawdown() const noexcept { return drawdown_; }
  int64_t consecutive_rejects() const noexcept { return consecutive_rejects_; }
  // Re-arm (operator action): clears the trip, the reject streak and the equity peak.
  void reset() noexcept;

 private:
  KillSwitchConfig cfg_;
  TripReason reason_ = TripReason::None;
  bool cancel_all_pending_ = false;
  double peak_ = 0.0;
  double drawdown_ = 0.0;
  int64_t consecutive_rejects_ = 0;
};

}  // namespace bot4::risk
