#include "engine/backtest.hpp"

#include <memory>

#include "engine/streaming_backtest.hpp"
#include "sim/sim_venue.hpp"

namespace bot4::engine {

namespace {
template <typename Event>
std::vector<Event> of_instrument(const Event* ev, size_t n, InstrumentId id) {
  std::vector<Event> out;
  for (size_t i = 0; i < n; ++i)
    if (ev[i].instrument == id) out.push_back(ev[i]);
  return out;
}

}  // namespace

void add_sim_counters(sim::SimCounters& a, const sim::SimCounters& b) {
  a.requests += b.requests;
  a.fills += b.fills;
  a.maker_fills += b.maker_fills;
  a.taker_fills += b.taker_fills;
  a.stops_triggered += b.stops_triggered;
  a.market_expired += b.market_expired;
  a.rejects += b.rejects;
  a.stp_expired += b.stp_expired;
  a.reduce_only_expired += b.reduce_only_expired;
  a.unknown_cancel += b.unknown_cancel;
  a.book_rejected += b.book_rejected;
  a.order_events += b.order_events;
  a.ignored_events += b.ignored_events;
  a.prints_after_level_drop += b.prints_after_level_drop;
  a.late_feed_events += b.late_feed_events;
}

bool run_backtest(const EngineConfig& cfg, const std::vector<BacktestInstrument>& instruments,
                  const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
                  const TradeEvent* trades, size_t n_trades, EngineResult& out, std::string& error) {
  if (instruments.empty()) {
    error = "a backtest needs at least one instrument";
    return false;
  }
  Engine engine(cfg);
  std::vector<std::unique_ptr<sim::SimVenue>> venues;
  // Each venue reads only its instrument's records: with one instrument, the arrays as given.
  struct Feed {
    std::vector<BookEvent> book;
    std::vector<OrderEvent> orders;
    std::vector<TradeEvent> trades;
  };
  std::vector<Feed> feeds(instruments.size());
  const bool several = instruments.size() > 1;
  for (size_t i = 0; i < instruments.size(); ++i) {
    const auto& bi = instruments[i];
    sim::SimConfig sc = bi.sim;
    sc.tick_size = bi.spec.tick_size;
    sc.lot_size = bi.spec.lot_size;
    sc.inverse = bi.spec.inverse;
    sc.contract_size = bi.spec.contract_size;
    auto venue = std::make_unique<sim::SimVenue>(sc);
    if (several) {
      Feed& f = feeds[i];
      f.book = of_instrument(book, n_book, bi.spec.id);
      f.orders = of_instrument(orders, n_orders, bi.spec.id);
      f.trades = of_instrument(trades, n_trades, bi.spec.id);
      venue->attach_feed(f.book.data(), f.book.size(), f.orders.data(), f.orders.size(), f.trades.data(),
                         f.trades.size());
    } else {
      venue->attach_feed(book, n_book, orders, n_orders, trades, n_trades);
    }
    if (!engine.add_instrument(bi.spec, bi.strategy, bi.models, venue.get(), error)) return false;
    venues.push_back(std::move(venue));
  }
  if (!engine.run(book, n_book, orders, n_orders, trades, n_trades, error)) return false;
  out = std::move(engine.result());
  out.sim = {};
  for (size_t i = 0; i < venues.size(); ++i) {
    const sim::SimCounters c = venues[i]->counters();
    add_sim_counters(out.sim, c);
    if (i < out.instruments.size()) out.instruments[i].sim = c;
  }
  return true;
}

}  // namespace bot4::engine
