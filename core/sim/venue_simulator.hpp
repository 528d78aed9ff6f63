#pragma once
// Venue simulator for one L2 instrument: replays the book and trades, and fills our own orders.
//  - Requests (new / cancel / replace) reach the venue after the entry latency: they are applied
//    before the first market event whose ts_exchange is at or after the arrival time.
//  - Resting limit orders keep a queue position (QueueModel) and fill against trades at their
//    price (after the queue ahead is consumed) or through it (partial fills); a book that
//    crosses a resting order fills it at its price as maker.
//  - Marketable limits and market orders walk the current book (taker), up to the limit price;
//    a limit remainder rests, a market remainder is expired (thin book).
//  - Stop orders trigger when a trade prints at or through the stop, then execute as market.
//  - Every venue event (ack, fill, expire, reject) is queued for the caller with the local time
//    at which it is received (venue time + response latency).
// Own fills do not consume the replayed book (the next book update overwrites it).
#include <cstdint>
#include <deque>
#include <vector>

#include "book/l2_book.hpp"
#include "common/events.hpp"
#include "common/types.hpp"
#include "sim/fee_model.hpp"
#include "sim/latency_model.hpp"
#include "sim/queue_model.hpp"

namespace bot4::sim {

enum class SimOrderType : uint8_t { Limit = 0, Market = 1, Stop = 2 };
enum class SimRequestKind : uint8_t { New = 0, Cancel = 1, Replace = 2 };
enum class SimResponseKind : uint8_t { Ack = 0, Fill = 1, Expire = 2, Reject = 3, Cancelled = 4 };

struct SimRequest {
  SimRequestKind kind = SimRequestKind::New;
  uint64_t id = 0;
  Side side = Side::Bid;
  SimOrderType type = SimOrderType::Limit;
  int64_t price = 0;  // limit or stop trigger, ticks
  int64_t qty = 0;    // total qty, lots (Replace: new total qty)
  int64_t arrival = 0;  // venue (exchange) time
};

struct SimResponse {
  SimResponseKind kind = SimResponseKind::Ack;
  uint64_t id = 0;
  Side side = Side::Bid;
  int64_t price = 0;  // fill price, ticks
  int64_t qty = 0;    // fill qty, lots
  double fee = 0.0;   // quote units
  bool maker = false;
  int64_t venue_ts = 0;
  int64_t local_ts = 0;  // when the caller receives it
};

struct SimCounters {
  uint64_t requests = 0;
  uint64_t fills = 0;
  uint64_t maker_fills = 0;
  uint64_t taker_fills = 0;
  uint64_t stops_triggered = 0;
  uint64_t market_expired = 0;   // market remainder with no liquidity left
  uint64_t rejects = 0;          // e.g. market order into an empty side
  uint64_t unknown_cancel = 0;   // cancel/replace for an order no longer at the venue
  uint64_t book_rejected = 0;
};

struct SimConfig {
  QueueModelConfig queue;
  LatencyConfig latency;
  FeeConfig fees;
  double tick_size = 1.0;
  double lot_size = 1.0;
};

class VenueSimulator {
 public:
  explicit VenueSimulator(const SimConfig& cfg);

  // Queue a request sent at local time `sent_local` (arrival = sent_local + entry latency).
  void send(SimRequest r, int64_t sent_local);
  // Apply every request that reached the venue by exchange time `venue_ts`.
  void activate(int64_t venue_ts);
  // Market data (exchange clock = ev.ts_exchange). Requests due by then are applied first.
  void on_book(const BookEvent& ev);
  void on_trade(const TradeEvent& ev);

  // Responses received by local time `now` (moved into `out`, which is cleared first).
  void poll(int64_t now, std::vector<SimResponse>& out);
  bool has_pending_responses() const { return !responses_.empty(); }

  const book::L2Book& book() const { return book_; }
  const SimCounters& counters() const { return counters_; }
  size_t resting() const { return orders_.size(); }
  const QueueModel& queue_model() const { return queue_; }
  // Walks the current book for a taker order (exposed for tests): fills into `out` (price, qty)
  // pairs, returns the lots filled. limit = 0 means no limit (market).
  int64_t walk(Side side, int64_t qty, int64_t limit, std::vector<std::pair<int64_t, int64_t>>& out) const;

 private:
  struct Working {
    uint64_t id;
    Side side;
    SimOrderType type;
    int64_t price;
    int64_t qty;
    int64_t filled;
    QueuePosition queue;
    int64_t open() const { return qty - filled; }
  };
  void apply(const SimRequest& r, int64_t venue_ts);
  void execute_taker(Working& w, int64_t limit, int64_t venue_ts);  // walks, fills; w.filled updated
  void fill(Working& w, int64_t price, int64_t qty, bool maker, int64_t venue_ts);
  void respond(SimResponseKind kind, const Working& w, int64_t venue_ts);
  void erase_done();

  SimConfig cfg_;
  QueueModel queue_;
  LatencyModel latency_;
  FeeModel fees_;
  book::L2Book book_;
  std::deque<SimRequest> requests_;
  std::deque<SimResponse> responses_;
  std::vector<Working> orders_;  // working at the venue (resting limits and untriggered stops)
  mutable std::vector<int64_t> depth_;
  SimCounters counters_;
};

}  // namespace bot4::sim
