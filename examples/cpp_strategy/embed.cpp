// bot4 embedded in a C++ program: the engine runs the Imbalance strategy over a synthetic
// stream (a random-walk book with prints) against the venue simulator, no Python involved.
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <bot4/engine/backtest.hpp>

#include "imbalance.hpp"

int main(int argc, char** argv) {
  const size_t n_steps = argc > 1 ? std::stoul(argv[1]) : 20000;
  std::mt19937_64 rng(42);
  std::vector<bot4::BookEvent> book;
  std::vector<bot4::TradeEvent> trades;
  int64_t mid = 100000, ts = 1'700'000'000'000'000'000;
  auto level = [&](int64_t price, int64_t qty, uint8_t side, uint8_t flags, int64_t seq) {
    book.push_back({ts, ts + 1000, seq, price, qty, 0, side, flags, 0});
  };
  for (size_t i = 0; i < n_steps; ++i) {
    ts += 5'000'000;  // 5 ms
    const int64_t step = static_cast<int64_t>(rng() % 3) - 1;
    const int64_t seq = static_cast<int64_t>(i) + 1;
    if (step != 0 || i == 0) {  // the touch moved: remove the old levels, write the new ones
      if (i > 0) {
        level(mid - 1, 0, 0, 0, seq);
        level(mid + 1, 0, 1, 0, seq);
      }
      mid += step;
    }
    const int64_t bid_qty = 1 + static_cast<int64_t>(rng() % 20), ask_qty = 1 + static_cast<int64_t>(rng() % 20);
    level(mid - 1, bid_qty, 0, 0, seq);
    level(mid + 1, ask_qty, 1, bot4::event_flag::kLast, seq);
    if (rng() % 4 == 0) {  // a print at the touch
      const bool buy = rng() % 2;
      trades.push_back({ts, ts + 1000, seq, buy ? mid + 1 : mid - 1, 1 + static_cast<int64_t>(rng() % 5), 0,
                        static_cast<uint8_t>(buy ? 0 : 1), 0, 0});
    }
  }

  Imbalance strategy(ImbalanceParams{0.8, 1, 10, 10});
  bot4::engine::EngineConfig cfg;  // defaults of every stage (the TOML's, declared once in the core)
  bot4::engine::BacktestInstrument inst;
  inst.spec.id = 0;
  inst.spec.tick_size = 0.1;
  inst.spec.lot_size = 0.001;
  inst.strategy = &strategy;
  bot4::engine::EngineResult result;
  std::string error;
  if (!bot4::engine::run_backtest(cfg, {inst}, book.data(), book.size(), nullptr, 0, trades.data(), trades.size(),
                                  result, error)) {
    std::fprintf(stderr, "backtest failed: %s\n", error.c_str());
    return 1;
  }
  const double pnl = result.equity.empty() ? 0.0 : result.equity.back().total_equity;
  std::printf("{\"book_events\": %zu, \"trades\": %zu, \"decisions\": %zu, \"orders\": %zu, \"fills\": %zu, "
              "\"strategy_fills\": %llu, \"targets\": %llu, \"pnl\": %.6f}\n",
              book.size(), trades.size(), result.decisions.size(), result.orders.size(), result.fills.size(),
              static_cast<unsigned long long>(strategy.fills()), static_cast<unsigned long long>(strategy.targets_sent()),
              pnl);
  return 0;
}
