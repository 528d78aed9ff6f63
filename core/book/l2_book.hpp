#pragma once
// L2 (market-by-price) book of one instrument in integer ticks and lots.
//
// Integrity policy (each case has a counter in BookCounters):
// - negative size, unknown side, non-positive price (unless allowed), or a sequence number below
//   the last applied one: the event is rejected and the book is unchanged;
// - delete of an absent level: applied as a no-op and counted (`delete_absent`);
// - crossed book at the end of a message (kLast): counted (`crossed`); with `prune_crossed` the
//   newest information wins: levels of the opposite side at or through the price of the side
//   updated last are removed (counted in `crossed_pruned_levels`), otherwise the book is kept
//   crossed as the venue sent it (auction pre-opens).
// Crossing is only checked at message boundaries because venues send the bid and ask changes of
// one atomic update one after another.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "book/book_status.hpp"
#include "book/price_ladder.hpp"
#include "common/events.hpp"

namespace bot4::book {

struct L2BookConfig {
  uint32_t window_ticks = 1u << 17;  // dense range of interest, power of two
  bool prune_crossed = true;
  bool allow_nonpositive_prices = false;
};

class L2Book {
 public:
  explicit L2Book(L2BookConfig config = {});

  // Applies one event. Inline (the body of every replay loop): the common case, a level that
  // changes without moving the touch, takes no call; everything else goes out of line.
  inline BookStatus apply(const BookEvent& ev);

  // Applies a batch. When `record_at` is given (sorted, ascending event indices), the top of
  // book after each of those events is written to `tops` (one entry per index).
  void apply_batch(const BookEvent* events, size_t n, const int64_t* record_at = nullptr,
                   size_t n_record = 0, TopOfBook* tops = nullptr);

  // The integrity checks of apply() alone: whether an event passes them before it touches a level,
  // with `last_seq` moved as apply() moves the book's (reset by kClear, set by an event that
  // passes). apply() rejects exactly the events this rejects, whatever the levels, so a caller that
  // only needs the rejections of a stream can count them without keeping a book. Branch-free: the
  // rare rejection is resolved into its reason by check().
  static bool passes(const BookEvent& ev, int64_t& last_seq, bool allow_nonpositive_prices) {
    const int64_t since = (ev.flags & event_flag::kClear) ? INT64_MIN : last_seq;
    const bool ok = (ev.seq >= since) & (ev.qty >= 0) & ((ev.price > 0) | allow_nonpositive_prices) &
                    (ev.price != kNoBidPrice) & (ev.price != kNoAskPrice) &
                    (ev.side <= static_cast<uint8_t>(Side::Ask));
    last_seq = ok ? ev.seq : since;
    return ok;
  }
  // passes() with the reason of a rejection (Ok when it passes), first failing check first.
  static BookStatus check(const BookEvent& ev, int64_t& last_seq, bool allow_nonpositive_prices) {
    if (passes(ev, last_seq, allow_nonpositive_prices)) [[likely]] return BookStatus::Ok;
    if (ev.seq < last_seq) return BookStatus::SeqRegression;  // last_seq: as passes() left it (cleared)
    if (ev.qty < 0) return BookStatus::NegativeQty;
    if (ev.price <= 0 && !allow_nonpositive_prices) return BookStatus::BadPrice;
    if (ev.price == kNoBidPrice || ev.price == kNoAskPrice) return BookStatus::BadPrice;
    return BookStatus::BadSide;
  }

  // Direct level write used by the L3 book and the market generator: no checks, no counters.
  void set_level(Side side, int64_t price, int64_t qty);
  // Cache hint for an event that apply() will see soon (see PriceLadder::prefetch); changes nothing.
  void prefetch(const BookEvent& ev) const {
    if (ev.side == static_cast<uint8_t>(Side::Bid)) bids_.prefetch(ev.price);
    else asks_.prefetch(ev.price);
  }

  int64_t best_bid() const { return best_bid_; }
  int64_t best_ask() const { return best_ask_; }
  int64_t best_bid_qty() const { return best_bid_ == kNoBidPrice ? 0 : bids_.get(best_bid_); }
  int64_t best_ask_qty() const { return best_ask_ == kNoAskPrice ? 0 : asks_.get(best_ask_); }
  TopOfBook top() const;
  int64_t qty_at(Side side, int64_t price) const;
  // Size the level held before the last event that apply() accepted changed it (what qty_at
  // returned just before that apply); saves callers a second ladder lookup.
  int64_t last_prev_qty() const { return last_prev_qty_; }
  uint64_t level_count(Side side) const;
  bool crossed() const {
    return best_bid_ != kNoBidPrice && best_ask_ != kNoAskPrice && best_bid_ >= best_ask_;
  }

  // Fills up to n (price, qty) pairs from the touch outward into `out` (2*n int64); returns the
  // number of levels written.
  size_t depth(Side side, size_t n, int64_t* out) const;
  // Same, into a buffer owned by the book (one per side, overwritten by the next call); lets
  // Python see the depth as a view without a copy.
  const int64_t* depth_view(Side side, size_t n, size_t& levels);

  void clear();
  const BookCounters& counters() const { return counters_; }
  void reset_counters() { counters_ = {}; }
  const L2BookConfig& config() const { return config_; }
  int64_t last_seq() const { return last_seq_; }

 private:
  inline BookStatus apply_checked(const BookEvent& ev);
  void clear_for_event();                                  // kClear: both sides emptied
  void on_message_end(Side last_side, BookStatus& status);  // crossing check (see the top)
  void on_bid_removed(int64_t price);
  void on_ask_removed(int64_t price);
  void end_of_message(Side last_side);
  void maybe_recenter();

  L2BookConfig config_;
  PriceLadder bids_;
  PriceLadder asks_;
  int64_t best_bid_ = kNoBidPrice;
  int64_t best_ask_ = kNoAskPrice;
  int64_t last_seq_ = INT64_MIN;
  int64_t last_prev_qty_ = 0;
  BookCounters counters_;
  std::vector<int64_t> depth_buffer_[2];
};

inline BookStatus L2Book::apply(const BookEvent& ev) {
  ++counters_.events;
  BookStatus status = apply_checked(ev);
  counters_.count(status);
  if (ev.flags & event_flag::kLast) {
    ++counters_.messages;
    if (!is_rejection(status)) on_message_end(static_cast<Side>(ev.side), status);
  }
  return status;
}

inline BookStatus L2Book::apply_checked(const BookEvent& ev) {
  if (ev.flags & event_flag::kClear) [[unlikely]] clear_for_event();
  if (const BookStatus s = check(ev, last_seq_, config_.allow_nonpositive_prices); s != BookStatus::Ok) [[unlikely]]
    return s;
  // Common case first: a level changes without moving the touch. The rare cases (new best,
  // best removed, delete of an absent level) are tested together so that the usual event takes
  // one predictable branch.
  if (ev.side == static_cast<uint8_t>(Side::Bid)) {
    const int64_t old = bids_.set(ev.price, ev.qty);
    last_prev_qty_ = old;
    const bool improves = (ev.qty != 0) & (ev.price > best_bid_);
    const bool special = (ev.qty == 0) & ((old == 0) | (ev.price == best_bid_));
    if (improves | special) [[unlikely]] {
      if (improves) {
        best_bid_ = ev.price;
        maybe_recenter();
      } else if (old == 0) {
        return BookStatus::DeleteAbsent;
      } else {
        on_bid_removed(ev.price);
      }
    }
  } else {
    const int64_t old = asks_.set(ev.price, ev.qty);
    last_prev_qty_ = old;
    const bool improves = (ev.qty != 0) & (ev.price < best_ask_);
    const bool special = (ev.qty == 0) & ((old == 0) | (ev.price == best_ask_));
    if (improves | special) [[unlikely]] {
      if (improves) {
        best_ask_ = ev.price;
        maybe_recenter();
      } else if (old == 0) {
        return BookStatus::DeleteAbsent;
      } else {
        on_ask_removed(ev.price);
      }
    }
  }
  return BookStatus::Ok;
}

}  // namespace bot4::book
