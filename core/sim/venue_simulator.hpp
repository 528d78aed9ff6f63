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
//
// Own fills consume replayed liquidity:
//  - Taker: lots our takers took at a level are kept in a per-level overlay (ConsumedLiquidity)
//    and subtracted from the replayed size by later walks, marketability and crossing tests until
//    the replay next updates that level (then the feed's size is authoritative again; see
//    consumed_liquidity.hpp); a level fully consumed is skipped.
//  - Maker: a public print of q lots is shared by our resting orders in their own FIFO order
//    (per level, by the time each joined the level): if it filled x lots of one of ours, q - x
//    lots are left for our other orders at that level behind it (and a print through our price
//    likewise gives at most q lots to all our orders at one level).
//
// Two venue modes (SimConfig::mode):
//  - L2 (market-by-price): on_book(BookEvent) + on_trade; queue position estimated by QueueModel.
//  - L3 (market-by-order): on_order(OrderEvent) + on_trade; the simulator keeps its own L3Book
//    (L3QueueTracker) and the queue ahead of each resting limit is exact; takers walk the L3
//    book's aggregated L2 view; fills at our price come from trade prints after the exact queue
//    ahead is gone (l3_queue_tracker.hpp explains the netting of a print with its book records).
//  - Auto (default): the first market-data stream seen decides (the first on_book -> L2, the first
//    on_order -> L3) and stays; events of the other stream are then ignored and counted
//    (SimCounters::ignored_events). Trades are used in both modes.
//  Market data must come in exchange order: requests due by an event's ts_exchange are applied
//  before it. In L3 mode a print and the order events of the same match share ts_exchange and
//  may come in either order.
#include <cstdint>
#include <deque>
#include <memory>
#include <vector>

#include "book/l2_book.hpp"
#include "common/events.hpp"
#include "common/stream_merge.hpp"
#include "common/types.hpp"
#include "execution/venue.hpp"
#include "sim/consumed_liquidity.hpp"
#include "sim/fee_model.hpp"
#include "sim/l3_queue_tracker.hpp"
#include "sim/latency_model.hpp"
#include "sim/queue_model.hpp"

namespace bot4::sim {

// The simulator speaks the venue interface's messages (execution/venue.hpp).
using SimOrderType = execution::VenueOrderType;
using SimRequestKind = execution::VenueRequestKind;
using SimResponseKind = execution::VenueResponseKind;
using SimRequest = execution::VenueRequest;
using SimResponse = execution::VenueResponse;

struct SimCounters {
  uint64_t requests = 0;
  uint64_t fills = 0;
  uint64_t maker_fills = 0;
  uint64_t taker_fills = 0;
  uint64_t stops_triggered = 0;
  uint64_t market_expired = 0;   // market remainder with no liquidity left
  uint64_t rejects = 0;          // e.g. market order into an empty side
  uint64_t stp_expired = 0;          // own resting orders expired so our taker would not trade with them
  uint64_t reduce_only_expired = 0;  // reduce-only orders expired with no position left to reduce
  uint64_t unknown_cancel = 0;   // cancel/replace for an order no longer at the venue
  uint64_t book_rejected = 0;    // replayed book (L2) or order (L3) events the book rejected
  uint64_t order_events = 0;     // L3 order events applied (or offered)
  uint64_t ignored_events = 0;   // market data of the other mode (BookEvent in L3, OrderEvent in L2)
  uint64_t prints_after_level_drop = 0;  // prints at our level replayed before their own millisecond's depth drop
  uint64_t late_feed_events = 0;  // streamed feed: events appended after the venue had passed their exchange time
};

enum class SimMode : uint8_t { Auto = 0, L2 = 1, L3 = 2 };

struct SimConfig {
  QueueModelConfig queue;
  LatencyConfig latency;
  FeeConfig fees;
  double tick_size = 1.0;
  double lot_size = 1.0;
  bool inverse = false;        // coin-margined: fees in the base coin (FeeModel::fee)
  double contract_size = 1.0;  // inverse: quote units per contract; linear: the multiplier
  SimMode mode = SimMode::Auto;  // L2 / L3 venue; Auto: the first stream seen (on_book / on_order)
  book::L3BookConfig l3;         // the L3 book kept in L3 mode
};

class VenueSimulator {
 public:
  explicit VenueSimulator(const SimConfig& cfg);

  // Queue a request sent at local time `sent_local` (arrival = sent_local + entry latency).
  void send(SimRequest r, int64_t sent_local);
  // Apply every request that reached the venue by exchange time `venue_ts`.
  void activate(int64_t venue_ts) {
    // Runs before every replayed event: nothing to do unless a stop is due, orders rest or a
    // request has arrived (kept inline: the common case of a backtest with nothing working).
    if (stops_due_ || !orders_.empty() || (!requests_.empty() && requests_.front().arrival <= venue_ts))
      activate_due(venue_ts);
  }
  // Market data (exchange clock = ev.ts_exchange). Requests due by then are applied first.
  void on_book(const BookEvent& ev);
  void on_trade(const TradeEvent& ev);
  // L3 market data (exchange clock = ev.ts_exchange). Requests due by then are applied first.
  void on_order(const OrderEvent& ev);

  // Feed mode (the trading engine's): the venue reads the recording itself and processes it in
  // exchange-time order, ahead of the strategy, which receives each event only at its ts_local.
  // So a fill reaches the strategy at venue time + offset + response latency even when the
  // public data that caused it arrives later, as on a real venue. The clock offset is then
  // learned only from the events the strategy has received (observe()), never from the venue's
  // look-ahead, and the on_* calls above are the feed's (do not call them in feed mode).
  void attach_feed(const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
                   const TradeEvent* trades, size_t n_trades);
  // Streamed feed mode: appends the next records of the recording (each stream in receive order)
  // to a feed the simulator owns; records already consumed are dropped, so memory stays bounded
  // by what is not yet replayed. An event whose exchange time the venue has already passed (a
  // whole-array run would have replayed it earlier) is still replayed, and counted in
  // late_feed_events: a run with none replays exactly as attach_feed over the whole recording.
  void append_feed(const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
                   const TradeEvent* trades, size_t n_trades);
  // Processes every feed event with exchange time <= t, then the requests due by t.
  void advance_feed(int64_t t);
  // The counters as advance_feed(t) would leave them, without replaying: possible (returns true)
  // when nothing is in flight, working or unanswered and the venue is L2 or not yet resolved with
  // no L3 event ahead of its first book event. Such a replay (advance_feed's quiet path) changes
  // only the book, the consumed overlay and two counters: book_rejected (an event the book's
  // checks reject, which do not depend on the levels: L2Book::check) and ignored_events (order
  // events at an L2 venue). false: replay to know. The feed is counted once: tally(t) counts it up
  // to t apart from the replay (an idle venue's poll calls it while the records are still in
  // cache), and the next replay drops that count and counts for itself.
  bool counters_after(int64_t t, SimCounters& out);
  bool tally(int64_t t);
  // The strategy received a market event (learns the local - exchange clock offset).
  void observe(int64_t ts_exchange, int64_t ts_local) { latency_.observe(ts_exchange, ts_local); }
  // Exchange time of local time `local` by the learned offset.
  int64_t exchange_time(int64_t local) const { return local - latency_.offset(); }

  // Responses received by local time `now` (moved into `out`, which is cleared first).
  void poll(int64_t now, std::vector<SimResponse>& out) {
    out.clear();
    if (!responses_.empty() && responses_.front().local_ts <= now) poll_due(now, out);
  }
  bool has_pending_responses() const { return !responses_.empty(); }
  // Nothing in flight, working or unanswered: no response can come before a new request.
  bool idle() const { return requests_.empty() && orders_.empty() && responses_.empty(); }

  // The replayed book: the L2Book in L2 mode, the L3 book's aggregated view in L3 mode (without
  // the consumed-by-us overlay).
  const book::L2Book& book() const { return tracker_ ? tracker_->book().l2() : book_; }
  // The L3 book (L3 mode only; nullptr otherwise).
  const book::L3Book* l3_book() const { return tracker_ ? &tracker_->book() : nullptr; }
  SimMode mode() const { return mode_; }
  // Lots ahead of our resting limit `id`: exact in L3 mode, the QueueModel estimate in L2 mode;
  // -1 if the order is not resting at the venue.
  double queue_ahead(uint64_t id) const;
  // Lots our takers consumed at (side, price) since the replay last updated that level.
  int64_t consumed(Side side, int64_t price) const { return consumed_.consumed(side, price); }
  const SimCounters& counters() const { return counters_; }
  size_t resting() const { return orders_.size(); }
  const QueueModel& queue_model() const { return queue_; }
  // Walks the current book (minus what our takers already consumed) for a taker order (exposed
  // for tests): fills into `out` (price, qty) pairs, returns the lots filled. limit = 0 means no
  // limit (market). Does not consume.
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
    uint64_t priority;  // own FIFO order at a level (set on entry and on a requeue)
    bool reduce_only = false;
    bool triggered = false;  // a stop whose trigger printed: executes once its sweep is over
    int64_t open() const { return qty - filled; }
  };
  void apply(const SimRequest& r, int64_t venue_ts);
  void execute_taker(Working& w, int64_t limit, int64_t venue_ts);  // walks, fills; w.filled updated
  // Fills up to qty (less for a reduce-only order near flat); returns the lots filled.
  int64_t fill(Working& w, int64_t price, int64_t qty, bool maker, int64_t venue_ts);
  // Queues a response about w (its price and size; a fill overrides them) and returns it.
  SimResponse& respond(SimResponseKind kind, const Working& w, int64_t venue_ts);
  int64_t receipt(int64_t venue_ts);
  void consume_print(const TradeEvent& ev);  // levels a public print traded through or at  // local receipt time of a response sent at venue_ts
  void erase_done();
  void flush_stops();  // triggered stops execute against what the sweep left
  void activate_due(int64_t venue_ts);
  void poll_due(int64_t now, std::vector<SimResponse>& out);
  void resolve_mode(SimMode m);
  void join_queue(Working& w);
  // Best price of `side` with liquidity left after the overlay (kNoBid/AskPrice when none).
  int64_t effective_best(Side side) const;
  void fill_crossed(int64_t venue_ts);  // resting limits the book moved through fill as maker
  // An L2 book event into the book and the consumed overlay; returns whether the book rejected it.
  bool replay_book(const BookEvent& ev);
  // advance_feed's quiet path: every feed event up to t, nothing working (see advance_feed).
  void replay_quiet(int64_t t);
  const book::L2Book& view() const { return book(); }
  // Book events ahead of the one replayed whose levels are prefetched (a cache hint only).
  static constexpr size_t kPrefetchAhead = 32;

  SimConfig cfg_;
  QueueModel queue_;
  LatencyModel latency_;
  FeeModel fees_;
  book::L2Book book_;
  std::unique_ptr<L3QueueTracker> tracker_;  // created when the mode resolves to L3
  SimMode mode_ = SimMode::Auto;
  StreamMerge feed_;  // feed mode: the recording, merged on the exchange clock
  bool feed_attached_ = false;
  // Streamed feed mode: the records not yet replayed, and each stream's running exchange-time key
  // over everything appended; the furthest exchange time the feed was advanced to.
  std::vector<BookEvent> own_book_;
  std::vector<OrderEvent> own_orders_;
  std::vector<TradeEvent> own_trades_;
  int64_t append_key_[3] = {INT64_MIN, INT64_MIN, INT64_MIN};
  int64_t advanced_to_ = INT64_MIN;
  // The feed counted ahead of the replay (tally): records past the replay's position in each
  // stream, their running keys, the book's sequence number and the venue's mode after them.
  struct Tally {
    bool valid = false;
    bool failed = false;  // an order event would resolve the venue: only the replay can count on
    size_t book = 0, orders = 0;
    int64_t key_book = INT64_MIN, key_orders = INT64_MIN;
    int64_t last_seq = INT64_MIN;
    SimMode mode = SimMode::Auto;
    uint64_t book_rejected = 0, ignored = 0;
  };
  Tally tally_;
  ConsumedLiquidity consumed_;
  uint64_t priority_ = 0;
  std::deque<SimRequest> requests_;
  std::deque<SimResponse> responses_;
  std::vector<Working> orders_;  // working at the venue (resting limits and untriggered stops)
  mutable std::vector<int64_t> depth_;
  SimCounters counters_;
  int64_t last_receipt_ = INT64_MIN;
  bool stops_due_ = false;
  int64_t stops_ts_ = INT64_MIN;
  int64_t position_ = 0;  // our position at the venue (sum of own fills), lots
};

}  // namespace bot4::sim
