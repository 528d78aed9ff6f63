#pragma once
// Shared traversal templates for the tree-ensemble kernels (included by the per-ISA files).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "inference/tree_ensemble.hpp"

// Internal linkage on purpose: each per-ISA translation unit compiles its own copy with its own
// flags, so the linker can never merge an AVX-512 instance into the baseline path (ODR folding).
namespace bot4::inference::tree_kernels {
namespace detail {
namespace {

// Row of F floats -> 2F floats [NaN -> -inf | NaN -> +inf] (see tree_ensemble.hpp).
inline void expand_row(const float* x, size_t f, float* out) {
  constexpr float kInf = std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < f; ++i) {
    const float v = x[i];
    const bool nan = v != v;
    out[i] = nan ? -kInf : v;
    out[f + i] = nan ? kInf : v;
  }
}

// K complete depth-D trees stored one after another from `nb`, walked level by level together
// for one expanded row so their independent load chains overlap in the pipeline; idx[k] ends as
// tree k's heap index on level D (its leaf is idx[k] - (2^D - 1)).
template <int D, int K>
inline void walk_group(const TreeEnsemble::Node* nb, const float* x, uint32_t (&idx)[K]) {
  constexpr size_t I = (size_t{1} << D) - 1;
  for (int k = 0; k < K; ++k) idx[k] = 0;
  for (int d = 0; d < D; ++d) {
    for (int k = 0; k < K; ++k) {
      const TreeEnsemble::Node n = nb[k * I + idx[k]];
      idx[k] = 2 * idx[k] + 1 + static_cast<uint32_t>(x[n.feature] >= n.threshold);
    }
  }
}

// Sum of leaves over trees [t_begin, t_end) (a multiple of K apart) for one expanded row.
template <int D, int K = TreeEnsemble::kInterleave>
inline double sum_trees(const TreeEnsemble::View& v, const float* x, size_t t_begin, size_t t_end) {
  constexpr size_t I = (size_t{1} << D) - 1;
  constexpr size_t L = size_t{1} << D;
  double acc[4] = {0.0, 0.0, 0.0, 0.0};
  for (size_t t0 = t_begin; t0 < t_end; t0 += K) {
    const TreeEnsemble::Node* nb = v.nodes + t0 * I;
    uint32_t idx[K];
    walk_group<D, K>(nb, x, idx);
    const float* lb = v.leaves + t0 * L;
    for (int k = 0; k < K; ++k) acc[k & 3] += static_cast<double>(lb[k * L + (idx[k] - I)]);
  }
  return (acc[0] + acc[1]) + (acc[2] + acc[3]);
}

template <typename F>
inline decltype(auto) with_depth(int depth, F&& f) {
  switch (depth) {
#define BOT4_DEPTH_CASE(d) \
  case d: return f(std::integral_constant<int, d>{});
    BOT4_DEPTH_CASE(0) BOT4_DEPTH_CASE(1) BOT4_DEPTH_CASE(2) BOT4_DEPTH_CASE(3) BOT4_DEPTH_CASE(4)
    BOT4_DEPTH_CASE(5) BOT4_DEPTH_CASE(6) BOT4_DEPTH_CASE(7) BOT4_DEPTH_CASE(8) BOT4_DEPTH_CASE(9)
    BOT4_DEPTH_CASE(10) BOT4_DEPTH_CASE(11)
#undef BOT4_DEPTH_CASE
    default: return f(std::integral_constant<int, 12>{});
  }
}

// Trees are summed in blocks of kTreeBlock, the blocking the scalar batch kernel uses, so a
// batch-1 result is bit-identical to the same row's batch result at the scalar level.
constexpr size_t kTreeBlock = 4 * TreeEnsemble::kInterleave;

// One depth class (tree_ensemble.hpp): each tree walked through its own D levels, K interleaved,
// its leaf written to its original slot.
template <int D, int K = TreeEnsemble::kInterleave>
inline void leaves_of_class(const TreeEnsemble::DepthClass& c, const float* x, float* leaf) {
  constexpr size_t I = (size_t{1} << D) - 1;
  constexpr size_t L = size_t{1} << D;
  for (size_t t0 = 0; t0 < c.count; t0 += K) {
    const TreeEnsemble::Node* nb = c.nodes + t0 * I;
    uint32_t idx[K];
    walk_group<D, K>(nb, x, idx);
    const float* lb = c.leaves + t0 * L;
    for (int k = 0; k < K; ++k) leaf[c.slot[t0 + k]] = lb[k * L + (idx[k] - I)];
  }
}

// The sum sum_expanded computes, from the depth classes: every tree's leaf into `leaf`
// (padded_trees + 1 floats; the last takes the classes' padding trees), then added in blocks of
// kTreeBlock into acc[j & 3] exactly as sum_trees adds them.
inline double sum_by_depth(const TreeEnsemble::View& v, const float* x, float* leaf) {
  for (size_t c = 0; c < v.n_classes; ++c)
    with_depth(v.classes[c].depth, [&](auto dc) {
      leaves_of_class<decltype(dc)::value>(v.classes[c], x, leaf);
      return 0;
    });
  double sum = 0.0;
  for (size_t t0 = 0; t0 < v.padded_trees; t0 += kTreeBlock) {
    const size_t n = t0 + kTreeBlock < v.padded_trees ? kTreeBlock : v.padded_trees - t0;
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    for (size_t j = 0; j < n; ++j) acc[j & 3] += static_cast<double>(leaf[t0 + j]);
    sum += (acc[0] + acc[1]) + (acc[2] + acc[3]);
  }
  return sum;
}

inline double sum_expanded(const TreeEnsemble::View& v, const float* x) {
  return with_depth(v.depth, [&](auto dc) {
    constexpr int D = decltype(dc)::value;
    double sum = 0.0;
    for (size_t t0 = 0; t0 < v.padded_trees; t0 += kTreeBlock) {
      const size_t t1 = t0 + kTreeBlock < v.padded_trees ? t0 + kTreeBlock : v.padded_trees;
      sum += sum_trees<D>(v, x, t0, t1);
    }
    return sum;
  });
}

// Expanded rows for a block of rows: stack storage for the usual widths, heap beyond.
struct ExpandBuffer {
  static constexpr size_t kStack = 4096;
  float stack[kStack];
  float* heap = nullptr;
  float* get(size_t n) {
    if (n <= kStack) return stack;
    heap = new float[n];
    return heap;
  }
  ~ExpandBuffer() { delete[] heap; }
};

}  // namespace
}  // namespace detail
}  // namespace bot4::inference::tree_kernels
