#include "portfolio/linear_quantiles.hpp"

#include <algorithm>
#include <cmath>

#include "portfolio/numeric.hpp"

namespace bot4::portfolio {

void check_linear_quantiles(const LinearQuantileModel& m, size_t taus, size_t inputs, const std::string& param) {
  if (m.coef.size() != taus * inputs || m.intercept.size() != taus)
    throw StepInputError(param, "a quantile model's coefficients do not match taus x inputs (" + std::to_string(taus) +
                                    " x " + std::to_string(inputs) + "), got " + std::to_string(m.coef.size()) +
                                    " coefficients and " + std::to_string(m.intercept.size()) + " intercepts");
  for (double v : m.coef)
    if (!std::isfinite(v)) throw StepInputError(param, "non-finite quantile coefficient");
  for (double v : m.intercept)
    if (!std::isfinite(v)) throw StepInputError(param, "non-finite quantile intercept");
}

void evaluate_sorted_quantiles(const LinearQuantileModel& m, const double* x, size_t inputs, size_t taus, double* q) {
  for (size_t t = 0; t < taus; ++t) {
    double acc = 0.0;
    const double* w = m.coef.data() + t * inputs;
    for (size_t j = 0; j < inputs; ++j) acc += x[j] * w[j];
    q[t] = acc + m.intercept[t];
  }
  std::sort(q, q + taus);
}

}  // namespace bot4::portfolio
