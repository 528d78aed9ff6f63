#pragma once
// A minimal reader for the parts of onnx.proto the tree path needs, written directly against the
// protobuf wire format (varint, 64-bit, length-delimited, 32-bit records) so the core needs no
// protobuf library. It parses from a memory buffer, bounds-checks every length and count, skips
// fields it does not know, and reports a truncated or corrupt buffer as an error string naming
// the message and offset: it never reads outside [data, data + size).
//
// Field numbers follow onnx.proto / onnx-ml.proto (onnx 1.23): ModelProto ir_version=1,
// opset_import=8, graph=7; GraphProto node=1, name=2, initializer=5, input=11, output=12;
// NodeProto input=1, output=2, name=3, op_type=4, attribute=5, domain=7; AttributeProto name=1,
// f=2, i=3, s=4, t=5, floats=7, ints=8, strings=9, type=20; ValueInfoProto name=1, type=2;
// TypeProto tensor_type=1; TypeProto.Tensor elem_type=1, shape=2; TensorShapeProto dim=1;
// Dimension dim_value=1, dim_param=2; TensorProto dims=1, data_type=2, float_data=4,
// int64_data=7, name=8, raw_data=9, double_data=10.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bot4::inference {

// AttributeProto.AttributeType values used here.
enum class OnnxAttrType : int32_t {
  Undefined = 0, Float = 1, Int = 2, String = 3, Tensor = 4, Graph = 5,
  Floats = 6, Ints = 7, Strings = 8, Tensors = 9, Graphs = 10,
};

struct OnnxTensor {
  std::string name;
  int32_t data_type = 0;  // TensorProto.DataType: 1 float, 7 int64, 11 double, ...
  std::vector<int64_t> dims;
  std::vector<float> float_data;
  std::vector<int64_t> int64_data;
  std::vector<double> double_data;
  std::string raw_data;
};

struct OnnxAttribute {
  std::string name;
  int32_t type = 0;  // OnnxAttrType; 0 when the writer omitted it
  float f = 0.0f;
  int64_t i = 0;
  std::string s;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  bool has_tensor = false;
  OnnxTensor t;
  bool has_subgraph = false;  // g / graphs present (skipped, never evaluated)
};

struct OnnxValueInfo {
  std::string name;
  int32_t elem_type = 0;
  bool has_shape = false;
  std::vector<int64_t> dims;  // -1 for a symbolic or absent dim_value
};

struct OnnxNode {
  std::string name;
  std::string op_type;
  std::string domain;
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  std::vector<OnnxAttribute> attributes;

  const OnnxAttribute* find(std::string_view attr_name) const;
};

struct OnnxGraph {
  std::string name;
  std::vector<OnnxNode> nodes;
  std::vector<OnnxTensor> initializers;
  std::vector<OnnxValueInfo> inputs;
  std::vector<OnnxValueInfo> outputs;
};

struct OnnxOpset {
  std::string domain;
  int64_t version = 0;
};

struct OnnxModel {
  int64_t ir_version = 0;
  std::vector<OnnxOpset> opsets;
  bool has_graph = false;
  OnnxGraph graph;
};

// Parses a serialized ModelProto. Returns false with a message naming the message type, field and
// byte offset when the buffer is truncated or malformed, or when it holds no graph.
bool parse_onnx_model(const void* data, size_t size, OnnxModel& out, std::string& error);

}  // namespace bot4::inference
