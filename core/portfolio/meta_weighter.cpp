#include "portfolio/meta_weighter.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "portfolio/numeric.hpp"

namespace bot4::portfolio {

namespace {
size_t index_of(const std::vector<double>& taus, double t) {
  for (size_t i = 0; i < taus.size(); ++i)
    if (taus[i] == t) return i;
  throw StepInputError("taus", "must include " + std::to_string(t) + " (mu and sigma use it)");
}
}  // namespace

MetaWeighter::MetaWeighter(MetaParams params) : params_(std::move(params)) {
  const auto& p = params_;
  if (p.taus.empty() || !std::is_sorted(p.taus.begin(), p.taus.end()))
    throw StepInputError("taus", "must be non-empty and ascending");
  i25_ = index_of(p.taus, 0.25);
  i50_ = index_of(p.taus, 0.5);
  i75_ = index_of(p.taus, 0.75);
  if (p.inputs == 0 || p.inputs % 3 != 0)
    throw StepInputError("meta", "inputs must be 3 per agent (mu, sigma, confidence), got " + std::to_string(p.inputs));
  bool have_pooled = false;
  for (size_t m = 0; m < p.models.size(); ++m) {
    const auto& mod = p.models[m];
    check_linear_quantiles(mod, p.taus.size(), p.inputs, "meta");
    if (mod.regime < 0) {
      have_pooled = true;
      pooled_ = m;
    }
  }
  if (!have_pooled) throw StepInputError("meta", "not fitted: no pooled quantile model");
  if (p.iso_x.size() != p.iso_y.size()) throw StepInputError("meta", "isotonic x and y differ in length");
  for (size_t i = 0; i < p.iso_x.size(); ++i) {
    if (!std::isfinite(p.iso_x[i]) || !std::isfinite(p.iso_y[i]) || (i > 0 && p.iso_x[i] <= p.iso_x[i - 1]))
      throw StepInputError("meta", "isotonic table: x must be finite and strictly increasing, y finite");
  }
  if (!(std::isfinite(p.clip) && p.clip >= 0 && p.clip < 0.5)) throw StepInputError("meta", "clip must be in [0, 0.5)");
}

const LinearQuantileModel& MetaWeighter::model_for(int64_t regime) const {
  if (regime >= 0)
    for (const auto& m : params_.models)
      if (m.regime == regime) return m;
  return params_.models[pooled_];
}

BlendedView MetaWeighter::blend(const double* x, int64_t regime, double* q) const {
  constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  const size_t p = params_.inputs, nt = params_.taus.size();
  bool ok = true;
  for (size_t j = 0; j < p; ++j) ok &= std::isfinite(x[j]);
  if (!ok) {
    for (size_t t = 0; t < nt; ++t) q[t] = nan;
    return {nan, nan, nan, nan};
  }
  evaluate_sorted_quantiles(model_for(regime), x, p, nt, q);
  BlendedView v;
  v.mu = q[i50_];
  v.sigma = (q[i75_] - q[i25_]) / params_.normal_iqr;
  if (v.sigma > 0)
    v.p_raw = ndtr(v.mu / v.sigma);
  else
    v.p_raw = v.mu > 0 ? 1.0 : (v.mu < 0 ? 0.0 : 0.5);
  if (!std::isfinite(v.mu)) v.p_raw = nan;
  if (params_.iso_x.empty() || !std::isfinite(v.p_raw)) {
    v.p = nan;
  } else {
    const double c = interp(v.p_raw, params_.iso_x.data(), params_.iso_y.data(), params_.iso_x.size());
    v.p = std::min(std::max(c, params_.clip), 1.0 - params_.clip);
  }
  return v;
}

}  // namespace bot4::portfolio
