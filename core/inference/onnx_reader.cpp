#include "inference/onnx_reader.hpp"

#include <cstring>
#include <optional>

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

// Walks the fields of one message: `read(field, wire)` reads the fields it knows and returns
// std::nullopt for the others, which are skipped.
template <typename Read>
bool for_each_field(Cursor& c, Read&& read) {
  uint32_t field = 0, wire = 0;
  while (!c.done()) {
    if (!c.tag(field, wire)) return false;
    const std::optional<bool> ok = read(field, wire);
    if (ok ? !*ok : !c.skip(wire)) return false;
  }
  return true;
}

// A length-delimited sub-message handed to `parse`.
template <typename Parse>
bool read_message(Cursor& c, uint32_t wire, const char* field_name, const char* message, Parse&& parse) {
  Cursor sub{};
  return c.expect(wire, kLen, field_name) && c.length_delimited(sub, message) && parse(sub);
}

bool read_int32(Cursor& c, uint32_t wire, int32_t& out, const char* name) {
  int64_t v = 0;
  const bool ok = read_int(c, wire, v, name);
  out = static_cast<int32_t>(v);
  return ok;
}

bool parse_tensor(Cursor c, OnnxTensor& t) {
  return for_each_field(c, [&](uint32_t field, uint32_t wire) -> std::optional<bool> {
    switch (field) {
      case 1: return read_int64s(c, wire, t.dims, "dims");
      case 2: return read_int32(c, wire, t.data_type, "data_type");
      case 4: return read_floats(c, wire, t.float_data, "float_data");
      case 7: return read_int64s(c, wire, t.int64_data, "int64_data");
      case 8: return read_string(c, wire, t.name, "name");
      case 9: return read_string(c, wire, t.raw_data, "raw_data");
      case 10: return read_doubles(c, wire, t.double_data, "double_data");
      default: return std::nullopt;
    }
  });
}

bool parse_attribute(Cursor c, OnnxAttribute& a) {
  return for_each_field(c, [&](uint32_t field, uint32_t wire) -> std::optional<bool> {
    switch (field) {
      case 1: return read_string(c, wire, a.name, "name");
      case 2: {
        if (!c.expect(wire, kFixed32, "f")) return false;
        uint32_t bits = 0;
        const bool ok = c.fixed32(bits);
        std::memcpy(&a.f, &bits, 4);
        return ok;
      }
      case 3: return read_int(c, wire, a.i, "i");
      case 4: return read_string(c, wire, a.s, "s");
      case 5:
        a.has_tensor = read_message(c, wire, "t", "TensorProto", [&](Cursor sub) { return parse_tensor(sub, a.t); });
        return a.has_tensor;
      case 6:
      case 11:
        a.has_subgraph = true;
        return std::nullopt;
      case 7: return read_floats(c, wire, a.floats, "floats");
      case 8: return read_int64s(c, wire, a.ints, "ints");
      case 9: return read_string(c, wire, a.strings.emplace_back(), "strings");
      case 20: return read_int32(c, wire, a.type, "type");
      default: return std::nullopt;
    }
  });
}

bool parse_node(Cursor c, OnnxNode& n) {
  return for_each_field(c, [&](uint32_t field, uint32_t wire) -> std::optional<bool> {
    switch (field) {
      case 1: return read_string(c, wire, n.inputs.emplace_back(), "input");
      case 2: return read_string(c, wire, n.outputs.emplace_back(), "output");
      case 3: return read_string(c, wire, n.name, "name");
      case 4: return read_string(c, wire, n.op_type, "op_type");
      case 5:
        return read_message(c, wire, "attribute", "AttributeProto",
                            [&](Cursor sub) { return parse_attribute(sub, n.attributes.emplace_back()); });
      case 7: return read_string(c, wire, n.domain, "domain");
      default: return std::nullopt;
    }
  });
}

bool parse_dimension(Cursor c, int64_t& dim) {
  dim = -1;  // dim_param (symbolic) and denotation leave it at -1
  return for_each_field(c, [&](uint32_t field, uint32_t wire) -> std::optional<bool> {
    if (field == 1) return read_int(c, wire, dim, "dim_value");
    return std::nullopt;
  });
}

bool parse_shape(Cursor c, OnnxValueInfo& v) {
  v.has_shape = true;
  return for_each_field(c, [&](uint32_t field, uint32_t wire) -> std::optional<bool> {
    if (field != 1) return std::nullopt;
    return read_message(c, wire, "dim", "TensorShapeProto.Dimension",
                        [&](Cursor sub) { return parse_dimension(sub, v.dims.emplace_back()); });
  });
}

bool parse_tensor_type(Cursor c, OnnxValueInfo& v) {
  return for_each_field(c, [&](uint32_t field, uint32_t wire) -> std::optional<bool> {
    if (field == 1) return read_int32(c, wire, v.elem_type, "elem_type");
    if (field == 2)
      return read_message(c, wire, "shape", "TensorShapeProto", [&](Cursor sub) { return parse_shape(sub, v); });
    return std::nullopt;
  });
}

bool parse_type(Cursor c, OnnxValueInfo& v) {
  // tensor_type only; sequences and maps (ZipMap outputs) are skipped
  return for_each_field(c, [&](uint32_t field, uint32_t wire) -> std::optional<bool> {
    if (field != 1) return std::nullopt;
    return read_message(c, wire, "tensor_type", "TypeProto.Tensor",
                        [&](Cursor sub) { return parse_tensor_type(sub, v); });
  });
}

bool parse_value_info(Cursor c, OnnxValueInfo& v) {
  return for_each_field(c, [&](uint32_t field, uint32_t wire) -> std::optional<bool> {
    if (field == 1) return read_string(c, wire, v.name, "name");
    if (field == 2) return read_message(c, wire, "type", "TypeProto", [&](Cursor sub) { return parse_type(sub, v); });
    return std::nullopt;
  });
}

bool parse_graph(Cursor c, OnnxGraph& g) {
  return for_each_field(c, [&](uint32_t field, uint32_t wire) -> std::optional<bool> {
    switch (field) {
      case 1:
        return read_message(c, wire, "node", "NodeProto", [&](Cursor sub) { return parse_node(sub, g.nodes.emplace_back()); });
      case 2: return read_string(c, wire, g.name, "name");
      case 5:
        return read_message(c, wire, "initializer", "TensorProto",
                            [&](Cursor sub) { return parse_tensor(sub, g.initializers.emplace_back()); });
      case 11:
        return read_message(c, wire, "input", "ValueInfoProto",
                            [&](Cursor sub) { return parse_value_info(sub, g.inputs.emplace_back()); });
      case 12:
        return read_message(c, wire, "output", "ValueInfoProto",
                            [&](Cursor sub) { return parse_value_info(sub, g.outputs.emplace_back()); });
      default: return std::nullopt;
    }
  });
}

bool parse_opset(Cursor c, OnnxOpset& o) {
  return for_each_field(c, [&](uint32_t field, uint32_t wire) -> std::optional<bool> {
    if (field == 1) return read_string(c, wire, o.domain, "domain");
    if (field == 2) return read_int(c, wire, o.version, "version");
    return std::nullopt;
  });
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
  const bool parsed = for_each_field(c, [&](uint32_t field, uint32_t wire) -> std::optional<bool> {
    switch (field) {
      case 1: return read_int(c, wire, out.ir_version, "ir_version");
      case 7:
        // A second graph record would merge in protobuf; onnx never writes one, so refuse it.
        if (out.has_graph) return c.fail("duplicate graph");
        out.has_graph = read_message(c, wire, "graph", "GraphProto", [&](Cursor sub) { return parse_graph(sub, out.graph); });
        return out.has_graph;
      case 8:
        return read_message(c, wire, "opset_import", "OperatorSetIdProto",
                            [&](Cursor sub) { return parse_opset(sub, out.opsets.emplace_back()); });
      default: return std::nullopt;
    }
  });
  if (!parsed) return false;
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
