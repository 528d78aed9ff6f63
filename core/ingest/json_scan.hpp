#pragma once
// A bounded, validating, allocation-free JSON scanner for fixed message schemas.
//
// The caller walks an object key by key and reads each value with the typed readers below. Every
// byte of the input is validated (strings, escapes, numbers, nesting of skipped values), so a line
// is either fully valid JSON or rejected. Errors are classified the way msgspec classifies them,
// so the native loaders count the same rejection reasons as the Python reference:
//   kMalformed  - not JSON (msgspec.DecodeError): bad syntax, truncation, invalid escapes, raw
//                 control characters, invalid UTF-8 in a string that is decoded (as msgspec
//                 does not check strings it skips, neither does this);
//   kSchema     - valid so far but not the expected shape (msgspec.ValidationError): a scalar of
//                 the wrong type (checked after the scalar is read in full), a container where a
//                 scalar is expected (checked at once), a missing field, a pair of the wrong length.
// Nesting is capped at kMaxDepth so hostile input cannot exhaust the stack.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace bot4::ingest::json {

enum class Err : uint8_t { kOk = 0, kMalformed, kSchema };

inline constexpr int kMaxDepth = 64;

// A string value in the input: bytes between the quotes, still escaped when `escaped` is set.
struct Str {
  const char* p = nullptr;
  uint32_t n = 0;
  bool escaped = false;
  bool ascii = true;
};

inline bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// Bytes that end the fast scan of a string: the quote, the backslash, control characters and
// non-ASCII bytes (one table load per byte instead of four compares).
struct StringStops {
  bool stop[256];
  constexpr StringStops() : stop() {
    for (int c = 0; c < 256; ++c) stop[c] = c == '"' || c == '\\' || c < 0x20 || c >= 0x80;
  }
};
inline constexpr StringStops kStringStops{};

inline int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Validates UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
inline bool valid_utf8(const unsigned char* s, size_t n) {
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) { ++i; continue; }
    size_t len;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) { len = 2; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; cp = c & 0x07; }
    else return false;
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += len;
  }
  return true;
}

inline void put_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// Decodes an already validated escaped string into `out` (UTF-8).
inline void unescape(const Str& s, std::string& out) {
  out.clear();
  const char* p = s.p;
  const char* end = s.p + s.n;
  while (p < end) {
    if (*p != '\\') { out.push_back(*p++); continue; }
    ++p;
    const char e = *p++;
    switch (e) {
      case 'b': out.push_back('\b'); break;
      case 'f': out.push_back('\f'); break;
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case 't': out.push_back('\t'); break;
      case 'u': {
        uint32_t cp = 0;
        for (int k = 0; k < 4; ++k) cp = (cp << 4) | static_cast<uint32_t>(hex_value(*p++));
        if (cp >= 0xD800 && cp <= 0xDBFF) {  // validated: a low surrogate escape follows
          uint32_t lo = 0;
          p += 2;
          for (int k = 0; k < 4; ++k) lo = (lo << 4) | static_cast<uint32_t>(hex_value(*p++));
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
        }
        put_utf8(out, cp);
        break;
      }
      default: out.push_back(e); break;  // " \ /
    }
  }
}

class Scanner {
 public:
  Scanner(const char* p, const char* end) : p_(p), end_(end) {}

  Err err() const { return err_; }
  bool ok() const { return err_ == Err::kOk; }
  const char* pos() const { return p_; }
  void fail(Err e) {
    if (err_ == Err::kOk) err_ = e;
    p_ = end_;
  }

  void ws() {
    while (p_ < end_ && is_ws(*p_)) ++p_;
  }

  // Next non-space character, or 0 at the end (and a truncation error).
  char peek() {
    ws();
    if (p_ >= end_) {
      fail(Err::kMalformed);
      return 0;
    }
    return *p_;
  }

  bool at_end() {
    ws();
    return p_ >= end_;
  }

  // --- objects ---
  // begin_object(); for (bool more = object_first(); more; more = object_next()) { key(k); value }
  bool begin_object() {
    const char c = peek();
    if (c == '{') {
      ++p_;
      return true;
    }
    type_mismatch(c);
    return false;
  }

  // After '{': false at '}' (consumed) or on error.
  bool object_first() {
    const char c = peek();
    if (!ok()) return false;
    if (c == '}') {
      ++p_;
      return false;
    }
    return true;
  }

  // After a member's value: true at ',' (another member follows), false at '}' or on error.
  bool object_next() {
    if (!ok()) return false;
    const char c = peek();
    if (!ok()) return false;
    if (c == ',') {
      ++p_;
      if (peek() == '}') fail(Err::kMalformed);  // trailing comma
      return ok();
    }
    if (c == '}') {
      ++p_;
      return false;
    }
    fail(Err::kMalformed);
    return false;
  }

  // A member's key and its ':'.
  bool key(Str& k) { return read_key(k); }

  // --- strings ---
  // Reads a string at the cursor (the opening quote must be there).
  bool string(Str& s) {
    ++p_;  // opening quote
    const char* start = p_;
    bool escaped = false;
    bool ascii = true;
    while (true) {
      // Fast scan of plain bytes.
      while (p_ < end_ && !kStringStops.stop[static_cast<unsigned char>(*p_)]) ++p_;
      if (p_ >= end_) return fail(Err::kMalformed), false;
      const unsigned char c = static_cast<unsigned char>(*p_);
      if (c == '"') break;
      if (c >= 0x80) {
        ascii = false;
        ++p_;
        continue;
      }
      if (c < 0x20) return fail(Err::kMalformed), false;
      // backslash
      escaped = true;
      if (p_ + 1 >= end_) return fail(Err::kMalformed), false;
      const char e = p_[1];
      if (e == 'u') {
        uint32_t cp;
        if (!hex4(p_ + 2, cp)) return false;
        p_ += 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF) return fail(Err::kMalformed), false;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (p_ + 1 >= end_) return fail(Err::kMalformed), false;
          if (p_[0] != '\\' || p_[1] != 'u') return fail(Err::kMalformed), false;
          uint32_t lo;
          if (!hex4(p_ + 2, lo)) return false;
          if (lo < 0xDC00 || lo > 0xDFFF) return fail(Err::kMalformed), false;
          p_ += 6;
        }
        ascii = false;
        continue;
      }
      if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n' || e == 'r' || e == 't') {
        p_ += 2;
        continue;
      }
      return fail(Err::kMalformed), false;
    }
    s.p = start;
    s.n = static_cast<uint32_t>(p_ - start);
    s.escaped = escaped;
    s.ascii = ascii;
    ++p_;  // closing quote
    return true;
  }

  // A string value that will be decoded (UTF-8 validated, as msgspec does for str fields).
  bool read_str(Str& s) {
    const char c = peek();
    if (c == '"') {
      if (!string(s)) return false;
      if (!s.ascii && !s.escaped &&
          !valid_utf8(reinterpret_cast<const unsigned char*>(s.p), s.n)) {
        return fail(Err::kMalformed), false;
      }
      if (!s.ascii && s.escaped) {
        // Validate the raw (non-escape) bytes: escapes themselves are ASCII.
        if (!valid_utf8(reinterpret_cast<const unsigned char*>(s.p), s.n)) return fail(Err::kMalformed), false;
      }
      return true;
    }
    scalar_mismatch(c);
    return false;
  }

  // str | null
  bool read_str_or_null(Str& s, bool& is_null) {
    if (peek() == 'n') {
      if (!literal("null")) return false;
      is_null = true;
      return true;
    }
    is_null = false;
    return read_str(s);
  }

  // --- numbers ---
  // int64 value. A float, or an integer beyond int64, is a schema error.
  bool read_int(int64_t& v) {
    const char c = peek();
    if (c == '-' || (c >= '0' && c <= '9')) {
      bool is_float, overflow;
      if (!number(v, is_float, overflow)) return false;
      if (is_float || overflow) return fail(Err::kSchema), false;
      return true;
    }
    scalar_mismatch(c);
    return false;
  }

  bool read_int_or_null(int64_t& v, bool& is_null) {
    if (peek() == 'n') {
      if (!literal("null")) return false;
      is_null = true;
      return true;
    }
    is_null = false;
    return read_int(v);
  }

  // Any JSON integer (also beyond int64) or null: its value is not kept.
  bool read_any_int_or_null(bool& is_null) {
    const char c = peek();
    if (c == 'n') {
      if (!literal("null")) return false;
      is_null = true;
      return true;
    }
    is_null = false;
    if (c == '-' || (c >= '0' && c <= '9')) {
      int64_t v;
      bool is_float, overflow;
      if (!number(v, is_float, overflow)) return false;
      if (is_float) return fail(Err::kSchema), false;
      return true;
    }
    scalar_mismatch(c);
    return false;
  }

  bool read_bool(bool& b) {
    const char c = peek();
    if (c == 't') {
      if (!literal("true")) return false;
      b = true;
      return true;
    }
    if (c == 'f') {
      if (!literal("false")) return false;
      b = false;
      return true;
    }
    scalar_mismatch(c);
    return false;
  }

  // --- arrays ---
  bool begin_array() {
    const char c = peek();
    if (c == '[') {
      ++p_;
      return true;
    }
    type_mismatch(c);
    return false;
  }

  // Call after '[' (first=true) or after each element (first=false): true if an element follows.
  bool array_next(bool first) {
    char c = peek();
    if (!ok()) return false;
    if (first) {
      if (c == ']') {
        ++p_;
        return false;
      }
      return true;
    }
    if (c == ',') {
      ++p_;
      c = peek();
      if (!ok()) return false;
      if (c == ']') return fail(Err::kMalformed), false;  // trailing comma
      return true;
    }
    if (c == ']') {
      ++p_;
      return false;
    }
    fail(Err::kMalformed);
    return false;
  }

  // ["<str>", "<str>"]
  bool read_pair(Str& a, Str& b) {
    if (!begin_array()) return false;
    if (!array_next(true)) return ok() ? (fail(Err::kSchema), false) : false;
    if (!read_str(a)) return false;
    if (!array_next(false)) return ok() ? (fail(Err::kSchema), false) : false;
    if (!read_str(b)) return false;
    if (array_next(false)) return fail(Err::kSchema), false;  // a third element
    return ok();
  }

  // Skips (and validates) any value; records its extent in [begin, end).
  bool skip(const char** begin = nullptr, const char** vend = nullptr) {
    peek();
    if (!ok()) return false;
    if (begin) *begin = p_;
    const bool r = skip_value(0);
    if (vend) *vend = p_;
    return r;
  }

 private:
  bool read_key(Str& key) {
    char c = peek();
    if (c != '"') return fail(Err::kMalformed), false;
    if (!string(key)) return false;
    c = peek();
    if (c != ':') return fail(Err::kMalformed), false;
    ++p_;
    return true;
  }

  bool hex4(const char* q, uint32_t& cp) {
    if (end_ - q < 4) return fail(Err::kMalformed), false;
    cp = 0;
    for (int k = 0; k < 4; ++k) {
      const int h = hex_value(q[k]);
      if (h < 0) return fail(Err::kMalformed), false;
      cp = (cp << 4) | static_cast<uint32_t>(h);
    }
    return true;
  }

  bool literal(const char* word) {
    const size_t n = std::strlen(word);
    for (size_t i = 0; i < n; ++i) {
      if (p_ + i >= end_ || p_[i] != word[i]) return fail(Err::kMalformed), false;
    }
    p_ += n;
    return true;
  }

  // JSON number grammar; int64 value when integral and in range.
  bool number(int64_t& v, bool& is_float, bool& overflow) {
    is_float = false;
    overflow = false;
    bool neg = false;
    if (p_ < end_ && *p_ == '-') {
      neg = true;
      ++p_;
    }
    if (p_ >= end_ || !(*p_ >= '0' && *p_ <= '9')) return fail(Err::kMalformed), false;
    uint64_t acc = 0;
    if (*p_ == '0') {
      ++p_;
      if (p_ < end_ && *p_ >= '0' && *p_ <= '9') return fail(Err::kMalformed), false;
    } else {
      // Up to 19 digits cannot overflow uint64; longer integers are out of int64 range anyway.
      const char* start = p_;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
        acc = acc * 10 + static_cast<uint64_t>(*p_ - '0');
        ++p_;
      }
      if (p_ - start > 19) overflow = true;
    }
    if (p_ < end_ && *p_ == '.') {
      is_float = true;
      ++p_;
      if (p_ >= end_ || !(*p_ >= '0' && *p_ <= '9')) return fail(Err::kMalformed), false;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
      is_float = true;
      ++p_;
      if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
      if (p_ >= end_ || !(*p_ >= '0' && *p_ <= '9')) return fail(Err::kMalformed), false;
      while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
    }
    if (!is_float) {
      const uint64_t limit = neg ? (uint64_t{1} << 63) : static_cast<uint64_t>(INT64_MAX);
      if (overflow || acc > limit) {
        overflow = true;
      } else {
        v = neg ? static_cast<int64_t>(0 - acc) : static_cast<int64_t>(acc);
      }
    }
    return true;
  }

  bool skip_value(int depth) {
    if (depth > kMaxDepth) return fail(Err::kMalformed), false;
    const char c = peek();
    if (!ok()) return false;
    switch (c) {
      case '"': {
        Str s;
        return string(s);
      }
      case '{': {
        ++p_;
        for (bool more = object_first(); more; more = object_next()) {
          Str k;
          if (!read_key(k) || !skip_value(depth + 1)) return false;
        }
        return ok();
      }
      case '[': {
        ++p_;
        bool first = true;
        while (array_next(first)) {
          first = false;
          if (!skip_value(depth + 1)) return false;
        }
        return ok();
      }
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default: {
        int64_t v;
        bool f, o;
        return number(v, f, o);
      }
    }
  }

  // A container where a scalar was expected fails at once; a scalar of the wrong type is read
  // in full first (its own syntax errors win), as msgspec does.
  void scalar_mismatch(char c) {
    if (!ok()) return;
    if (c == '{' || c == '[') return fail(Err::kSchema);
    if (!skip_value(0)) return;
    fail(Err::kSchema);
  }
  void type_mismatch(char c) { scalar_mismatch(c); }

  const char* p_;
  const char* end_;
  Err err_ = Err::kOk;
};

}  // namespace bot4::ingest::json
