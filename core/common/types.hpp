#pragma once
// Fixed-point domain types. Prices are integer ticks and quantities integer lots of an
// instrument spec; timestamps are int64 nanoseconds. Floats never carry a price or size.
#include <compare>
#include <cstdint>
#include <limits>

namespace bot4 {

using Timestamp = int64_t;  // ns since the Unix epoch
using InstrumentId = uint32_t;
using OrderId = uint64_t;

struct Price {
  int64_t ticks = 0;
  constexpr auto operator<=>(const Price&) const = default;
};

struct Qty {
  int64_t lots = 0;
  constexpr auto operator<=>(const Qty&) const = default;
};

// Named sentinels for "no price" / "no quantity" (an empty side of the book).
inline constexpr int64_t kNoPrice = std::numeric_limits<int64_t>::min();
inline constexpr int64_t kNoBidPrice = std::numeric_limits<int64_t>::min();
inline constexpr int64_t kNoAskPrice = std::numeric_limits<int64_t>::max();

enum class Side : uint8_t { Bid = 0, Ask = 1, None = 2 };

}  // namespace bot4
