#pragma once
// Splits one CSV line into fields the way the Python reference loaders do: a line without a
// double quote is split at every comma (str.split); a line with one goes through a port of
// CPython's csv reader state machine for the default dialect (quote '"', doubled quotes, not
// strict), so quoted commas and "" escapes give the same fields. Lines the csv module refuses
// (a CR inside an unquoted field) return false: the callers count them as malformed. A NUL is
// an ordinary character, as in the csv module since Python 3.11.
#include <cstddef>
#include <cstring>
#include <string>
#include <vector>

namespace bot4::ingest {

struct Field {
  const char* p;
  size_t n;
  bool operator==(const char* lit) const { return n == std::strlen(lit) && std::memcmp(p, lit, n) == 0; }
  bool empty() const { return n == 0; }
};

class CsvFields {
 public:
  // Fields of line [p, p+n); views into the line or into this object's storage, valid until the
  // next split.
  bool split(const char* p, size_t n) {
    fields.clear();
    if (std::memchr(p, '"', n) == nullptr) {
      const char* end = p + n;
      const char* start = p;
      for (;;) {
        const char* comma = static_cast<const char*>(std::memchr(start, ',', static_cast<size_t>(end - start)));
        if (comma == nullptr) break;
        fields.push_back({start, static_cast<size_t>(comma - start)});
        start = comma + 1;
      }
      fields.push_back({start, static_cast<size_t>(end - start)});
      return true;
    }
    return quoted(p, n);
  }

  std::vector<Field> fields;

 private:
  enum State { kStartRecord, kStartField, kInField, kInQuoted, kQuoteInQuoted, kEatCrnl };

  bool quoted(const char* p, size_t n) {
    // Fields are built in store_ (one string, offsets recorded), then turned into views.
    store_.clear();
    bounds_.clear();
    State st = kStartRecord;
    size_t field_start = 0;
    auto save = [&] {
      bounds_.push_back({field_start, store_.size()});
      field_start = store_.size();
    };
    // c < 0 is the end of the line (CPython's EOL pseudo-character).
    auto step = [&](int c) -> bool {
      switch (st) {
        case kStartRecord:
          if (c < 0) return true;
          if (c == '\n' || c == '\r') { st = kEatCrnl; return true; }
          st = kStartField;
          [[fallthrough]];
        case kStartField:
          if (c == '\n' || c == '\r' || c < 0) { save(); st = c < 0 ? kStartRecord : kEatCrnl; }
          else if (c == '"') st = kInQuoted;
          else if (c == ',') save();
          else { store_.push_back(static_cast<char>(c)); st = kInField; }
          return true;
        case kInField:
          if (c == '\n' || c == '\r' || c < 0) { save(); st = c < 0 ? kStartRecord : kEatCrnl; }
          else if (c == ',') { save(); st = kStartField; }
          else store_.push_back(static_cast<char>(c));
          return true;
        case kInQuoted:
          if (c < 0) return true;
          if (c == '"') st = kQuoteInQuoted;
          else store_.push_back(static_cast<char>(c));
          return true;
        case kQuoteInQuoted:
          if (c == '"') { store_.push_back('"'); st = kInQuoted; }
          else if (c == ',') { save(); st = kStartField; }
          else if (c == '\n' || c == '\r' || c < 0) { save(); st = c < 0 ? kStartRecord : kEatCrnl; }
          else { store_.push_back(static_cast<char>(c)); st = kInField; }
          return true;
        case kEatCrnl:
          if (c == '\n' || c == '\r') return true;
          if (c < 0) { st = kStartRecord; return true; }
          return false;  // "new-line character seen in unquoted field"
      }
      return true;
    };
    for (size_t i = 0; i < n; ++i) {
      const unsigned char c = static_cast<unsigned char>(p[i]);
      if (!step(c)) return false;
    }
    step(-1);
    if (st != kStartRecord) {
      // Only an unterminated quoted field gets here: the reader keeps what it has as a field.
      save();
    }
    for (const auto& b : bounds_) fields.push_back({store_.data() + b.first, b.second - b.first});
    return true;
  }

  std::string store_;
  std::vector<std::pair<size_t, size_t>> bounds_;
};

}  // namespace bot4::ingest
