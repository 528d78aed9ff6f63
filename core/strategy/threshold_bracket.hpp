#pragma once
// threshold_bracket: trade the model's probability against a threshold, each entry protected by
// a bracket (stop + take-profit legs). p >= long_threshold -> long; p <= 1 - long_threshold ->
// short; else flat. An entry is sent only when flat with nothing working; an unfilled entry older
// than order_ttl_ns, or facing a flat/opposite signal, is cancelled; an open position is
// flattened when the signal turns against it (exit_on_flip) or P(its side) < exit_threshold.
#include "common/config_fields.hpp"
#include "strategy/strategy.hpp"

namespace bot4::strategy {

#define BOT4_THRESHOLD_BRACKET_FIELDS(X)                                                                  \
  X(double, long_threshold, 0.55, ge(0), le(1), "probability", "p >= this: long; p <= 1 - this: short")       \
  X(double, exit_threshold, 0.0, ge(0), lt(1), "probability", "flatten when P(position's side) < this (0 = off)") \
  X(bool, exit_on_flip, true, any, any, "", "flatten an open position when the signal turns against it") \
  X(bool, market_entry, false, any, any, "", "entries by market order (else limit at the touch)") \
  X(int64_t, stop_ticks, 20, ge(0), any, "ticks", "protective stop distance from the entry fill VWAP")  \
  X(int64_t, target_ticks, 30, ge(0), any, "ticks", "take-profit distance from the entry fill VWAP")    \
  X(int64_t, order_ttl_ns, 5'000'000'000, ge(0), any, "ns", "cancel an unfilled entry after this (0 = GTC)") \
  X(int64_t, fixed_qty_lots, 0, ge(0), any, "lots", "> 0: fixed entry size (bypasses the sizer)")       \
  X(int64_t, max_qty_lots, 0, ge(0), any, "lots", "> 0: cap on a sized entry (else the position cap)") \
  X(int64_t, min_gap_ns, 0, ge(0), any, "ns", "minimum time between entries")

BOT4_CONFIG_STRUCT(ThresholdBracketConfig, BOT4_THRESHOLD_BRACKET_FIELDS)

class ThresholdBracket final : public Strategy {
 public:
  using Config = ThresholdBracketConfig;
  static constexpr const char* kName = "threshold_bracket";
  static constexpr const char* kDoc =
      "model probability against a threshold; each entry protected by a stop and a take-profit leg";
  explicit ThresholdBracket(const Config& cfg) : cfg_(cfg) {}
  const char* name() const override { return kName; }
  void on_decision(DecisionContext& ctx) override;
  const ThresholdBracketConfig& config() const { return cfg_; }
  // A live parameter change (control plane), read from the next decision; working orders stay.
  void set_config(const Config& cfg) { cfg_ = cfg; }

 private:
  bool entry_working(const Execution& ex) const;
  bool any_working(const Execution& ex) const;

  ThresholdBracketConfig cfg_;
  OrderId entry_id_ = 0;  // working (or last) entry
  int64_t entry_sent_ts_ = 0;
  int64_t last_entry_ts_ = INT64_MIN / 2;
};

}  // namespace bot4::strategy
