#pragma once
// Levels outside a ladder's dense window: an open-addressing hash map (price -> size) for O(1)
// updates, with a sorted key list rebuilt lazily for the rare ordered queries (next level when
// the dense window holds none, depth beyond the window, rebasing).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/types.hpp"

namespace bot4::book {

class FarLevels {
 public:
  FarLevels();

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }

  int64_t get(int64_t price) const;
  // Sets the size at price (0 erases). Returns the previous size.
  int64_t set(int64_t price, int64_t qty);
  void clear();

  // Highest price <= p (kNoBidPrice if none); lowest price >= p (kNoAskPrice if none).
  int64_t highest_at_or_below(int64_t p) const;
  int64_t lowest_at_or_above(int64_t p) const;

  // Every (price, qty), in no particular order.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (size_t i = 0; i < keys_.size(); ++i)
      if (keys_[i] != kEmpty) fn(keys_[i], values_[i]);
  }

 private:
  static constexpr int64_t kEmpty = kNoBidPrice;  // never a valid price
  size_t slot_of(int64_t price) const;
  void grow();
  const std::vector<int64_t>& sorted() const;

  std::vector<int64_t> keys_;
  std::vector<int64_t> values_;
  size_t mask_;
  size_t size_ = 0;
  mutable std::vector<int64_t> sorted_;
  mutable bool sorted_valid_ = true;
};

}  // namespace bot4::book
