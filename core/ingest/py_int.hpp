#pragma once
// Python's int(text) on ASCII text, as the reference CSV loaders call it: surrounding whitespace
// (\t \n \v \f \r and space: unlike str.strip, int() keeps \x1c-\x1f), an optional sign,
// decimal digits with single underscores between them. Values beyond 2^100 saturate there (far
// outside every range the loaders accept).
#include <cstddef>

#include "ingest/decimal_units.hpp"

namespace bot4::ingest {

inline bool py_int(const char* s, size_t n, __int128& out) {
  constexpr __int128 kHuge = static_cast<__int128>(1) << 100;
  auto space = [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); };
  while (n > 0 && space(s[0])) { ++s; --n; }
  while (n > 0 && space(s[n - 1])) --n;
  size_t i = 0;
  bool negative = false;
  if (i < n && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
  if (i >= n) return false;
  __int128 v = 0;
  bool prev_digit = false;
  for (; i < n; ++i) {
    const char c = s[i];
    if (c == '_') {
      if (!prev_digit || i + 1 >= n) return false;
      prev_digit = false;
      continue;
    }
    if (c < '0' || c > '9') return false;
    prev_digit = true;
    if (v < kHuge) v = v * 10 + (c - '0');
  }
  if (!prev_digit) return false;
  out = negative ? -v : v;
  return true;
}

}  // namespace bot4::ingest
