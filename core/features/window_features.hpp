#pragma once
// Windowed time-series family: the SIMD kernels (window_kernels.hpp) on the trailing window of
// sampled returns (bp). The values only change when a sample arrives, so they are computed at
// the first row after a new sample and reused until the next one.
#include <cstdint>

#include "features/feature_catalog.hpp"
#include "features/feature_config.hpp"
#include "features/rolling.hpp"
#include "features/window_kernels.hpp"

namespace bot4::features {

inline constexpr int kWaveletLevels = 4;

class WindowFeatures {
 public:
  explicit WindowFeatures(const FeatureConfig& config) : config_(config) {}
  void write(const WindowKernels& kernels, const SampleWindow& returns, double* row);
  // Recomputes the cached kernel values when a sample arrived since the last call (what write()
  // does first); lets a timer do the work ahead of the next row. True when it recomputed.
  bool refresh(const WindowKernels& kernels, const SampleWindow& returns);
  // Forces recomputation at the next row (benchmarks of the full row cost).
  void invalidate() { cached_count_ = UINT64_MAX; }

 private:
  static constexpr int kColumns = f_wavelet_a4 - f_acf_1 + 1;
  const FeatureConfig& config_;
  uint64_t cached_count_ = UINT64_MAX;
  double cache_[kColumns];
};

}  // namespace bot4::features
