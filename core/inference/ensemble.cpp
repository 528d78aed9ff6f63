#include "inference/ensemble.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace bot4::inference {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kLossClip = 1e-15;

bool all_finite(const std::vector<double>& v) {
  for (double x : v)
    if (!std::isfinite(x)) return false;
  return true;
}
}  // namespace

bool parse_ensemble_mode(const std::string& name, EnsembleMode& out) {
  static const struct {
    const char* name;
    EnsembleMode mode;
  } kModes[] = {{"none", EnsembleMode::None},       {"mean", EnsembleMode::Mean}, {"weighted", EnsembleMode::Weighted},
                {"stacker", EnsembleMode::Stacker}, {"rank", EnsembleMode::Rank}, {"adaptive", EnsembleMode::Adaptive}};
  for (const auto& m : kModes)
    if (name == m.name) {
      out = m.mode;
      return true;
    }
  return false;
}

bool Ensemble::validate_fields(const EnsembleConfig& c, std::string& error) {
  EnsembleMode mode;
  if (!parse_ensemble_mode(c.mode, mode)) {
    error = "ensemble.mode: unknown mode '" + c.mode + "' (none, mean, weighted, stacker, rank, adaptive)";
    return false;
  }
  if (c.loss != "log" && c.loss != "brier") {
    error = "ensemble.loss: unknown loss '" + c.loss + "' (log, brier)";
    return false;
  }
  if (!all_finite(c.weights)) {
    error = "ensemble.weights must be finite";
    return false;
  }
  if (!all_finite(c.coefficients) || !std::isfinite(c.intercept)) {
    error = "ensemble.coefficients and ensemble.intercept must be finite";
    return false;
  }
  if (!c.weights.empty()) {
    double sum = 0.0;
    for (double w : c.weights) sum += w;
    if (!(sum > 0.0)) {
      error = "ensemble.weights must sum to > 0";
      return false;
    }
    if (mode == EnsembleMode::Adaptive)
      for (double w : c.weights)
        if (w < 0.0) {
          error = "ensemble.weights: adaptive starting weights must be >= 0";
          return false;
        }
  }
  if (!(c.stacker_clip > 0.0 && c.stacker_clip < 0.5)) {
    error = "ensemble.stacker_clip must be in (0, 0.5)";
    return false;
  }
  if (c.rank_window < 1 || c.loss_window < 1 || c.refresh_every < 1 || c.refresh_every_fast < 1 || c.horizon_ns <= 0) {
    error = "ensemble: rank_window, loss_window, refresh_every, refresh_every_fast and horizon_ns must be >= 1";
    return false;
  }
  if (c.refresh_every_fast > c.refresh_every) {
    error = "ensemble.refresh_every_fast (" + std::to_string(c.refresh_every_fast) + ") must be <= refresh_every (" +
            std::to_string(c.refresh_every) + ")";
    return false;
  }
  for (double x : {c.scale_dispersion, c.fallback_dispersion, c.fast_dispersion, c.fast_vol_bp, c.eta, c.dead_zone_bp})
    if (!(x >= 0.0) || !std::isfinite(x)) {
      error = "ensemble: thresholds, eta and dead_zone_bp must be finite and >= 0";
      return false;
    }
  if (c.fallback_dispersion < c.scale_dispersion) {
    error = "ensemble.fallback_dispersion (" + std::to_string(c.fallback_dispersion) +
            ") must be >= scale_dispersion (" + std::to_string(c.scale_dispersion) + ")";
    return false;
  }
  if (!(c.size_scale > 0.0 && c.size_scale < 1.0)) {
    error = "ensemble.size_scale must be in (0, 1)";
    return false;
  }
  if (c.fallback_slot < 0) {
    error = "ensemble.fallback_slot must be >= 0";
    return false;
  }
  return true;
}

bool Ensemble::validate(const EnsembleConfig& c, size_t n, std::string& error) {
  if (!validate_fields(c, error)) return false;
  EnsembleMode mode;
  parse_ensemble_mode(c.mode, mode);
  if (mode == EnsembleMode::None) return true;
  const std::string k = std::to_string(n);
  if (n == 0) {
    error = "ensemble.mode '" + c.mode + "' needs model slots, and the instrument has none";
    return false;
  }
  if ((mode == EnsembleMode::Weighted || (mode == EnsembleMode::Adaptive && !c.weights.empty())) && c.weights.size() != n) {
    error = "ensemble.weights has " + std::to_string(c.weights.size()) + " weights for " + k + " model slots";
    return false;
  }
  if (mode == EnsembleMode::Stacker && c.coefficients.size() != n) {
    error = "ensemble.coefficients has " + std::to_string(c.coefficients.size()) + " coefficients for " + k +
            " model slots";
    return false;
  }
  if (static_cast<size_t>(c.fallback_slot) >= n) {
    error = "ensemble.fallback_slot " + std::to_string(c.fallback_slot) + " is not one of the " + k + " model slots";
    return false;
  }
  return true;
}

bool Ensemble::configure(const EnsembleConfig& cfg, size_t n, std::string& error) {
  if (!validate(cfg, n, error)) return false;
  cfg_ = cfg;
  parse_ensemble_mode(cfg.mode, mode_);
  brier_ = cfg.loss == "brier";
  n_ = n;
  w_.assign(n, n ? 1.0 / static_cast<double>(n) : 0.0);
  w_sum_ = 1.0;
  if (mode_ == EnsembleMode::Weighted) {
    w_ = cfg.weights;
    w_sum_ = 0.0;
    for (double w : w_) w_sum_ += w;
  } else if (mode_ == EnsembleMode::Adaptive && !cfg.weights.empty()) {
    double s = 0.0;
    for (double w : cfg.weights) s += w;
    for (size_t i = 0; i < n; ++i) w_[i] = cfg.weights[i] / s;
  }
  window_ = mode_ == EnsembleMode::Rank ? static_cast<size_t>(cfg.rank_window) : 0;
  ring_.assign(window_ * n, 0.0);
  ring_len_ = ring_pos_ = 0;
  pend_t_.clear();
  pend_.clear();
  head_ = 0;
  const size_t lw = mode_ == EnsembleMode::Adaptive ? static_cast<size_t>(cfg.loss_window) : 0;
  loss_ring_.assign(lw * n, 0.0);
  loss_len_.assign(n, 0);
  loss_pos_.assign(n, 0);
  since_refresh_ = 0;
  resolved_ = 0;
  return true;
}

void Ensemble::resolve(int64_t t, double mid) {
  const size_t stride = n_ + 1;
  const size_t lw = static_cast<size_t>(cfg_.loss_window);
  while (head_ < pend_t_.size() && pend_t_[head_] <= t - cfg_.horizon_ns) {
    const double* e = &pend_[head_ * stride];
    ++head_;
    const double m0 = e[0];
    if (!(m0 > 0.0) || !(mid > 0.0)) continue;
    const double r = (mid / m0 - 1.0) * 1e4;
    if (r == 0.0 || std::abs(r) < cfg_.dead_zone_bp || !std::isfinite(r)) continue;
    const double y = r > 0.0 ? 1.0 : 0.0;
    ++resolved_;
    for (size_t i = 0; i < n_; ++i) {
      const double p = e[1 + i];
      if (!std::isfinite(p)) continue;
      double loss;
      if (brier_) {
        loss = (p - y) * (p - y);
      } else {
        const double q = std::clamp(p, kLossClip, 1.0 - kLossClip);
        loss = -(y * std::log(q) + (1.0 - y) * std::log(1.0 - q));
      }
      loss_ring_[i * lw + loss_pos_[i]] = loss;
      loss_pos_[i] = (loss_pos_[i] + 1) % lw;
      loss_len_[i] = std::min(loss_len_[i] + 1, lw);
    }
  }
  // Compact the consumed front now and then (amortised O(1) per prediction).
  if (head_ > 0 && head_ * 2 >= pend_t_.size()) {
    pend_t_.erase(pend_t_.begin(), pend_t_.begin() + static_cast<std::ptrdiff_t>(head_));
    pend_.erase(pend_.begin(), pend_.begin() + static_cast<std::ptrdiff_t>(head_ * stride));
    head_ = 0;
  }
}

std::vector<double> Ensemble::mean_losses() const {
  std::vector<double> out(n_, kNaN);
  const size_t lw = static_cast<size_t>(cfg_.loss_window);
  if (mode_ != EnsembleMode::Adaptive) return out;
  for (size_t i = 0; i < n_; ++i) {
    if (loss_len_[i] == 0) continue;
    double s = 0.0;
    for (size_t j = 0; j < loss_len_[i]; ++j) s += loss_ring_[i * lw + j];
    out[i] = s / static_cast<double>(loss_len_[i]);
  }
  return out;
}

bool Ensemble::refresh() {
  if (mode_ != EnsembleMode::Adaptive) return false;
  since_refresh_ = 0;
  const std::vector<double> L = mean_losses();
  double lo = std::numeric_limits<double>::infinity();
  for (double x : L)
    if (!std::isfinite(x)) return true;  // a slot without a label yet: the weights stay
    else lo = std::min(lo, x);
  double s = 0.0;
  for (size_t i = 0; i < n_; ++i) s += (w_[i] = std::exp(-cfg_.eta * (L[i] - lo)));
  for (auto& w : w_) w /= s;
  return true;
}

EnsembleOutput Ensemble::combine(const double* p, int64_t t, double mid, double vol_bp) {
  EnsembleOutput o;
  bool finite = true;
  double mean = 0.0;
  for (size_t i = 0; i < n_; ++i) {
    finite = finite && std::isfinite(p[i]);
    mean += p[i];
  }
  mean /= static_cast<double>(n_);
  double var = 0.0;
  for (size_t i = 0; i < n_; ++i) var += (p[i] - mean) * (p[i] - mean);
  o.dispersion = finite ? std::sqrt(var / static_cast<double>(n_)) : kNaN;

  if (mode_ == EnsembleMode::Adaptive) {
    resolve(t, mid);
    pend_t_.push_back(t);
    pend_.push_back(mid);
    pend_.insert(pend_.end(), p, p + n_);
    ++since_refresh_;
    const bool fast = (cfg_.fast_vol_bp > 0.0 && vol_bp >= cfg_.fast_vol_bp) ||
                      (cfg_.fast_dispersion > 0.0 && finite && o.dispersion >= cfg_.fast_dispersion);
    if (since_refresh_ >= static_cast<uint64_t>(fast ? cfg_.refresh_every_fast : cfg_.refresh_every)) {
      refresh();
      o.refresh = fast ? Refresh::Fast : Refresh::Normal;
    }
  }
  if (!finite) {
    o.p = o.combined = kNaN;
    o.state = BreakerState::Undefined;
    return o;
  }

  double c = 0.0;
  switch (mode_) {
    case EnsembleMode::None:
    case EnsembleMode::Mean:
      c = mean;
      break;
    case EnsembleMode::Weighted: {
      for (size_t i = 0; i < n_; ++i) c += w_[i] * p[i];
      c = std::clamp(c / w_sum_, 0.0, 1.0);
      break;
    }
    case EnsembleMode::Adaptive: {
      for (size_t i = 0; i < n_; ++i) c += w_[i] * p[i];
      c = std::clamp(c, 0.0, 1.0);
      break;
    }
    case EnsembleMode::Stacker: {
      const double e = cfg_.stacker_clip;
      double z = cfg_.intercept;
      for (size_t i = 0; i < n_; ++i) {
        const double q = std::clamp(p[i], e, 1.0 - e);
        z += cfg_.coefficients[i] * std::log(q / (1.0 - q));
      }
      c = z >= 0.0 ? 1.0 / (1.0 + std::exp(-z)) : std::exp(z) / (1.0 + std::exp(z));
      break;
    }
    case EnsembleMode::Rank: {
      for (size_t i = 0; i < n_; ++i) ring_[i * window_ + ring_pos_] = p[i];
      ring_pos_ = (ring_pos_ + 1) % window_;
      ring_len_ = std::min(ring_len_ + 1, window_);
      for (size_t i = 0; i < n_; ++i) {
        const double* w = &ring_[i * window_];
        size_t less = 0, equal = 0;
        for (size_t j = 0; j < ring_len_; ++j) {
          less += w[j] < p[i];
          equal += w[j] == p[i];
        }
        c += (static_cast<double>(less) + 0.5 * static_cast<double>(equal)) / static_cast<double>(ring_len_);
      }
      c /= static_cast<double>(n_);
      break;
    }
  }
  o.combined = o.p = c;
  if (o.dispersion > cfg_.fallback_dispersion) {
    o.state = BreakerState::Fallback;
    o.p = p[cfg_.fallback_slot];
    o.scale = cfg_.size_scale;
  } else if (o.dispersion > cfg_.scale_dispersion) {
    o.state = BreakerState::Scaled;
    o.scale = cfg_.size_scale;
  }
  return o;
}

}  // namespace bot4::inference
