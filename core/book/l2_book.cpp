#include "book/l2_book.hpp"

#include "common/saturating.hpp"

#include "book/batch_apply.hpp"

namespace bot4::book {

L2Book::L2Book(L2BookConfig config)
    : config_(config), bids_(config.window_ticks), asks_(config.window_ticks) {}

void L2Book::clear_for_event() {
  bids_.clear();
  asks_.clear();
  best_bid_ = kNoBidPrice;
  best_ask_ = kNoAskPrice;
}

void L2Book::on_message_end(Side last_side, BookStatus& status) {
  if (crossed()) {
    end_of_message(last_side);
    status = BookStatus::Crossed;
  }
}

void L2Book::on_bid_removed(int64_t price) {
  best_bid_ = bids_.highest_at_or_below(price - 1);
  maybe_recenter();
}

void L2Book::on_ask_removed(int64_t price) {
  best_ask_ = asks_.lowest_at_or_above(price + 1);
  maybe_recenter();
}

void L2Book::maybe_recenter() {
  // Each side keeps its own window centred on its touch; rebasing is O(window/64 + levels) and
  // only happens when the touch drifts into the outer eighth of the window.
  const int64_t w = static_cast<int64_t>(config_.window_ticks);
  if (best_bid_ != kNoBidPrice) {
    const int64_t off = sat_sub(best_bid_, bids_.base());
    if (off < w / 8 || off >= w - w / 8) {
      bids_.rebase(sat_sub(best_bid_, w / 2));
      ++counters_.recenters;
    }
  }
  if (best_ask_ != kNoAskPrice) {
    const int64_t off = sat_sub(best_ask_, asks_.base());
    if (off < w / 8 || off >= w - w / 8) {
      asks_.rebase(sat_sub(best_ask_, w / 2));
      ++counters_.recenters;
    }
  }
}

void L2Book::end_of_message(Side last_side) {
  counters_.count(BookStatus::Crossed);
  if (!config_.prune_crossed) return;
  if (last_side == Side::Bid) {
    while (best_ask_ != kNoAskPrice && best_ask_ <= best_bid_) {
      asks_.set(best_ask_, 0);
      ++counters_.crossed_pruned_levels;
      best_ask_ = asks_.lowest_at_or_above(best_ask_ + 1);
    }
  } else {
    while (best_bid_ != kNoBidPrice && best_bid_ >= best_ask_) {
      bids_.set(best_bid_, 0);
      ++counters_.crossed_pruned_levels;
      best_bid_ = bids_.highest_at_or_below(best_bid_ - 1);
    }
  }
  maybe_recenter();
}

void L2Book::apply_batch(const BookEvent* events, size_t n, const int64_t* record_at,
                         size_t n_record, TopOfBook* tops) {
  apply_recording_tops(
      n, record_at, n_record, tops, [&](size_t i) { apply(events[i]); },
      [&](int64_t) { return top(); });
}

void L2Book::set_level(Side side, int64_t price, int64_t qty) {
  if (side == Side::Bid) {
    const int64_t old = bids_.set(price, qty);
    if (qty != 0 && price > best_bid_) {
      best_bid_ = price;
      maybe_recenter();
    } else if (qty == 0 && old != 0 && price == best_bid_) {
      on_bid_removed(price);
    }
  } else {
    const int64_t old = asks_.set(price, qty);
    if (qty != 0 && price < best_ask_) {
      best_ask_ = price;
      maybe_recenter();
    } else if (qty == 0 && old != 0 && price == best_ask_) {
      on_ask_removed(price);
    }
  }
}

TopOfBook L2Book::top() const {
  return TopOfBook{best_bid_, best_bid_qty(), best_ask_, best_ask_qty()};
}

int64_t L2Book::qty_at(Side side, int64_t price) const {
  return side == Side::Bid ? bids_.get(price) : asks_.get(price);
}

uint64_t L2Book::level_count(Side side) const {
  return side == Side::Bid ? bids_.level_count() : asks_.level_count();
}

size_t L2Book::depth(Side side, size_t n, int64_t* out) const {
  size_t k = 0;
  if (side == Side::Bid) {
    for (int64_t p = best_bid_; k < n && p != kNoBidPrice; p = bids_.highest_at_or_below(p - 1)) {
      out[2 * k] = p;
      out[2 * k + 1] = bids_.get(p);
      ++k;
    }
  } else {
    for (int64_t p = best_ask_; k < n && p != kNoAskPrice; p = asks_.lowest_at_or_above(p + 1)) {
      out[2 * k] = p;
      out[2 * k + 1] = asks_.get(p);
      ++k;
    }
  }
  return k;
}

const int64_t* L2Book::depth_view(Side side, size_t n, size_t& levels) {
  auto& buffer = depth_buffer_[side == Side::Bid ? 0 : 1];
  if (buffer.size() < 2 * n) buffer.resize(2 * n);
  levels = depth(side, n, buffer.data());
  return buffer.data();
}

void L2Book::clear() {
  bids_.clear();
  asks_.clear();
  best_bid_ = kNoBidPrice;
  best_ask_ = kNoAskPrice;
  last_seq_ = INT64_MIN;
}

}  // namespace bot4::book
