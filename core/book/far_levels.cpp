#include "book/far_levels.hpp"

#include <algorithm>

namespace bot4::book {
namespace {
inline size_t mix(int64_t price) {
  uint64_t x = static_cast<uint64_t>(price);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return static_cast<size_t>(x);
}
}  // namespace

FarLevels::FarLevels() : keys_(64, kEmpty), values_(64, 0), mask_(63) {}

size_t FarLevels::slot_of(int64_t price) const {
  size_t i = mix(price) & mask_;
  while (keys_[i] != kEmpty && keys_[i] != price) i = (i + 1) & mask_;
  return i;
}

int64_t FarLevels::get(int64_t price) const {
  const size_t i = slot_of(price);
  return keys_[i] == price ? values_[i] : 0;
}

int64_t FarLevels::set(int64_t price, int64_t qty) {
  size_t i = slot_of(price);
  if (keys_[i] == price) {
    const int64_t old = values_[i];
    if (qty != 0) {
      values_[i] = qty;
      return old;
    }
    // Erase with backward-shift so that probe chains stay intact (no tombstones).
    size_t hole = i;
    for (size_t j = (i + 1) & mask_; keys_[j] != kEmpty; j = (j + 1) & mask_) {
      const size_t home = mix(keys_[j]) & mask_;
      // Move j into the hole if its home is not cyclically in (hole, j].
      const bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
      if (!stays) {
        keys_[hole] = keys_[j];
        values_[hole] = values_[j];
        hole = j;
      }
    }
    keys_[hole] = kEmpty;
    values_[hole] = 0;
    --size_;
    sorted_valid_ = false;
    return old;
  }
  if (qty == 0) return 0;
  if ((size_ + 1) * 2 > keys_.size()) {
    grow();
    i = slot_of(price);
  }
  keys_[i] = price;
  values_[i] = qty;
  ++size_;
  sorted_valid_ = false;
  return 0;
}

void FarLevels::grow() {
  std::vector<int64_t> keys(keys_.size() * 2, kEmpty);
  std::vector<int64_t> values(values_.size() * 2, 0);
  keys.swap(keys_);
  values.swap(values_);
  mask_ = keys_.size() - 1;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] == kEmpty) continue;
    const size_t j = slot_of(keys[i]);
    keys_[j] = keys[i];
    values_[j] = values[i];
  }
}

void FarLevels::clear() {
  if (size_ == 0) return;
  std::fill(keys_.begin(), keys_.end(), kEmpty);
  std::fill(values_.begin(), values_.end(), 0);
  size_ = 0;
  sorted_.clear();
  sorted_valid_ = true;
}

const std::vector<int64_t>& FarLevels::sorted() const {
  if (!sorted_valid_) {
    sorted_.clear();
    for (int64_t k : keys_)
      if (k != kEmpty) sorted_.push_back(k);
    std::sort(sorted_.begin(), sorted_.end());
    sorted_valid_ = true;
  }
  return sorted_;
}

int64_t FarLevels::highest_at_or_below(int64_t p) const {
  if (size_ == 0) return kNoBidPrice;
  const auto& keys = sorted();
  auto it = std::upper_bound(keys.begin(), keys.end(), p);
  return it == keys.begin() ? kNoBidPrice : *std::prev(it);
}

int64_t FarLevels::lowest_at_or_above(int64_t p) const {
  if (size_ == 0) return kNoAskPrice;
  const auto& keys = sorted();
  auto it = std::lower_bound(keys.begin(), keys.end(), p);
  return it == keys.end() ? kNoAskPrice : *it;
}

}  // namespace bot4::book
