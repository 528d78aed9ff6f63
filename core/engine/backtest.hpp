#pragma once
// A backtest: the engine fed a recording event by event, each instrument trading against its own
// venue simulator in feed mode (the simulator reads that instrument's recording itself, ahead of
// the strategy, on the exchange clock).
#include <string>
#include <vector>

#include "engine/engine.hpp"
#include "sim/venue_simulator.hpp"

namespace bot4::engine {

struct BacktestInstrument {
  InstrumentSpec spec;
  strategy::Strategy* strategy = nullptr;       // not owned
  std::vector<inference::Model*> models;        // not owned
  sim::SimConfig sim;                           // tick/lot sizes are taken from spec
};

// Runs the merged streams (each in receive order; records of several instruments may be mixed)
// through one engine. Results (with per-instrument summaries and the simulators' counters) in `out`.
bool run_backtest(const EngineConfig& cfg, const std::vector<BacktestInstrument>& instruments,
                  const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
                  const TradeEvent* trades, size_t n_trades, EngineResult& out, std::string& error);

}  // namespace bot4::engine
