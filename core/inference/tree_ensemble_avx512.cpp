// AVX-512 batch kernel: 16 rows walk one tree together (see tree_ensemble_avx2.cpp).
#include <immintrin.h>

#include "inference/tree_ensemble_kernels.hpp"

namespace bot4::inference::tree_kernels {

void sum_rows_avx512(const TreeEnsemble::View& v, const float* rows, size_t n, double* sums) {
  const int F = static_cast<int>(v.n_features);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i rowoff = _mm512_mullo_epi32(lane, _mm512_set1_epi32(2 * F));
  const __m512i one = _mm512_set1_epi32(1);
  const __m512i internal = _mm512_set1_epi32(static_cast<int>(v.internal));
  const size_t w = 2 * v.n_features;
  detail::ExpandBuffer buf;
  float* base = buf.get(16 * w);
  size_t r0 = 0;
  for (; r0 + 16 <= n; r0 += 16) {
    for (size_t r = 0; r < 16; ++r) detail::expand_row(rows + (r0 + r) * v.n_features, v.n_features, base + r * w);
    __m512d acc_lo = _mm512_setzero_pd();
    __m512d acc_hi = _mm512_setzero_pd();
    for (size_t t = 0; t < v.padded_trees; ++t) {
      const int* nb = reinterpret_cast<const int*>(v.nodes + t * v.internal);
      __m512i idx = _mm512_setzero_si512();
      for (int d = 0; d < v.depth; ++d) {
        const __m512i pair = _mm512_slli_epi32(idx, 1);
        const __m512 thr = _mm512_i32gather_ps(pair, nb, 4);
        const __m512i feat = _mm512_i32gather_epi32(pair, nb + 1, 4);
        const __m512 xv = _mm512_i32gather_ps(_mm512_add_epi32(rowoff, feat), base, 4);
        const __mmask16 ge = _mm512_cmp_ps_mask(xv, thr, _CMP_GE_OQ);
        const __m512i next = _mm512_add_epi32(_mm512_add_epi32(idx, idx), one);
        idx = _mm512_mask_add_epi32(next, ge, next, one);
      }
      const __m512 leaf = _mm512_i32gather_ps(_mm512_sub_epi32(idx, internal), v.leaves + t * v.leaf_count, 4);
      acc_lo = _mm512_add_pd(acc_lo, _mm512_cvtps_pd(_mm512_castps512_ps256(leaf)));
      acc_hi = _mm512_add_pd(acc_hi, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(leaf), 1))));
    }
    _mm512_storeu_pd(sums + r0, acc_lo);
    _mm512_storeu_pd(sums + r0 + 8, acc_hi);
  }
  for (; r0 < n; ++r0) {
    detail::expand_row(rows + r0 * v.n_features, v.n_features, base);
    sums[r0] = detail::sum_expanded(v, base);
  }
}

}  // namespace bot4::inference::tree_kernels
