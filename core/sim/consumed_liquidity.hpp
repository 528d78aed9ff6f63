#pragma once
// Liquidity our own orders took from the replayed book ("consumed by us" overlay).
//
// The venue simulator replays a recorded book that never sees our orders. When one of our taker
// orders walks a level, the lots it took are recorded here per (side, price) and subtracted from
// the replayed size of that level by every later walk or crossing test, so two of our market
// orders in a row do not both take the same liquidity; a level fully consumed is skipped. Public
// prints are recorded the same way (the venue simulator's consume_print): a print at P emptied
// the levels it traded through and took its size at P, which the replayed book only shows once
// the feed's next update arrives.
//
// Reset rule (a deliberate choice): the next replayed update of a level (a BookEvent at that
// price and side, or in L3 mode any order event that changes the level) resets the overlay of
// that level to zero. From then on the feed's size is authoritative: the recording cannot tell
// whether the new size already reflects our (hypothetical) trade, and assuming it does not would
// let a stale overlay hide liquidity forever. A snapshot or clear resets every level.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "book/far_levels.hpp"
#include "common/types.hpp"

namespace bot4::sim {

class ConsumedLiquidity {
 public:
  // Lots of the level (side, price) taken by our orders or a print since its last replayed update.
  int64_t consumed(Side side, int64_t price) const {
    const book::FarLevels& m = levels_[index(side)];
    return m.empty() ? 0 : m.get(price);
  }
  // Replayed size minus what was consumed (never negative); 0 for a level a print traded through.
  int64_t available(Side side, int64_t price, int64_t replayed) const {
    if (empty()) return replayed;
    if (gone(side, price)) return 0;
    const int64_t left = replayed - consumed(side, price);
    return left > 0 ? left : 0;
  }
  void add(Side side, int64_t price, int64_t qty);
  // A public print at `price` hitting `side` (a seller hits bids): every level of that side
  // better than the print is gone until the replay updates it. One bound per side (the latest
  // print's price), plus the levels updated since: O(1) per print however deep it went.
  void trade_through(Side side, int64_t price);
  // The replay updated the level: its size is authoritative again. Inline early-out: the replay
  // resets a level on every book event, and the overlay is mostly empty.
  void reset(Side side, int64_t price) {
    const int i = index(side);
    if (through_[i].active || !levels_[i].empty()) reset_slow(side, price);
  }
  // The replayed best price of `side` is now at or behind the print bound: every level beyond it
  // was updated, so the bound is spent.
  void settle(Side side, int64_t replayed_best) {
    if (through_[index(side)].active) settle_slow(side, replayed_best);
  }
  void clear();
  bool empty() const {
    return levels_[0].empty() && levels_[1].empty() && !through_[0].active && !through_[1].active;
  }
  size_t size() const { return levels_[0].size() + levels_[1].size(); }

 private:
  struct Through {
    bool active = false;
    int64_t price = 0;               // levels strictly better than this are gone...
    std::vector<int64_t> refreshed;  // ...except these, updated by the replay since
  };
  void reset_slow(Side side, int64_t price);
  void settle_slow(Side side, int64_t replayed_best);
  static int index(Side side) { return side == Side::Bid ? 0 : 1; }
  static bool beyond(Side side, int64_t price, int64_t bound) {
    return side == Side::Bid ? price > bound : price < bound;
  }
  bool gone(Side side, int64_t price) const {
    const Through& t = through_[index(side)];
    if (!t.active || !beyond(side, price, t.price)) return false;
    for (int64_t p : t.refreshed)
      if (p == price) return false;
    return true;
  }
  // Lots consumed per level, one map per side (bids, asks): a hash map, not a list, because levels
  // a print consumed and the replay never updated again stay (on the BTCUSDT recording the list
  // grew to ~100 entries, scanned on every replayed book event).
  book::FarLevels levels_[2];
  Through through_[2];
};

}  // namespace bot4::sim
