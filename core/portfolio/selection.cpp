#include "portfolio/selection.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "portfolio/numeric.hpp"

namespace bot4::portfolio {

void correlation(const double* x, size_t T, size_t n, const std::vector<int>& cols, std::vector<double>& out,
                 std::vector<double>& z) {
  const size_t c = cols.size();
  if (T < 3) throw StepInputError("returns", "a correlation needs at least 3 rows");
  z.assign(T * c, 0.0);
  for (size_t j = 0; j < c; ++j) {
    const size_t col = static_cast<size_t>(cols[j]);
    double s = 0.0;  // numpy's axis-0 mean of a 2-D array: rows added in order
    for (size_t t = 0; t < T; ++t) s += x[t * n + col];
    const double mean = s / static_cast<double>(T);
    double ss = 0.0;
    for (size_t t = 0; t < T; ++t) {
      const double d = x[t * n + col] - mean;
      z[t * c + j] = d;
      ss += d * d;
    }
    const double sd = std::sqrt(ss);
    for (size_t t = 0; t < T; ++t) z[t * c + j] = sd == 0.0 ? 0.0 : z[t * c + j] / sd;
  }
  out.assign(c * c, 0.0);
  for (size_t a = 0; a < c; ++a) {
    out[a * c + a] = 1.0;
    for (size_t b = a + 1; b < c; ++b) {
      double acc = 0.0;
      for (size_t t = 0; t < T; ++t) acc += z[t * c + a] * z[t * c + b];
      acc = std::min(1.0, std::max(-1.0, acc));
      out[a * c + b] = acc;
      out[b * c + a] = acc;
    }
  }
}

std::vector<int> greedy_penalty(const std::vector<double>& s, const std::vector<double>& corr, size_t k,
                                double lam) {
  const size_t n = s.size();
  k = std::min(k, n);
  std::vector<double> penalty(n, 0.0);
  std::vector<char> free(n, 1);
  std::vector<int> picked;
  picked.reserve(k);
  for (size_t step = 0; step < k; ++step) {
    int best = -1;
    double g_best = -std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < n; ++i) {
      const double g = free[i] ? s[i] - penalty[i] : -std::numeric_limits<double>::infinity();
      if (best < 0 || g > g_best) {  // first maximum
        best = static_cast<int>(i);
        g_best = g;
      }
    }
    picked.push_back(best);
    free[static_cast<size_t>(best)] = 0;
    for (size_t i = 0; i < n; ++i) {
      const double rho = i == static_cast<size_t>(best) ? 0.0 : std::max(corr[i * n + static_cast<size_t>(best)], 0.0);
      penalty[i] += lam * rho;
    }
  }
  return picked;
}

std::vector<int> top_k(const std::vector<double>& s, size_t k) {
  std::vector<int> idx(s.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return -s[static_cast<size_t>(a)] < -s[static_cast<size_t>(b)]; });
  idx.resize(std::min(k, idx.size()));
  return idx;
}

double mean_pairwise(const std::vector<double>& corr, size_t m, const std::vector<int>& subset) {
  const size_t c = subset.size();
  if (c < 2) return std::numeric_limits<double>::quiet_NaN();
  std::vector<double> vals;
  vals.reserve(c * (c - 1) / 2);
  for (size_t a = 0; a < c; ++a)
    for (size_t b = a + 1; b < c; ++b)
      vals.push_back(corr[static_cast<size_t>(subset[a]) * m + static_cast<size_t>(subset[b])]);
  return pairwise_sum(vals.data(), vals.size()) / static_cast<double>(vals.size());
}

}  // namespace bot4::portfolio
