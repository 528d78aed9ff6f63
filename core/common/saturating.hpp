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

}  // namespace bot4
