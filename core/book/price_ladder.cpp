#include "book/price_ladder.hpp"

#include <algorithm>
#include <iterator>
#include <mutex>
#include <new>
#include <cstdlib>
#include <stdexcept>
#include <string>

namespace bot4::book {

namespace {
// Blocks given back zeroed, by size; at most kKept (a few books' windows), the rest freed.
constexpr size_t kKept = 8;
std::mutex pool_mutex;
std::vector<std::pair<void*, size_t>> pool;
}  // namespace

void* take_zeroed(size_t bytes) {
  {
    std::lock_guard<std::mutex> lock(pool_mutex);
    for (size_t i = pool.size(); i-- > 0;)
      if (pool[i].second == bytes) {
        void* p = pool[i].first;
        pool.erase(pool.begin() + static_cast<std::ptrdiff_t>(i));
        return p;
      }
  }
  void* p = std::calloc(bytes, 1);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}

void give_zeroed(void* p, size_t bytes) noexcept {
  if (p == nullptr) return;
  try {
    std::lock_guard<std::mutex> lock(pool_mutex);
    if (pool.size() < kKept) {
      pool.emplace_back(p, bytes);
      return;
    }
  } catch (...) {  // no room to keep it: freed below
  }
  std::free(p);
}

namespace {
// Checked before any member allocates: 2**31 ticks would be a 16 GiB ladder.
uint32_t checked_window(uint32_t window_ticks) {
  if (window_ticks < 64 || !std::has_single_bit(window_ticks) || window_ticks > PriceLadder::kMaxWindowTicks) {
    throw std::invalid_argument("window_ticks must be a power of two in [64, 2**24] (got " +
                                std::to_string(window_ticks) + "); prices outside the window are kept sparse");
  }
  return window_ticks;
}
}  // namespace

PriceLadder::PriceLadder(uint32_t window_ticks)
    : window_(checked_window(window_ticks)),
      qty_(window_ticks),
      occupied_(window_ticks / 64, 0),
      summary_((window_ticks / 64 + 63) / 64, 0) {
  if (window_ticks < 64 || !std::has_single_bit(window_ticks)) {
    throw std::invalid_argument("window_ticks must be a power of two >= 64");
  }
}

PriceLadder::~PriceLadder() {
  for (size_t w = 0; w < occupied_.size(); ++w)
    for (uint64_t bits = occupied_[w]; bits != 0; bits &= bits - 1)
      qty_[(w << 6) + static_cast<unsigned>(std::countr_zero(bits))] = 0;
}

int64_t PriceLadder::set_far(int64_t price, int64_t qty) {
  const int64_t old = far_.set(price, qty);
  if ((old == 0) != (qty == 0)) {
    uint64_t& bucket = price < base_ ? far_below_ : far_above_;
    if (qty != 0) {
      ++bucket;
      ++level_count_;
    } else {
      --bucket;
      --level_count_;
    }
  }
  return old;
}

int64_t PriceLadder::dense_highest_at_or_below(uint64_t idx) const {
  uint64_t w = idx >> 6;
  const unsigned shift = 63 - static_cast<unsigned>(idx & 63);
  uint64_t word = (occupied_[w] << shift) >> shift;  // keep bits 0..idx&63
  if (word != 0) return base_ + static_cast<int64_t>((w << 6) + 63 - std::countl_zero(word));
  // Search lower words through the summary bitmap.
  if (w == 0) return kNoBidPrice;
  uint64_t prev = w - 1;
  uint64_t s = prev >> 6;
  const unsigned sshift = 63 - static_cast<unsigned>(prev & 63);
  uint64_t sword = (summary_[s] << sshift) >> sshift;
  while (true) {
    if (sword != 0) {
      const uint64_t wi = (s << 6) + 63 - std::countl_zero(sword);
      const uint64_t bits = occupied_[wi];
      return base_ + static_cast<int64_t>((wi << 6) + 63 - std::countl_zero(bits));
    }
    if (s == 0) return kNoBidPrice;
    --s;
    sword = summary_[s];
  }
}

int64_t PriceLadder::dense_lowest_at_or_above(uint64_t idx) const {
  uint64_t w = idx >> 6;
  uint64_t word = occupied_[w] >> (idx & 63) << (idx & 63);  // keep bits idx&63..63
  if (word != 0) return base_ + static_cast<int64_t>((w << 6) + std::countr_zero(word));
  const uint64_t n_words = occupied_.size();
  uint64_t next = w + 1;
  if (next >= n_words) return kNoAskPrice;
  uint64_t s = next >> 6;
  uint64_t sword = summary_[s] >> (next & 63) << (next & 63);
  while (true) {
    if (sword != 0) {
      const uint64_t wi = (s << 6) + std::countr_zero(sword);
      const uint64_t bits = occupied_[wi];
      return base_ + static_cast<int64_t>((wi << 6) + std::countr_zero(bits));
    }
    ++s;
    if (s >= summary_.size()) return kNoAskPrice;
    sword = summary_[s];
  }
}

int64_t PriceLadder::highest_at_or_below(int64_t p) const {
  if (level_count_ == 0) return kNoBidPrice;
  int64_t best = kNoBidPrice;
  const int64_t top = base_ + static_cast<int64_t>(window_) - 1;
  if (p >= base_) best = dense_highest_at_or_below(static_cast<uint64_t>((p < top ? p : top) - base_));
  // Far levels under the window cannot beat a dense hit; those over it only matter for p > top.
  if (!far_.empty() && (best == kNoBidPrice || (p > top && far_above_ > 0))) {
    const int64_t far = far_.highest_at_or_below(p);
    if (far > best) best = far;
  }
  return best;
}

int64_t PriceLadder::lowest_at_or_above(int64_t p) const {
  if (level_count_ == 0) return kNoAskPrice;
  int64_t best = kNoAskPrice;
  const int64_t top = base_ + static_cast<int64_t>(window_) - 1;
  if (p <= top) best = dense_lowest_at_or_above(static_cast<uint64_t>((p > base_ ? p : base_) - base_));
  if (!far_.empty() && (best == kNoAskPrice || (p < base_ && far_below_ > 0))) {
    const int64_t far = far_.lowest_at_or_above(p);
    if (far < best) best = far;
  }
  return best;
}

void PriceLadder::rebase(int64_t new_base) {
  if (!anchored_) {
    anchored_ = true;
    base_ = new_base;
    return;
  }
  if (new_base == base_) return;
  // Spill every dense level into the far map, then pull back those inside the new window.
  for (size_t w = 0; w < occupied_.size(); ++w) {
    uint64_t bits = occupied_[w];
    while (bits != 0) {
      const unsigned b = static_cast<unsigned>(std::countr_zero(bits));
      bits &= bits - 1;
      const uint64_t idx = (w << 6) + b;
      far_.set(base_ + static_cast<int64_t>(idx), qty_[idx]);
      qty_[idx] = 0;
    }
    occupied_[w] = 0;
  }
  std::fill(summary_.begin(), summary_.end(), 0);
  base_ = new_base;
  const int64_t end = base_ + static_cast<int64_t>(window_);
  std::vector<std::pair<int64_t, int64_t>> inside;
  far_below_ = far_above_ = 0;
  far_.for_each([&](int64_t price, int64_t qty) {
    if (price >= base_ && price < end) {
      inside.emplace_back(price, qty);
    } else if (price < base_) {
      ++far_below_;
    } else {
      ++far_above_;
    }
  });
  for (const auto& [price, qty] : inside) {
    far_.set(price, 0);
    const uint64_t idx = static_cast<uint64_t>(price - base_);
    qty_[idx] = qty;
    occupied_[idx >> 6] |= uint64_t{1} << (idx & 63);
    summary_[idx >> 12] |= uint64_t{1} << ((idx >> 6) & 63);
  }
}

void PriceLadder::clear() {
  // Only occupied levels hold a nonzero size: zero those (a full fill would touch every page of
  // the window).
  for (size_t w = 0; w < occupied_.size(); ++w) {
    for (uint64_t bits = occupied_[w]; bits != 0; bits &= bits - 1)
      qty_[(w << 6) + static_cast<unsigned>(std::countr_zero(bits))] = 0;
  }
  std::fill(occupied_.begin(), occupied_.end(), 0);
  std::fill(summary_.begin(), summary_.end(), 0);
  far_.clear();
  far_below_ = far_above_ = 0;
  level_count_ = 0;
  anchored_ = false;
  base_ = 0;
}

}  // namespace bot4::book
