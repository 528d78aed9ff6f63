#pragma once
// Volatility family on sampled log mid returns (bp): last return, EWMA and windowed realised
// volatility, Parkinson range volatility and a GARCH(1,1) variance filtered forward with fixed
// parameters (arch's backcast over the first samples, then the recursion; the value after sample
// t is the forecast for t+1, so it uses nothing after t).
#include <cstdint>
#include <vector>

#include "features/feature_config.hpp"
#include "features/rolling.hpp"

namespace bot4::features {

class VolatilityFeatures {
 public:
  explicit VolatilityFeatures(const FeatureConfig& config);
  void on_sample(double mid, bool has_return, double return_bp);
  void write(const SampleWindow& returns, double* row) const;

 private:
  const FeatureConfig& config_;
  double last_return_;
  double ewma_var_;
  SampleWindow mids_;
  std::vector<double> backcast_returns_;
  double garch_var_next_;  // sigma^2 for the next sample
  bool garch_ready_ = false;
  // Windowed values only change with a new sample: computed at the first row after one (same
  // arithmetic) and reused, keyed by the sample counts of their windows.
  mutable uint64_t realized_count_ = UINT64_MAX;
  mutable double realized_cached_ = 0;
  mutable uint64_t range_count_ = UINT64_MAX;
  mutable double parkinson_cached_ = 0;
};

}  // namespace bot4::features
