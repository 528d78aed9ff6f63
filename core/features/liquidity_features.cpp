#include "features/liquidity_features.hpp"
#include "common/saturating.hpp"

#include <cmath>

#include "features/book_snapshot.hpp"
#include "features/feature_catalog.hpp"

namespace bot4::features {

double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); }

void VpinBuckets::add_bar(double volume, double buy_fraction) {
  double remaining = volume;
  while (remaining > 0) {
    const double take = std::min(remaining, bucket_ - fill_);
    fill_ += take;
    buy_ += take * buy_fraction;
    sell_ += take * (1.0 - buy_fraction);
    remaining -= take;
    // Compare with a relative tolerance so a bucket filled by float splits still completes.
    if (fill_ >= bucket_ * (1.0 - 1e-12)) {
      imbalance_.push(std::fabs(sell_ - buy_));
      fill_ = buy_ = sell_ = 0;
      // The whole buckets inside the rest of this bar all have the same imbalance and only the
      // last n are ever read: push at most n of them instead of looping once per bucket (a
      // single huge trade would otherwise cost O(volume / bucket) and can hang the engine).
      if (remaining > 2.0 * bucket_) {
        const double whole = std::floor(remaining / bucket_) - 1.0;  // the loop finishes the tail
        const double same = std::fabs(bucket_ * (1.0 - buy_fraction) - bucket_ * buy_fraction);
        const double pushes = std::min(whole, static_cast<double>(n_));
        for (int i = 0; i < static_cast<int>(pushes); ++i) imbalance_.push(same);
        remaining -= whole * bucket_;
      }
    }
  }
}

double VpinBuckets::vpin() const {
  if (!imbalance_.full()) return __builtin_nan("");
  const double* v = imbalance_.data();
  double sum = 0;
  for (int i = 0; i < n_; ++i) sum += v[i];
  return sum / (static_cast<double>(n_) * bucket_);
}

LiquidityFeatures::LiquidityFeatures(const FeatureConfig& config, double tick_size, double lot_size)
    : config_(config),
      notional_per_tick_lot_(tick_size * lot_size),
      alpha_(1.0 - std::exp2(-1.0 / config.spread_halflife_trades)),
      sample_return_(static_cast<size_t>(config.liquidity_samples)),
      sample_signed_(static_cast<size_t>(config.liquidity_samples)),
      sample_notional_(static_cast<size_t>(config.liquidity_samples)),
      trade_dp_(static_cast<size_t>(config.roll_trades)),
      bar_dp_(static_cast<size_t>(config.vpin_sigma_bars)) {
  if (config.vpin_bucket_lots > 0) {
    vpin_storage_ = VpinBuckets(static_cast<double>(config.vpin_bucket_lots), config.vpin_buckets);
    vpin_ = &vpin_storage_;
  }
}

namespace {
double ewm(double prev, double x, double alpha) { return std::isnan(prev) ? x : prev + alpha * (x - prev); }
}  // namespace

void LiquidityFeatures::close_bar(double mid) {
  if (vpin_ == nullptr && first_t_ != INT64_MIN &&
      static_cast<__int128>(bar_index_ + 1) * config_.vpin_bar_ns >=
          static_cast<__int128>(first_t_) + config_.vpin_auto_ns) {
    vpin_storage_ = VpinBuckets(std::max(auto_volume_ / 10.0, 1.0), config_.vpin_buckets);
    vpin_ = &vpin_storage_;
  }
  const double dp = mid - bar_open_mid_;
  if (std::isfinite(dp)) {
    if (vpin_ != nullptr && bar_dp_.full() && bar_volume_ > 0) {
      const double* x = bar_dp_.data();
      const size_t n = bar_dp_.size();
      double mean = 0;
      for (size_t i = 0; i < n; ++i) mean += x[i];
      mean /= static_cast<double>(n);
      double ss = 0;
      for (size_t i = 0; i < n; ++i) ss += (x[i] - mean) * (x[i] - mean);
      const double sigma = std::sqrt(ss / static_cast<double>(n - 1));
      if (sigma > 0) vpin_->add_bar(bar_volume_, normal_cdf(dp / sigma));
    }
    bar_dp_.push(dp);
  }
  if (std::isfinite(mid)) bar_open_mid_ = mid;
  bar_volume_ = 0;
}

void LiquidityFeatures::set_bar_index(int64_t bar) {
  bar_index_ = bar;
  const int64_t ns = config_.vpin_bar_ns;
  bar_end_ = bar >= 0 && bar < INT64_MAX / ns - 1 ? (bar + 1) * ns : INT64_MIN;
}

void LiquidityFeatures::advance(int64_t t, double mid, bool inclusive) {
  if (first_t_ == INT64_MIN) [[unlikely]] {
    first_t_ = t;
    set_bar_index(t / config_.vpin_bar_ns);
  }
  // t in [0, bar_end_) is still in the current bar (bar_end_ = INT64_MIN: always divide)
  if (!(t >= 0 && t < bar_end_)) {
    const int64_t bar = t / config_.vpin_bar_ns;
    if (bar > bar_index_) {
      close_bar(mid);
      set_bar_index(bar);
    }
  }
  while (!pending_.empty()) {
    const Pending& p = pending_.front();
    const int64_t due = sat_add(p.t, config_.realised_horizon_ns);
    if (inclusive ? due > t : due >= t) break;
    if (std::isfinite(mid)) {
      realised_ewm_ = ewm(realised_ewm_, 2.0 * p.q * (p.price - mid) / p.mid * 1e4, alpha_);
      impact_ewm_ = ewm(impact_ewm_, 2.0 * p.q * (mid - p.mid) / p.mid * 1e4, alpha_);
    }
    pending_.pop();
  }
}

void LiquidityFeatures::on_trade(int64_t t, int64_t price, int64_t qty, uint8_t aggressor, double mid) {
  const double notional = static_cast<double>(price) * static_cast<double>(qty) * notional_per_tick_lot_;
  const double q = aggressor == static_cast<uint8_t>(Side::Bid)   ? 1.0
                   : aggressor == static_cast<uint8_t>(Side::Ask) ? -1.0
                                                                  : 0.0;
  interval_signed_ += q * static_cast<double>(qty);
  interval_notional_ += notional;
  bar_volume_ += static_cast<double>(qty);
  if (first_t_ != INT64_MIN && t < sat_add(first_t_, config_.vpin_auto_ns)) auto_volume_ += static_cast<double>(qty);
  if (last_trade_price_ != INT64_MIN) {
    // price and last price are in (0, 2^40): the change is exact as a double and as an int64
    const int64_t d = price - last_trade_price_;
    const size_t cap = trade_dp_.capacity();
    size_t size = trade_dp_.size();
    const double newest = size > 0 ? trade_dp_.data()[size - 1] : 0.0;
    if (size == cap) {  // the oldest change leaves the window
      const double* old = trade_dp_.data();
      const auto o = static_cast<int64_t>(old[0]);
      roll_sum_ -= o;
      roll_big_ -= (o > kRollSmall || o < -kRollSmall);
      if (cap >= 2) roll_sxy_ -= static_cast<__int128>(o) * static_cast<int64_t>(old[1]);
      --size;
    }
    if (size > 0) roll_sxy_ += static_cast<__int128>(static_cast<int64_t>(newest)) * d;
    roll_sum_ += d;
    roll_big_ += (d > kRollSmall || d < -kRollSmall);
    trade_dp_.push(static_cast<double>(d));
  }
  last_trade_price_ = price;
  if (q != 0.0 && std::isfinite(mid) && mid > 0) {
    effective_last_ = 2.0 * q * (static_cast<double>(price) - mid) / mid * 1e4;
    effective_ewm_ = ewm(effective_ewm_, effective_last_, alpha_);
    pending_.push(Pending{t, q, static_cast<double>(price), mid});
  }
}

void LiquidityFeatures::on_sample(double return_bp) {
  sample_return_.push(return_bp);
  sample_signed_.push(interval_signed_);
  sample_notional_.push(interval_notional_);
  interval_signed_ = 0;
  interval_notional_ = 0;
}

void LiquidityFeatures::write(const WindowKernels& kernels, double* row) {
  if (sample_return_.full()) {
    if (sample_return_.count() != liq_cached_count_) {
      liq_cached_count_ = sample_return_.count();
      const size_t n = sample_return_.size();
      kyle_cached_ = kernels.ols_slope(sample_signed_.data(), sample_return_.data(), n);
      const double* r = sample_return_.data();
      const double* v = sample_notional_.data();
      double sum = 0;
      int count = 0;
      for (size_t i = 0; i < n; ++i) {
        if (v[i] > 0) {
          sum += std::fabs(r[i]) / v[i] * 1e6;
          ++count;
        }
      }
      amihud_cached_ = count > 0 ? sum / count : kNaN;
    }
    row[f_kyle_lambda] = kyle_cached_;
    row[f_amihud] = amihud_cached_;
  } else {
    row[f_kyle_lambda] = kNaN;
    row[f_amihud] = kNaN;
  }
  if (trade_dp_.full()) {
    // The price changes are whole ticks, so the covariance is computed exactly in integers:
    // m (m - 1) cov = m sum(x y) - sum(x) sum(y). A floating-point centred sum turns an exact 0
    // (e.g. a window of mostly unchanged prices) into +-1e-18 and a spurious 1e-9-tick spread.
    // (Changes beyond 2^31 ticks, only seen on garbage input, would overflow the 128-bit sums:
    // those windows use the floating-point centred sum.) The integer sums are kept up to date
    // by on_trade: sum(x) leaves out the oldest change, sum(y) the newest.
    const double* dp = trade_dp_.data();
    const size_t m = trade_dp_.size() - 1;  // pairs (dp_t, dp_{t-1})
    const double md = static_cast<double>(m);
    if (roll_big_ == 0) {
      const __int128 sx = roll_sum_ - static_cast<int64_t>(dp[0]);
      const __int128 sy = roll_sum_ - static_cast<int64_t>(dp[m]);
      const __int128 num = static_cast<__int128>(m) * roll_sxy_ - sx * sy;
      const double cov = static_cast<double>(num) / (md * (md - 1.0));
      row[f_roll_spread] = num < 0 ? 2.0 * std::sqrt(-cov) : kNaN;
    } else {
      double mx = 0, my = 0;
      for (size_t i = 0; i < m; ++i) {
        mx += dp[i + 1];
        my += dp[i];
      }
      mx /= md;
      my /= md;
      double cov = 0;
      for (size_t i = 0; i < m; ++i) cov += (dp[i + 1] - mx) * (dp[i] - my);
      cov /= md - 1.0;
      row[f_roll_spread] = cov < 0 ? 2.0 * std::sqrt(-cov) : kNaN;
    }
  } else {
    row[f_roll_spread] = kNaN;
  }
  row[f_effective_spread] = effective_last_;
  row[f_effective_spread_ewm] = effective_ewm_;
  row[f_realised_spread_ewm] = realised_ewm_;
  row[f_price_impact_ewm] = impact_ewm_;
  row[f_vpin] = vpin_ != nullptr ? vpin_->vpin() : kNaN;
}

}  // namespace bot4::features
