#pragma once
// Liquidity our own orders took from the replayed book ("consumed by us" overlay).
//
// The venue simulator replays a recorded book that never sees our orders. When one of our taker
// orders walks a level, the lots it took are recorded here per (side, price) and subtracted from
// the replayed size of that level by every later walk or crossing test, so two of our market
// orders in a row do not both take the same liquidity; a level fully consumed is skipped.
//
// Reset rule (a deliberate choice): the next replayed update of a level (a BookEvent at that
// price and side, or in L3 mode any order event that changes the level) resets the overlay of
// that level to zero. From then on the feed's size is authoritative: the recording cannot tell
// whether the new size already reflects our (hypothetical) trade, and assuming it does not would
// let a stale overlay hide liquidity forever. A snapshot or clear resets every level.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/types.hpp"

namespace bot4::sim {

class ConsumedLiquidity {
 public:
  // Lots of the level (side, price) taken by our orders since its last replayed update.
  int64_t consumed(Side side, int64_t price) const {
    for (const auto& e : entries_)
      if (e.price == price && e.side == side) return e.qty;
    return 0;
  }
  // Replayed size minus what we consumed (never negative).
  int64_t available(Side side, int64_t price, int64_t replayed) const {
    if (entries_.empty()) return replayed;
    const int64_t left = replayed - consumed(side, price);
    return left > 0 ? left : 0;
  }
  void add(Side side, int64_t price, int64_t qty);
  // The replay updated the level: its size is authoritative again.
  void reset(Side side, int64_t price);
  void clear() { entries_.clear(); }
  bool empty() const { return entries_.empty(); }
  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    int64_t price;
    int64_t qty;
    Side side;
  };
  std::vector<Entry> entries_;  // few entries (the levels our takers walked), linear search
};

}  // namespace bot4::sim
