#pragma once
// Exact queue position of our resting orders on market-by-order (L3) data.
//
// The tracker keeps its own L3Book from the replayed OrderEvents, plus a priority stamp per
// resting market order (a counter bumped when the order is added or loses priority: price change
// or size increase, as in L3Book). Our own orders are not in the book; each gets a stamp when it
// joins a level, so a market order is ahead of ours exactly when it rests at our side and price
// with a smaller stamp. Every order event changes the lots ahead of each own order by
//   contribution(after) - contribution(before),  contribution = qty if the order is ahead, else 0
// which covers every case with one rule: an order ahead cancelled, reduced or executed (ahead
// goes down by the lots removed), an order ahead modified up or repriced (it goes behind us: its
// whole size leaves the queue ahead), orders added later (behind us: no change).
//
// Fills come from trade prints (TradeEvent), the one record every L3 source here carries for each
// match (Databento MBO 'T'; LOBSTER types 4/5/6); the book-side records of the same match (the
// Databento C/M records following a 'T', the LOBSTER EXECUTE) only move the queue. A print of q
// lots at our price first goes to the lots still ahead of us, the rest reaches us. The print and
// the book records of its match share ts_exchange but may come in either order, so they are
// netted per own order within one ts_exchange:
//   - lots removed ahead of us by order events at time t that no print has explained yet are a
//     credit: a print at the same t uses them first (they were the makers of that print);
//   - lots of a print attributed to orders still ahead are owed: the removals that follow at the
//     same t pay them back instead of creating credit.
// A credit or debt is dropped when ts_exchange changes. (A genuine cancel ahead of us at the very
// nanosecond of a print at our level is taken for a fill of that print; harmless in practice.)
//
// Clear (action Clear, or flag kClear on an Add): the book and stamps restart; own orders keep
// resting and go to the back of their level as rebuilt by the snapshot that follows: while
// records flagged kSnapshot arrive, every order added at our level counts as ahead; the first
// record without kSnapshot closes the snapshot and gives own orders a fresh stamp.
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "book/l3_book.hpp"
#include "common/events.hpp"
#include "common/types.hpp"

namespace bot4::sim {

class L3QueueTracker {
 public:
  explicit L3QueueTracker(book::L3BookConfig cfg = {});

  // Applies one order event to the book and moves the queue position of every own order.
  book::BookStatus apply(const OrderEvent& ev);

  // Own order `id` joins the back of level (side, price) now: queue ahead = the level's open lots.
  void join(uint64_t id, Side side, int64_t price);
  void leave(uint64_t id);
  bool tracks(uint64_t id) const { return find(id) != nullptr; }
  // Exact lots ahead of own order `id` (market orders only), -1 if it is not tracked.
  int64_t queue_ahead(uint64_t id) const;
  // A print of `qty` lots at own order `id`'s price, exchange time `ts`: returns the lots that
  // reach the order (after the queue ahead, netted against the match's book records, see above).
  int64_t on_trade(uint64_t id, int64_t qty, int64_t ts);

  const book::L3Book& book() const { return book_; }
  // Levels whose size the last apply() may have changed (at most two: before and after a
  // modify), and whether it cleared the book.
  size_t touched(Side* sides, int64_t* prices) const {
    for (size_t i = 0; i < touched_n_; ++i) {
      sides[i] = touched_side_[i];
      prices[i] = touched_price_[i];
    }
    return touched_n_;
  }
  bool last_cleared() const { return last_cleared_; }
  size_t own_count() const { return own_.size(); }

 private:
  static constexpr uint64_t kRejoin = UINT64_MAX;  // own order waiting for a snapshot to end
  struct Own {
    uint64_t id;
    Side side;
    int64_t price;
    uint64_t stamp;
    int64_t ahead;
    int64_t credit;     // lots removed ahead at credit_ts not yet explained by a print
    int64_t credit_ts;
    int64_t owed;       // lots of prints at owed_ts attributed to orders still ahead
    int64_t owed_ts;
  };
  Own* find(uint64_t id);
  const Own* find(uint64_t id) const;
  void removed_ahead(Own& o, int64_t lots, int64_t ts);
  void touch(Side side, int64_t price);

  book::L3Book book_;
  std::unordered_map<uint64_t, uint64_t> stamps_;  // market order id -> priority stamp
  uint64_t clock_ = 0;
  bool rejoin_pending_ = false;
  std::vector<Own> own_;  // few, linear search
  Side touched_side_[2]{};
  int64_t touched_price_[2]{};
  size_t touched_n_ = 0;
  bool last_cleared_ = false;
};

}  // namespace bot4::sim
