#pragma once
// Diversified top-K of the portfolio step (bot4.portfolio.selection is the reference; METHODS.md
// §9): Pearson correlation of trailing return columns (constant columns correlate 0), greedy
// maximisation of sum s_i - lam sum_{i<j} max(rho_ij, 0) (ties to the lowest index), plain top-K
// by score (stable), and the mean pairwise correlation of a set.
#include <cstddef>
#include <vector>

namespace bot4::portfolio {

// Correlation (c x c, row-major, into `out`) of the columns `cols` of a T x n row-major matrix.
void correlation(const double* x, size_t T, size_t n, const std::vector<int>& cols, std::vector<double>& out,
                 std::vector<double>& scratch);

// Greedy picks (indices into scores, in pick order) under the correlation penalty.
std::vector<int> greedy_penalty(const std::vector<double>& scores, const std::vector<double>& corr, size_t k,
                                double lam);

// Plain top-K by score, ties to the lowest index.
std::vector<int> top_k(const std::vector<double>& scores, size_t k);

// Mean off-diagonal correlation among `subset` (NaN below two); corr is m x m row-major.
double mean_pairwise(const std::vector<double>& corr, size_t m, const std::vector<int>& subset);

}  // namespace bot4::portfolio
