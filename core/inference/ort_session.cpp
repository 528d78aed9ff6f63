#include "inference/ort_session.hpp"

#include <dlfcn.h>

#include <cstdio>
#include <cstring>

namespace bot4::inference {

namespace {

// ---------------------------------------------------------------------------------------------
// Minimal hand-written view of the ONNX Runtime C API (written from the API documentation; no
// header is vendored).
//
// The library exports one C function, `const OrtApiBase* OrtGetApiBase(void)`. OrtApiBase is a
// struct of two function pointers: GetApi(uint32_t api_version) -> const OrtApi*, and
// GetVersionString() -> const char* (e.g. "1.31.1").
//
// OrtApi is a struct made only of function pointers, so it is viewed here as an array of void*
// and each entry is reached by its position. The positions below follow the declaration order of
// `struct OrtApi` in onnxruntime_c_api.h for ORT_API_VERSION 13 (ONNX Runtime 1.13). Every entry
// used here already existed in API version 1; ONNX Runtime's ABI rule is that OrtApi is only ever
// appended to (new functions go at the end, existing slots never move or change signature), which
// is what lets a binary built against an older header call a newer library. The positions are
// therefore stable for every library whose version is >= 1.13; older libraries are refused.
// All entries return OrtStatus* (nullptr on success) unless noted; OrtStatus must be released.
// ---------------------------------------------------------------------------------------------
constexpr uint32_t kOrtApiVersion = 13;  // ORT_API_VERSION the slot numbers follow
constexpr int kMinMajor = 1;
constexpr int kMinMinor = 13;

enum ApiSlot : size_t {
  kGetErrorMessage = 2,  // const char* (const OrtStatus*)
  kCreateEnv = 3,
  kCreateSessionFromArray = 8,
  kRun = 9,
  kCreateSessionOptions = 10,
  kSetSessionExecutionMode = 13,
  kSetSessionGraphOptimizationLevel = 23,
  kSetIntraOpNumThreads = 24,
  kSetInterOpNumThreads = 25,
  kSessionGetInputCount = 30,
  kSessionGetOutputCount = 31,
  kSessionGetInputTypeInfo = 33,
  kSessionGetOutputTypeInfo = 34,
  kSessionGetInputName = 36,
  kSessionGetOutputName = 37,
  kCreateTensorWithDataAsOrtValue = 49,
  kIsTensor = 50,
  kGetTensorMutableData = 51,
  kCastTypeInfoToTensorInfo = 55,
  kGetOnnxTypeFromTypeInfo = 56,
  kGetTensorElementType = 60,
  kGetDimensionsCount = 61,
  kGetDimensions = 62,
  kGetTensorShapeElementCount = 64,
  kGetTensorTypeAndShape = 65,
  kCreateCpuMemoryInfo = 69,
  kAllocatorFree = 76,
  kGetAllocatorWithDefaultOptions = 78,
  kReleaseEnv = 92,      // void (OrtEnv*)
  kReleaseStatus = 93,   // void (OrtStatus*)
  kReleaseMemoryInfo = 94,
  kReleaseSession = 95,
  kReleaseValue = 96,
  kReleaseTypeInfo = 98,
  kReleaseTensorTypeAndShapeInfo = 99,
  kReleaseSessionOptions = 100,
};

// Opaque handles are plain void* here; enum arguments are int-sized C enums.
using Status = void*;
using Handle = void*;
constexpr int kLogWarning = 2;            // OrtLoggingLevel ORT_LOGGING_LEVEL_WARNING
constexpr int kSequential = 0;            // ExecutionMode ORT_SEQUENTIAL
constexpr int kEnableAll = 99;            // GraphOptimizationLevel ORT_ENABLE_ALL
constexpr int kDeviceAllocator = 0;       // OrtAllocatorType OrtDeviceAllocator
constexpr int kMemTypeDefault = 0;        // OrtMemType OrtMemTypeDefault
constexpr int kOnnxTypeTensor = 1;        // ONNXType ONNX_TYPE_TENSOR
constexpr int kElementFloat = 1;          // ONNXTensorElementDataType FLOAT

struct ApiBase {
  const void* (*GetApi)(uint32_t version);
  const char* (*GetVersionString)();
};
using GetApiBaseFn = const ApiBase* (*)();

using GetErrorMessageFn = const char* (*)(Status);
using CreateEnvFn = Status (*)(int level, const char* logid, Handle* out);
using CreateSessionFromArrayFn = Status (*)(Handle env, const void* data, size_t len, Handle options,
                                            Handle* out);
using RunFn = Status (*)(Handle session, Handle run_options, const char* const* input_names,
                         const Handle* inputs, size_t input_len, const char* const* output_names,
                         size_t output_len, Handle* outputs);
using CreateSessionOptionsFn = Status (*)(Handle* out);
using SetIntOptionFn = Status (*)(Handle options, int value);  // execution mode, opt level, threads
using CountFn = Status (*)(Handle session, size_t* out);
using GetTypeInfoFn = Status (*)(Handle session, size_t index, Handle* out);
using GetNameFn = Status (*)(Handle session, size_t index, Handle allocator, char** out);
using CreateTensorWithDataFn = Status (*)(Handle memory_info, void* data, size_t data_bytes,
                                          const int64_t* shape, size_t shape_len, int element_type,
                                          Handle* out);
using IsTensorFn = Status (*)(Handle value, int* out);
using GetTensorMutableDataFn = Status (*)(Handle value, void** out);
using CastToTensorInfoFn = Status (*)(Handle type_info, Handle* out);
using GetOnnxTypeFn = Status (*)(Handle type_info, int* out);
using GetElementTypeFn = Status (*)(Handle tensor_info, int* out);
using GetDimensionsCountFn = Status (*)(Handle tensor_info, size_t* out);
using GetDimensionsFn = Status (*)(Handle tensor_info, int64_t* dims, size_t len);
using GetElementCountFn = Status (*)(Handle tensor_info, size_t* out);
using GetTensorTypeAndShapeFn = Status (*)(Handle value, Handle* out);
using CreateCpuMemoryInfoFn = Status (*)(int allocator_type, int mem_type, Handle* out);
using AllocatorFreeFn = Status (*)(Handle allocator, void* p);
using GetAllocatorFn = Status (*)(Handle* out);
using ReleaseFn = void (*)(Handle);

template <typename Fn>
Fn fn(const void* const* api, ApiSlot slot) {
  return reinterpret_cast<Fn>(const_cast<void*>(api[slot]));
}

// Converts a status into a message (and releases it); true when the call succeeded.
bool ok(const void* const* api, Status status, const char* what, std::string& error) {
  if (status == nullptr) return true;
  const char* message = fn<GetErrorMessageFn>(api, kGetErrorMessage)(status);
  error = std::string("onnxruntime ") + what + " failed: " + (message ? message : "(no message)");
  fn<ReleaseFn>(api, kReleaseStatus)(status);
  return false;
}

bool parse_version(const char* text, int& major, int& minor) {
  return text != nullptr && std::sscanf(text, "%d.%d", &major, &minor) == 2;
}

// Element type and dimensions of a session input/output; `onnx_type` tells tensors apart.
struct PortInfo {
  bool is_tensor = false;
  int element_type = 0;
  std::vector<int64_t> dims;
};

bool port_info(const void* const* api, Handle session, bool input, size_t index, PortInfo& info,
               std::string& error) {
  Handle type_info = nullptr;
  if (!ok(api,
          fn<GetTypeInfoFn>(api, input ? kSessionGetInputTypeInfo : kSessionGetOutputTypeInfo)(
              session, index, &type_info),
          input ? "SessionGetInputTypeInfo" : "SessionGetOutputTypeInfo", error))
    return false;
  bool good = true;
  int onnx_type = 0;
  good = ok(api, fn<GetOnnxTypeFn>(api, kGetOnnxTypeFromTypeInfo)(type_info, &onnx_type),
            "GetOnnxTypeFromTypeInfo", error);
  info = PortInfo{};
  if (good && onnx_type == kOnnxTypeTensor) {
    Handle tensor_info = nullptr;  // owned by type_info
    good = ok(api, fn<CastToTensorInfoFn>(api, kCastTypeInfoToTensorInfo)(type_info, &tensor_info),
              "CastTypeInfoToTensorInfo", error);
    if (good && tensor_info != nullptr) {
      size_t rank = 0;
      good = ok(api, fn<GetElementTypeFn>(api, kGetTensorElementType)(tensor_info, &info.element_type),
                "GetTensorElementType", error) &&
             ok(api, fn<GetDimensionsCountFn>(api, kGetDimensionsCount)(tensor_info, &rank),
                "GetDimensionsCount", error);
      if (good) {
        info.dims.assign(rank, 0);
        good = ok(api, fn<GetDimensionsFn>(api, kGetDimensions)(tensor_info, info.dims.data(), rank),
                  "GetDimensions", error);
      }
      info.is_tensor = good;
    }
  }
  fn<ReleaseFn>(api, kReleaseTypeInfo)(type_info);
  return good;
}

bool port_name(const void* const* api, Handle session, bool input, size_t index, std::string& name,
               std::string& error) {
  Handle allocator = nullptr;  // default allocator: never freed
  if (!ok(api, fn<GetAllocatorFn>(api, kGetAllocatorWithDefaultOptions)(&allocator),
          "GetAllocatorWithDefaultOptions", error))
    return false;
  char* raw = nullptr;
  if (!ok(api,
          fn<GetNameFn>(api, input ? kSessionGetInputName : kSessionGetOutputName)(session, index,
                                                                                   allocator, &raw),
          input ? "SessionGetInputName" : "SessionGetOutputName", error))
    return false;
  name = raw ? raw : "";
  return ok(api, fn<AllocatorFreeFn>(api, kAllocatorFree)(allocator, raw), "AllocatorFree", error);
}

std::string shape_text(const std::vector<int64_t>& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

}  // namespace

std::unique_ptr<OrtSession> OrtSession::open(const std::string& library_path, const void* model_bytes,
                                             size_t size, int intra_op_threads, std::string& error) {
  error.clear();
  if (model_bytes == nullptr || size == 0) {
    error = "onnxruntime: empty model bytes";
    return nullptr;
  }
  if (intra_op_threads < 0) {
    error = "onnxruntime: intra_op_threads must be >= 0 (0 = library default), got " +
            std::to_string(intra_op_threads);
    return nullptr;
  }
  std::unique_ptr<OrtSession> s(new OrtSession());
  dlerror();
  s->lib_ = dlopen(library_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (s->lib_ == nullptr) {
    const char* why = dlerror();
    error = "cannot load the onnxruntime library '" + library_path + "': " + (why ? why : "dlopen failed");
    return nullptr;
  }
  dlerror();
  auto get_base = reinterpret_cast<GetApiBaseFn>(dlsym(s->lib_, "OrtGetApiBase"));
  if (get_base == nullptr) {
    error = "'" + library_path + "' is not an onnxruntime library (no OrtGetApiBase symbol)";
    return nullptr;
  }
  const ApiBase* base = get_base();
  if (base == nullptr || base->GetApi == nullptr || base->GetVersionString == nullptr) {
    error = "onnxruntime: OrtGetApiBase returned no API base";
    return nullptr;
  }
  const char* version = base->GetVersionString();
  int major = 0, minor = 0;
  if (!parse_version(version, major, minor)) {
    error = std::string("onnxruntime: unparsable library version '") + (version ? version : "") + "'";
    return nullptr;
  }
  s->library_version_ = version;
  if (major < kMinMajor || (major == kMinMajor && minor < kMinMinor)) {
    error = "onnxruntime library " + s->library_version_ + " is older than " +
            std::to_string(kMinMajor) + "." + std::to_string(kMinMinor) +
            ", the version (ORT_API_VERSION " + std::to_string(kOrtApiVersion) +
            ") these bindings are declared against";
    return nullptr;
  }
  s->api_ = static_cast<const void* const*>(base->GetApi(kOrtApiVersion));
  if (s->api_ == nullptr) {
    error = "onnxruntime " + s->library_version_ + " does not provide ORT_API_VERSION " +
            std::to_string(kOrtApiVersion);
    return nullptr;
  }
  const void* const* api = s->api_;

  if (!ok(api, fn<CreateEnvFn>(api, kCreateEnv)(kLogWarning, "bot4", &s->env_), "CreateEnv", error) ||
      !ok(api, fn<CreateSessionOptionsFn>(api, kCreateSessionOptions)(&s->options_),
          "CreateSessionOptions", error) ||
      !ok(api, fn<SetIntOptionFn>(api, kSetIntraOpNumThreads)(s->options_, intra_op_threads),
          "SetIntraOpNumThreads", error) ||
      !ok(api, fn<SetIntOptionFn>(api, kSetInterOpNumThreads)(s->options_, 1), "SetInterOpNumThreads",
          error) ||
      !ok(api, fn<SetIntOptionFn>(api, kSetSessionExecutionMode)(s->options_, kSequential),
          "SetSessionExecutionMode", error) ||
      !ok(api, fn<SetIntOptionFn>(api, kSetSessionGraphOptimizationLevel)(s->options_, kEnableAll),
          "SetSessionGraphOptimizationLevel", error) ||
      !ok(api,
          fn<CreateSessionFromArrayFn>(api, kCreateSessionFromArray)(s->env_, model_bytes, size,
                                                                     s->options_, &s->session_),
          "CreateSessionFromArray", error) ||
      !ok(api, fn<CreateCpuMemoryInfoFn>(api, kCreateCpuMemoryInfo)(kDeviceAllocator, kMemTypeDefault,
                                                                      &s->memory_info_),
          "CreateCpuMemoryInfo", error))
    return nullptr;

  // Input: the first one, which must be a float tensor of rank 2.
  size_t n_inputs = 0, n_outputs = 0;
  if (!ok(api, fn<CountFn>(api, kSessionGetInputCount)(s->session_, &n_inputs), "SessionGetInputCount",
          error) ||
      !ok(api, fn<CountFn>(api, kSessionGetOutputCount)(s->session_, &n_outputs),
          "SessionGetOutputCount", error))
    return nullptr;
  if (n_inputs == 0 || n_outputs == 0) {
    error = "onnxruntime: the model has no inputs or no outputs";
    return nullptr;
  }
  PortInfo in;
  if (!port_info(api, s->session_, true, 0, in, error) ||
      !port_name(api, s->session_, true, 0, s->input_name_, error))
    return nullptr;
  if (!in.is_tensor || in.element_type != kElementFloat || in.dims.size() != 2) {
    error = "onnxruntime: model input '" + s->input_name_ +
            "' must be a float32 tensor of rank 2, got " +
            (in.is_tensor ? "element type " + std::to_string(in.element_type) + " shape " + shape_text(in.dims)
                          : std::string("a non-tensor"));
    return nullptr;
  }
  s->input_dims_ = in.dims;
  s->input_features_ = in.dims.back() > 0 ? static_cast<size_t>(in.dims.back()) : 0;

  // Output: "probabilities" (float, rank 2) when present, else the first float tensor.
  long first_float = -1, probabilities = -1;
  std::vector<std::string> names(n_outputs);
  for (size_t i = 0; i < n_outputs; ++i) {
    PortInfo out;
    if (!port_info(api, s->session_, false, i, out, error) ||
        !port_name(api, s->session_, false, i, names[i], error))
      return nullptr;
    if (!out.is_tensor || out.element_type != kElementFloat) continue;
    if (first_float < 0) first_float = static_cast<long>(i);
    if (probabilities < 0 && out.dims.size() == 2 && names[i] == "probabilities")
      probabilities = static_cast<long>(i);
  }
  const long chosen = probabilities >= 0 ? probabilities : first_float;
  if (chosen < 0) {
    error = "onnxruntime: the model has no float tensor output";
    return nullptr;
  }
  s->output_name_ = names[static_cast<size_t>(chosen)];
  return s;
}

void OrtSession::release_cached_values() {
  if (api_ == nullptr) return;
  if (input_value_ != nullptr) fn<ReleaseFn>(api_, kReleaseValue)(input_value_);
  if (output_value_ != nullptr) fn<ReleaseFn>(api_, kReleaseValue)(output_value_);
  input_value_ = nullptr;
  output_value_ = nullptr;
  cached_rows_ = cached_cols_ = 0;
  cached_output_shape_.clear();
}

OrtSession::~OrtSession() {
  if (api_ != nullptr) {
    release_cached_values();
    if (memory_info_ != nullptr) fn<ReleaseFn>(api_, kReleaseMemoryInfo)(memory_info_);
    if (session_ != nullptr) fn<ReleaseFn>(api_, kReleaseSession)(session_);
    if (options_ != nullptr) fn<ReleaseFn>(api_, kReleaseSessionOptions)(options_);
    if (env_ != nullptr) fn<ReleaseFn>(api_, kReleaseEnv)(env_);
  }
  // The library handle is deliberately not dlclose'd: onnxruntime keeps process-wide state
  // (logging manager, thread-local caches, static destructors) that is unsafe to unmap, and
  // dlopen reference counting makes later opens of the same path reuse the mapping.
  lib_ = nullptr;
}

size_t OrtSession::input_features() const { return input_features_; }

bool OrtSession::run(const float* input, size_t rows, size_t cols, std::vector<float>& output,
                     std::vector<int64_t>& output_shape, std::string& error) {
  std::lock_guard<std::mutex> lock(mutex_);
  error.clear();
  if (input == nullptr && rows * cols != 0) {
    error = "onnxruntime run: null input";
    return false;
  }
  if (rows == 0) {
    error = "onnxruntime run: no input rows";
    return false;
  }
  if (input_dims_[1] > 0 && static_cast<int64_t>(cols) != input_dims_[1]) {
    error = "onnxruntime run: input '" + input_name_ + "' expects " + std::to_string(input_dims_[1]) +
            " features per row, got " + std::to_string(cols);
    return false;
  }
  if (input_dims_[0] > 0 && static_cast<int64_t>(rows) != input_dims_[0]) {
    error = "onnxruntime run: input '" + input_name_ + "' expects " + std::to_string(input_dims_[0]) +
            " rows, got " + std::to_string(rows);
    return false;
  }
  const void* const* api = api_;

  // Input tensor over an engine-owned buffer, rebuilt only when the shape changes.
  if (rows != cached_rows_ || cols != cached_cols_ || input_value_ == nullptr) {
    release_cached_values();
    input_buffer_.assign(rows * cols, 0.0f);
    const int64_t shape[2] = {static_cast<int64_t>(rows), static_cast<int64_t>(cols)};
    if (!ok(api,
            fn<CreateTensorWithDataFn>(api, kCreateTensorWithDataAsOrtValue)(
                memory_info_, input_buffer_.data(), input_buffer_.size() * sizeof(float), shape, 2,
                kElementFloat, &input_value_),
            "CreateTensorWithDataAsOrtValue (input)", error)) {
      input_value_ = nullptr;
      return false;
    }
    cached_rows_ = rows;
    cached_cols_ = cols;
  }
  if (rows * cols != 0) std::memcpy(input_buffer_.data(), input, rows * cols * sizeof(float));

  const char* in_name = input_name_.c_str();
  const char* out_name = output_name_.c_str();

  // Fast path: Run writes into the preallocated output tensor (shape learnt on the first call).
  if (output_value_ != nullptr) {
    Handle out = output_value_;
    Status status = fn<RunFn>(api, kRun)(session_, nullptr, &in_name, &input_value_, 1, &out_name, 1, &out);
    if (status == nullptr && out == output_value_) {
      output.assign(output_buffer_.begin(), output_buffer_.end());
      output_shape = cached_output_shape_;
      return true;
    }
    // Output shape not stable for this model: stop preallocating and fall through.
    if (status != nullptr) fn<ReleaseFn>(api, kReleaseStatus)(status);
    if (out != nullptr && out != output_value_) fn<ReleaseFn>(api, kReleaseValue)(out);
    fn<ReleaseFn>(api, kReleaseValue)(output_value_);
    output_value_ = nullptr;
    preallocated_output_ok_ = false;
  }

  Handle out = nullptr;
  if (!ok(api, fn<RunFn>(api, kRun)(session_, nullptr, &in_name, &input_value_, 1, &out_name, 1, &out),
          "Run", error))
    return false;
  bool good = true;
  int is_tensor = 0;
  Handle info = nullptr;
  size_t count = 0, rank = 0;
  int element_type = 0;
  float* data = nullptr;
  good = ok(api, fn<IsTensorFn>(api, kIsTensor)(out, &is_tensor), "IsTensor", error);
  if (good && !is_tensor) {
    error = "onnxruntime run: output '" + output_name_ + "' is not a tensor";
    good = false;
  }
  if (good) good = ok(api, fn<GetTensorTypeAndShapeFn>(api, kGetTensorTypeAndShape)(out, &info),
                      "GetTensorTypeAndShape", error);
  if (good)
    good = ok(api, fn<GetElementTypeFn>(api, kGetTensorElementType)(info, &element_type),
              "GetTensorElementType", error) &&
           ok(api, fn<GetDimensionsCountFn>(api, kGetDimensionsCount)(info, &rank), "GetDimensionsCount",
              error) &&
           ok(api, fn<GetElementCountFn>(api, kGetTensorShapeElementCount)(info, &count),
              "GetTensorShapeElementCount", error);
  if (good && element_type != kElementFloat) {
    error = "onnxruntime run: output '" + output_name_ + "' is not float32";
    good = false;
  }
  if (good) {
    output_shape.assign(rank, 0);
    good = ok(api, fn<GetDimensionsFn>(api, kGetDimensions)(info, output_shape.data(), rank),
              "GetDimensions", error) &&
           ok(api, fn<GetTensorMutableDataFn>(api, kGetTensorMutableData)(out, reinterpret_cast<void**>(&data)),
              "GetTensorMutableData", error);
  }
  if (good) output.assign(data, data + count);
  if (info != nullptr) fn<ReleaseFn>(api, kReleaseTensorTypeAndShapeInfo)(info);
  fn<ReleaseFn>(api, kReleaseValue)(out);
  if (!good) return false;

  // Preallocate the output for the next call with this row count.
  if (preallocated_output_ok_ && count > 0) {
    output_buffer_.assign(count, 0.0f);
    cached_output_shape_ = output_shape;
    std::string ignored;
    if (!ok(api,
            fn<CreateTensorWithDataFn>(api, kCreateTensorWithDataAsOrtValue)(
                memory_info_, output_buffer_.data(), count * sizeof(float), cached_output_shape_.data(),
                cached_output_shape_.size(), kElementFloat, &output_value_),
            "CreateTensorWithDataAsOrtValue (output)", ignored))
      output_value_ = nullptr;
  }
  return true;
}

}  // namespace bot4::inference
