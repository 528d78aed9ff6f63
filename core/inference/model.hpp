#pragma once
// A loaded model: the compiled tree-ensemble path when the graph is a tree ensemble, ONNX Runtime
// (C API, through OrtSession) otherwise, followed by an optional isotonic table. The output is
// one probability (or regression value) per row.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "inference/isotonic_table.hpp"
#include "inference/onnx_reader.hpp"
#include "inference/ort_session.hpp"
#include "inference/tree_ensemble.hpp"

namespace bot4::inference {

class Model {
 public:
  enum class Kind { Tree, OnnxRuntime };
  // Auto: tree path for a tree-ensemble graph, ONNX Runtime for anything else (and for a tree
  // ensemble the tree path cannot compile, when a runtime library is given).
  enum class Path { Auto, Tree, OnnxRuntime };

  // Parses and checks the model: parse OK, one float32 input whose width matches
  // `expected_features`, operators supported by the chosen path. Returns nullptr + error naming
  // the cause otherwise. `ort_library_path` may be empty when only the tree path is wanted.
  static std::unique_ptr<Model> load(const void* bytes, size_t size, size_t expected_features,
                                     const std::string& ort_library_path, std::string& error,
                                     Path path = Path::Auto, int intra_op_threads = 1);

  bool set_calibration(std::vector<double> x, std::vector<double> y, std::string& error);
  const IsotonicTable& calibration() const { return calibration_; }

  // rows: C-contiguous float32 [n, cols]; cols must equal n_features(). Calibrated output.
  bool predict(const float* rows, size_t n, size_t cols, double* out_prob, std::string& error);
  // Same without the calibration table.
  bool predict_raw(const float* rows, size_t n, size_t cols, double* out_prob, std::string& error);
  // One row of n_features() floats; NaN when the ONNX Runtime call fails (see last_error()).
  double predict_one(const float* row);

  Kind kind() const { return kind_; }
  const char* kind_name() const { return kind_ == Kind::Tree ? "tree" : "onnxruntime"; }
  size_t n_features() const { return n_features_; }
  const TreeEnsemble* trees() const { return trees_.get(); }
  // Why Auto chose ONNX Runtime for a tree-ensemble graph (empty otherwise).
  const std::string& fallback_reason() const { return fallback_reason_; }
  std::string last_error() const;

 private:
  Model() = default;
  bool run_ort(const float* rows, size_t n, double* out, std::string& error);

  Kind kind_ = Kind::Tree;
  size_t n_features_ = 0;
  std::unique_ptr<TreeEnsemble> trees_;
  std::unique_ptr<OrtSession> ort_;
  IsotonicTable calibration_;
  std::string fallback_reason_;

  // ONNX Runtime output scratch, reused between calls; guarded because the session is shared.
  mutable std::mutex mutex_;
  std::vector<float> ort_out_;
  std::vector<int64_t> ort_shape_;
  std::string last_error_;
};

}  // namespace bot4::inference
