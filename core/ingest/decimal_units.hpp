#pragma once
// Exact decimal string -> integer number of grid steps (ticks or lots), never through a binary
// float. Mirrors bot4.instrument.DecimalGrid.to_units so that the native loaders and the Python
// reference accept and reject the same strings with the same reason:
//   * plain form  [+-]? digits [. digits]  (or  [+-]? . digits): exact for any length; a value
//     off the grid is kOffGrid even when it is also out of range (Python checks in that order);
//   * Decimal's other forms (exponent, underscores, inf/nan) go the slow way: non-finite is
//     kBadNumber, exponents are exact up to 27 significant digits (Python's Decimal context
//     rounds at 28; longer exponent forms are kBadNumber here);
//   * anything non-ASCII is kBadNumber; ASCII whitespace (as str.strip sees it) is ignored at
//     both ends.
// Results beyond +-2^62 are kBadNumber (the loaders' int64 headroom).
#include <cstddef>
#include <cstdint>

namespace bot4::ingest {

enum class NumStatus : uint8_t { kOk = 0, kBadNumber, kOffGrid };

struct Grid {
  int digits = 0;    // decimal places of the step
  int64_t unit = 1;  // step * 10^digits (a positive integer)
};

inline constexpr int64_t kUnitsLimit = int64_t{1} << 62;

namespace detail {

inline bool is_strip_space(unsigned char c) {
  // str.strip() on ASCII: \t \n \v \f \r, \x1c-\x1f and space.
  return c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f);
}
inline bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

// Accumulates decimal digits exactly enough to know the value modulo `unit` and whether it
// exceeds 2^100 (far above the 2^62 limit, so the limit check stays exact).
struct Acc {
  __int128 value = 0;
  __int128 rem = 0;
  bool big = false;
  int64_t unit;
  explicit Acc(int64_t u) : unit(u) {}
  void push(int d) {
    rem = (rem * 10 + d) % unit;
    if (!big) {
      value = value * 10 + d;
      if (value > (static_cast<__int128>(1) << 100)) big = true;
    }
  }
};

inline NumStatus finish(const Acc& acc, bool negative, int64_t& out) {
  if (acc.rem != 0) return NumStatus::kOffGrid;
  if (acc.big) return NumStatus::kBadNumber;
  const __int128 units = acc.value / acc.unit;
  if (units >= kUnitsLimit) return NumStatus::kBadNumber;
  out = negative ? -static_cast<int64_t>(units) : static_cast<int64_t>(units);
  return NumStatus::kOk;
}

inline bool ieq(const char* s, size_t n, const char* lit) {
  size_t i = 0;
  for (; i < n && lit[i]; ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 'A' && c <= 'Z') c = static_cast<unsigned char>(c + 32);
    if (c != static_cast<unsigned char>(lit[i])) return false;
  }
  return i == n && lit[i] == 0;
}

// Decimal's grammar after the plain form failed: [sign] (int [. [frac]] | . frac) [e [sign] exp]
// with '_' ignored between characters, or inf/infinity/nan/snan. Exact below 28 digits.
inline NumStatus slow_units(const char* s, size_t n, const Grid& g, int64_t& out) {
  char buf[96];
  size_t m = 0;
  for (size_t i = 0; i < n; ++i) {
    if (s[i] == '_') continue;
    if (m == sizeof(buf)) return NumStatus::kBadNumber;  // too long for an exponent form
    buf[m++] = s[i];
  }
  size_t i = 0;
  bool negative = false;
  if (i < m && (buf[i] == '+' || buf[i] == '-')) negative = buf[i++] == '-';
  const char* rest = buf + i;
  const size_t rest_n = m - i;
  if (ieq(rest, rest_n, "inf") || ieq(rest, rest_n, "infinity")) return NumStatus::kBadNumber;
  // Collect significant digits and the decimal exponent.
  char digits[64];
  int nd = 0;
  int exp10 = 0;
  bool any = false;
  bool overflow = false;
  for (; i < m && is_digit(static_cast<unsigned char>(buf[i])); ++i) {
    any = true;
    if (nd == 0 && buf[i] == '0') continue;
    if (nd < 60) digits[nd++] = buf[i]; else { overflow = true; ++exp10; }
  }
  if (i < m && buf[i] == '.') {
    ++i;
    for (; i < m && is_digit(static_cast<unsigned char>(buf[i])); ++i) {
      any = true;
      if (nd == 0 && buf[i] == '0') { --exp10; continue; }
      if (nd < 60) { digits[nd++] = buf[i]; --exp10; } else if (buf[i] != '0') overflow = true;
    }
  }
  if (!any) return NumStatus::kBadNumber;  // also nan/snan and every other word
  if (i < m && (buf[i] == 'e' || buf[i] == 'E')) {
    ++i;
    bool eneg = false;
    if (i < m && (buf[i] == '+' || buf[i] == '-')) eneg = buf[i++] == '-';
    if (i >= m) return NumStatus::kBadNumber;
    int64_t e = 0;
    for (; i < m && is_digit(static_cast<unsigned char>(buf[i])); ++i) {
      if (e < 100000000) e = e * 10 + (buf[i] - '0');
    }
    if (i != m) return NumStatus::kBadNumber;
    if (nd == 0) { out = 0; return NumStatus::kOk; }  // 0E+n is zero
    if (e > 2000000) {
      if (!eneg) return NumStatus::kBadNumber;  // Decimal overflow
      out = 0;  // underflows to zero in Decimal's context (Etiny = -1000026)
      return NumStatus::kOk;
    }
    exp10 += static_cast<int>(eneg ? -e : e);
  } else if (i != m) {
    return NumStatus::kBadNumber;
  }
  if (nd == 0) { out = 0; return NumStatus::kOk; }
  if (overflow) return NumStatus::kBadNumber;
  // value = digits * 10^exp10; units = value * 10^g.digits / unit.
  while (nd > 0 && digits[nd - 1] == '0') { --nd; ++exp10; }
  int k = exp10 + g.digits;
  if (k + nd - 1 < -1000026) {  // below Decimal's Etiny: the scaled value underflows to zero
    out = 0;
    return NumStatus::kOk;
  }
  if (k < 0) return NumStatus::kOffGrid;
  if (nd + k > 27) return NumStatus::kBadNumber;
  Acc acc(g.unit);
  for (int d = 0; d < nd; ++d) acc.push(digits[d] - '0');
  for (int z = 0; z < k; ++z) acc.push(0);
  return finish(acc, negative, out);
}

}  // namespace detail

// Exact units of the decimal text s[0..n) on grid g.
inline NumStatus to_units(const char* s, size_t n, const Grid& g, int64_t& out) {
  // Hot path: unsigned "ddd.ddd" with at most 18 digits in all and the fraction within the
  // grid's digits (what venues send).
  {
    size_t i = 0;
    uint64_t v = 0;  // unsigned: wraps harmlessly on long inputs, which the length checks discard
    while (i < n && detail::is_digit(static_cast<unsigned char>(s[i]))) v = v * 10 + static_cast<uint64_t>(s[i++] - '0');
    const size_t int_len = i;
    if (int_len > 0 && int_len <= 18 && g.digits <= 18) {
      size_t frac_len = 0;
      bool off_grid = false;
      bool ok = (i == n);
      if (!ok && s[i] == '.') {
        ++i;
        while (i < n && detail::is_digit(static_cast<unsigned char>(s[i]))) {
          if (frac_len < static_cast<size_t>(g.digits)) {
            v = v * 10 + static_cast<uint64_t>(s[i] - '0');
            ++frac_len;
          } else if (s[i] != '0') {
            off_grid = true;
          }
          ++i;
        }
        ok = (i == n) && int_len + frac_len <= 18;
        if (i == n && off_grid) return NumStatus::kOffGrid;
      }
      if (ok) {
        for (size_t f = frac_len; f < static_cast<size_t>(g.digits); ++f) {
          if (v > static_cast<uint64_t>(INT64_MAX) / 10) { ok = false; break; }
          v *= 10;
        }
        if (ok) {
          const uint64_t unit = static_cast<uint64_t>(g.unit);
          if (unit != 1) {
            if (v % unit != 0) return NumStatus::kOffGrid;
            v /= unit;
          }
          if (v >= static_cast<uint64_t>(kUnitsLimit)) return NumStatus::kBadNumber;
          out = static_cast<int64_t>(v);
          return NumStatus::kOk;
        }
      }
    }
  }
  // General path.
  while (n > 0 && detail::is_strip_space(static_cast<unsigned char>(s[0]))) { ++s; --n; }
  while (n > 0 && detail::is_strip_space(static_cast<unsigned char>(s[n - 1]))) --n;
  for (size_t i = 0; i < n; ++i) {
    if (static_cast<unsigned char>(s[i]) >= 0x80) return NumStatus::kBadNumber;
  }
  size_t i = 0;
  bool negative = false;
  if (i < n && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  // Python's fast form: int_part digits (or empty with a dot), optional '.' and digit fraction.
  size_t int_begin = i;
  while (i < n && detail::is_digit(static_cast<unsigned char>(s[i]))) ++i;
  size_t int_end = i;
  bool dot = false;
  size_t frac_begin = i, frac_end = i;
  if (i < n && s[i] == '.') {
    dot = true;
    frac_begin = ++i;
    while (i < n && detail::is_digit(static_cast<unsigned char>(s[i]))) ++i;
    frac_end = i;
  }
  const bool plain = i == n && (int_end > int_begin || dot) && !(int_end == int_begin && frac_end == frac_begin);
  if (!plain) return detail::slow_units(s, n, g, out);
  detail::Acc acc(g.unit);
  for (size_t k = int_begin; k < int_end; ++k) acc.push(s[k] - '0');
  size_t frac_len = frac_end - frac_begin;
  const size_t keep = frac_len < static_cast<size_t>(g.digits) ? frac_len : static_cast<size_t>(g.digits);
  for (size_t k = keep; k < frac_len; ++k) {
    if (s[frac_begin + k] != '0') return NumStatus::kOffGrid;
  }
  for (size_t k = 0; k < keep; ++k) acc.push(s[frac_begin + k] - '0');
  for (size_t k = keep; k < static_cast<size_t>(g.digits); ++k) acc.push(0);
  return detail::finish(acc, negative, out);
}

}  // namespace bot4::ingest
