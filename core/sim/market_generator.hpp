#pragma once
// The embedded default market stream: a seeded, deterministic limit-order-book simulator.
//
// Model (see python/bot4/sim/params.py for every parameter with its unit):
// - Each side keeps K price levels counted in ticks from its own touch (distance k = 0..K-1;
//   k = 0 is the best price and is never empty, deeper levels may be). Each level is a FIFO of
//   orders (order id, lots).
// - Event times come from three clocks: a Hawkes clock (exponential kernels, sim/hawkes_clock.hpp)
//   for limit-order flow (adds and cancels at the K levels), a Hawkes clock for market orders,
//   and a Poisson clock for adds inside the spread that runs only while the spread exceeds one
//   tick.
// - Queue-reactive marks (Huang, Lehalle & Rosenbaum 2015): the limit clock picks "add at
//   (side, k)" or "cancel at (side, k)" with probability proportional to calibrated intensities
//   that depend on k and on the queue size at that level in units of a typical size (log2
//   bins); the market clock picks the side hit in proportion to an intensity that depends on
//   the touch queue size of that side.
// - An add places a calibrated number of lots at the back of the level's queue, split into
//   orders of the calibrated resting-order size. A cancel either withdraws the whole level
//   (probability clear_prob[k][bin]) or removes a calibrated number of lots (less than the
//   level holds), taken from the newest order (probability cancel_newest_prob) or from random
//   resting orders until the size is removed (partial cancels keep priority). Add and cancel
//   sizes are drawn from tables per (level, queue bin). A market order draws its size and walks
//   the opposite side's FIFO queues, one execution and one trade per resting order it meets; its
//   size is capped by the K levels on that side. The rest of a touch it hit but did not empty is
//   withdrawn at once with probability mo_withdraw_prob[bin] (quotes pulled after a trade).
// - Price moves. When a touch level empties, that side's touch jumps outward by a calibrated
//   number of ticks (the venue's quotes re-centre: levels it passes are withdrawn; the level
//   landed on keeps its queue or gets a calibrated new-touch size), and the far end of the
//   window is refilled from the calibrated occupancy and level sizes at each distance. The
//   spread is then wide and the inside clock adds a new touch inside it, usually on the other
//   side (probability inside_follow_prob), leaving a calibrated number of ticks of spread
//   (mostly none); the levels between the new and the old touch are redrawn from the
//   occupancy and level sizes (Huang-Lehalle-Rosenbaum "model III" re-initialisation), and
//   levels pushed beyond K ticks are cancelled. The book is never crossed.
// - Every change is emitted at once as ORDER_EVENTs (Add / Cancel / Execute by order id),
//   BOOK_EVENTs (new absolute level size; kLast on the last record of each atomic event) and
//   TRADE_EVENTs; the first call emits the initial book as a snapshot (kSnapshot on every
//   record, kClear on the first).
// - Timestamps: ts_exchange is the simulated clock in ns from `epoch_ns`; ts_local adds a feed
//   latency (median + a calibrated dispersion, floored), kept non-decreasing. Latency is
//   persistent over short gaps (the quantile drawn is kept with probability exp(-gap/tau)), so
//   the monotone clamp rarely binds and the marginal distribution stays the calibrated one.
// - Deterministic: the same config and seed give bit-identical output (sim/random.hpp).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/events.hpp"
#include "sim/hawkes_clock.hpp"
#include "sim/random.hpp"

namespace bot4::sim {

struct MarketModelConfig {
  InstrumentId instrument = 1;
  int64_t initial_bid = 1000;  // ticks; the ask starts one tick above
  Timestamp epoch_ns = 0;      // simulated clock origin
  uint32_t n_levels = 20;      // K: modelled ticks per side from the touch

  // Queue-size bins, in units of the level's typical size: bin 0 = empty, bin i (1..E) =
  // (edge[i-2], edge[i-1]] with edge[-1] = 0, bin E+1 = above the last edge.
  std::vector<double> size_bin_edges;
  std::vector<double> typical_size;  // K, lots
  std::vector<double> add_rate;      // K x n_bins row-major, events/s per side
  std::vector<double> cancel_rate;   // K x n_bins, events/s per side
  std::vector<double> clear_prob;    // K x n_bins: P(a cancel event removes the whole level)
  std::vector<double> market_rate;   // n_bins by the touch queue bin of the side hit, events/s
  std::vector<double> mo_withdraw_prob;  // n_bins: P(rest of a hit touch is withdrawn) by its bin
  double inside_add_rate = 0.0;      // events/s per side while the spread exceeds one tick:
                                     // a third (Poisson) clock, armed only while the spread is wide
  double inside_follow_prob = 0.5;   // P(inside add by the side opposite the last outward jump)
  std::vector<double> inside_gap_weights;  // [r]: weight of leaving r ticks of spread - 1

  std::vector<double> level_occupancy;  // K: P(level at distance k is non-empty) (k=0 ignored)
  std::vector<double> quantile_probs;   // knots shared by every size table, 0 ... 1
  std::vector<std::vector<double>> level_size;   // K tables: non-empty level sizes, lots
  std::vector<std::vector<double>> add_size;     // K x n_bins tables: lots per add event, by the
                                                 // level and the queue bin before the add
  std::vector<std::vector<double>> cancel_size;  // K x n_bins tables: lots per partial cancel
  std::vector<double> order_size;                // table: size of one resting order, lots
  std::vector<double> inside_add_size;           // table: new touch after an inside add, lots
  std::vector<double> touch_jump;                // table: outward touch jump, ticks (>= 1)
  std::vector<double> new_touch_size;            // table: new touch after an outward jump, lots
  std::vector<double> market_order_size;         // table, lots
  double cancel_newest_prob = 0.5;
  uint32_t max_orders_per_split = 64;  // lots added at once are split into at most this many orders

  HawkesParams limit_clock;   // adds + cancels at the K levels
  HawkesParams market_clock;  // market orders

  int64_t latency_median_ns = 2'000'000;
  int64_t latency_min_ns = 100'000;
  std::vector<double> latency_dispersion;  // table of (latency - median), ns
  double latency_memory_ns = 0.0;  // tau: an event reuses the previous latency quantile with
                                   // probability exp(-gap/tau) (0: independent draws)

  size_t n_bins() const { return size_bin_edges.size() + 2; }
};

// Empty string when `config` is usable, otherwise the first problem found.
std::string validate(const MarketModelConfig& config);

struct MarketStream {
  std::vector<BookEvent> book;
  std::vector<OrderEvent> orders;
  std::vector<TradeEvent> trades;
  void clear() {
    book.clear();
    orders.clear();
    trades.clear();
  }
  // Capacity for about n atomic events on top of what is there.
  void reserve_events(size_t n);
};

struct GeneratorCounters {
  uint64_t events = 0;          // atomic events (the snapshot excluded)
  uint64_t limit_adds = 0;      // adds at a level inside the window
  uint64_t inside_adds = 0;     // new touches inside the spread
  uint64_t cancels = 0;         // cancel events (each may cancel several orders)
  uint64_t level_clears = 0;    // cancel events that removed a whole level
  uint64_t order_cancels = 0;   // Cancel records
  uint64_t market_orders = 0;
  uint64_t truncated_market_orders = 0;  // market orders larger than the K levels they faced
  uint64_t withdrawals = 0;     // touches withdrawn right after a market order hit them
  uint64_t trades = 0;
  uint64_t touch_moves = 0;     // touch price changes (either side)
  uint64_t touch_jumps = 0;     // outward jumps after a touch emptied
  uint64_t refilled_levels = 0; // levels drawn from the occupancy/size distributions
  uint64_t dropped_levels = 0;  // levels withdrawn by a jump or pushed beyond K ticks
  uint64_t reseeds = 0;         // jumps of K ticks or more (the whole window redrawn)
};

class MarketGenerator {
 public:
  // Throws std::invalid_argument when validate(config) is not empty.
  MarketGenerator(MarketModelConfig config, uint64_t seed);

  // Appends to `out`: the initial book snapshot on the first call, then up to `n_events`
  // atomic events, stopping early before the first event whose time exceeds `until_ns`
  // (until_ns <= 0: no horizon). Returns the number of atomic events generated. Calls may be
  // chained: the stream continues where the previous call stopped.
  size_t generate(size_t n_events, Timestamp until_ns, MarketStream& out);

  Timestamp now() const { return now_; }
  int64_t best_bid() const { return sides_[0].touch; }
  int64_t best_ask() const { return sides_[1].touch; }
  int64_t level_qty(Side side, int64_t price) const;
  size_t order_count(Side side) const;
  const GeneratorCounters& counters() const { return counters_; }
  const MarketModelConfig& config() const { return cfg_; }

 private:
  struct Order {
    OrderId id;
    int64_t qty;
  };
  struct Level {
    std::vector<Order> orders;
    size_t head = 0;  // orders[head..] are live (FIFO front at head)
    int64_t qty = 0;
    size_t live() const { return orders.size() - head; }
  };
  struct SideBook {
    Side side = Side::Bid;
    int64_t touch = 0;
    std::vector<Level> slots;  // indexed by price & mask; only window prices are non-empty
    std::vector<uint8_t> bin;       // by distance
    std::vector<double> add_w;      // by distance
    std::vector<double> cancel_w;   // by distance
    double add_total = 0.0;
    double cancel_total = 0.0;
  };

  int64_t price_at(const SideBook& s, uint32_t k) const {
    return s.side == Side::Bid ? s.touch - static_cast<int64_t>(k) : s.touch + static_cast<int64_t>(k);
  }
  Level& level(SideBook& s, int64_t price) { return s.slots[static_cast<uint64_t>(price) & mask_]; }
  const Level& level(const SideBook& s, int64_t price) const {
    return s.slots[static_cast<uint64_t>(price) & mask_];
  }
  uint8_t bin_of(uint32_t k, int64_t qty) const;
  void refresh_weights(SideBook& s, uint32_t k);
  void refresh_all_weights(SideBook& s);
  void refresh_totals(SideBook& s);

  void begin_event();
  void end_event();
  void emit_level(const SideBook& s, int64_t price);
  void emit_order(OrderAction action, Side side, OrderId id, int64_t price, int64_t qty);
  void emit_trade(int64_t price, int64_t qty, Side aggressor);

  OrderId add_order(SideBook& s, int64_t price, int64_t qty);  // emits the Add record
  void add_lots(SideBook& s, int64_t price, int64_t total);    // split into orders, emit Adds
  void fill_level(SideBook& s, uint32_t k, int64_t total);     // add_lots + the level record
  void drop_level(SideBook& s, int64_t price);                 // cancel every order
  void shift_out(SideBook& s);                                 // touch emptied: jump outward
  void shift_in(SideBook& s, int64_t j);                       // touch moves j ticks inward
  void refill(SideBook& s, uint32_t from_k, uint32_t to_k);    // redraw distances [from, to)
  void compact(Level& lv);

  void snapshot();
  void on_limit_event();
  void on_market_event();
  void do_add(SideBook& s, uint32_t k);
  void do_cancel(SideBook& s, uint32_t k);
  void do_inside_add(SideBook& s);
  void do_market(Side aggressor);

  MarketModelConfig cfg_;
  Xoshiro256 rng_;
  HawkesClock limit_clock_;
  HawkesClock market_clock_;
  uint32_t K_;
  uint64_t mask_;
  size_t n_bins_;
  std::vector<double> bin_threshold_;  // K x n_edges, lots
  std::vector<QuantileSampler> level_size_, add_size_, cancel_size_;
  QuantileSampler inside_add_size_, market_order_size_, order_size_, latency_dispersion_;
  QuantileSampler touch_jump_, new_touch_size_;
  SideBook sides_[2];

  bool started_ = false;
  Timestamp now_ = 0;
  Timestamp next_limit_ = 0;
  Timestamp next_market_ = 0;
  Timestamp next_inside_ = INT64_MAX;  // armed only while the spread exceeds one tick
  int last_out_side_ = 0;              // side of the last outward touch jump
  Timestamp ts_local_ = 0;
  Timestamp last_local_ = INT64_MIN;
  Timestamp last_event_ = INT64_MIN;
  double latency_u_ = 0.5;  // quantile of the current latency draw
  int64_t seq_ = 0;
  int64_t trade_id_ = 0;
  OrderId next_order_id_ = 1;
  uint8_t event_flags_ = 0;  // extra flags for records of the current event (snapshot)
  MarketStream* out_ = nullptr;
  size_t book_mark_ = 0, order_mark_ = 0, trade_mark_ = 0;
  GeneratorCounters counters_;
};

}  // namespace bot4::sim
