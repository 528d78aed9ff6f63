#pragma once
// Linear conditional quantiles q_tau(x) = b_tau + x . w_tau, evaluated on one row and sorted
// (rearrangement, so they never cross): the model bot4.portfolio.agents.LinearQuantiles fits in
// Python. Shared by the meta-weighter's blend and the signal agents, so both read a fitted model
// the same way (coefficients summed left to right, then the intercept, as numpy's `X @ W.T + b`
// up to BLAS's summation order).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bot4::portfolio {

struct LinearQuantileModel {
  int64_t regime = -1;          // the meta-weighter's regime of the fit (-1: pooled); agents use -1
  std::vector<double> coef;     // taus x p, row-major
  std::vector<double> intercept;  // taus
};

// StepInputError(param, ...) unless coef is taus x inputs and intercept has taus values, all finite.
void check_linear_quantiles(const LinearQuantileModel& m, size_t taus, size_t inputs, const std::string& param);

// q[0..taus) = the sorted quantiles of the row x[0..inputs) (the caller checks x is finite).
void evaluate_sorted_quantiles(const LinearQuantileModel& m, const double* x, size_t inputs, size_t taus, double* q);

}  // namespace bot4::portfolio
