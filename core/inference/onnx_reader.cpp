#include "inference/onnx_reader.hpp"

#include <cstring>

namespace bot4::inference {

const OnnxAttribute* OnnxNode::find(std::string_view attr_name) const {
  for (const auto& a : attributes)
    if (a.name == attr_name) return &a;
  return nullptr;
}

namespace {

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kLen = 2, kStartGroup = 3, kEndGroup = 4, kFixed32 = 5 };

// A cursor over one message's bytes. `base` is the start of the whole buffer so errors report
// absolute offsets; every read checks against `end` before touching memory.
struct Cursor {
  const uint8_t* base;
  const uint8_t* p;
  const uint8_t* end;
  const char* message;  // protobuf message being decoded, for error text
  std::string* error;

  size_t offset() const { return static_cast<size_t>(p - base); }
  bool done() const { return p >= end; }

  bool fail(const std::string& what) {
    *error = "corrupt ONNX model: " + what + " in " + message + " at byte " + std::to_string(offset());
    return false;
  }

  bool varint(uint64_t& v) {
    v = 0;
    // A varint holds at most 10 bytes; the 10th may only carry the top bit of a 64-bit value.
    for (int shift = 0; shift < 64; shift += 7) {
      if (p >= end) return fail("truncated varint");
      const uint8_t b = *p++;
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return fail("varint longer than 10 bytes");
  }

  bool tag(uint32_t& field, uint32_t& wire) {
    uint64_t t = 0;
    if (!varint(t)) return false;
    field = static_cast<uint32_t>(t >> 3);
    wire = static_cast<uint32_t>(t & 7);
    if (field == 0 || (t >> 3) > 0x1fffffffu) return fail("invalid field number");
    return true;
  }

  bool length_delimited(Cursor& sub, const char* sub_message) {
    uint64_t len = 0;
    if (!varint(len)) return false;
    if (len > static_cast<uint64_t>(end - p)) return fail("length " + std::to_string(len) + " past the end of the buffer");
    sub = Cursor{base, p, p + len, sub_message, error};
    p += len;
    return true;
  }

  bool bytes(std::string& out) {
    Cursor sub{};
    if (!length_delimited(sub, message)) return false;
    out.assign(reinterpret_cast<const char*>(sub.p), static_cast<size_t>(sub.end - sub.p));
    return true;
  }

  bool fixed32(uint32_t& v) {
    if (end - p < 4) return fail("truncated fixed32");
    std::memcpy(&v, p, 4);  // protobuf is little-endian, as is x86-64
    p += 4;
    return true;
  }

  bool fixed64(uint64_t& v) {
    if (end - p < 8) return fail("truncated fixed64");
    std::memcpy(&v, p, 8);
    p += 8;
    return true;
  }

  // Unknown fields are skipped; groups (deprecated, never written by onnx) are refused.
  bool skip(uint32_t wire) {
    uint64_t v = 0;
    switch (wire) {
      case kVarint: return varint(v);
      case kFixed64: {
        if (end - p < 8) return fail("truncated fixed64");
        p += 8;
        return true;
      }
      case kLen: {
        Cursor sub{};
        return length_delimited(sub, message);
      }
      case kFixed32: {
        if (end - p < 4) return fail("truncated fixed32");
        p += 4;
        return true;
      }
      default: return fail("unsupported wire type " + std::to_string(wire));
    }
  }

  bool expect(uint32_t wire, uint32_t want, const char* field_name) {
    if (wire == want) return true;
    return fail(std::string("field ") + field_name + " has wire type " + std::to_string(wire) +
                ", expected " + std::to_string(want));
  }
};

// Repeated scalars come packed (one length-delimited record) or unpacked (one record each);
// proto3 writers pack by default, onnx's helpers sometimes don't, so both are accepted.
bool read_int64s(Cursor& c, uint32_t wire, std::vector<int64_t>& out, const char* name) {
  uint64_t v = 0;
  if (wire == kVarint) {
    if (!c.varint(v)) return false;
    out.push_back(static_cast<int64_t>(v));
    return true;
  }
  if (wire != kLen) return c.expect(wire, kLen, name);
  Cursor sub{};
  if (!c.length_delimited(sub, c.message)) return false;
  while (!sub.done()) {
    if (!sub.varint(v)) return false;
    out.push_back(static_cast<int64_t>(v));
  }
  return true;
}

// Repeated float / double fields arrive either one fixed-width value per tag or packed.
template <typename T>
bool read_fixed(Cursor& c, uint32_t wire, std::vector<T>& out, const char* name) {
  static_assert(sizeof(T) == 4 || sizeof(T) == 8);
  constexpr uint32_t kWire = sizeof(T) == 4 ? kFixed32 : kFixed64;
  if (wire == kWire) {
    T value{};
    if constexpr (sizeof(T) == 4) {
      uint32_t bits = 0;
      if (!c.fixed32(bits)) return false;
      std::memcpy(&value, &bits, 4);
    } else {
      uint64_t bits = 0;
      if (!c.fixed64(bits)) return false;
      std::memcpy(&value, &bits, 8);
    }
    out.push_back(value);
    return true;
  }
  if (wire != kLen) return c.expect(wire, kLen, name);
  Cursor sub{};
  if (!c.length_delimited(sub, c.message)) return false;
  const size_t n = static_cast<size_t>(sub.end - sub.p);
  if (n % sizeof(T) != 0)
    return sub.fail(std::string("packed ") + name + " length not a multiple of " + std::to_string(sizeof(T)));
  const size_t old = out.size();
  out.resize(old + n / sizeof(T));
  if (n) std::memcpy(out.data() + old, sub.p, n);
  return true;
}

bool read_floats(Cursor& c, uint32_t wire, std::vector<float>& out, const char* name) {
  return read_fixed(c, wire, out, name);
}

bool read_doubles(Cursor& c, uint32_t wire, std::vector<double>& out, const char* name) {
  return read_fixed(c, wire, out, name);
}

bool read_int(Cursor& c, uint32_t wire, int64_t& out, const char* name) {
  if (!c.expect(wire, kVarint, name)) return false;
  uint64_t v = 0;
  if (!c.varint(v)) return false;
  out = static_cast<int64_t>(v);
  return true;
}

bool read_string(Cursor& c, uint32_t wire, std::string& out, const char* name) {
  if (!c.expect(wire, kLen, name)) return false;
  return c.bytes(out);
}

bool parse_tensor(Cursor c, OnnxTensor& t) {
  uint32_t field = 0, wire = 0;
  while (!c.done()) {
    if (!c.tag(field, wire)) return false;
    bool ok = true;
    switch (field) {
      case 1: ok = read_int64s(c, wire, t.dims, "dims"); break;
      case 2: {
        int64_t v = 0;
        ok = read_int(c, wire, v, "data_type");
        t.data_type = static_cast<int32_t>(v);
        break;
      }
      case 4: ok = read_floats(c, wire, t.float_data, "float_data"); break;
      case 7: ok = read_int64s(c, wire, t.int64_data, "int64_data"); break;
      case 8: ok = read_string(c, wire, t.name, "name"); break;
      case 9: ok = read_string(c, wire, t.raw_data, "raw_data"); break;
      case 10: ok = read_doubles(c, wire, t.double_data, "double_data"); break;
      default: ok = c.skip(wire);
    }
    if (!ok) return false;
  }
  return true;
}

bool parse_attribute(Cursor c, OnnxAttribute& a) {
  uint32_t field = 0, wire = 0;
  while (!c.done()) {
    if (!c.tag(field, wire)) return false;
    bool ok = true;
    switch (field) {
      case 1: ok = read_string(c, wire, a.name, "name"); break;
      case 2: {
        if (!(ok = c.expect(wire, kFixed32, "f"))) break;
        uint32_t bits = 0;
        ok = c.fixed32(bits);
        std::memcpy(&a.f, &bits, 4);
        break;
      }
      case 3: ok = read_int(c, wire, a.i, "i"); break;
      case 4: ok = read_string(c, wire, a.s, "s"); break;
      case 5: {
        if (!(ok = c.expect(wire, kLen, "t"))) break;
        Cursor sub{};
        ok = c.length_delimited(sub, "TensorProto") && parse_tensor(sub, a.t);
        a.has_tensor = ok;
        break;
      }
      case 6:
      case 11:
        a.has_subgraph = true;
        ok = c.skip(wire);
        break;
      case 7: ok = read_floats(c, wire, a.floats, "floats"); break;
      case 8: ok = read_int64s(c, wire, a.ints, "ints"); break;
      case 9: {
        std::string s;
        ok = read_string(c, wire, s, "strings");
        a.strings.push_back(std::move(s));
        break;
      }
      case 20: {
        int64_t v = 0;
        ok = read_int(c, wire, v, "type");
        a.type = static_cast<int32_t>(v);
        break;
      }
      default: ok = c.skip(wire);
    }
    if (!ok) return false;
  }
  return true;
}

bool parse_node(Cursor c, OnnxNode& n) {
  uint32_t field = 0, wire = 0;
  while (!c.done()) {
    if (!c.tag(field, wire)) return false;
    bool ok = true;
    switch (field) {
      case 1: ok = read_string(c, wire, n.inputs.emplace_back(), "input"); break;
      case 2: ok = read_string(c, wire, n.outputs.emplace_back(), "output"); break;
      case 3: ok = read_string(c, wire, n.name, "name"); break;
      case 4: ok = read_string(c, wire, n.op_type, "op_type"); break;
      case 5: {
        if (!(ok = c.expect(wire, kLen, "attribute"))) break;
        Cursor sub{};
        ok = c.length_delimited(sub, "AttributeProto") && parse_attribute(sub, n.attributes.emplace_back());
        break;
      }
      case 7: ok = read_string(c, wire, n.domain, "domain"); break;
      default: ok = c.skip(wire);
    }
    if (!ok) return false;
  }
  return true;
}

bool parse_dimension(Cursor c, int64_t& dim) {
  uint32_t field = 0, wire = 0;
  dim = -1;
  while (!c.done()) {
    if (!c.tag(field, wire)) return false;
    bool ok = true;
    if (field == 1) ok = read_int(c, wire, dim, "dim_value");
    else ok = c.skip(wire);  // dim_param (symbolic) and denotation leave dim at -1
    if (!ok) return false;
  }
  return true;
}

bool parse_shape(Cursor c, OnnxValueInfo& v) {
  uint32_t field = 0, wire = 0;
  v.has_shape = true;
  while (!c.done()) {
    if (!c.tag(field, wire)) return false;
    bool ok = true;
    if (field == 1) {
      Cursor sub{};
      ok = c.expect(wire, kLen, "dim") && c.length_delimited(sub, "TensorShapeProto.Dimension") &&
           parse_dimension(sub, v.dims.emplace_back());
    } else {
      ok = c.skip(wire);
    }
    if (!ok) return false;
  }
  return true;
}

bool parse_tensor_type(Cursor c, OnnxValueInfo& v) {
  uint32_t field = 0, wire = 0;
  while (!c.done()) {
    if (!c.tag(field, wire)) return false;
    bool ok = true;
    if (field == 1) {
      int64_t e = 0;
      ok = read_int(c, wire, e, "elem_type");
      v.elem_type = static_cast<int32_t>(e);
    } else if (field == 2) {
      Cursor sub{};
      ok = c.expect(wire, kLen, "shape") && c.length_delimited(sub, "TensorShapeProto") && parse_shape(sub, v);
    } else {
      ok = c.skip(wire);
    }
    if (!ok) return false;
  }
  return true;
}

bool parse_type(Cursor c, OnnxValueInfo& v) {
  uint32_t field = 0, wire = 0;
  while (!c.done()) {
    if (!c.tag(field, wire)) return false;
    bool ok = true;
    if (field == 1) {  // tensor_type; sequences/maps (ZipMap outputs) are skipped
      Cursor sub{};
      ok = c.expect(wire, kLen, "tensor_type") && c.length_delimited(sub, "TypeProto.Tensor") &&
           parse_tensor_type(sub, v);
    } else {
      ok = c.skip(wire);
    }
    if (!ok) return false;
  }
  return true;
}

bool parse_value_info(Cursor c, OnnxValueInfo& v) {
  uint32_t field = 0, wire = 0;
  while (!c.done()) {
    if (!c.tag(field, wire)) return false;
    bool ok = true;
    if (field == 1) {
      ok = read_string(c, wire, v.name, "name");
    } else if (field == 2) {
      Cursor sub{};
      ok = c.expect(wire, kLen, "type") && c.length_delimited(sub, "TypeProto") && parse_type(sub, v);
    } else {
      ok = c.skip(wire);
    }
    if (!ok) return false;
  }
  return true;
}

bool parse_graph(Cursor c, OnnxGraph& g) {
  uint32_t field = 0, wire = 0;
  while (!c.done()) {
    if (!c.tag(field, wire)) return false;
    bool ok = true;
    Cursor sub{};
    switch (field) {
      case 1:
        ok = c.expect(wire, kLen, "node") && c.length_delimited(sub, "NodeProto") && parse_node(sub, g.nodes.emplace_back());
        break;
      case 2: ok = read_string(c, wire, g.name, "name"); break;
      case 5:
        ok = c.expect(wire, kLen, "initializer") && c.length_delimited(sub, "TensorProto") &&
             parse_tensor(sub, g.initializers.emplace_back());
        break;
      case 11:
        ok = c.expect(wire, kLen, "input") && c.length_delimited(sub, "ValueInfoProto") &&
             parse_value_info(sub, g.inputs.emplace_back());
        break;
      case 12:
        ok = c.expect(wire, kLen, "output") && c.length_delimited(sub, "ValueInfoProto") &&
             parse_value_info(sub, g.outputs.emplace_back());
        break;
      default: ok = c.skip(wire);
    }
    if (!ok) return false;
  }
  return true;
}

bool parse_opset(Cursor c, OnnxOpset& o) {
  uint32_t field = 0, wire = 0;
  while (!c.done()) {
    if (!c.tag(field, wire)) return false;
    bool ok = true;
    if (field == 1) ok = read_string(c, wire, o.domain, "domain");
    else if (field == 2) ok = read_int(c, wire, o.version, "version");
    else ok = c.skip(wire);
    if (!ok) return false;
  }
  return true;
}

}  // namespace

bool parse_onnx_model(const void* data, size_t size, OnnxModel& out, std::string& error) {
  out = OnnxModel{};
  if (data == nullptr || size == 0) {
    error = "corrupt ONNX model: empty buffer";
    return false;
  }
  const auto* bytes = static_cast<const uint8_t*>(data);
  Cursor c{bytes, bytes, bytes + size, "ModelProto", &error};
  uint32_t field = 0, wire = 0;
  while (!c.done()) {
    if (!c.tag(field, wire)) return false;
    bool ok = true;
    Cursor sub{};
    switch (field) {
      case 1: ok = read_int(c, wire, out.ir_version, "ir_version"); break;
      case 7:
        // A second graph record would merge in protobuf; onnx never writes one, so refuse it.
        if (out.has_graph) return c.fail("duplicate graph");
        ok = c.expect(wire, kLen, "graph") && c.length_delimited(sub, "GraphProto") && parse_graph(sub, out.graph);
        out.has_graph = ok;
        break;
      case 8:
        ok = c.expect(wire, kLen, "opset_import") && c.length_delimited(sub, "OperatorSetIdProto") &&
             parse_opset(sub, out.opsets.emplace_back());
        break;
      default: ok = c.skip(wire);
    }
    if (!ok) return false;
  }
  if (!out.has_graph) {
    error = "corrupt ONNX model: no graph (ModelProto.graph missing)";
    return false;
  }
  if (out.ir_version <= 0) {
    error = "corrupt ONNX model: missing or invalid ir_version";
    return false;
  }
  return true;
}

}  // namespace bot4::inference
