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
  if (entries_.empty()) return;
  entries_.erase(std::remove_if(entries_.begin(), entries_.end(),
                                [&](const Entry& e) { return e.price == price && e.side == side; }),
                 entries_.end());
}

}  // namespace bot4::sim
