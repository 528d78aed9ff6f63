#include "inference/model.hpp"

#include <cmath>
#include <limits>

namespace bot4::inference {

namespace {

bool is_tree_op(const OnnxNode& n) {
  return n.domain == "ai.onnx.ml" && (n.op_type == "TreeEnsembleClassifier" || n.op_type == "TreeEnsembleRegressor");
}

// A graph the tree path can run on its own: exactly one tree-ensemble node, plus at most
// output-formatting ZipMap nodes (they only repackage the probabilities). Returns the node or
// nullptr with the first operator that disqualifies it.
const OnnxNode* tree_node(const OnnxGraph& g, std::string& why) {
  const OnnxNode* found = nullptr;
  for (const auto& n : g.nodes) {
    if (is_tree_op(n)) {
      if (found) {
        why = "graph has more than one tree-ensemble node";
        return nullptr;
      }
      found = &n;
    } else if (!(n.op_type == "ZipMap" && n.domain == "ai.onnx.ml")) {
      why = "unsupported operator '" + n.op_type + "'" + (n.domain.empty() ? "" : " (domain " + n.domain + ")") +
            " for the tree path";
      return nullptr;
    }
  }
  if (!found) why = "graph has no TreeEnsembleClassifier/TreeEnsembleRegressor node";
  return found;
}

}  // namespace

std::unique_ptr<Model> Model::load(const void* bytes, size_t size, size_t expected_features,
                                   const std::string& ort_library_path, std::string& error, Path path,
                                   int intra_op_threads) {
  if (expected_features == 0) {
    error = "expected feature count must be > 0";
    return nullptr;
  }
  OnnxModel onnx;
  if (!parse_onnx_model(bytes, size, onnx, error)) return nullptr;

  // The real inputs are those not fed by an initializer (older IRs list initializers as inputs).
  std::vector<const OnnxValueInfo*> inputs;
  for (const auto& in : onnx.graph.inputs) {
    bool is_init = false;
    for (const auto& t : onnx.graph.initializers) is_init |= t.name == in.name;
    if (!is_init) inputs.push_back(&in);
  }
  if (inputs.size() != 1) {
    error = "model has " + std::to_string(inputs.size()) + " inputs; exactly one feature matrix input is supported";
    return nullptr;
  }
  const OnnxValueInfo& input = *inputs[0];
  if (input.elem_type != 1) {
    error = "model input '" + input.name + "' has element type " + std::to_string(input.elem_type) +
            "; float32 (1) is required";
    return nullptr;
  }
  if (input.has_shape && !input.dims.empty() && input.dims.back() > 0 &&
      static_cast<size_t>(input.dims.back()) != expected_features) {
    error = "feature-count mismatch: model input '" + input.name + "' has " + std::to_string(input.dims.back()) +
            " features, expected " + std::to_string(expected_features);
    return nullptr;
  }

  auto model = std::unique_ptr<Model>(new Model());
  model->n_features_ = expected_features;

  std::string why_not_tree;
  const OnnxNode* tnode = tree_node(onnx.graph, why_not_tree);
  if (tnode && tnode->inputs.size() == 1 && tnode->inputs[0] != input.name) {
    tnode = nullptr;
    why_not_tree = "tree-ensemble node does not read the graph input directly";
  }

  if (path != Path::OnnxRuntime && tnode) {
    bool refused = false;
    model->trees_ = TreeEnsemble::from_node(*tnode, expected_features, why_not_tree, &refused);
    if (model->trees_) {
      model->kind_ = Kind::Tree;
      return model;
    }
    // A feature-count mismatch is a property of the model, not of the engine: never fall back.
    if (refused || path == Path::Tree || ort_library_path.empty() ||
        why_not_tree.find("feature-count mismatch") != std::string::npos) {
      error = why_not_tree;
      return nullptr;
    }
    model->fallback_reason_ = why_not_tree;
  } else if (path == Path::Tree) {
    error = why_not_tree;
    return nullptr;
  }

  if (ort_library_path.empty()) {
    error = why_not_tree + ", and the ONNX Runtime path is not available (no onnxruntime library given)";
    return nullptr;
  }
  std::string ort_error;
  model->ort_ = OrtSession::open(ort_library_path, bytes, size, intra_op_threads, ort_error);
  if (!model->ort_) {
    error = "ONNX Runtime refused the model: " + ort_error;
    return nullptr;
  }
  if (model->ort_->input_features() != 0 && model->ort_->input_features() != expected_features) {
    error = "feature-count mismatch: ONNX Runtime session input has " + std::to_string(model->ort_->input_features()) +
            " features, expected " + std::to_string(expected_features);
    return nullptr;
  }
  model->kind_ = Kind::OnnxRuntime;
  return model;
}

bool Model::set_calibration(std::vector<double> x, std::vector<double> y, std::string& error) {
  return calibration_.assign(std::move(x), std::move(y), error);
}

bool Model::run_ort(const float* rows, size_t n, double* out, std::string& error) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!ort_->run(rows, n, n_features_, ort_out_, ort_shape_, error)) return false;
  // Probabilities [n, 2] -> column 1 (class 1); a single score [n, 1] or [n] -> as is.
  size_t stride = 0, col = 0;
  if (ort_shape_.size() == 2 && ort_shape_[0] == static_cast<int64_t>(n) && ort_shape_[1] == 2) {
    stride = 2;
    col = 1;
  } else if ((ort_shape_.size() == 2 && ort_shape_[0] == static_cast<int64_t>(n) && ort_shape_[1] == 1) ||
             (ort_shape_.size() == 1 && ort_shape_[0] == static_cast<int64_t>(n))) {
    stride = 1;
  } else {
    std::string s;
    for (auto d : ort_shape_) s += (s.empty() ? "" : ",") + std::to_string(d);
    error = "ONNX Runtime output shape [" + s + "] is not [n], [n,1] or [n,2]";
    return false;
  }
  if (ort_out_.size() < n * stride) {
    error = "ONNX Runtime output smaller than its shape";
    return false;
  }
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<double>(ort_out_[i * stride + col]);
  return true;
}

bool Model::predict_raw(const float* rows, size_t n, size_t cols, double* out, std::string& error) {
  if (cols != n_features_) {
    error = "feature-count mismatch: input has " + std::to_string(cols) + " columns, model expects " +
            std::to_string(n_features_);
    return false;
  }
  if (n == 0) return true;
  if (kind_ == Kind::Tree) {
    trees_->predict(rows, n, out);
    return true;
  }
  return run_ort(rows, n, out, error);
}

bool Model::predict(const float* rows, size_t n, size_t cols, double* out, std::string& error) {
  if (!predict_raw(rows, n, cols, out, error)) return false;
  calibration_.apply(out, n);
  return true;
}

double Model::predict_one(const float* row) {
  double p = 0.0;
  if (kind_ == Kind::Tree) {
    p = trees_->predict_one(row);
  } else {
    std::string error;
    if (!run_ort(row, 1, &p, error)) {
      std::lock_guard<std::mutex> lock(mutex_);
      last_error_ = error;
      return std::numeric_limits<double>::quiet_NaN();
    }
  }
  return calibration_.empty() ? p : calibration_.apply(p);
}

std::string Model::last_error() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return last_error_;
}

}  // namespace bot4::inference
