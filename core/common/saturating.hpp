#pragma once
// Saturating int64 arithmetic for timestamps and windows: event times can be anywhere in int64
// (damaged input), and t - window or t + horizon must then clamp to the range, not overflow.
#include <cstdint>

namespace bot4 {

inline int64_t sat_add(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_add_overflow(a, b, &r) ? (b > 0 ? INT64_MAX : INT64_MIN) : r;
}

inline int64_t sat_sub(int64_t a, int64_t b) {
  int64_t r;
  return __builtin_sub_overflow(a, b, &r) ? (b < 0 ? INT64_MAX : INT64_MIN) : r;
}

// (a + b) / 2 rounded toward zero as in int64, without the overflow of a + b near the limits
// (prices of damaged input): the same value whenever a + b fits.
inline int64_t mid_of(int64_t a, int64_t b) {
  __extension__ typedef __int128 i128;
  return static_cast<int64_t>((static_cast<i128>(a) + b) / 2);
}

}  // namespace bot4
