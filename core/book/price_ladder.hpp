#pragma once
// One side of an L2 book: a dense array of level sizes over a power-of-two window of ticks
// (the range of interest around the touch) with a two-level occupancy bitmap for fast
// next-level search, plus a hash map (FarLevels) for levels that fall outside the window. Both halves
// together always hold the exact side; the window only decides which half is fast.
#include <bit>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <utility>
#include <vector>

#include "book/far_levels.hpp"
#include "common/types.hpp"

namespace bot4::book {

// Zeroed blocks for ladder windows: fresh zero pages from the OS (calloc, faulted in only where a
// level is written), or a block a ladder gave back zeroed (its pages already in memory: a book built
// after another one, e.g. the next backtest of a sweep, does not fault its window in again). A few
// blocks are kept, process-wide; give only memory that is all zero.
void* take_zeroed(size_t bytes);
void give_zeroed(void* p, size_t bytes) noexcept;

// Allocator of zeroed memory whose value-initialisation is a no-op: a ladder's megabyte window
// comes from take_zeroed instead of being memset at construction. Its blocks must be all zero when
// deallocated (PriceLadder's destructor zeroes its levels).
template <typename T>
struct ZeroedAllocator {
  using value_type = T;
  ZeroedAllocator() = default;
  template <typename U>
  ZeroedAllocator(const ZeroedAllocator<U>&) noexcept {}
  T* allocate(size_t n) { return static_cast<T*>(take_zeroed(n * sizeof(T))); }
  void deallocate(T* p, size_t n) noexcept { give_zeroed(p, n * sizeof(T)); }
  template <typename U>
  void construct(U*) noexcept {}  // value-init: zero already
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
  template <typename U>
  bool operator==(const ZeroedAllocator<U>&) const noexcept { return true; }
};

class PriceLadder {
 public:
  static constexpr uint32_t kMaxWindowTicks = 1u << 24;  // 128 MiB of level sizes
  explicit PriceLadder(uint32_t window_ticks);
  ~PriceLadder();  // zeroes its levels: the window goes back zeroed (give_zeroed)
  PriceLadder(const PriceLadder&) = default;
  PriceLadder(PriceLadder&&) noexcept = default;
  PriceLadder& operator=(const PriceLadder&) = delete;
  PriceLadder& operator=(PriceLadder&&) = delete;

  bool anchored() const { return anchored_; }
  int64_t base() const { return base_; }
  uint32_t window() const { return window_; }
  uint64_t level_count() const { return level_count_; }
  bool empty() const { return level_count_ == 0; }

  // Sets the absolute size at `price` (0 deletes). Returns the previous size. Always inlined: it is
  // the body of every book apply, and LTO otherwise kept it a call.
  [[gnu::always_inline]] inline int64_t set(int64_t price, int64_t qty);
  inline int64_t get(int64_t price) const;
  // Cache hint only (no effect on the ladder): the level at `price` is about to be written. The
  // dense window is megabytes per side and a replayed feed writes scattered levels, so a write
  // that was not prefetched a few events ahead usually waits on memory.
  void prefetch(int64_t price) const {
    const uint64_t idx = static_cast<uint64_t>(price - base_);
    if (idx < window_) __builtin_prefetch(qty_.data() + idx, 1, 3);
  }

  // Highest occupied price <= p, or kNoBidPrice. Lowest occupied price >= p, or kNoAskPrice.
  int64_t highest_at_or_below(int64_t p) const;
  int64_t lowest_at_or_above(int64_t p) const;

  // Moves the window so that it starts at `new_base`; levels keep their sizes.
  void rebase(int64_t new_base);
  void clear();

 private:
  int64_t set_far(int64_t price, int64_t qty);
  int64_t dense_highest_at_or_below(uint64_t idx) const;
  int64_t dense_lowest_at_or_above(uint64_t idx) const;

  uint32_t window_;
  bool anchored_ = false;
  int64_t base_ = 0;
  uint64_t level_count_ = 0;
  std::vector<int64_t, ZeroedAllocator<int64_t>> qty_;  // window_ entries; nonzero exactly where occupied_
  std::vector<uint64_t> occupied_;   // window_/64 words, bit = level present
  std::vector<uint64_t> summary_;    // occupied_.size()/64 words (rounded up), bit = word != 0
  FarLevels far_;                    // levels outside [base_, base_ + window_)
  uint64_t far_below_ = 0;           // far levels under base_
  uint64_t far_above_ = 0;           // far levels at or over base_ + window_
};

[[gnu::always_inline]] inline int64_t PriceLadder::set(int64_t price, int64_t qty) {
  if (!anchored_) [[unlikely]] {
    anchored_ = true;
    base_ = price - static_cast<int64_t>(window_ / 2);
  }
  const uint64_t idx = static_cast<uint64_t>(price - base_);
  if (idx >= window_) [[unlikely]] return set_far(price, qty);
  const int64_t old = qty_[idx];
  qty_[idx] = qty;
  // Branch-free occupancy update: whether a level appears or disappears is data-dependent and
  // mispredicts often on real feeds.
  const uint64_t was = old != 0;
  const uint64_t now = qty != 0;
  const uint64_t w = idx >> 6;
  const uint64_t word = occupied_[w] ^ ((was ^ now) << (idx & 63));
  occupied_[w] = word;
  uint64_t& summary = summary_[w >> 6];
  summary = (summary & ~(uint64_t{1} << (w & 63))) | (uint64_t{word != 0} << (w & 63));
  level_count_ += now - was;
  return old;
}

inline int64_t PriceLadder::get(int64_t price) const {
  if (!anchored_) return 0;
  const uint64_t idx = static_cast<uint64_t>(price - base_);
  if (idx < window_) return qty_[idx];
  return far_.empty() ? 0 : far_.get(price);
}

}  // namespace bot4::book
