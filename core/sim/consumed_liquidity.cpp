#include "sim/consumed_liquidity.hpp"

#include <algorithm>

namespace bot4::sim {

void ConsumedLiquidity::add(Side side, int64_t price, int64_t qty) {
  if (qty <= 0) return;
  book::FarLevels& m = levels_[index(side)];
  m.set(price, m.get(price) + qty);
}

void ConsumedLiquidity::reset_slow(Side side, int64_t price) {
  Through& t = through_[index(side)];
  if (t.active && beyond(side, price, t.price) &&
      std::find(t.refreshed.begin(), t.refreshed.end(), price) == t.refreshed.end())
    t.refreshed.push_back(price);
  book::FarLevels& m = levels_[index(side)];
  if (!m.empty()) m.set(price, 0);
}

void ConsumedLiquidity::trade_through(Side side, int64_t price) {
  // The latest print defines the region: whatever an earlier print emptied beyond it was either
  // refilled (the new print traded at a better price than the old bound) or is inside it again.
  Through& t = through_[index(side)];
  t.active = true;
  t.price = price;
  t.refreshed.clear();
}

void ConsumedLiquidity::settle_slow(Side side, int64_t replayed_best) {
  Through& t = through_[index(side)];
  const bool none = side == Side::Bid ? replayed_best == kNoBidPrice : replayed_best == kNoAskPrice;
  if (none || !beyond(side, replayed_best, t.price)) {
    t.active = false;
    t.refreshed.clear();
  }
}

void ConsumedLiquidity::clear() {
  levels_[0].clear();
  levels_[1].clear();
  for (auto& t : through_) {
    t.active = false;
    t.refreshed.clear();
  }
}

}  // namespace bot4::sim
