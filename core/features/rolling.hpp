#pragma once
#include <type_traits>

#include "common/saturating.hpp"
// Small rolling containers shared by the feature families: a FIFO ring that grows by doubling
// (amortised O(1) push/pop, no allocation once warm), a time-windowed sum of integer vectors
// (exact: int64 sums cannot drift), and a fixed-capacity ring of the last K doubles.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace bot4::features {

template <typename T>
class Fifo {
 public:
  explicit Fifo(size_t capacity = 64) : buf_(round_up(capacity)), mask_(buf_.size() - 1) {}
  void push(const T& v) {
    if (size_ == buf_.size()) grow();
    buf_[(head_ + size_) & mask_] = v;
    ++size_;
  }
  void pop() { head_ = (head_ + 1) & mask_; --size_; }
  T& front() { return buf_[head_]; }
  const T& front() const { return buf_[head_]; }
  const T& operator[](size_t i) const { return buf_[(head_ + i) & mask_]; }
  T& operator[](size_t i) { return buf_[(head_ + i) & mask_]; }
  const T& back() const { return buf_[(head_ + size_ - 1) & mask_]; }
  T& back() { return buf_[(head_ + size_ - 1) & mask_]; }
  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  void clear() { head_ = size_ = 0; }

 private:
  static size_t round_up(size_t n) {
    size_t c = 16;
    while (c < n) c <<= 1;
    return c;
  }
  void grow() {
    std::vector<T> next(buf_.size() * 2);
    for (size_t i = 0; i < size_; ++i) next[i] = buf_[(head_ + i) & mask_];
    buf_.swap(next);
    mask_ = buf_.size() - 1;
    head_ = 0;
  }
  std::vector<T> buf_;
  size_t mask_;
  size_t head_ = 0;
  size_t size_ = 0;
};

// Sum of N integer components over the events in (t - window, t].
template <size_t N, typename V = int64_t>
class TimeWindowSum {
 public:
  struct Entry {
    int64_t t;
    V v[N];
  };
  explicit TimeWindowSum(int64_t window_ns = 0) : window_(window_ns) {}
  void set_window(int64_t window_ns) { window_ = window_ns; }
  void add(int64_t t, const V* v) {
    Entry e;
    e.t = t;
    for (size_t i = 0; i < N; ++i) {
      e.v[i] = v[i];
      sum_[i] = wrap_add(sum_[i], v[i]);
    }
    entries_.push(e);
  }
  // Same sums as add(); an event at the time of the newest entry is folded into it (entries with
  // equal times expire together, so only count() can tell the difference).
  void add_merged(int64_t t, const V* v) {
    if (!entries_.empty() && entries_.back().t == t) {
      Entry& e = entries_.back();
      for (size_t i = 0; i < N; ++i) {
        e.v[i] = wrap_add(e.v[i], v[i]);
        sum_[i] = wrap_add(sum_[i], v[i]);
      }
      return;
    }
    add(t, v);
  }
  // Drops entries at or before now - window.
  void expire(int64_t now) {
    const int64_t cutoff = sat_sub(now, window_);
    while (!entries_.empty() && entries_.front().t <= cutoff) {
      for (size_t i = 0; i < N; ++i) sum_[i] = wrap_add(sum_[i], negate(entries_.front().v[i]));
      entries_.pop();
    }
  }
  V sum(size_t i) const { return sum_[i]; }
  size_t count() const { return entries_.size(); }
  void clear() {
    entries_.clear();
    for (auto& s : sum_) s = 0;
  }

 private:
  // Integer sums wrap (two's complement) instead of overflowing: adding and later subtracting the
  // same values gives the exact sum whenever it fits, whatever the intermediate values did.
  static V wrap_add(V a, V b) {
    if constexpr (std::is_integral_v<V>) {
      using U = std::make_unsigned_t<V>;
      return static_cast<V>(static_cast<U>(a) + static_cast<U>(b));
    } else {
      return a + b;
    }
  }
  static V negate(V a) {
    if constexpr (std::is_integral_v<V>) {
      using U = std::make_unsigned_t<V>;
      return static_cast<V>(U{0} - static_cast<U>(a));
    } else {
      return -a;
    }
  }
  int64_t window_;
  Fifo<Entry> entries_;
  V sum_[N] = {};
};

// The last `capacity` doubles, oldest first, kept contiguous (double-written ring) so a kernel
// can read the trailing window as one array without copying.
class SampleWindow {
 public:
  explicit SampleWindow(size_t capacity = 128) : cap_(capacity), buf_(2 * capacity) {}
  void push(double v) {
    buf_[pos_] = v;
    buf_[pos_ + cap_] = v;
    pos_ = pos_ + 1 == cap_ ? 0 : pos_ + 1;
    ++count_;
  }
  bool full() const { return count_ >= cap_; }
  size_t size() const { return count_ < cap_ ? count_ : cap_; }
  uint64_t count() const { return count_; }
  size_t capacity() const { return cap_; }
  // Oldest-first view of the last size() values.
  const double* data() const { return full() ? &buf_[pos_] : &buf_[0]; }
  // The value k samples ago (0 = newest); k < size().
  double ago(size_t k) const {
    const size_t newest = pos_ == 0 ? cap_ - 1 : pos_ - 1;
    return buf_[(newest + cap_ - k) % cap_];
  }
  void clear() {
    pos_ = 0;
    count_ = 0;
  }

 private:
  size_t cap_;
  std::vector<double> buf_;
  size_t pos_ = 0;
  uint64_t count_ = 0;
};

}  // namespace bot4::features
