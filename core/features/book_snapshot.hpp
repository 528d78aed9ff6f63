#pragma once
// The top levels of one instrument's book at the end of a message: the input every book-driven
// feature family reads. Levels are the occupied prices ranked from the touch.
#include <cmath>
#include <cstdint>
#include <limits>

#include "book/l2_book.hpp"

namespace bot4::features {

inline constexpr int kMaxDepthLevels = 10;

struct BookSnapshot {
  int64_t t = 0;
  int nb = 0;  // occupied bid levels written (<= depth)
  int na = 0;
  int64_t bid_px[kMaxDepthLevels] = {};
  int64_t bid_qty[kMaxDepthLevels] = {};
  int64_t ask_px[kMaxDepthLevels] = {};
  int64_t ask_qty[kMaxDepthLevels] = {};

  // Both sides present and not crossed or locked: the state every two-sided feature needs.
  bool two_sided() const { return nb > 0 && na > 0 && bid_px[0] < ask_px[0]; }
  double mid() const { return 0.5 * (static_cast<double>(bid_px[0]) + static_cast<double>(ask_px[0])); }
  int64_t spread() const { return ask_px[0] - bid_px[0]; }

  void capture(const book::L2Book& book, int depth, int64_t now) {
    t = now;
    int64_t buf[2 * kMaxDepthLevels];
    nb = static_cast<int>(book.depth(Side::Bid, static_cast<size_t>(depth), buf));
    for (int i = 0; i < nb; ++i) {
      bid_px[i] = buf[2 * i];
      bid_qty[i] = buf[2 * i + 1];
    }
    na = static_cast<int>(book.depth(Side::Ask, static_cast<size_t>(depth), buf));
    for (int i = 0; i < na; ++i) {
      ask_px[i] = buf[2 * i];
      ask_qty[i] = buf[2 * i + 1];
    }
  }
};

inline constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

}  // namespace bot4::features
