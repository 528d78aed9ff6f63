#pragma once
// A backtest fed the recording in pieces (a recording larger than memory, a paper session fed from
// a socket): the same engine and per-instrument venue simulators as run_backtest, each piece
// appended to buffers that keep only what is not yet processed, and the records taken out as the
// run goes. Exact: with the pieces cut at watermarks (see push), and no late_feed_events, the
// outputs equal one run_backtest over the concatenated arrays.
#include <memory>
#include <string>
#include <vector>

#include "engine/backtest.hpp"
#include "execution/remote_venue.hpp"

namespace bot4::engine {

class StreamingBacktest {
 public:
  // transport: nullptr = each instrument trades against its own venue simulator fed the pieces;
  // otherwise against a venue outside the process (execution::RemoteVenue over `transport`, not
  // owned), which gets its market data on its own.
  StreamingBacktest(const EngineConfig& cfg, std::vector<BacktestInstrument> instruments,
                    execution::VenueTransport* transport = nullptr);
  ~StreamingBacktest();
  StreamingBacktest(const StreamingBacktest&) = delete;
  StreamingBacktest& operator=(const StreamingBacktest&) = delete;

  // Adds the instruments and starts the engine; false (with `error`) on a bad instrument.
  bool start(std::string& error);
  // The next piece of each stream (in receive order, several instruments may be mixed) and the
  // piece's watermark: every record not yet pushed has a merge key (its stream's running maximum
  // of ts_local) >= watermark. The venues get the piece at once; the engine processes the events
  // before the previous piece's watermark, so the venues always hold one piece of look-ahead on
  // the exchange clock. A record pushed below an earlier watermark is still processed, in its
  // stream's order, and counted (late_events). Watermarks must not decrease.
  bool push(const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
            const TradeEvent* trades, size_t n_trades, int64_t watermark, std::string& error);
  // Control commands between pieces (see Engine::kill / flatten / pause).
  Engine& engine();
  // Records produced so far (see Engine::take_records).
  void take_records(EngineRecords& into);
  // End of input: everything left is processed and the engine finishes. The result holds the
  // records not taken yet, the totals and the venues' counters.
  EngineResult& finish();

  uint64_t late_events() const;   // records pushed below an earlier watermark
  size_t buffered() const;        // events held for the engine, not yet processed
  int64_t watermark() const;
  // The remote venues' counters summed (all zero with simulators in the process).
  execution::RemoteVenueCounters remote_counters() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Sums a venue's counters into a total.
void add_sim_counters(sim::SimCounters& total, const sim::SimCounters& c);

}  // namespace bot4::engine
