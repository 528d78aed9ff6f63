#pragma once
// ONNX Runtime driven through its C API, loaded at run time with dlopen from the libonnxruntime
// shared library the onnxruntime wheel ships (the wheel carries no headers, so the few C API
// entry points used here are declared by hand in ort_session.cpp from the documented API).
//
// One session per object, created once; run() is serialised by an internal mutex, so a single
// OrtSession may be shared between threads but runs one call at a time.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace bot4::inference {

class OrtSession {
 public:
  // Loads the library with dlopen (RTLD_NOW|RTLD_LOCAL), resolves OrtGetApiBase, checks the
  // library version, gets the OrtApi for the declared API version, creates the env (log level
  // warning), session options (intra-op threads as given, default 1; inter-op 1; sequential
  // execution; all graph optimisations) and a session from the model bytes
  // (CreateSessionFromArray). Returns nullptr and fills `error` on any failure (the ORT status
  // message is included and the status released).
  static std::unique_ptr<OrtSession> open(const std::string& library_path, const void* model_bytes,
                                          size_t size, int intra_op_threads, std::string& error);
  ~OrtSession();  // releases everything in order (values, memory info, session, options, env)

  OrtSession(const OrtSession&) = delete;
  OrtSession& operator=(const OrtSession&) = delete;

  // One float32 input [rows, cols]; runs the session and copies the selected float output into
  // `output` (with its shape). Input/output names are discovered once at open: the first input;
  // the first float tensor output of rank 2 named "probabilities" if present, else the first
  // float tensor output. Only that output is requested from Run.
  bool run(const float* input, size_t rows, size_t cols, std::vector<float>& output,
           std::vector<int64_t>& output_shape, std::string& error);

  size_t input_features() const;  // the model input's last dim (0 when symbolic)

  const std::string& input_name() const { return input_name_; }
  const std::string& output_name() const { return output_name_; }
  const std::string& library_version() const { return library_version_; }

 private:
  OrtSession() = default;
  void release_cached_values();

  void* lib_ = nullptr;                // dlopen handle
  const void* const* api_ = nullptr;   // OrtApi viewed as a table of function pointers
  void* env_ = nullptr;                // OrtEnv*
  void* options_ = nullptr;            // OrtSessionOptions*
  void* session_ = nullptr;            // OrtSession*
  void* memory_info_ = nullptr;        // OrtMemoryInfo* (CPU), created once

  std::string library_version_;
  std::string input_name_;
  std::string output_name_;
  std::vector<int64_t> input_dims_;    // declared input shape (-1 for symbolic dims)
  size_t input_features_ = 0;

  // Reused between calls: the input tensor over an engine-owned buffer (rebuilt only when the
  // row/column count changes) and, once an output shape has been seen for that row count, an
  // output tensor over an engine-owned buffer that Run writes into.
  std::vector<float> input_buffer_;
  size_t cached_rows_ = 0;
  size_t cached_cols_ = 0;
  void* input_value_ = nullptr;        // OrtValue*
  std::vector<float> output_buffer_;
  std::vector<int64_t> cached_output_shape_;
  void* output_value_ = nullptr;       // OrtValue*, preallocated output (may stay null)
  bool preallocated_output_ok_ = true;

  std::mutex mutex_;
};

}  // namespace bot4::inference
