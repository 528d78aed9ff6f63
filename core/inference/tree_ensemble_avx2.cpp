// AVX2 batch kernel: 8 rows walk one tree together, one gather each for threshold, feature and
// input value per level, on rows expanded to 2F floats (NaN handling, see tree_ensemble.hpp).
#include <immintrin.h>

#include "inference/tree_ensemble_kernels.hpp"

namespace bot4::inference::tree_kernels {

void sum_rows_avx2(const TreeEnsemble::View& v, const float* rows, size_t n, double* sums) {
  const int F = static_cast<int>(v.n_features);
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  const __m256i rowoff = _mm256_mullo_epi32(lane, _mm256_set1_epi32(2 * F));
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i internal = _mm256_set1_epi32(static_cast<int>(v.internal));
  const size_t w = 2 * v.n_features;
  detail::ExpandBuffer buf;
  float* base = buf.get(8 * w);
  size_t r0 = 0;
  for (; r0 + 8 <= n; r0 += 8) {
    for (size_t r = 0; r < 8; ++r) detail::expand_row(rows + (r0 + r) * v.n_features, v.n_features, base + r * w);
    __m256d acc_lo = _mm256_setzero_pd();
    __m256d acc_hi = _mm256_setzero_pd();
    for (size_t t = 0; t < v.padded_trees; ++t) {
      const int* nb = reinterpret_cast<const int*>(v.nodes + t * v.internal);  // {threshold bits, feature} pairs
      __m256i idx = _mm256_setzero_si256();
      for (int d = 0; d < v.depth; ++d) {
        const __m256i pair = _mm256_slli_epi32(idx, 1);
        const __m256 thr = _mm256_i32gather_ps(reinterpret_cast<const float*>(nb), pair, 4);
        const __m256i feat = _mm256_i32gather_epi32(nb + 1, pair, 4);
        const __m256 xv = _mm256_i32gather_ps(base, _mm256_add_epi32(rowoff, feat), 4);
        const __m256i ge = _mm256_castps_si256(_mm256_cmp_ps(xv, thr, _CMP_GE_OQ));  // -1 where x >= t
        idx = _mm256_sub_epi32(_mm256_add_epi32(_mm256_add_epi32(idx, idx), one), ge);
      }
      const __m256 leaf = _mm256_i32gather_ps(v.leaves + t * v.leaf_count, _mm256_sub_epi32(idx, internal), 4);
      acc_lo = _mm256_add_pd(acc_lo, _mm256_cvtps_pd(_mm256_castps256_ps128(leaf)));
      acc_hi = _mm256_add_pd(acc_hi, _mm256_cvtps_pd(_mm256_extractf128_ps(leaf, 1)));
    }
    _mm256_storeu_pd(sums + r0, acc_lo);
    _mm256_storeu_pd(sums + r0 + 4, acc_hi);
  }
  for (; r0 < n; ++r0) {
    detail::expand_row(rows + r0 * v.n_features, v.n_features, base);
    sums[r0] = detail::sum_expanded(v, base);
  }
}

}  // namespace bot4::inference::tree_kernels
