#pragma once
// Compiled evaluator for ai.onnx.ml TreeEnsembleClassifier / TreeEnsembleRegressor nodes.
//
// Layout: every tree is padded to the ensemble's maximum depth D and stored as a complete binary
// tree: 2^D - 1 internal nodes {threshold, feature} in heap order followed by 2^D leaf values.
// A leaf that sits above depth D is replicated over its whole padded subtree, so the padding
// nodes may send a row either way. Traversal is then branch-free and the same for every tree:
//     idx = 2*idx + 1 + (x[feature] >= threshold)         (D times), leaf = idx - (2^D - 1)
// and several trees are walked interleaved per row so their dependent load chains overlap.
//
// Every split is normalised to "go to the second child when x >= t" in float32, exactly the
// comparison onnxruntime makes on float32 input: BRANCH_LT t as is, BRANCH_LEQ t as
// x >= nextafter(t, +inf) (identical for every finite t; t = +inf differs only for x = +inf),
// BRANCH_GT / BRANCH_GTE as LEQ / LT with the children swapped. NaN follows
// nodes_missing_value_tracks_true (onnxruntime: NaN takes the true branch when the flag is set,
// else the false branch) at no cost in the traversal: each row is expanded once into 2F floats,
// [x with NaN -> -inf | x with NaN -> +inf], and a node whose NaN goes to the second child reads
// feature f + F instead of f. -inf >= t is false and +inf >= t is true for every threshold the
// layout keeps (a normalised threshold of -inf with NaN to the first child is refused), so NaN
// lands on the right side and every other value compares exactly as before. (97% of real feature
// rows carry at least one NaN, so a separate NaN path would be the common path.)
//
// Scores are summed in double (onnxruntime sums float32 leaf weights in float); the difference
// is far below the 1e-6 parity bound and makes the result independent of interleaving order.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "inference/onnx_reader.hpp"
#include "simd/simd_level.hpp"

namespace bot4::inference {

class TreeEnsemble {
 public:
  enum class Transform { None, Logistic };

  // Deepest tree the padded layout accepts (2^12 leaves per tree); deeper ensembles are refused
  // so the caller can fall back to onnxruntime.
  static constexpr int kMaxDepth = 12;
  // Trees walked together per row (batch-1 latency hiding).
  static constexpr int kInterleave = 16;

  // Builds from a TreeEnsembleClassifier (binary: two class labels, one class id, as XGBoost
  // exports) or a single-target TreeEnsembleRegressor. `n_features` is the input width; a feature
  // id outside it is refused. Returns nullptr with the cause in `error`.
  // `refused` (when given) is set when the model itself is unusable whatever runs it (corrupt
  // structure, non-finite constants, scores where probabilities are needed): the caller must not
  // hand such a model to another engine.
  static std::unique_ptr<TreeEnsemble> from_node(const OnnxNode& node, size_t n_features, std::string& error,
                                                 bool* refused = nullptr);

  // Transformed output (probability of class 1 for a classifier, value for a regressor).
  double predict_one(const float* row) const;
  // Rows are C-contiguous [n, n_features]. Uses the scalar row-blocked kernel (see the .cpp for
  // why the gather kernels are not dispatched to).
  void predict(const float* rows, size_t n, double* out) const;
  void predict(const double* rows, size_t n, double* out) const;  // rows converted to float32
  // Batch at a given level (tests compare every level against scalar).
  void predict_level(simd::SimdLevel level, const float* rows, size_t n, double* out) const;
  // Untransformed score: sum of leaf weights + base value.
  double raw_score(const float* row) const;

  size_t n_trees() const { return n_trees_; }
  int max_depth() const { return depth_; }
  size_t n_features() const { return n_features_; }
  Transform transform() const { return transform_; }
  bool is_classifier() const { return classifier_; }

  // Kernel entry points; public so the per-ISA translation units can implement them.
  struct Node {
    float threshold;
    uint32_t feature;  // index into the expanded row: f, or f + F when NaN goes to the second child
  };
  // The trees again, grouped by their own depth, for the one-row kernel. A boosted ensemble's
  // trees are mostly shallower than its deepest (the reference 500x6 XGBoost model: 87 trees of
  // depth 1, 176 of 2, 80 of 3, 40 of 4, 39 of 5, 78 of 6: 1,502 levels where the padded layout
  // walks 3,000), and one row's cost is its node visits. A class holds its trees in their
  // original order, each complete to the class depth (the top levels of its padded heap; a leaf
  // value the heap replicates appears once), padded to a multiple of kInterleave with zero trees;
  // slot[i] is the original index of its i-th tree (padded_trees for a padding tree). The padded
  // trees beyond n_trees are a class of depth 0 with leaf 0. The kernel writes every tree's leaf
  // to its original slot and sums those in the order sum_trees adds them, so the sum is
  // bit-identical to the padded walk's.
  struct DepthClass {
    int depth;
    size_t count;               // a multiple of kInterleave
    const Node* nodes;          // [count][2^depth - 1]
    const float* leaves;        // [count][2^depth]
    const uint32_t* slot;       // [count]
  };

  struct View {
    const Node* nodes;          // [padded_trees][internal]
    const float* leaves;        // [padded_trees][leaves]
    const DepthClass* classes;  // by depth, shallowest first
    size_t n_classes;
    size_t padded_trees;
    size_t internal;            // 2^D - 1
    size_t leaf_count;          // 2^D
    int depth;
    size_t n_features;
    double base;
    double scale;               // 1/n_trees for AVERAGE, else 1
  };
  View view() const;

 private:
  TreeEnsemble() = default;
  double finish(double sum) const;
  void build_depth_classes(const std::vector<int>& tree_depths);

  size_t n_trees_ = 0;
  size_t padded_trees_ = 0;
  int depth_ = 0;
  size_t n_features_ = 0;
  bool classifier_ = false;
  Transform transform_ = Transform::None;
  double base_ = 0.0;
  double scale_ = 1.0;
  std::vector<Node> nodes_;
  std::vector<float> leaves_;
  std::vector<Node> class_nodes_;
  std::vector<float> class_leaves_;
  std::vector<uint32_t> class_slots_;
  std::vector<DepthClass> classes_;
};

// Sum of leaf values over all trees for `n` rows of F floats (scores before base/transform), one
// implementation per ISA. The AVX2/AVX-512 kernels vectorise across rows with gathers; they are
// kept, tested against scalar and benchmarked, but predict() does not dispatch to them (slower here).
namespace tree_kernels {
void sum_rows_scalar(const TreeEnsemble::View& v, const float* rows, size_t n, double* sums);
void sum_rows_avx2(const TreeEnsemble::View& v, const float* rows, size_t n, double* sums);
void sum_rows_avx512(const TreeEnsemble::View& v, const float* rows, size_t n, double* sums);
double sum_one(const TreeEnsemble::View& v, const float* row);
}  // namespace tree_kernels

}  // namespace bot4::inference
