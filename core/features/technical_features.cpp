#include "features/technical_features.hpp"
#include "common/saturating.hpp"

#include <cmath>

#include "features/book_snapshot.hpp"
#include "features/feature_catalog.hpp"

namespace bot4::features {

TechnicalFeatures::TechnicalFeatures(const FeatureConfig& config)
    : config_(config), boll_(static_cast<size_t>(config.bollinger_period)), vwap_(config.vwap_window_ns) {}

void TechnicalFeatures::on_sample(double mid) {
  if (samples_ == 0) {
    ema5_ = ema20_ = ema100_ = mid;
  } else {
    ema5_ += 2.0 / 6.0 * (mid - ema5_);
    ema20_ += 2.0 / 21.0 * (mid - ema20_);
    ema100_ += 2.0 / 101.0 * (mid - ema100_);
    const double change = mid - prev_mid_;
    const double gain = change > 0 ? change : 0.0;
    const double loss = change < 0 ? -change : 0.0;
    ++changes_;
    const auto period = static_cast<uint64_t>(config_.rsi_period);
    if (changes_ <= period) {
      gain_sum_ += gain;
      loss_sum_ += loss;
      if (changes_ == period) {
        avg_gain_ = gain_sum_ / static_cast<double>(period);
        avg_loss_ = loss_sum_ / static_cast<double>(period);
      }
    } else {
      const double p = static_cast<double>(period);
      avg_gain_ = (avg_gain_ * (p - 1.0) + gain) / p;
      avg_loss_ = (avg_loss_ * (p - 1.0) + loss) / p;
    }
  }
  prev_mid_ = mid;
  ++samples_;
  boll_.push(mid);
}

void TechnicalFeatures::on_trade(int64_t t, int64_t price, int64_t qty) {
  const __int128 v[2] = {static_cast<__int128>(price) * qty, qty};
  vwap_.add(t, v);
}

void TechnicalFeatures::write(int64_t t, double mid, double* row) {
  row[f_ema_cross_5_20] = samples_ >= 20 ? (ema5_ - ema20_) / ema20_ * 1e4 : kNaN;
  row[f_ema_cross_20_100] = samples_ >= 100 ? (ema20_ - ema100_) / ema100_ * 1e4 : kNaN;
  if (changes_ >= static_cast<uint64_t>(config_.rsi_period) && avg_gain_ + avg_loss_ > 0) {
    row[f_rsi] = avg_loss_ == 0 ? 100.0 : 100.0 - 100.0 / (1.0 + avg_gain_ / avg_loss_);
  } else {
    row[f_rsi] = kNaN;
  }
  if (boll_.full()) {
    if (boll_.count() != boll_count_) {
      boll_count_ = boll_.count();
      const double* m = boll_.data();
      const size_t n = boll_.size();
      double mean = 0;
      for (size_t i = 0; i < n; ++i) mean += m[i];
      mean /= static_cast<double>(n);
      double ss = 0;
      for (size_t i = 0; i < n; ++i) ss += (m[i] - mean) * (m[i] - mean);
      const double sd = std::sqrt(ss / static_cast<double>(n));
      boll_cached_ = sd > 0 ? (m[n - 1] - mean) / sd : kNaN;
    }
    row[f_bollinger_z] = boll_cached_;
  } else {
    row[f_bollinger_z] = kNaN;
  }
  vwap_.expire(t);
  const bool full = start_t_ != INT64_MIN && sat_sub(t, start_t_) >= config_.vwap_window_ns;
  if (full && vwap_.sum(1) > 0 && std::isfinite(mid)) {
    const double vwap = static_cast<double>(vwap_.sum(0)) / static_cast<double>(vwap_.sum(1));
    // Prices are positive, so vwap > 0 unless the int64 price x qty sums overflowed on absurd
    // input (e.g. 2^62 ticks x 2^40 lots wraps to 0): NaN then, never an infinity.
    row[f_vwap_deviation] = vwap > 0 ? (mid - vwap) / vwap * 1e4 : kNaN;
  } else {
    row[f_vwap_deviation] = kNaN;
  }
}

}  // namespace bot4::features
