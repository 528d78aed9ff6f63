#include "engine/streaming_backtest.hpp"

#include <algorithm>
#include <utility>

#include "common/stream_merge.hpp"
#include "sim/sim_venue.hpp"

namespace bot4::engine {

namespace {
// The engine-side buffer of one stream: records not yet processed, the consumed prefix dropped
// at each push.
template <typename Event>
void append(std::vector<Event>& buf, size_t consumed, const Event* ev, size_t n) {
  buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(consumed));
  buf.insert(buf.end(), ev, ev + n);
}

template <typename Event>
const Event* of_instrument(const Event* ev, size_t n, InstrumentId id, std::vector<Event>& scratch, size_t& out_n) {
  scratch.clear();
  for (size_t i = 0; i < n; ++i)
    if (ev[i].instrument == id) scratch.push_back(ev[i]);
  out_n = scratch.size();
  return scratch.data();
}

// Records pushed below an earlier watermark: a stream's running key under it.
template <typename Event>
uint64_t below(const Event* ev, size_t n, int64_t& key, int64_t watermark) {
  uint64_t late = 0;
  for (size_t i = 0; i < n; ++i) {
    key = std::max(key, ev[i].ts_local);
    if (key < watermark) ++late;
  }
  return late;
}
}  // namespace

struct StreamingBacktest::Impl {
  EngineConfig cfg;
  std::vector<BacktestInstrument> instruments;
  Engine engine;
  std::vector<std::unique_ptr<sim::SimVenue>> venues;
  execution::VenueTransport* transport = nullptr;
  std::vector<std::unique_ptr<execution::RemoteVenue>> remote;
  std::vector<BookEvent> book;
  std::vector<OrderEvent> orders;
  std::vector<TradeEvent> trades;
  StreamMerge merge;
  int64_t push_key[3] = {INT64_MIN, INT64_MIN, INT64_MIN};
  int64_t watermark = INT64_MIN;       // of the last push
  int64_t processed_to = INT64_MIN;    // the engine processed every key below this
  uint64_t late = 0;
  bool started = false;
  bool finished = false;
  std::vector<BookEvent> sb;
  std::vector<OrderEvent> so;
  std::vector<TradeEvent> st;

  Impl(const EngineConfig& c, std::vector<BacktestInstrument> ins)
      : cfg(c), instruments(std::move(ins)), engine(c) {}

  // The merge over the buffers, its running keys carried over from the previous one.
  void rebuild(int64_t kb, int64_t ko, int64_t kt) {
    merge = StreamMerge(book.data(), book.size(), orders.data(), orders.size(), trades.data(), trades.size(),
                        StreamMerge::Stamp::Local);
    merge.set_keys(kb, ko, kt);
  }

  // Processes the buffered events with merge key < limit (all of them: every one), through the
  // engine's per-event calls.
  void drain(int64_t limit, bool all = false) {
    int64_t key;
    for (StreamMerge::Kind kind; (kind = merge.peek(key)) != StreamMerge::kDone && (all || key < limit);) {
      if (kind == StreamMerge::kBook) engine.on_book(merge.pop_book(key));
      else if (kind == StreamMerge::kOrders) engine.on_order_event(merge.pop_order(key));
      else engine.on_trade(merge.pop_trade(key));
    }
  }
};

StreamingBacktest::StreamingBacktest(const EngineConfig& cfg, std::vector<BacktestInstrument> instruments,
                                     execution::VenueTransport* transport)
    : impl_(std::make_unique<Impl>(cfg, std::move(instruments))) {
  impl_->transport = transport;
}
StreamingBacktest::~StreamingBacktest() = default;

bool StreamingBacktest::start(std::string& error) {
  Impl& m = *impl_;
  if (m.started) return true;
  if (m.instruments.empty()) {
    error = "a backtest needs at least one instrument";
    return false;
  }
  for (const auto& bi : m.instruments) {
    if (m.transport != nullptr) {
      auto venue = std::make_unique<execution::RemoteVenue>(bi.spec.id, m.transport);
      if (!m.engine.add_instrument(bi.spec, bi.strategy, bi.models, venue.get(), error)) return false;
      m.remote.push_back(std::move(venue));
      continue;
    }
    sim::SimConfig sc = bi.sim;
    sc.tick_size = bi.spec.tick_size;
    sc.lot_size = bi.spec.lot_size;
    sc.inverse = bi.spec.inverse;
    sc.contract_size = bi.spec.contract_size;
    auto venue = std::make_unique<sim::SimVenue>(sc);
    venue->append_feed(nullptr, 0, nullptr, 0, nullptr, 0);
    if (!m.engine.add_instrument(bi.spec, bi.strategy, bi.models, venue.get(), error)) return false;
    m.venues.push_back(std::move(venue));
  }
  if (!m.engine.start(error)) return false;
  m.rebuild(INT64_MIN, INT64_MIN, INT64_MIN);
  m.started = true;
  return true;
}

bool StreamingBacktest::push(const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
                             const TradeEvent* trades, size_t n_trades, int64_t watermark, std::string& error) {
  Impl& m = *impl_;
  if (!m.started && !start(error)) return false;
  if (m.finished) {
    error = "push after finish";
    return false;
  }
  if (watermark < m.watermark) {
    error = "watermark " + std::to_string(watermark) + " is below the previous one (" + std::to_string(m.watermark) + ")";
    return false;
  }
  // An empty piece at the same watermark adds nothing: draining to that watermark now would leave
  // the venues no look-ahead (they would see later records late). The next piece drains it.
  if (n_book + n_orders + n_trades == 0 && watermark == m.watermark) return true;
  // The venues first: each reads only its instrument's records (with one instrument, all of them,
  // as run_backtest's venue does).
  const bool several = m.venues.size() > 1;
  for (size_t i = 0; i < m.venues.size(); ++i) {
    if (!several) {
      m.venues[i]->append_feed(book, n_book, orders, n_orders, trades, n_trades);
      continue;
    }
    const InstrumentId id = m.instruments[i].spec.id;
    size_t nb, no, nt;
    const BookEvent* b = of_instrument(book, n_book, id, m.sb, nb);
    const OrderEvent* o = of_instrument(orders, n_orders, id, m.so, no);
    const TradeEvent* t = of_instrument(trades, n_trades, id, m.st, nt);
    m.venues[i]->append_feed(b, nb, o, no, t, nt);
  }
  m.late += below(book, n_book, m.push_key[0], m.processed_to) + below(orders, n_orders, m.push_key[1], m.processed_to) +
            below(trades, n_trades, m.push_key[2], m.processed_to);
  const int64_t kb = m.merge.key_book(), ko = m.merge.key_orders(), kt = m.merge.key_trades();
  append(m.book, m.merge.consumed_book(), book, n_book);
  append(m.orders, m.merge.consumed_orders(), orders, n_orders);
  append(m.trades, m.merge.consumed_trades(), trades, n_trades);
  m.rebuild(kb, ko, kt);
  // One piece of look-ahead for the venues: the engine stops at the previous watermark.
  const int64_t limit = m.watermark;
  m.watermark = watermark;
  m.drain(limit);
  m.processed_to = std::max(m.processed_to, limit);
  return true;
}

void StreamingBacktest::take_records(EngineRecords& into) { impl_->engine.take_records(into); }
Engine& StreamingBacktest::engine() { return impl_->engine; }

EngineResult& StreamingBacktest::finish() {
  Impl& m = *impl_;
  EngineResult& out = m.engine.result();
  if (m.finished || !m.started) return out;
  m.finished = true;
  m.drain(INT64_MAX, true);
  m.engine.finish();
  out.sim = {};
  for (size_t i = 0; i < m.venues.size(); ++i) {
    const sim::SimCounters c = m.venues[i]->counters();
    add_sim_counters(out.sim, c);
    if (i < out.instruments.size()) out.instruments[i].sim = c;
  }
  out.counters.late_events = m.late;
  return out;
}

uint64_t StreamingBacktest::late_events() const { return impl_->late; }
size_t StreamingBacktest::buffered() const {
  const Impl& m = *impl_;
  return m.book.size() - m.merge.consumed_book() + m.orders.size() - m.merge.consumed_orders() + m.trades.size() -
         m.merge.consumed_trades();
}
int64_t StreamingBacktest::watermark() const { return impl_->watermark; }

execution::RemoteVenueCounters StreamingBacktest::remote_counters() const {
  execution::RemoteVenueCounters total;
  for (const auto& v : impl_->remote) {
    const auto& c = v->counters();
    total.requests += c.requests;
    total.exchanges += c.exchanges;
    total.skipped += c.skipped;
    total.responses += c.responses;
  }
  return total;
}

}  // namespace bot4::engine
