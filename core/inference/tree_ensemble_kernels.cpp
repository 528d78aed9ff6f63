// Baseline (scalar) tree-ensemble kernels: batch-1 and the row-blocked batch.
#include <algorithm>
#include <type_traits>

#include "inference/tree_ensemble_kernels.hpp"

namespace bot4::inference::tree_kernels {

double sum_one(const TreeEnsemble::View& v, const float* row) {
  detail::ExpandBuffer buf;
  float* x = buf.get(2 * v.n_features);
  detail::expand_row(row, v.n_features, x);
  detail::ExpandBuffer leaves;
  return detail::sum_by_depth(v, x, leaves.get(v.padded_trees + 1));
}

void sum_rows_scalar(const TreeEnsemble::View& v, const float* rows, size_t n, double* sums) {
  // Rows in blocks and trees in blocks: one block of trees (~12 KB at depth 6) stays in L1
  // while every row of the row block walks it, instead of streaming the whole ensemble per row.
  constexpr size_t kRowBlock = 16;
  const size_t w = 2 * v.n_features;
  detail::ExpandBuffer buf;
  float* xs = buf.get(kRowBlock * w);
  for (size_t r0 = 0; r0 < n; r0 += kRowBlock) {
    const size_t r1 = std::min(n, r0 + kRowBlock);
    for (size_t r = r0; r < r1; ++r) {
      detail::expand_row(rows + r * v.n_features, v.n_features, xs + (r - r0) * w);
      sums[r] = 0.0;
    }
    detail::with_depth(v.depth, [&](auto dc) {
      constexpr int D = decltype(dc)::value;
      for (size_t t0 = 0; t0 < v.padded_trees; t0 += detail::kTreeBlock) {
        const size_t t1 = std::min(v.padded_trees, t0 + detail::kTreeBlock);
        for (size_t r = r0; r < r1; ++r) sums[r] += detail::sum_trees<D>(v, xs + (r - r0) * w, t0, t1);
      }
      return 0;
    });
  }
}

}  // namespace bot4::inference::tree_kernels
