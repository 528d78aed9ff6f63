#pragma once
// Small numerical helpers of the portfolio step that follow numpy's arithmetic order, so the core
// step and the Python reference (bot4.portfolio) agree to the last bits where they can:
// pairwise_sum is numpy's pairwise summation of a 1-D reduction (np.sum / np.mean), interp is
// np.interp, ndtr is scipy.special.ndtr (the standard normal CDF). BLAS products (numpy's `@`)
// have no fixed order; the core sums those left to right (agreement to a few ulps).
#include <cmath>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>

namespace bot4::portfolio {

// An argument of the portfolio step a caller can fix: `param` names it (bot4.errors.InputError
// on the Python side).
class StepInputError : public std::invalid_argument {
 public:
  StepInputError(std::string param, const std::string& problem)
      : std::invalid_argument(problem), param_(std::move(param)) {}
  const std::string& param() const { return param_; }

 private:
  std::string param_;
};

// numpy's pairwise sum of a[0], a[stride], ... (n terms): blocks of <= 128 summed with eight
// accumulators, larger ranges split in halves (multiples of 8).
template <class Get>
double pairwise_sum_fn(const Get& a, size_t lo, size_t n) {
  if (n < 8) {
    double res = -0.0;  // numpy starts at -0.0 (keeps a sum of -0.0 negative)
    for (size_t i = 0; i < n; ++i) res += a(lo + i);
    return res;
  }
  if (n <= 128) {
    double r[8];
    for (size_t j = 0; j < 8; ++j) r[j] = a(lo + j);
    size_t i = 8;
    for (; i < n - (n % 8); i += 8)
      for (size_t j = 0; j < 8; ++j) r[j] += a(lo + i + j);
    double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; ++i) res += a(lo + i);
    return res;
  }
  size_t n2 = n / 2;
  n2 -= n2 % 8;
  return pairwise_sum_fn(a, lo, n2) + pairwise_sum_fn(a, lo + n2, n - n2);
}

inline double pairwise_sum(const double* a, size_t n, size_t stride = 1) {
  return pairwise_sum_fn([a, stride](size_t i) { return a[i * stride]; }, 0, n);
}

// np.interp(x, xp, fp) for one x (xp strictly increasing, n >= 1).
inline double interp(double x, const double* xp, const double* fp, size_t n) {
  if (std::isnan(x)) return x;
  if (x < xp[0]) return fp[0];
  if (x > xp[n - 1]) return fp[n - 1];
  // largest j with xp[j] <= x
  size_t lo = 0, hi = n;
  while (hi - lo > 1) {
    const size_t mid = (lo + hi) / 2;
    if (xp[mid] <= x) lo = mid; else hi = mid;
  }
  const size_t j = lo;
  if (j == n - 1) return fp[j];
  if (xp[j] == x) return fp[j];
  const double slope = (fp[j + 1] - fp[j]) / (xp[j + 1] - xp[j]);
  double r = slope * (x - xp[j]) + fp[j];
  if (std::isnan(r)) {
    r = slope * (x - xp[j + 1]) + fp[j + 1];
    if (std::isnan(r) && fp[j] == fp[j + 1]) r = fp[j];
  }
  return r;
}

// Standard normal CDF, scipy.special.ndtr's formulation.
inline double ndtr(double a) {
  if (std::isnan(a)) return a;
  constexpr double kSqrt1_2 = 0.70710678118654752440;
  const double x = a * kSqrt1_2;
  const double z = std::fabs(x);
  if (z < kSqrt1_2) return 0.5 + 0.5 * std::erf(x);
  const double y = 0.5 * std::erfc(z);
  return x > 0 ? 1.0 - y : y;
}

// Python's builtin max(a, b): b only when b > a (so max(0.0, nan) is 0.0).
inline double py_max(double a, double b) { return b > a ? b : a; }

}  // namespace bot4::portfolio
