#include "features/volatility_features.hpp"

#include <algorithm>
#include <cmath>

#include "features/book_snapshot.hpp"
#include "features/feature_catalog.hpp"

namespace bot4::features {

VolatilityFeatures::VolatilityFeatures(const FeatureConfig& config)
    : config_(config), last_return_(kNaN), ewma_var_(kNaN),
      mids_(static_cast<size_t>(config.range_samples)), garch_var_next_(kNaN) {
  backcast_returns_.reserve(static_cast<size_t>(config.garch_backcast));
}

void VolatilityFeatures::on_sample(double mid, bool has_return, double return_bp) {
  mids_.push(mid);
  if (!has_return) return;
  last_return_ = return_bp;
  const double r2 = return_bp * return_bp;
  ewma_var_ = std::isnan(ewma_var_) ? r2 : config_.ewma_lambda * ewma_var_ + (1.0 - config_.ewma_lambda) * r2;

  const double w = config_.garch_omega, a = config_.garch_alpha, b = config_.garch_beta;
  if (garch_ready_) {
    // sigma^2_{t+1} = omega + alpha eps_t^2 + beta sigma^2_t
    garch_var_next_ = w + a * r2 + b * garch_var_next_;
    return;
  }
  backcast_returns_.push_back(return_bp);
  if (backcast_returns_.size() < static_cast<size_t>(config_.garch_backcast)) return;
  // arch's backcast: EWMA (0.94) of the squared residuals over the first min(75, n) samples.
  double num = 0, den = 0, weight = 1;
  for (double e : backcast_returns_) {
    num += weight * e * e;
    den += weight;
    weight *= 0.94;
  }
  const double backcast = num / den;
  double var = w + (a + b) * backcast;  // sigma^2_1
  for (double e : backcast_returns_) var = w + a * e * e + b * var;
  garch_var_next_ = var;
  garch_ready_ = true;
  backcast_returns_.clear();
}

void VolatilityFeatures::write(const SampleWindow& returns, double* row) const {
  row[f_log_return] = last_return_;
  row[f_ewma_vol] = std::isnan(ewma_var_) ? kNaN : std::sqrt(ewma_var_);
  if (returns.full()) {
    if (returns.count() != realized_count_) {
      realized_count_ = returns.count();
      const double* r = returns.data();
      double ss = 0;
      for (size_t i = 0; i < returns.size(); ++i) ss += r[i] * r[i];
      realized_cached_ = std::sqrt(ss);
    }
    row[f_realized_vol] = realized_cached_;
  } else {
    row[f_realized_vol] = kNaN;
  }
  if (mids_.full()) {
    if (mids_.count() != range_count_) {
      range_count_ = mids_.count();
      const double* m = mids_.data();
      double hi = m[0], lo = m[0];
      for (size_t i = 1; i < mids_.size(); ++i) {
        hi = std::max(hi, m[i]);
        lo = std::min(lo, m[i]);
      }
      parkinson_cached_ = std::log(hi / lo) / std::sqrt(4.0 * std::log(2.0)) * 1e4;
    }
    row[f_parkinson_vol] = parkinson_cached_;
  } else {
    row[f_parkinson_vol] = kNaN;
  }
  row[f_garch_variance] = garch_ready_ ? garch_var_next_ : kNaN;
}

}  // namespace bot4::features
