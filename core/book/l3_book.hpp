#pragma once
// L3 (market-by-order) book of one instrument, and a set of them keyed by instrument id.
//
// Orders live in a pooled vector of nodes; each price level is an intrusive doubly linked FIFO
// list over that pool (O(1) append and removal). Order ids map to nodes and prices to levels
// through open-addressing hash maps. The aggregated L2 view is an owned L2Book kept up to date
// with L2Book::set_level on every level change, so best bid/ask, depth and level counts come from
// the same ladder as the L2 path.
//
// Semantics (Databento / CME MBO style):
// - Add: new order at the back of its level. Rejected: qty <= 0 (negative_qty), side not
//   bid/ask (bad_side), bad price (bad_price), id already resting (duplicate_order).
// - Modify: new price and/or qty for a resting order. A price change or a size increase loses
//   priority (the order moves to the back of the new level, also when the price is unchanged);
//   a size decrease keeps priority; qty 0 removes the order. The event's side must be the
//   order's side (or None). Rejected: unknown id, negative qty, side change, bad price.
// - Cancel: removes qty from the order (partial); qty >= resting removes the order.
// - Execute: the resting order traded qty; same book effect as Cancel.
//   Cancel and Execute use the resting order's own side and price (the event's are ignored).
// - Clear: empties the book.
// - Flag kClear on an Add or Clear clears the book first (an Add is validated before clearing);
//   on other actions the order cannot exist after the clear, so the event is rejected
//   (unknown_order) and the book is left as it was.
// - Sequence: an event with seq below the last applied one is rejected (seq_regression), except
//   records flagged kSnapshot, whose per-order sequence numbers are not ordered (snapshot
//   records neither check nor advance the last sequence), and records flagged kClear, which
//   start a new sequence. A clear (flag or action) resets the last sequence.
// - Rejected events leave the book unchanged; every status is counted in BookCounters.
// - Crossed books are kept (auction pre-opens); with check_crossed the book is tested at every
//   kLast message end and counted (`crossed`).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "book/book_status.hpp"
#include "book/l2_book.hpp"
#include "common/events.hpp"

namespace bot4::book {

namespace detail {

// Open-addressing hash map uint64 -> uint32 with linear probing and backward-shift deletion.
// The value kNone marks an empty slot, so every uint64 key is allowed.
class U64Index {
 public:
  static constexpr uint32_t kNone = UINT32_MAX;

  explicit U64Index(size_t expected = 16);

  uint32_t find(uint64_t key) const {
    size_t i = home(key);
    while (true) {
      const Slot& s = slots_[i];
      if (s.value == kNone) return kNone;
      if (s.key == key) return s.value;
      i = (i + 1) & mask_;
    }
  }
  // Inserts key -> value; the key must not be present.
  void insert(uint64_t key, uint32_t value) {
    if ((size_ + 1) * 8 > slots_.size() * 5) [[unlikely]] grow();
    size_t i = home(key);
    while (slots_[i].value != kNone) i = (i + 1) & mask_;
    slots_[i] = Slot{key, value};
    ++size_;
  }
  // Removes key; returns false if it was absent.
  bool erase(uint64_t key);
  size_t size() const { return size_; }
  void clear();

 private:
  struct Slot {
    uint64_t key;
    uint32_t value;
  };
  size_t home(uint64_t key) const {
    return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_);
  }
  void grow();

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  unsigned shift_ = 0;
  size_t size_ = 0;
};

}  // namespace detail

struct L3BookConfig {
  uint32_t window_ticks = 1u << 17;  // dense window of the owned L2Book (power of two >= 64)
  bool check_crossed = true;         // count crossed books at kLast message ends
  bool allow_nonpositive_prices = false;
  uint32_t expected_orders = 1u << 14;  // initial capacity of the order map and pool
};

// A resting order as seen from outside the book.
struct RestingOrder {
  OrderId id;
  int64_t price;
  int64_t qty;
  Side side;
};

class L3Book {
 public:
  explicit L3Book(L3BookConfig config = {});

  BookStatus apply(const OrderEvent& ev);

  // As L2Book::apply_batch: with `record_at` (sorted ascending event indices; negative = before
  // any event) the top of book after each of those events is written to `tops`.
  void apply_batch(const OrderEvent* events, size_t n, const int64_t* record_at = nullptr,
                   size_t n_record = 0, TopOfBook* tops = nullptr);
  // Applies a batch and writes each event's BookStatus to `statuses` (n entries).
  void apply_batch_statuses(const OrderEvent* events, size_t n, uint8_t* statuses);

  int64_t best_bid() const { return l2_.best_bid(); }
  int64_t best_ask() const { return l2_.best_ask(); }
  int64_t best_bid_qty() const { return l2_.best_bid_qty(); }
  int64_t best_ask_qty() const { return l2_.best_ask_qty(); }
  TopOfBook top() const { return l2_.top(); }
  bool crossed() const { return l2_.crossed(); }
  const L2Book& l2() const { return l2_; }
  uint64_t level_count(Side side) const { return l2_.level_count(side); }
  int64_t qty_at(Side side, int64_t price) const { return l2_.qty_at(side, price); }

  size_t order_count() const { return orders_.size(); }
  std::optional<RestingOrder> order(OrderId id) const;
  // Total qty of the orders ahead of `id` at its level (FIFO); -1 if the order is not resting.
  int64_t queue_ahead(OrderId id) const;
  // The orders at one level, front of the queue first.
  std::vector<RestingOrder> level_orders(Side side, int64_t price) const;
  size_t level_order_count(Side side, int64_t price) const;

  void clear();
  const BookCounters& counters() const { return counters_; }
  void reset_counters() { counters_ = {}; }
  const L3BookConfig& config() const { return config_; }
  int64_t last_seq() const { return last_seq_; }

 private:
  static constexpr uint32_t kNil = UINT32_MAX;
  struct Node {
    OrderId id;
    int64_t qty;
    uint32_t prev;
    uint32_t next;  // also the free-list link
    uint32_t level;
  };
  struct Level {
    int64_t price;
    int64_t total;
    uint32_t head;
    uint32_t tail;
    uint32_t count;
    uint8_t side;
  };

  BookStatus apply_checked(const OrderEvent& ev);
  BookStatus add(const OrderEvent& ev);
  BookStatus modify(const OrderEvent& ev);
  BookStatus reduce(const OrderEvent& ev);
  bool price_ok(int64_t price) const {
    if (price == kNoBidPrice || price == kNoAskPrice) return false;
    return price > 0 || config_.allow_nonpositive_prices;
  }

  uint32_t level_for(uint8_t side, int64_t price);  // finds or creates
  void append(uint32_t node, uint32_t level);
  void unlink(uint32_t node);                     // from its level; frees an emptied level
  void remove_order(uint32_t node);               // unlink, unmap, free
  uint32_t new_node();
  void publish(const Level& lv) { l2_.set_level(static_cast<Side>(lv.side), lv.price, lv.total); }

  L3BookConfig config_;
  L2Book l2_;
  std::vector<Node> nodes_;
  std::vector<Level> levels_;
  uint32_t free_node_ = kNil;
  uint32_t free_level_ = kNil;
  detail::U64Index orders_;
  detail::U64Index level_index_[2];  // per side: price -> level
  int64_t last_seq_ = INT64_MIN;
  BookCounters counters_;
};

}  // namespace bot4::book
