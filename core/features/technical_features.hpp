#pragma once
// Technical indicators on the sampled mid: EMA crossovers, Wilder RSI, Bollinger z-score, and the
// deviation of the mid from the trailing trade VWAP.
#include <cstdint>

#include "features/feature_config.hpp"
#include "features/rolling.hpp"

namespace bot4::features {

class TechnicalFeatures {
 public:
  explicit TechnicalFeatures(const FeatureConfig& config);
  void start(int64_t t) { if (start_t_ == INT64_MIN) start_t_ = t; }
  void on_sample(double mid);
  void on_trade(int64_t t, int64_t price, int64_t qty);
  void write(int64_t t, double mid, double* row);

 private:
  const FeatureConfig& config_;
  int64_t start_t_ = INT64_MIN;
  uint64_t samples_ = 0;
  double ema5_ = 0, ema20_ = 0, ema100_ = 0;
  double prev_mid_ = 0;
  uint64_t changes_ = 0;
  double gain_sum_ = 0, loss_sum_ = 0;  // first `period` changes, then Wilder averages
  double avg_gain_ = 0, avg_loss_ = 0;
  SampleWindow boll_;
  uint64_t boll_count_ = UINT64_MAX;  // Bollinger z computed at the first row after a sample
  double boll_cached_ = 0;
  TimeWindowSum<2, __int128> vwap_;  // sum price*qty (ticks*lots), sum qty; exact
};

}  // namespace bot4::features
