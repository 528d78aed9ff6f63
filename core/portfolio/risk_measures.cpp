#include "portfolio/risk_measures.hpp"

#include <algorithm>
#include <cstddef>
#include <cmath>
#include <string>

#include "portfolio/numeric.hpp"

namespace bot4::portfolio {

namespace {
constexpr double kCeilSlack = 1e-9;  // ceil(beta n) with beta n a float (0.9 * 10 = 9.000000000000002)
constexpr size_t kMinSamplesCF = 30;
}  // namespace

size_t min_samples_historical(double level) {
  return static_cast<size_t>(std::max(1.0, std::ceil(1.0 / (1.0 - level) - kCeilSlack)));
}

double historical_cvar(const double* r, size_t n, size_t stride, double level, std::vector<double>& losses) {
  const size_t need = min_samples_historical(level);
  if (n < need)
    throw StepInputError("returns", std::to_string(n) + " observations, at least " + std::to_string(need) +
                                        " needed (CVaR at level " + std::to_string(level) + ")");
  losses.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const double v = r[i * stride];
    if (!std::isfinite(v)) throw StepInputError("returns", "NaN or infinite return in the CVaR window");
    losses[i] = -v;
  }
  const size_t k = static_cast<size_t>(std::max(1.0, std::ceil(level * static_cast<double>(n) - kCeilSlack)));
  // VaR = the k-th smallest loss; only the losses above it need their (ascending) order, which
  // numpy's sum over the sorted tail sees: select, then sort the tail alone
  std::nth_element(losses.begin(), losses.begin() + static_cast<std::ptrdiff_t>(k - 1), losses.end());
  const double var = losses[k - 1];
  auto tail_end = std::partition(losses.begin() + static_cast<std::ptrdiff_t>(k), losses.end(),
                                 [var](double v) { return v > var; });
  std::sort(losses.begin() + static_cast<std::ptrdiff_t>(k), tail_end);
  const size_t m = static_cast<size_t>(tail_end - (losses.begin() + static_cast<std::ptrdiff_t>(k)));
  const double* lp = losses.data() + k;
  const double excess = pairwise_sum_fn([lp, var](size_t i) { return lp[i] - var; }, 0, m);
  return var + excess / ((1.0 - level) * static_cast<double>(n));
}

double conservative_cvar(const double* r, size_t n, size_t stride, const NormalTail& tail,
                         std::vector<double>& scratch) {
  const double h = historical_cvar(r, n, stride, tail.level, scratch);
  if (n < kMinSamplesCF) return h;
  double lo = r[0], hi = r[0];
  for (size_t i = 1; i < n; ++i) {
    lo = std::min(lo, r[i * stride]);
    hi = std::max(hi, r[i * stride]);
  }
  if (hi - lo == 0.0) return h;
  const double dn = static_cast<double>(n);
  const double mu = pairwise_sum(r, n, stride) / dn;
  const double var1 = pairwise_sum_fn([&](size_t i) { const double d = r[i * stride] - mu; return d * d; }, 0, n) /
                      (dn - 1.0);
  const double sigma = std::sqrt(var1);
  const double m2 = pairwise_sum_fn([&](size_t i) { const double d = r[i * stride] - mu; return d * d; }, 0, n) / dn;
  if (m2 <= 0.0) return h;
  const double m3 = pairwise_sum_fn([&](size_t i) { return std::pow(r[i * stride] - mu, 3.0); }, 0, n) / dn;
  const double m4 = pairwise_sum_fn([&](size_t i) { return std::pow(r[i * stride] - mu, 4.0); }, 0, n) / dn;
  const double s = m3 / std::pow(m2, 1.5);
  const double k = m4 / std::pow(m2, 2.0);
  if (!(std::isfinite(mu) && std::isfinite(sigma) && std::isfinite(s) && std::isfinite(k)))
    throw StepInputError("returns", "Cornish-Fisher moments are not finite");
  // monotone CF map (cornish_fisher_monotone)
  const double a = (k - 3.0) / 8.0 - s * s / 6.0;
  const double b = s / 3.0;
  const double c = 1.0 - (k - 3.0) / 8.0 + 5.0 * s * s / 36.0;
  const bool monotone = a > 0.0 ? (b * b - 4.0 * a * c < 0.0) : (a == 0.0 && b == 0.0 && c > 0.0);
  if (!monotone) return h;
  const double alpha = 1.0 - tail.level;
  const double z = tail.z;
  const double t = tail.pdf / alpha *
                   (1.0 + s * z / 6.0 + (k - 3.0) * (z * z - 1.0) / 24.0 - s * s * (2.0 * z * z - 1.0) / 36.0);
  const double cf = -mu + sigma * t;
  return std::max(h, cf);
}

double portfolio_cvar(const double* scen, size_t T, size_t n, const double* w, double level,
                      std::vector<double>& pnl, std::vector<double>& scratch) {
  pnl.resize(T);
  for (size_t t = 0; t < T; ++t) {
    double acc = 0.0;
    const double* row = scen + t * n;
    for (size_t j = 0; j < n; ++j) acc += row[j] * w[j];
    pnl[t] = acc;
  }
  return historical_cvar(pnl.data(), T, 1, level, scratch);
}

}  // namespace bot4::portfolio
