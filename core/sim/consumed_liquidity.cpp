#include "sim/consumed_liquidity.hpp"

#include <algorithm>

namespace bot4::sim {

void ConsumedLiquidity::add(Side side, int64_t price, int64_t qty) {
  if (qty <= 0) return;
  for (auto& e : entries_)
    if (e.price == price && e.side == side) {
      e.qty += qty;
      return;
    }
  entries_.push_back(Entry{price, qty, side});
}

void ConsumedLiquidity::reset(Side side, int64_t price) {
  Through& t = through_[index(side)];
  if (!t.active && entries_.empty()) return;
  if (t.active && beyond(side, price, t.price) &&
      std::find(t.refreshed.begin(), t.refreshed.end(), price) == t.refreshed.end())
    t.refreshed.push_back(price);
  if (entries_.empty()) return;
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [&](const Entry& e) { return e.price == price && e.side == side; }),
                 entries_.end());
}

void ConsumedLiquidity::trade_through(Side side, int64_t price) {
  // The latest print defines the region: whatever an earlier print emptied beyond it was either
  // refilled (the new print traded at a better price than the old bound) or is inside it again.
  Through& t = through_[index(side)];
  t.active = true;
  t.price = price;
  t.refreshed.clear();
}

void ConsumedLiquidity::settle(Side side, int64_t replayed_best) {
  Through& t = through_[index(side)];
  if (!t.active) return;
  const bool none = side == Side::Bid ? replayed_best == kNoBidPrice : replayed_best == kNoAskPrice;
  if (none || !beyond(side, replayed_best, t.price)) {
    t.active = false;
    t.refreshed.clear();
  }
}

void ConsumedLiquidity::clear() {
  entries_.clear();
  for (auto& t : through_) {
    t.active = false;
    t.refreshed.clear();
  }
}

}  // namespace bot4::sim
