#include "inference/tree_ensemble.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <unordered_map>

namespace bot4::inference {

namespace {

enum class Mode { Leaf, Lt, Leq, Gt, Gte };

bool parse_mode(const std::string& s, Mode& m) {
  if (s == "LEAF") m = Mode::Leaf;
  else if (s == "BRANCH_LT") m = Mode::Lt;
  else if (s == "BRANCH_LEQ") m = Mode::Leq;
  else if (s == "BRANCH_GT") m = Mode::Gt;
  else if (s == "BRANCH_GTE") m = Mode::Gte;
  else return false;  // BRANCH_EQ / BRANCH_NEQ / BRANCH_MEMBER have no single-threshold form
  return true;
}

struct RawNode {
  int64_t node_id;
  int64_t feature;
  float value;
  Mode mode;
  int64_t true_id;
  int64_t false_id;
  bool missing_true;
  double weight = 0.0;
  int weight_count = 0;
};

struct RawTree {
  std::vector<RawNode> nodes;
  std::unordered_map<int64_t, size_t> by_id;
};

const std::vector<int64_t>* ints_attr(const OnnxNode& n, const char* name) {
  const OnnxAttribute* a = n.find(name);
  return a ? &a->ints : nullptr;
}

}  // namespace

TreeEnsemble::View TreeEnsemble::view() const {
  const size_t internal = (size_t{1} << depth_) - 1;
  return View{nodes_.data(), leaves_.data(), classes_.data(), classes_.size(), padded_trees_, internal,
              size_t{1} << depth_, depth_, n_features_, base_, scale_};
}

std::unique_ptr<TreeEnsemble> TreeEnsemble::from_node(const OnnxNode& node, size_t n_features, std::string& error,
                                                      bool* refused) {
  bool refused_local = false;
  if (refused == nullptr) refused = &refused_local;
  *refused = false;
  const bool classifier = node.op_type == "TreeEnsembleClassifier";
  if (!classifier && node.op_type != "TreeEnsembleRegressor") {
    error = "unsupported operator '" + node.op_type + "' for the tree path (expected TreeEnsembleClassifier or TreeEnsembleRegressor)";
    return nullptr;
  }
  if (node.domain != "ai.onnx.ml") {
    error = "operator " + node.op_type + " in domain '" + node.domain + "', expected 'ai.onnx.ml'";
    return nullptr;
  }
  // Every attribute must be one this evaluator implements; anything else could change the
  // result, so it is refused by name rather than ignored.
  static const char* const kCommon[] = {"nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values",
                                        "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids",
                                        "nodes_missing_value_tracks_true", "nodes_hitrates", "base_values",
                                        "post_transform"};
  static const char* const kClassifier[] = {"class_treeids", "class_nodeids", "class_ids", "class_weights",
                                            "classlabels_int64s", "classlabels_strings"};
  static const char* const kRegressor[] = {"target_treeids", "target_nodeids", "target_ids", "target_weights",
                                           "n_targets", "aggregate_function"};
  for (const auto& a : node.attributes) {
    bool known = std::any_of(std::begin(kCommon), std::end(kCommon), [&](const char* k) { return a.name == k; });
    if (classifier)
      known = known || std::any_of(std::begin(kClassifier), std::end(kClassifier), [&](const char* k) { return a.name == k; });
    else
      known = known || std::any_of(std::begin(kRegressor), std::end(kRegressor), [&](const char* k) { return a.name == k; });
    if (!known) {
      error = "unsupported attribute '" + a.name + "' on " + node.op_type +
              (a.name.find("_as_tensor") != std::string::npos ? " (double-precision tensors are not supported by the tree path)" : "");
      return nullptr;
    }
  }

  auto need_ints = [&](const char* name) -> const std::vector<int64_t>* {
    const auto* v = ints_attr(node, name);
    if (!v) error = node.op_type + ": missing attribute '" + std::string(name) + "'";
    return v;
  };
  const auto* treeids = need_ints("nodes_treeids");
  const auto* nodeids = treeids ? need_ints("nodes_nodeids") : nullptr;
  const auto* featureids = nodeids ? need_ints("nodes_featureids") : nullptr;
  const auto* trueids = featureids ? need_ints("nodes_truenodeids") : nullptr;
  const auto* falseids = trueids ? need_ints("nodes_falsenodeids") : nullptr;
  if (!falseids) return nullptr;
  const OnnxAttribute* values = node.find("nodes_values");
  const OnnxAttribute* modes = node.find("nodes_modes");
  if (!values || !modes) {
    error = node.op_type + ": missing attribute '" + std::string(values ? "nodes_modes" : "nodes_values") + "'";
    return nullptr;
  }
  const auto* missing = ints_attr(node, "nodes_missing_value_tracks_true");
  const size_t n_nodes = treeids->size();
  if (n_nodes == 0 || nodeids->size() != n_nodes || featureids->size() != n_nodes || trueids->size() != n_nodes ||
      falseids->size() != n_nodes || values->floats.size() != n_nodes || modes->strings.size() != n_nodes ||
      (missing && !missing->empty() && missing->size() != n_nodes)) {
    error = node.op_type + ": nodes_* attributes are empty or of different lengths";
    return nullptr;
  }

  // Leaf weights.
  const char* p_tree = classifier ? "class_treeids" : "target_treeids";
  const char* p_node = classifier ? "class_nodeids" : "target_nodeids";
  const char* p_id = classifier ? "class_ids" : "target_ids";
  const char* p_w = classifier ? "class_weights" : "target_weights";
  const auto* w_tree = need_ints(p_tree);
  const auto* w_node = w_tree ? need_ints(p_node) : nullptr;
  const auto* w_id = w_node ? need_ints(p_id) : nullptr;
  if (!w_id) return nullptr;
  const OnnxAttribute* w_val = node.find(p_w);
  if (!w_val || w_val->floats.size() != w_tree->size() || w_node->size() != w_tree->size() ||
      w_id->size() != w_tree->size()) {
    error = node.op_type + ": " + p_w + " missing or of a different length than " + p_tree;
    return nullptr;
  }

  auto model = std::unique_ptr<TreeEnsemble>(new TreeEnsemble());
  model->classifier_ = classifier;
  model->n_features_ = n_features;

  std::string post = "NONE";
  if (const OnnxAttribute* a = node.find("post_transform")) post = a->s;
  if (post == "LOGISTIC") model->transform_ = Transform::Logistic;
  else if (post == "NONE") model->transform_ = Transform::None;
  else {
    error = node.op_type + ": unsupported post_transform '" + post + "'";
    return nullptr;
  }

  const OnnxAttribute* base = node.find("base_values");
  if (base && base->floats.size() > 1) {
    error = node.op_type + ": " + std::to_string(base->floats.size()) + " base_values; only one score is supported";
    return nullptr;
  }
  model->base_ = (base && !base->floats.empty()) ? static_cast<double>(base->floats[0]) : 0.0;
  if (!std::isfinite(model->base_)) {
    error = node.op_type + ": non-finite base_values";
    *refused = true;
    return nullptr;
  }
  for (float w : w_val->floats) {
    if (!std::isfinite(w)) {
      error = node.op_type + ": non-finite " + std::string(p_w);
      *refused = true;
      return nullptr;
    }
  }

  if (classifier) {
    const OnnxAttribute* li = node.find("classlabels_int64s");
    const OnnxAttribute* ls = node.find("classlabels_strings");
    const size_t n_labels = li ? li->ints.size() : (ls ? ls->strings.size() : 0);
    if (n_labels != 2) {
      error = "TreeEnsembleClassifier with " + std::to_string(n_labels) + " class labels; only binary classifiers are supported";
      return nullptr;
    }
    // onnxruntime's binary case: all weights on one class id; p(class 1) = logistic(score + base).
    for (int64_t id : *w_id) {
      if (id != 0) {
        error = "TreeEnsembleClassifier: class_ids other than 0 (weights per class) are not supported; expected the binary single-score form";
        return nullptr;
      }
    }
    if (model->transform_ != Transform::Logistic) {
      // ONNX Runtime would return the raw margin as the "probability": refused, not run elsewhere.
      error = "TreeEnsembleClassifier: post_transform '" + post + "' gives scores, not probabilities; a binary "
              "classifier must use LOGISTIC (export it with the logistic link, or as a TreeEnsembleRegressor)";
      *refused = true;
      return nullptr;
    }
  } else {
    if (const OnnxAttribute* nt = node.find("n_targets"); nt && nt->i != 1) {
      error = "TreeEnsembleRegressor: n_targets=" + std::to_string(nt->i) + "; only one target is supported";
      return nullptr;
    }
    for (int64_t id : *w_id) {
      if (id != 0) {
        error = "TreeEnsembleRegressor: target_ids other than 0 are not supported";
        return nullptr;
      }
    }
  }

  // Group nodes per tree (ordered by tree id, as onnxruntime sums them).
  std::map<int64_t, RawTree> trees;
  for (size_t i = 0; i < n_nodes; ++i) {
    RawNode rn{};
    rn.node_id = (*nodeids)[i];
    rn.feature = (*featureids)[i];
    rn.value = values->floats[i];
    if (!parse_mode(modes->strings[i], rn.mode)) {
      error = node.op_type + ": unsupported node mode '" + modes->strings[i] + "' (tree " + std::to_string((*treeids)[i]) + ")";
      return nullptr;
    }
    rn.true_id = (*trueids)[i];
    rn.false_id = (*falseids)[i];
    rn.missing_true = missing && !missing->empty() && (*missing)[i] != 0;
    if (rn.mode != Mode::Leaf) {
      if (rn.feature < 0 || static_cast<size_t>(rn.feature) >= n_features) {
        error = node.op_type + ": feature id " + std::to_string(rn.feature) + " outside the " +
                std::to_string(n_features) + " input features (feature-count mismatch)";
        return nullptr;
      }
      if (std::isnan(rn.value)) {
        error = node.op_type + ": NaN threshold in tree " + std::to_string((*treeids)[i]);
        *refused = true;
        return nullptr;
      }
    }
    RawTree& t = trees[(*treeids)[i]];
    if (!t.by_id.emplace(rn.node_id, t.nodes.size()).second) {
      error = node.op_type + ": duplicate node id " + std::to_string(rn.node_id) + " in tree " + std::to_string((*treeids)[i]);
      *refused = true;
      return nullptr;
    }
    t.nodes.push_back(rn);
  }
  for (size_t i = 0; i < w_tree->size(); ++i) {
    auto it = trees.find((*w_tree)[i]);
    auto jt = it == trees.end() ? decltype(it->second.by_id)::iterator{} : it->second.by_id.find((*w_node)[i]);
    if (it == trees.end() || jt == it->second.by_id.end()) {
      error = node.op_type + ": weight for unknown node (tree " + std::to_string((*w_tree)[i]) + ", node " +
              std::to_string((*w_node)[i]) + ")";
      *refused = true;
      return nullptr;
    }
    RawNode& rn = it->second.nodes[jt->second];
    if (rn.mode != Mode::Leaf) {
      error = node.op_type + ": weight attached to a branch node (tree " + std::to_string((*w_tree)[i]) + ")";
      *refused = true;
      return nullptr;
    }
    rn.weight += static_cast<double>(w_val->floats[i]);
    ++rn.weight_count;
  }

  // Roots, depth, and structural checks (children exist; depth bound also stops cycles).
  std::vector<size_t> roots;
  std::vector<int> tree_depths;
  roots.reserve(trees.size());
  int depth = 0;
  for (auto& [tid, t] : trees) {
    std::vector<int> referenced(t.nodes.size(), 0);
    for (const auto& rn : t.nodes) {
      if (rn.mode == Mode::Leaf) continue;
      for (int64_t child : {rn.true_id, rn.false_id}) {
        auto c = t.by_id.find(child);
        if (c == t.by_id.end()) {
          error = node.op_type + ": tree " + std::to_string(tid) + " refers to missing node " + std::to_string(child);
          *refused = true;
          return nullptr;
        }
        ++referenced[c->second];
      }
    }
    size_t root = SIZE_MAX;
    for (size_t i = 0; i < t.nodes.size(); ++i) {
      if (referenced[i] > 1) {
        error = node.op_type + ": tree " + std::to_string(tid) + " node " + std::to_string(t.nodes[i].node_id) + " has two parents";
        *refused = true;
        return nullptr;
      }
      if (referenced[i] == 0) {
        if (root != SIZE_MAX) {
          error = node.op_type + ": tree " + std::to_string(tid) + " has more than one root";
          *refused = true;
          return nullptr;
        }
        root = i;
      }
    }
    if (root == SIZE_MAX) {
      error = node.op_type + ": tree " + std::to_string(tid) + " has no root (cycle)";
      *refused = true;
      return nullptr;
    }
    size_t reached = 0;
    std::function<int(size_t, int)> measure = [&](size_t i, int level) -> int {
      if (level > kMaxDepth) return level;
      ++reached;
      const RawNode& rn = t.nodes[i];
      if (rn.mode == Mode::Leaf) return level;
      return std::max(measure(t.by_id.at(rn.true_id), level + 1), measure(t.by_id.at(rn.false_id), level + 1));
    };
    const int d = measure(root, 0);
    // Every node has at most one parent and there is one root, so a node the walk from the root
    // does not reach sits on a cycle (a child pointing back to an ancestor of its own).
    if (d <= kMaxDepth && reached != t.nodes.size()) {
      error = node.op_type + ": tree " + std::to_string(tid) + " has " + std::to_string(t.nodes.size() - reached) +
              " nodes not reachable from its root (a child points back to an ancestor: a cycle)";
      *refused = true;
      return nullptr;
    }
    if (d > kMaxDepth) {
      error = node.op_type + ": tree " + std::to_string(tid) + " deeper than " + std::to_string(kMaxDepth) +
              " levels, beyond the padded layout of the tree path";
      return nullptr;
    }
    depth = std::max(depth, d);
    roots.push_back(root);
    tree_depths.push_back(d);
  }

  const size_t n_trees = trees.size();
  const size_t padded = (n_trees + kInterleave - 1) / kInterleave * kInterleave;
  const size_t internal = (size_t{1} << depth) - 1;
  const size_t leaf_count = size_t{1} << depth;
  model->n_trees_ = n_trees;
  model->padded_trees_ = padded;
  model->depth_ = depth;
  model->scale_ = 1.0;
  if (!classifier) {
    std::string agg = "SUM";
    if (const OnnxAttribute* a = node.find("aggregate_function")) agg = a->s;
    if (agg == "AVERAGE") model->scale_ = 1.0 / static_cast<double>(n_trees);
    else if (agg != "SUM") {
      error = "TreeEnsembleRegressor: unsupported aggregate_function '" + agg + "'";
      return nullptr;
    }
  }
  // Padding trees (beyond n_trees) keep all-zero leaves, so they add nothing to the sum.
  model->nodes_.assign(padded * internal, Node{0.0f, 0});
  model->leaves_.assign(padded * leaf_count, 0.0f);

  size_t ti = 0;
  std::string fill_error;
  for (auto& [tid, t] : trees) {
    Node* nodes = model->nodes_.data() + ti * internal;
    float* leaves = model->leaves_.data() + ti * leaf_count;
    const int64_t tid_now = tid;
    std::function<void(size_t, size_t, int)> fill = [&](size_t i, size_t heap, int level) {
      const RawNode& rn = t.nodes[i];
      if (rn.mode == Mode::Leaf) {
        // Replicate the leaf over its padded subtree; the padding nodes below keep feature 0.
        size_t first = heap;
        for (int l = level; l < depth; ++l) first = 2 * first + 1;
        const size_t span = size_t{1} << (depth - level);
        std::fill(leaves + (first - internal), leaves + (first - internal) + span, static_cast<float>(rn.weight));
        return;
      }
      float thr = rn.value;
      bool swap = false;
      switch (rn.mode) {
        case Mode::Lt: break;
        case Mode::Leq: thr = std::nextafter(thr, std::numeric_limits<float>::infinity()); break;
        case Mode::Gte: swap = true; break;
        case Mode::Gt: thr = std::nextafter(thr, std::numeric_limits<float>::infinity()); swap = true; break;
        case Mode::Leaf: break;
      }
      // The first child is the one taken when x >= thr is false. NaN goes to the true branch
      // exactly when missing_value_tracks_true is set.
      const int64_t first_id = swap ? rn.false_id : rn.true_id;
      const int64_t second_id = swap ? rn.true_id : rn.false_id;
      const bool nan_right = swap ? rn.missing_true : !rn.missing_true;
      if (!nan_right && thr == -std::numeric_limits<float>::infinity() && fill_error.empty()) {
        // The -inf NaN sentinel would compare >= -inf and take the wrong branch.
        fill_error = node.op_type + ": tree " + std::to_string(tid_now) +
                " has a -inf threshold with NaN to the lower branch, which the tree path cannot encode";
      }
      nodes[heap] = Node{thr, static_cast<uint32_t>(rn.feature + (nan_right ? static_cast<int64_t>(n_features) : 0))};
      fill(t.by_id.at(first_id), 2 * heap + 1, level + 1);
      fill(t.by_id.at(second_id), 2 * heap + 2, level + 1);
    };
    fill(roots[ti], 0, 0);
    if (!fill_error.empty()) {
      error = fill_error;
      return nullptr;
    }
    ++ti;
  }
  model->build_depth_classes(tree_depths);
  return model;
}

void TreeEnsemble::build_depth_classes(const std::vector<int>& tree_depths) {
  // Tree depths in original order; the padding trees (all-zero leaves) are depth 0.
  std::vector<int> depth_of(padded_trees_, 0);
  for (size_t t = 0; t < tree_depths.size(); ++t) depth_of[t] = tree_depths[t];
  const size_t internal = (size_t{1} << depth_) - 1;
  const size_t leaf_count = size_t{1} << depth_;
  struct Span {
    int depth;
    size_t count, node0, leaf0, slot0;
  };
  std::vector<Span> spans;
  size_t nodes = 0, leaves = 0, slots = 0;
  for (int d = 0; d <= depth_; ++d) {
    const size_t n = static_cast<size_t>(std::count(depth_of.begin(), depth_of.end(), d));
    if (n == 0) continue;
    const size_t count = (n + kInterleave - 1) / kInterleave * kInterleave;
    spans.push_back(Span{d, count, nodes, leaves, slots});
    nodes += count * ((size_t{1} << d) - 1);
    leaves += count * (size_t{1} << d);
    slots += count;
  }
  class_nodes_.assign(nodes, Node{0.0f, 0});
  class_leaves_.assign(leaves, 0.0f);
  class_slots_.assign(slots, static_cast<uint32_t>(padded_trees_));  // class padding: the scratch slot
  classes_.clear();
  for (const Span& sp : spans) {
    const int d = sp.depth;
    const size_t ci = (size_t{1} << d) - 1, cl = size_t{1} << d;
    size_t i = 0;
    for (size_t t = 0; t < padded_trees_; ++t) {
      if (depth_of[t] != d) continue;
      // The top d levels of the padded heap are the tree; position q on level d is the first of
      // its 2^(depth_ - d) replicated padded leaves.
      const Node* heap = nodes_.data() + t * internal;
      std::copy(heap, heap + ci, class_nodes_.begin() + static_cast<std::ptrdiff_t>(sp.node0 + i * ci));
      for (size_t q = 0; q < cl; ++q)
        class_leaves_[sp.leaf0 + i * cl + q] = leaves_[t * leaf_count + (q << (depth_ - d))];
      class_slots_[sp.slot0 + i] = static_cast<uint32_t>(t);
      ++i;
    }
    classes_.push_back(DepthClass{d, sp.count, class_nodes_.data() + sp.node0, class_leaves_.data() + sp.leaf0,
                                  class_slots_.data() + sp.slot0});
  }
}

double TreeEnsemble::finish(double sum) const {
  const double score = sum * scale_ + base_;
  if (transform_ == Transform::Logistic) return 1.0 / (1.0 + std::exp(-score));
  return score;
}

double TreeEnsemble::raw_score(const float* row) const {
  return tree_kernels::sum_one(view(), row) * scale_ + base_;
}

double TreeEnsemble::predict_one(const float* row) const { return finish(tree_kernels::sum_one(view(), row)); }

void TreeEnsemble::predict_level(simd::SimdLevel level, const float* rows, size_t n, double* out) const {
  const View v = view();
  switch (level) {
    case simd::SimdLevel::Avx512: tree_kernels::sum_rows_avx512(v, rows, n, out); break;
    case simd::SimdLevel::Avx2: tree_kernels::sum_rows_avx2(v, rows, n, out); break;
    default: tree_kernels::sum_rows_scalar(v, rows, n, out); break;
  }
  for (size_t i = 0; i < n; ++i) out[i] = finish(out[i]);
}

void TreeEnsemble::predict(const float* rows, size_t n, double* out) const {
  // The row-blocked scalar kernel, whatever the active level: on the reference machine (AMD EPYC,
  // AVX-512) the gather kernels measure 4.2 us/row (AVX-512) and 5.9 us/row (AVX2) against
  // 1.5 us/row scalar for a 500x6 model, because three gathers per level cost more than the
  // scalar loads they replace. bench/test_bench_inference.py re-measures all three each run.
  tree_kernels::sum_rows_scalar(view(), rows, n, out);
  for (size_t i = 0; i < n; ++i) out[i] = finish(out[i]);
}

void TreeEnsemble::predict(const double* rows, size_t n, double* out) const {
  // Convert in chunks so the float32 copy stays small and cache-resident.
  constexpr size_t kChunk = 256;
  std::vector<float> buf(kChunk * n_features_);
  for (size_t r0 = 0; r0 < n; r0 += kChunk) {
    const size_t m = std::min(kChunk, n - r0);
    for (size_t i = 0; i < m * n_features_; ++i) buf[i] = static_cast<float>(rows[r0 * n_features_ + i]);
    predict(buf.data(), m, out + r0);
  }
}

}  // namespace bot4::inference
