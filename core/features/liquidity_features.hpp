#pragma once
// Liquidity and impact family: Kyle's lambda, Amihud, Roll, effective / realised spread and price
// impact, and BVC-VPIN. Realised spread and impact use the mid D after each trade, so a trade
// only contributes once t + D has passed (matured); VPIN only changes when a bucket completes.
#include <cstdint>
#include "common/saturating.hpp"

#include "features/feature_config.hpp"
#include "features/rolling.hpp"
#include "features/window_kernels.hpp"

namespace bot4::features {

// Standard normal CDF.
double normal_cdf(double x);

// BVC volume buckets: bars (volume, buy fraction) are cut into buckets of `bucket` lots, a bar
// straddling a boundary split proportionally with its buy fraction.
class VpinBuckets {
 public:
  VpinBuckets(double bucket, int n_buckets) : bucket_(bucket), n_(n_buckets), imbalance_(n_buckets) {}
  void add_bar(double volume, double buy_fraction);
  double vpin() const;  // NaN until n buckets completed
  double bucket() const { return bucket_; }

 private:
  double bucket_;
  int n_;
  double fill_ = 0, buy_ = 0, sell_ = 0;
  SampleWindow imbalance_;  // |V_sell - V_buy| of the last n completed buckets
};

class LiquidityFeatures {
 public:
  LiquidityFeatures(const FeatureConfig& config, double tick_size, double lot_size);
  // Advances time to `t` (before an event at t is applied, or at a row at t): matures trades with
  // t_i + D < t (strictly, for events) or <= t (rows) using the mid as of then, closes VPIN bars.
  void advance(int64_t t, double mid, bool inclusive);
  // False when advance(t, ., inclusive) would do nothing (no bar closes, no trade matures), so a
  // caller can skip it and the mid it needs.
  bool advance_due(int64_t t, bool inclusive) const {
    if (first_t_ == INT64_MIN || !(t >= 0 && t < bar_end_)) return true;
    if (pending_.empty()) return false;
    const int64_t due = sat_add(pending_.front().t, config_.realised_horizon_ns);
    return inclusive ? due <= t : due < t;
  }
  // A trade at price (ticks) with the prevailing mid (ticks, NaN if the book is not two-sided).
  void on_trade(int64_t t, int64_t price, int64_t qty, uint8_t aggressor, double mid);
  // A return sample (bp) closing the current sample interval.
  void on_sample(double return_bp);
  // The first sample has no return: trades before it belong to no interval.
  void start_interval() { interval_signed_ = interval_notional_ = 0; }
  void write(const WindowKernels& kernels, double* row);

 private:
  struct Pending {
    int64_t t;
    double q;
    double price;
    double mid;
  };
  void close_bar(double mid);
  void set_bar_index(int64_t bar);

  const FeatureConfig& config_;
  double notional_per_tick_lot_;
  double alpha_;  // EWMA weight per trade
  // per sample interval
  double interval_signed_ = 0, interval_notional_ = 0;
  SampleWindow sample_return_, sample_signed_, sample_notional_;
  // Kyle lambda and Amihud only change when a sample arrives: computed at the first row after
  // one (same arithmetic), reused until the next (keyed by the sample count).
  uint64_t liq_cached_count_ = UINT64_MAX;
  double kyle_cached_ = kNaNValue(), amihud_cached_ = kNaNValue();
  // Roll
  SampleWindow trade_dp_;
  int64_t last_trade_price_ = INT64_MIN;
  // Exact integer sums over the Roll window, kept as trades arrive (integer sums do not depend on
  // the order of the additions, so they equal the per-row loop's): the sum of the price changes,
  // the sum of the products of neighbours, and how many changes exceed 2^31 ticks in magnitude
  // (those windows take the floating-point path).
  __int128 roll_sum_ = 0, roll_sxy_ = 0;
  int roll_big_ = 0;
  // spreads
  double effective_last_ = kNaNValue(), effective_ewm_ = kNaNValue();
  double realised_ewm_ = kNaNValue(), impact_ewm_ = kNaNValue();
  Fifo<Pending> pending_;
  // VPIN
  int64_t first_t_ = INT64_MIN;
  int64_t bar_index_ = INT64_MIN;
  int64_t bar_end_ = INT64_MIN;  // first t of the next bar when bar_index_ >= 0, else INT64_MIN
  double bar_volume_ = 0;
  double bar_open_mid_ = kNaNValue();  // mid at the previous bar close
  double auto_volume_ = 0;
  SampleWindow bar_dp_;
  VpinBuckets* vpin_ = nullptr;
  VpinBuckets vpin_storage_{1.0, 1};
  static constexpr double kNaNValue() { return __builtin_nan(""); }
  static constexpr int64_t kRollSmall = int64_t{1} << 31;
};

}  // namespace bot4::features
