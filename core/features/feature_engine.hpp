#pragma once
// FeatureEngine: per-instrument book and feature state fed by merged event streams, writing a
// feature row at each decision point into a matrix it owns.
//
// Streams are merged by availability: each stream is read in its own order, keyed by the running
// maximum of its ts_local (recordings can step back after a snapshot), the smallest key first,
// ties book < orders < trades. That key is the engine clock every time window uses, so a row at
// time t depends only on events with key <= t: stopping the input right after t cannot change it.
//
// Book-driven features update at message ends (kLast): records inside a message are
// half-applied venue updates. L3 instruments take their book from ORDER_EVENTs (book events for
// them are ignored and counted); L2 instruments from BOOK_EVENTs.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "book/l2_book.hpp"
#include "book/l3_book.hpp"
#include "common/events.hpp"
#include "features/book_snapshot.hpp"
#include "features/book_state_features.hpp"
#include "features/feature_catalog.hpp"
#include "features/feature_config.hpp"
#include "features/liquidity_features.hpp"
#include "features/order_flow_features.hpp"
#include "features/queue_features.hpp"
#include "features/technical_features.hpp"
#include "features/volatility_features.hpp"
#include "features/window_features.hpp"
#include "features/window_kernels.hpp"

namespace bot4::features {

struct InstrumentSetup {
  InstrumentId id = 0;
  double tick_size = 1.0;  // price units per tick (mid_price, notional)
  double lot_size = 1.0;   // quantity units per lot (notional)
  bool l3 = false;         // book from ORDER_EVENTs
};

struct EngineCounters {
  uint64_t book_events = 0;
  uint64_t order_events = 0;
  uint64_t trade_events = 0;
  uint64_t unknown_instrument = 0;
  uint64_t book_rejected = 0;       // rejected by the book's integrity checks
  uint64_t trades_rejected = 0;     // non-positive or out-of-range (>= 2^40) price or size
  uint64_t book_ignored_l3 = 0;     // BOOK_EVENTs of an L3 instrument
  uint64_t orders_ignored_l2 = 0;   // ORDER_EVENTs of an L2 instrument
  uint64_t messages = 0;
  uint64_t one_sided_or_crossed = 0;  // message ends without a two-sided book
  uint64_t samples = 0;
  uint64_t rows = 0;
  uint64_t time_gaps = 0;             // gaps of more than kMaxGapSteps steps of a grid
  uint64_t sample_steps_skipped = 0;  // sample-grid steps inside those gaps, not taken
  uint64_t grid_rows_skipped = 0;     // time-grid rows inside those gaps, not written
};

// Steps of a time grid taken inside one gap between events; the rest of the gap is skipped
// (counted in EngineCounters), so a time jump costs O(1) whatever its size.
inline constexpr int64_t kMaxGapSteps = 1 << 16;

class FeatureEngine {
 public:
  explicit FeatureEngine(FeatureConfig config);
  ~FeatureEngine();
  FeatureEngine(const FeatureEngine&) = delete;
  FeatureEngine& operator=(const FeatureEngine&) = delete;

  // Registers an instrument; an id can be registered once.
  bool add_instrument(const InstrumentSetup& setup, std::string& error);

  // Upper bound of the rows a run over these streams can write (used to preallocate).
  size_t row_bound(const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
                   const TradeEvent* trades, size_t n_trades) const;

  // Processes the streams (continuing the state of earlier runs) and appends rows. The row
  // storage is reserved up front from row_bound, so it never moves during a run. When
  // `row_ns` is given, the cost of each row (ns, including the windowed kernels) is appended; when
  // `event_ns` is given, the cost of each event's streaming update is appended.
  void run(const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
           const TradeEvent* trades, size_t n_trades, std::vector<int64_t>* row_ns = nullptr,
           std::vector<int64_t>* event_ns = nullptr);

  // Streaming hook (the trading engine drives the engine one event at a time). Each call does
  // exactly what run() does for that event: key = running max of the stream's ts_local, advance
  // the grids to the key, then apply the event. Call prepare_streaming() once first.
  using RowSink = std::function<void(InstrumentId, int64_t t, const double* row)>;
  void prepare_streaming() { kernels_ = &active_window_kernels(); }
  // Called at the end of every written row. With keep_rows = false rows are written into a
  // scratch buffer (the matrix, timestamps and row instruments stay empty).
  void set_row_sink(RowSink sink, bool keep_rows = true) {
    sink_ = std::move(sink);
    keep_rows_ = keep_rows;
  }
  void process(const BookEvent& ev) {
    key_book_ = std::max(key_book_, ev.ts_local);
    advance(key_book_);
    on_book(ev, key_book_);
  }
  void process(const OrderEvent& ev) {
    key_orders_ = std::max(key_orders_, ev.ts_local);
    advance(key_orders_);
    on_order(ev, key_orders_);
  }
  void process(const TradeEvent& ev) {
    key_trades_ = std::max(key_trades_, ev.ts_local);
    advance(key_trades_);
    on_trade(ev, key_trades_);
  }

  // Timer work due by engine time t, done before the event keyed t is processed, as a live
  // system's sample-grid timer would do it at the grid time itself: samples (and time-grid rows)
  // dated before t, then the windowed kernels of instruments that got a new sample. process() of
  // the event keyed t then finds the grids advanced and the kernels cached, so the row it writes
  // is bit-identical to run()'s. Cheap when nothing is due; timer_due() tells without doing it.
  bool timer_due(int64_t t) const {
    return (config_.sample_interval_ns > 0 && next_sample_ < t) ||
           (config_.decision_mode == DecisionMode::TimeGrid && next_grid_ < t);
  }
  void on_timer(int64_t t);
  // Whether processing this event can write a row (its message end in the message / N-events
  // modes); lets a caller skip timestamping the events that cannot lead to a decision.
  // `flags` of a book or order event.
  bool may_write_row(uint8_t flags) const {
    return (flags & event_flag::kLast) != 0 && (config_.decision_mode == DecisionMode::EveryBookMessage ||
                                                config_.decision_mode == DecisionMode::EveryNEvents);
  }

  // The engine's book of an instrument as of the last processed event (the L3 book's aggregated
  // view for an L3 instrument); nullptr for an unknown id. What a strategy may look at: the
  // state the events it has received describe.
  const book::L2Book* book_view(InstrumentId id) const;

  // Recompute the windowed kernels at every row (instead of once per new sample).
  void set_force_window_recompute(bool on) { force_window_ = on; }

  size_t rows() const { return timestamps_.size(); }
  const double* matrix() const { return matrix_.data(); }
  const int64_t* timestamps() const { return timestamps_.data(); }
  const uint32_t* row_instruments() const { return row_instruments_.data(); }
  void clear_rows();

  const EngineCounters& counters() const { return counters_; }
  const FeatureConfig& config() const { return config_; }
  simd::SimdLevel kernel_level() const { return kernels_->level; }
  static constexpr int columns() { return kFeatureCount; }

 private:
  struct Instrument;
  enum class StreamKind { Book, Orders, Trades };
  Instrument* lookup(InstrumentId id);
  // Common start of every event: the instrument (nullptr when the event is counted and skipped),
  // started and advanced to t.
  Instrument* begin_event(InstrumentId id, int64_t t, StreamKind kind);
  // Time grids and maturations before an event at t. The check runs inline (the trading engine
  // calls on_timer() first, so it is nearly always idle); the work is out of line.
  void advance(int64_t t) {
    const bool sample_idle = config_.sample_interval_ns <= 0 || (next_sample_ != INT64_MIN && !(next_sample_ < t));
    const bool grid_idle = config_.decision_mode != DecisionMode::TimeGrid ||
                           (next_grid_ != INT64_MIN && !(next_grid_ < t));
    if (sample_idle && grid_idle) return;
    advance_grids(t);
  }
  void advance_grids(int64_t t);
  void message_end(Instrument& inst, int64_t t);
  void take_sample(Instrument& inst, int64_t t);
  void write_row(Instrument& inst, int64_t t);
  void on_book(const BookEvent& ev, int64_t t);
  void on_order(const OrderEvent& ev, int64_t t);
  void on_trade(const TradeEvent& ev, int64_t t);

  FeatureConfig config_;
  const WindowKernels* kernels_;
  std::vector<std::unique_ptr<Instrument>> instruments_;
  Instrument* cached_ = nullptr;
  int64_t next_grid_ = INT64_MIN;    // TimeGrid decisions
  int64_t next_sample_ = INT64_MIN;  // sample grid (sample_interval_ns > 0)
  int64_t key_book_ = INT64_MIN;     // running max ts_local per stream, kept across runs
  int64_t key_orders_ = INT64_MIN;
  int64_t key_trades_ = INT64_MIN;
  bool force_window_ = false;
  std::vector<int64_t>* row_ns_ = nullptr;
  RowSink sink_;
  bool keep_rows_ = true;
  std::vector<double> scratch_row_;
  std::vector<double> matrix_;
  std::vector<int64_t> timestamps_;
  std::vector<uint32_t> row_instruments_;
  EngineCounters counters_;
};

}  // namespace bot4::features
