#include "engine/engine.hpp"

#include <algorithm>
#include <cmath>

#include "book/l2_book.hpp"
#include "book/l3_book.hpp"
#include "common/cycle_clock.hpp"
#include "common/saturating.hpp"
#include "common/stream_merge.hpp"
#include "execution/router.hpp"
#include "features/feature_engine.hpp"
#include "portfolio/ledger.hpp"
#include "risk/kill_switch.hpp"
#include "risk/position_sizer.hpp"

namespace bot4::engine {

const char* stage_name(int s) {
  static const char* names[] = {"features", "model", "ensemble", "strategy_risk", "orders", "sim", "tick_to_decision"};
  static_assert(sizeof(names) / sizeof(names[0]) == kStageCount);
  return s >= 0 && s < kStageCount ? names[s] : "?";
}

namespace {
struct Lane {
  InstrumentSpec spec;
  size_t slot = 0;
  strategy::Strategy* strategy = nullptr;
  std::vector<inference::Model*> models;
  std::vector<double> outputs;
  inference::Ensemble ens;  // active() only with an ensemble configured and model slots
  execution::Venue* venue = nullptr;
  std::unique_ptr<execution::Router> router;
  bool book_only = false;
  // Book-only lanes keep their own book (no feature engine); feature lanes read the feature
  // engine's, built from the events received so far (the venue's own book runs ahead on the
  // exchange clock and is not ours to look at).
  std::unique_ptr<book::L2Book> l2;
  std::unique_ptr<book::L3Book> l3;
  const book::L2Book* view = nullptr;
  std::vector<float> row_f;
  // Window models read the last L feature rows, oldest first, flattened (bot4.research.windows):
  // the lane keeps the last `window` rows in a ring stored twice over ([2 * window][F], row r at
  // slots r % window and r % window + window), so every window is one contiguous span.
  std::vector<size_t> model_rows;  // feature rows each model slot reads (1: the current row)
  size_t window = 1;               // the most rows any slot reads
  std::vector<float> ring;
  uint64_t rows_seen = 0;          // rows pushed since the start
  size_t rows_held = 0;            // rows in the ring (<= window)
  int64_t row_t = 0;
  double row_vol_bp = 0.0;  // ewma_vol of the row, bp per return sample
  double row_vpin = 0.0;
  bool pending = false;     // a row arrived and awaits its decision
  bool paused = false;      // control plane, this instrument only: strategy not called
  bool halted = false;      // control plane: flattened, strategy never called again
  uint64_t events = 0;
  uint64_t decisions = 0;
  size_t last_decision_fills = 0;  // index into all fills ever recorded (taken ones included)
  // Taken out by take_records: fills after the last decision (count, latest time), New orders.
  uint64_t taken_late_fills = 0;
  int64_t taken_late_fill_ts = INT64_MIN;
  uint64_t taken_new_orders = 0;
};

// Feature rows a model reads: its input width is L whole feature rows (L = 1: the current row).
bool rows_read(const inference::Model* model, size_t& rows, std::string& error) {
  constexpr size_t kMaxWindowRows = 4096;
  const size_t f = static_cast<size_t>(features::FeatureEngine::columns());
  if (model == nullptr) {
    error = "no model given";
    return false;
  }
  const size_t n = model->n_features();
  if (n == 0 || n % f != 0 || n / f > kMaxWindowRows) {
    error = "model input width " + std::to_string(n) + " does not match the feature engine's columns (" +
            std::to_string(f) + ", or a window of L whole feature rows, L * " + std::to_string(f) + " with L <= " +
            std::to_string(kMaxWindowRows) + ")";
    return false;
  }
  rows = n / f;
  return true;
}

// Grows the ring to `rows` rows (never shrinks), keeping the rows it holds.
void grow_window(Lane& l, size_t rows) {
  if (rows <= l.window && !l.ring.empty()) return;
  const size_t f = l.row_f.size();
  const size_t w = std::max(rows, l.window);
  std::vector<float> ring(2 * w * f);
  for (size_t k = 0; k < l.rows_held; ++k) {
    const uint64_t r = l.rows_seen - l.rows_held + k;
    const float* src = l.ring.data() + (r % l.window) * f;
    std::copy(src, src + f, ring.data() + (r % w) * f);
    std::copy(src, src + f, ring.data() + (r % w + w) * f);
  }
  l.ring = std::move(ring);
  l.window = w;
}

void push_row(Lane& l) {
  const size_t f = l.row_f.size();
  const size_t s = l.rows_seen % l.window;
  std::copy(l.row_f.begin(), l.row_f.end(), l.ring.begin() + static_cast<std::ptrdiff_t>(s * f));
  std::copy(l.row_f.begin(), l.row_f.end(), l.ring.begin() + static_cast<std::ptrdiff_t>((s + l.window) * f));
  ++l.rows_seen;
  l.rows_held = std::min(l.rows_held + 1, l.window);
}

// The window of the last `rows` rows (oldest first), or nullptr while fewer have arrived.
const float* window_of(const Lane& l, size_t rows) {
  if (l.rows_held < rows) return nullptr;
  const size_t first = static_cast<size_t>((l.rows_seen - rows) % l.window);
  return l.ring.data() + first * l.row_f.size();
}
}  // namespace

struct Engine::Impl {
  EngineConfig cfg;
  features::FeatureEngine fe;
  risk::PositionSizer sizer;
  risk::KillSwitch kill;
  portfolio::Ledger ledger;
  EngineResult out;
  std::vector<Lane> lanes;
  std::vector<size_t> pending;  // lanes with a row to decide on, in arrival order
  bool features_used = false;
  bool started = false;
  bool finished = false;
  int64_t first_ts = INT64_MIN;
  int64_t key_book = INT64_MIN, key_orders = INT64_MIN, key_trades = INT64_MIN;
  int64_t now = INT64_MIN;
  double peak = 0.0;
  size_t fills_taken = 0;  // records moved out by take_records
  bool paused = false;     // control plane: strategies not called
  CycleCalibration cal;

  explicit Impl(const EngineConfig& c) : cfg(c), fe(c.features), sizer(c.sizing), kill(c.kill_switch) {}

  Lane* lane_of(InstrumentId id) {
    for (auto& l : lanes)
      if (l.spec.id == id) return &l;
    return nullptr;
  }
  const Lane* lane_of(InstrumentId id) const {
    for (const auto& l : lanes)
      if (l.spec.id == id) return &l;
    return nullptr;
  }

  // The sizer's sigma per period from the row's per-sample volatility: sigma_period =
  // sigma_sample * sqrt(samples per period), samples per period from the sample grid (or the
  // observed sample rate without one); NaN while the features have no volatility yet.
  double period_vol(const Lane& l, int64_t t) const {
    if (!cfg.engine.vol_from_features) return cfg.engine.current_vol;
    if (l.book_only) return std::nan("");
    constexpr double kYearNs = 365.25 * 86400.0 * 1e9;
    const double sigma_sample = l.row_vol_bp / cfg.features.return_scale;
    if (!(sigma_sample > 0.0) || !std::isfinite(sigma_sample)) return std::nan("");
    double samples_per_year;
    if (cfg.features.sample_interval_ns > 0) {
      samples_per_year = kYearNs / static_cast<double>(cfg.features.sample_interval_ns);
    } else {
      const double samples = static_cast<double>(fe.counters().samples);
      const double elapsed = static_cast<double>(t - first_ts);
      if (samples < 2.0 || elapsed <= 0.0) return std::nan("");
      samples_per_year = samples / elapsed * kYearNs;
    }
    return sigma_sample * std::sqrt(samples_per_year / cfg.sizing.periods_per_year);
  }

  static int64_t raw_mid(const book::L2Book& b) {
    if (b.best_bid() == kNoBidPrice || b.best_ask() == kNoAskPrice) return 0;
    return mid_of(b.best_bid(), b.best_ask());
  }

  void poll_all(int64_t t) {
    for (auto& l : lanes) l.router->poll_venue(t);
  }

  // One decision of lane `l` at local time t, with the stage stamps (counter ticks) t0 (event in,
  // before the venue), t1 (before features), t2 (row written).
  void decide(Lane& l, int64_t t, uint64_t t0, uint64_t t1, uint64_t t2) {
    ++out.counters.decisions;
    ++l.decisions;
    for (size_t i = 0; i < l.models.size(); ++i) {
      if (l.model_rows[i] == 1) {
        l.outputs[i] = l.models[i]->predict_one(l.row_f.data());
      } else {
        // A window model has no prediction until L rows have arrived (NaN: no decision).
        const float* w = window_of(l, l.model_rows[i]);
        l.outputs[i] = w != nullptr ? l.models[i]->predict_one(w) : std::nan("");
      }
    }
    for (size_t i = l.ens.active() ? 0 : 1; i < l.outputs.size(); ++i)
      out.scores.push_back(ScoreRec{t, l.outputs[i], l.spec.id, static_cast<uint32_t>(i)});
    double p = l.outputs.empty() ? std::nan("") : l.outputs[0];
    if (!l.models.empty() && !std::isfinite(p)) ++out.counters.nan_predictions;
    const uint64_t t3 = cycle_now();

    const book::L2Book& b = *l.view;
    // Ensemble stage: the slots' outputs combined, the breaker's size scale (timed apart; 0 ns
    // without an ensemble, whose decisions stay exactly as before).
    uint64_t t3e = t3;
    double size_scale = 1.0;
    bool ensemble = false;
    if (l.ens.active()) {
      ensemble = true;
      const inference::EnsembleOutput eo = l.ens.combine(l.outputs.data(), t, static_cast<double>(raw_mid(b)), l.row_vol_bp);
      p = eo.p;
      size_scale = eo.scale;
      auto& c = out.counters;
      switch (eo.state) {
        case inference::BreakerState::Calm: ++c.ensemble_calm; break;
        case inference::BreakerState::Scaled: ++c.ensemble_scaled; break;
        case inference::BreakerState::Fallback: ++c.ensemble_fallback; break;
        case inference::BreakerState::Undefined: ++c.ensemble_undefined; break;
      }
      if (eo.refresh == inference::Refresh::Normal) ++c.ensemble_refreshes;
      else if (eo.refresh == inference::Refresh::Fast) ++c.ensemble_fast_refreshes;
      t3e = cycle_now();
    }
    strategy::BookTop top{b.best_bid(), b.best_bid_qty(), b.best_ask(), b.best_ask_qty()};
    // Kill switch on total equity; once tripped, every instrument flattens for good.
    const double eq = cfg.engine.equity + ledger.total_equity(l.slot, top.mid());
    const bool was = kill.tripped();
    kill.on_equity(eq);
    if (kill.tripped() && !was) ++out.counters.kill_switch_trips;
    if (kill.take_cancel_all())
      for (auto& other : lanes) other.router->start_flatten(t);
    if (!top.two_sided()) ++out.counters.no_book;

    execution::DecisionInputs in;
    in.now = t;
    in.top = top;
    in.equity = eq;
    in.period_vol = period_vol(l, t);
    in.crisis = cfg.engine.crisis_vpin > 0.0 && l.row_vpin >= cfg.engine.crisis_vpin;
    in.size_scale = size_scale;
    l.router->begin_decision(in);

    const auto& lb = ledger.book(l.slot);
    strategy::DecisionContext ctx;
    ctx.ts = t;
    ctx.instrument = l.spec.id;
    ctx.slot = static_cast<uint32_t>(l.slot);
    ctx.tick_size = l.spec.tick_size;
    ctx.lot_size = l.spec.lot_size;
    ctx.top = top;
    ctx.book = l.view;
    if (!l.book_only) {
      ctx.features = l.row_f.data();
      ctx.n_features = l.row_f.size();
    }
    ctx.models = l.outputs.data();
    ctx.n_models = l.outputs.size();
    if (ensemble) {
      ctx.has_ensemble = true;
      ctx.ensemble = p;
      ctx.size_scale = size_scale;
    }
    ctx.position = lb.position;
    ctx.average_entry = lb.average_entry();
    ctx.realised = lb.realised_quote();
    ctx.unrealised = lb.unrealised_at(top.mid());
    ctx.fees = lb.fees_quote();
    ctx.equity = eq;
    ctx.flattening = l.router->flattening();
    ctx.headroom = l.router->headroom();
    ctx.exec = l.router.get();
    if (!paused && !l.paused && !l.halted) l.strategy->on_decision(ctx);  // (the flatten machine still runs)
    const strategy::DecisionAction action = l.router->end_decision();
    const uint64_t t4 = cycle_now();
    l.router->forward_events(t);
    const uint64_t t5 = cycle_now();

    auto& lat = out.latency_ns;
    lat[kSim].push_back(static_cast<int64_t>(t1 - t0));
    lat[kFeatures].push_back(static_cast<int64_t>(t2 - t1));
    lat[kModel].push_back(static_cast<int64_t>(t3 - t2));
    lat[kEnsemble].push_back(static_cast<int64_t>(t3e - t3));
    lat[kStrategyRisk].push_back(static_cast<int64_t>(t4 - t3e));
    lat[kOrders].push_back(static_cast<int64_t>(t5 - t4));
    lat[kTickToDecision].push_back(static_cast<int64_t>(t5 - t1));
    record(l, t, p, ctx.signal, static_cast<int8_t>(action), raw_mid(b));
    // The requests have left: the venues do their part (a flatten can reach every lane's).
    for (auto& other : lanes) other.venue->flush();
  }

  void record(Lane& l, int64_t t, double p, int8_t signal, int8_t action, int64_t mid) {
    ledger.mark(l.slot, mid);
    const auto& lb = ledger.book(l.slot);
    out.decisions.push_back(DecisionRec{t, p, signal, action, 0, l.spec.id, lb.position});
    const double real = lb.realised_quote();
    const double unreal = lb.unrealised_at(mid);
    const double eq = real + unreal - lb.fees_quote();
    const double total = ledger.total_equity();
    out.equity.push_back(EquityRec{t, lb.position, real, unreal, lb.fees_quote(), eq, total, l.spec.id, 0});
    peak = std::max(peak, total);
    out.max_drawdown = std::max(out.max_drawdown, peak - total);
    l.last_decision_fills = fills_taken + out.fills.size();
    l.taken_late_fills = 0;
    l.taken_late_fill_ts = INT64_MIN;
  }

  void timer(int64_t t) {
    if (!features_used || !fe.timer_due(t)) return;
    // Timer work due before this event (grid samples, their window kernels, time-grid rows): a
    // live system does it when the timer fires, before the tick arrives, so it is timed apart.
    pending.clear();
    const uint64_t a = cycle_now();
    fe.on_timer(t);
    const uint64_t b = cycle_now();
    out.timer_ns.push_back(static_cast<int64_t>(b - a));
    for (size_t i : pending) {  // time-grid rows: decide at their grid time
      Lane& l = lanes[i];
      l.pending = false;
      poll_all(l.row_t);
      decide(l, l.row_t, a, a, a);
    }
    pending.clear();
  }

  // The common path of a market event of lane `l` (nullptr: an instrument we do not trade).
  template <typename Event, typename Apply>
  void market_event(Lane* l, const Event& ev, int64_t t, bool may_decide, Apply&& apply) {
    if (first_ts == INT64_MIN) first_ts = t;
    now = t;
    timer(t);
    // Only events that can end in a decision are timestamped (a message end): the clock read is a
    // large part of the per-event cost otherwise.
    const uint64_t t0 = may_decide ? cycle_now() : 0;
    // The venue runs ahead on the exchange clock (it has seen everything up to the exchange time
    // of our local now); then the responses due by now reach us.
    if (l != nullptr) l->venue->observe(ev.ts_exchange, ev.ts_local);
    poll_all(t);
    const uint64_t t1 = may_decide ? cycle_now() : 0;
    pending.clear();
    apply();
    if (l == nullptr) return;
    ++l->events;
    if (!pending.empty()) {
      const uint64_t t2 = cycle_now();
      for (size_t i : pending) {
        lanes[i].pending = false;
        decide(lanes[i], t, may_decide ? t0 : t2, may_decide ? t1 : t2, t2);
      }
      pending.clear();
    }
  }

  bool venues_idle() const {
    for (const auto& l : lanes)
      if (!l.venue->idle()) return false;
    return true;
  }

  // Cache hint: the book level a few events ahead (a lane's book writes scattered levels).
  void prefetch_ahead(const StreamMerge& merge) const {
    if (const BookEvent* ahead = merge.book_ahead(8))
      if (const Lane* la = lane_of(ahead->instrument); la != nullptr && la->view != nullptr) la->view->prefetch(*ahead);
  }

  // Book events of book-only L2 lanes up to (not including) a message end, while no feature
  // engine runs and every venue is idle: on_book's path without its per-event venue poll, which
  // for an idle venue only records how far it has to replay (Venue::idle); the one poll after the
  // run stands for them. Nothing can make a venue busy meanwhile (requests are sent only at
  // decisions, and these lanes decide at message ends). Returns whether it popped any event.
  bool book_run(StreamMerge& merge) {
    if (features_used) return false;
    if (!venues_idle()) return false;
    int64_t key;
    size_t n = 0;
    while (merge.peek(key) == StreamMerge::kBook) {
      const BookEvent& ev = merge.book();
      if (ev.flags & event_flag::kLast) break;
      Lane* l = lane_of(ev.instrument);
      if (l == nullptr || !l->book_only || l->spec.l3) break;
      prefetch_ahead(merge);
      merge.pop_book(key);
      key_book = std::max(key_book, ev.ts_local);
      if (first_ts == INT64_MIN) first_ts = key_book;
      now = key_book;
      l->venue->observe(ev.ts_exchange, ev.ts_local);
      l->l2->apply(ev);
      ++l->events;
      ++out.counters.book_events;
      ++n;
    }
    if (n == 0) return false;
    poll_all(now);
    return true;
  }

  // Book events up to (not including) a message end, while a feature engine runs and every venue
  // is idle: market_event's path without its per-event venue poll, as book_run does for book-only
  // lanes (Venue::idle: the one poll after the run stands for them). An event that can write a
  // row, or one with timer work due before it (a time-grid row can decide), ends the run and takes
  // the full path. Returns whether it popped any event.
  bool feature_run(StreamMerge& merge) {
    if (!features_used) return false;
    if (!venues_idle()) return false;
    int64_t key;
    size_t n = 0;
    while (merge.peek(key) == StreamMerge::kBook) {
      const BookEvent& ev = merge.book();
      if (fe.may_write_row(ev.flags)) break;
      Lane* l = lane_of(ev.instrument);
      if (l != nullptr && l->book_only) break;
      const int64_t t = std::max(key_book, ev.ts_local);
      if (fe.timer_due(t)) break;
      prefetch_ahead(merge);
      merge.pop_book(key);
      key_book = t;
      if (first_ts == INT64_MIN) first_ts = t;
      now = t;
      if (l != nullptr) l->venue->observe(ev.ts_exchange, ev.ts_local);
      fe.process(ev);
      ++out.counters.book_events;
      ++n;
      if (l == nullptr) continue;
      ++l->events;
      if (!pending.empty()) {  // not expected before a message end; decided as market_event would
        poll_all(t);
        const uint64_t t2 = cycle_now();
        for (size_t i : pending) {
          lanes[i].pending = false;
          decide(lanes[i], t, t2, t2, t2);
        }
        pending.clear();
        return true;
      }
    }
    if (n == 0) return false;
    poll_all(now);
    return true;
  }

  void queue_decision(Lane& l) {
    if (!l.pending) {
      l.pending = true;
      pending.push_back(static_cast<size_t>(&l - lanes.data()));
    }
  }
};

Engine::Engine(const EngineConfig& cfg) : impl_(std::make_unique<Impl>(cfg)) {}
Engine::~Engine() = default;
EngineResult& Engine::result() { return impl_->out; }
const EngineConfig& Engine::config() const { return impl_->cfg; }
int64_t Engine::now() const { return impl_->now; }
size_t Engine::instruments() const { return impl_->lanes.size(); }

bool Engine::add_instrument(const InstrumentSpec& spec, strategy::Strategy* strategy,
                            std::vector<inference::Model*> models, execution::Venue* venue, std::string& error) {
  Impl& m = *impl_;
  if (m.started) {
    error = "add_instrument after start()";
    return false;
  }
  if (strategy == nullptr || venue == nullptr) {
    error = "an instrument needs a strategy and a venue";
    return false;
  }
  if (m.lane_of(spec.id) != nullptr) {
    error = "instrument " + std::to_string(spec.id) + " added twice";
    return false;
  }
  if (!(spec.tick_size > 0.0) || !(spec.lot_size > 0.0)) {
    error = "instrument " + std::to_string(spec.id) + ": tick_size and lot_size must be > 0";
    return false;
  }
  if (!(spec.contract_size > 0.0) || !std::isfinite(spec.contract_size)) {
    error = "instrument " + std::to_string(spec.id) + ": contract_size must be a finite number > 0";
    return false;
  }
  if (spec.inverse && !execution::inverse_notional_ticks(spec.contract_size, spec.tick_size)) {
    error = "instrument " + std::to_string(spec.id) +
            ": an inverse instrument needs a finite contract_size > 0 that is a whole number of ticks";
    return false;
  }
  std::vector<size_t> model_rows;
  for (const auto* model : models) {
    size_t rows = 0;
    if (!rows_read(model, rows, error)) return false;
    model_rows.push_back(rows);
  }
  Lane l;
  l.spec = spec;
  l.strategy = strategy;
  l.models = std::move(models);
  l.model_rows = std::move(model_rows);
  for (size_t rows : l.model_rows) l.window = std::max(l.window, rows);
  l.outputs.assign(l.models.size(), std::nan(""));
  if (!l.models.empty() && !l.ens.configure(m.cfg.ensemble, l.models.size(), error)) {
    error = "instrument " + std::to_string(spec.id) + ": " + error;
    return false;
  }
  l.venue = venue;
  l.book_only = strategy->book_only();
  if (l.book_only && !l.models.empty()) {
    error = std::string("strategy ") + strategy->name() + " reads only the book: give it no model";
    return false;
  }
  l.slot = m.ledger.add_instrument(spec.id, spec.tick_size, spec.lot_size, spec.inverse, spec.contract_size);
  m.lanes.push_back(std::move(l));
  return true;
}

bool Engine::start(std::string& error) {
  Impl& m = *impl_;
  if (m.started) {
    error = "start() called twice";
    return false;
  }
  if (m.lanes.empty()) {
    error = "no instrument added";
    return false;
  }
  for (auto& l : m.lanes) {
    if (l.book_only) {
      if (l.spec.l3) {
        l.l3 = std::make_unique<book::L3Book>();
        l.view = &l.l3->l2();
      } else {
        l.l2 = std::make_unique<book::L2Book>();
        l.view = l.l2.get();
      }
      continue;
    }
    features::InstrumentSetup setup;
    setup.id = l.spec.id;
    setup.tick_size = l.spec.tick_size;
    setup.lot_size = l.spec.lot_size;
    setup.l3 = l.spec.l3;
    if (!m.fe.add_instrument(setup, error)) return false;
    l.view = m.fe.book_view(setup.id);
    l.row_f.resize(features::FeatureEngine::columns());
    if (l.window > 1) grow_window(l, l.window);
    m.features_used = true;
  }
  execution::RouterSetup rs;
  rs.orders.stp = static_cast<orders::StpPolicy>(m.cfg.engine.stp);
  rs.orders.confirm_cancels = true;
  rs.pre_trade = m.cfg.pre_trade;
  for (auto& l : m.lanes) {
    rs.instrument = l.spec.id;
    rs.ledger_slot = l.slot;
    rs.tick_size = l.spec.tick_size;
    rs.lot_size = l.spec.lot_size;
    rs.inverse = l.spec.inverse;
    rs.contract_size = l.spec.contract_size;
    l.router = std::make_unique<execution::Router>(rs, l.venue, &m.kill, &m.sizer, &m.ledger, &m.out);
    l.router->set_strategy(l.strategy);
    l.router->set_book(l.view);
  }
  if (m.features_used) {
    m.fe.prepare_streaming();
    m.fe.set_row_sink(
        [&m](InstrumentId id, int64_t t, const double* row) {
          Lane* l = m.lane_of(id);
          if (l == nullptr) return;
          for (size_t i = 0; i < l->row_f.size(); ++i) l->row_f[i] = static_cast<float>(row[i]);
          if (!l->ring.empty()) push_row(*l);
          l->row_t = t;
          l->row_vol_bp = row[features::f_ewma_vol];
          l->row_vpin = row[features::f_vpin];
          m.queue_decision(*l);
        },
        false);
  }
  m.cal.start();
  m.started = true;
  return true;
}

void Engine::on_book(const BookEvent& ev) {
  Impl& m = *impl_;
  m.key_book = std::max(m.key_book, ev.ts_local);
  Lane* l = m.lane_of(ev.instrument);
  const bool may = l != nullptr && (l->book_only ? (ev.flags & event_flag::kLast) != 0 && !l->spec.l3
                                                 : m.fe.may_write_row(ev.flags));
  m.market_event(l, ev, m.key_book, may, [&] {
    if (l != nullptr && l->book_only) {
      if (!l->spec.l3) {
        l->l2->apply(ev);
        if (ev.flags & event_flag::kLast) m.queue_decision(*l);
      }
    } else if (m.features_used) {
      m.fe.process(ev);
    }
    ++m.out.counters.book_events;
  });
}

void Engine::on_order_event(const OrderEvent& ev) {
  Impl& m = *impl_;
  m.key_orders = std::max(m.key_orders, ev.ts_local);
  Lane* l = m.lane_of(ev.instrument);
  const bool may = l != nullptr && (l->book_only ? (ev.flags & event_flag::kLast) != 0 && l->spec.l3
                                                 : m.fe.may_write_row(ev.flags));
  m.market_event(l, ev, m.key_orders, may, [&] {
    if (l != nullptr && l->book_only) {
      if (l->spec.l3) {
        l->l3->apply(ev);
        if (ev.flags & event_flag::kLast) m.queue_decision(*l);
      }
    } else if (m.features_used) {
      m.fe.process(ev);
    }
    ++m.out.counters.order_events;
  });
}

void Engine::on_trade(const TradeEvent& ev) {
  Impl& m = *impl_;
  m.key_trades = std::max(m.key_trades, ev.ts_local);
  Lane* l = m.lane_of(ev.instrument);
  m.market_event(l, ev, m.key_trades, false, [&] {
    if ((l == nullptr || !l->book_only) && m.features_used) m.fe.process(ev);
    ++m.out.counters.trade_events;
  });
}

void Engine::on_timer(int64_t t) {
  Impl& m = *impl_;
  m.now = std::max(m.now, t);
  m.timer(t);
  m.poll_all(t);
}

void Engine::on_venue_response(InstrumentId instrument, const execution::VenueResponse& r, int64_t t) {
  Impl& m = *impl_;
  if (Lane* l = m.lane_of(instrument)) l->router->on_response(r, t);
}

void Engine::finish() {
  Impl& m = *impl_;
  if (m.finished) return;
  m.finished = true;
  m.cal.finish();
  // Stamps were counter ticks: every latency record to ns with the run's calibration.
  for (auto& v : m.out.latency_ns)
    for (auto& x : v) x = m.cal.ns(static_cast<uint64_t>(x));
  for (auto& x : m.out.timer_ns) x = m.cal.ns(static_cast<uint64_t>(x));
  // Responses in flight at the end are delivered at their time, and fills among them are booked:
  // one last equity record per instrument that had fills after its last decision.
  m.poll_all(INT64_MAX);
  for (auto& l : m.lanes) {
    int64_t last_ts = l.taken_late_fill_ts;
    m.out.counters.end_of_run_fills += l.taken_late_fills;
    for (size_t i = std::max(l.last_decision_fills, m.fills_taken) - m.fills_taken; i < m.out.fills.size(); ++i)
      if (m.out.fills[i].instrument == l.spec.id) {
        last_ts = std::max(last_ts, m.out.fills[i].ts);
        ++m.out.counters.end_of_run_fills;
      }
    if (last_ts == INT64_MIN) continue;
    const auto& lb = m.ledger.book(l.slot);
    const double real = lb.realised_quote();
    const double unreal = lb.unrealised_at(lb.mark);
    const double total = m.ledger.total_equity();
    m.out.equity.push_back(EquityRec{last_ts, lb.position, real, unreal, lb.fees_quote(), real + unreal - lb.fees_quote(), total,
                                     l.spec.id, 0});
    m.peak = std::max(m.peak, total);
    m.out.max_drawdown = std::max(m.out.max_drawdown, m.peak - total);
  }
  for (auto& l : m.lanes) {
    const auto& checks = l.router->checks();
    for (size_t i = 0; i < risk::kRejectReasonCount && i < m.out.rejections.size(); ++i)
      m.out.rejections[i] += checks.count(static_cast<risk::RejectReason>(i));
    const auto& oc = l.router->order_manager().state_machine().counters();
    for (size_t i = 0; i < oc.size() && i < m.out.order_reasons.size(); ++i) m.out.order_reasons[i] += oc[i];
  }
  m.out.instruments.clear();
  for (auto& l : m.lanes) {
    const auto& lb = m.ledger.book(l.slot);
    InstrumentSummary s;
    s.instrument = l.spec.id;
    s.events = l.events;
    s.decisions = l.decisions;
    s.orders = l.taken_new_orders;
    for (const auto& o : m.out.orders)
      if (o.instrument == l.spec.id && o.kind == static_cast<uint8_t>(orders::OrderEventKind::New)) ++s.orders;
    s.fills = lb.fills;
    s.position = lb.position;
    s.realised = lb.realised_quote();
    s.unrealised = lb.unrealised_at(lb.mark);
    s.fees = lb.fees_quote();
    s.pnl = lb.equity_at(lb.mark);
    m.out.instruments.push_back(s);
  }
  m.out.kill_reason = static_cast<int>(m.kill.reason());
}

void Engine::kill() {
  Impl& m = *impl_;
  ++m.out.counters.commands;
  if (!m.kill.tripped()) {
    m.kill.trip(risk::TripReason::Manual);
    ++m.out.counters.kill_switch_trips;
  }
  // At once, not at the next decision: cancel everything and close (the router's flatten machine).
  if (m.now != INT64_MIN && m.kill.take_cancel_all())
    for (auto& l : m.lanes) l.router->start_flatten(m.now);
}

void Engine::flatten() {
  Impl& m = *impl_;
  ++m.out.counters.commands;
  if (m.now == INT64_MIN) return;
  for (auto& l : m.lanes)
    if (!l.router->flattening()) l.router->start_flatten(m.now);
}

void Engine::pause(bool on) {
  Impl& m = *impl_;
  ++m.out.counters.commands;
  m.paused = on;
}

bool Engine::paused() const { return impl_->paused; }

bool Engine::halt(InstrumentId instrument) {
  Impl& m = *impl_;
  Lane* l = m.lane_of(instrument);
  if (l == nullptr) return false;
  ++m.out.counters.commands;
  l->halted = true;
  if (m.now != INT64_MIN && !l->router->flattening()) l->router->start_flatten(m.now);
  return true;
}

bool Engine::flatten(InstrumentId instrument) {
  Impl& m = *impl_;
  Lane* l = m.lane_of(instrument);
  if (l == nullptr) return false;
  ++m.out.counters.commands;
  if (m.now != INT64_MIN && !l->router->flattening()) l->router->start_flatten(m.now);
  return true;
}

bool Engine::pause(InstrumentId instrument, bool on) {
  Impl& m = *impl_;
  Lane* l = m.lane_of(instrument);
  if (l == nullptr) return false;
  ++m.out.counters.commands;
  l->paused = on;
  return true;
}

bool Engine::paused(InstrumentId instrument) const {
  const Lane* l = impl_->lane_of(instrument);
  return l != nullptr && l->paused;
}

bool Engine::halted(InstrumentId instrument) const {
  const Lane* l = impl_->lane_of(instrument);
  return l != nullptr && l->halted;
}

bool Engine::set_config(const EngineConfig& next, std::string& error) {
  Impl& m = *impl_;
  if (next.engine.stp != m.cfg.engine.stp) {
    error = "engine.stp cannot change in a running engine (the order managers are built with it)";
    return false;
  }
  ++m.out.counters.commands;
  m.cfg.engine = next.engine;
  m.cfg.sizing = next.sizing;
  m.sizer.set_config(next.sizing);
  m.cfg.kill_switch = next.kill_switch;
  m.kill.set_config(next.kill_switch);
  m.cfg.pre_trade = next.pre_trade;
  for (auto& l : m.lanes)
    if (l.router) l.router->set_pre_trade(next.pre_trade);
  return true;
}

bool Engine::swap_model(size_t slot, inference::Model* model, std::string& error) {
  Impl& m = *impl_;
  size_t rows = 0;
  if (!rows_read(model, rows, error)) return false;
  size_t reading = 0;
  for (const auto& l : m.lanes) {
    if (l.book_only) continue;
    ++reading;
    if (l.ens.active() && slot == l.models.size()) {
      error = "an ensemble combines " + std::to_string(l.models.size()) + " model slots: a slot may be replaced, not appended";
      return false;
    }
    if (slot > l.models.size()) {
      error = "model slot " + std::to_string(slot) + " is beyond the next free slot (" +
              std::to_string(l.models.size()) + ")";
      return false;
    }
  }
  if (reading == 0) {
    error = "no instrument's strategy reads a model (book-only strategies)";
    return false;
  }
  ++m.out.counters.commands;
  for (auto& l : m.lanes) {
    if (l.book_only) continue;
    if (slot == l.models.size()) {
      l.models.push_back(model);
      l.model_rows.push_back(rows);
      l.outputs.push_back(std::nan(""));
    } else {
      l.models[slot] = model;
      l.model_rows[slot] = rows;
    }
    // A longer window than the lane keeps: the ring grows now, keeping the rows it has; the model
    // predicts once it has L of them.
    if (rows > 1 && (rows > l.window || l.ring.empty())) grow_window(l, rows);
  }
  return true;
}

size_t Engine::refresh_ensemble_weights() {
  Impl& m = *impl_;
  ++m.out.counters.commands;
  size_t n = 0;
  for (auto& l : m.lanes)
    if (l.ens.refresh()) {
      ++n;
      ++m.out.counters.ensemble_flag_refreshes;
    }
  return n;
}

void Engine::take_records(EngineRecords& into) {
  Impl& m = *impl_;
  EngineResult& o = m.out;
  for (auto& l : m.lanes) {
    for (size_t i = std::max(l.last_decision_fills, m.fills_taken) - m.fills_taken; i < o.fills.size(); ++i)
      if (o.fills[i].instrument == l.spec.id) {
        l.taken_late_fill_ts = std::max(l.taken_late_fill_ts, o.fills[i].ts);
        ++l.taken_late_fills;
      }
    for (const auto& r : o.orders)
      if (r.instrument == l.spec.id && r.kind == static_cast<uint8_t>(orders::OrderEventKind::New)) ++l.taken_new_orders;
  }
  m.fills_taken += o.fills.size();
  into.decisions = std::move(o.decisions);
  into.scores = std::move(o.scores);
  into.orders = std::move(o.orders);
  into.fills = std::move(o.fills);
  into.equity = std::move(o.equity);
  // Stage stamps are counter ticks until the end of the run: these with the ratio measured so far.
  m.cal.finish(0);
  for (size_t k = 0; k < o.latency_ns.size(); ++k) {
    into.latency_ns[k] = std::move(o.latency_ns[k]);
    for (auto& x : into.latency_ns[k]) x = m.cal.ns(static_cast<uint64_t>(x));
    o.latency_ns[k].clear();
  }
  into.timer_ns = std::move(o.timer_ns);
  for (auto& x : into.timer_ns) x = m.cal.ns(static_cast<uint64_t>(x));
  o.decisions.clear();
  o.scores.clear();
  o.orders.clear();
  o.fills.clear();
  o.equity.clear();
  o.timer_ns.clear();
}

bool Engine::run(const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
                 const TradeEvent* trades, size_t n_trades, std::string& error) {
  Impl& m = *impl_;
  if (!m.started && !start(error)) return false;
  const size_t expect = (n_book + n_orders) / 4 + 16;
  m.out.decisions.reserve(expect);
  m.out.equity.reserve(expect);
  for (auto& v : m.out.latency_ns) v.reserve(expect);
  // Streams merged on the local clock, as the feature engine merges them.
  StreamMerge merge(book, n_book, orders, n_orders, trades, n_trades, StreamMerge::Stamp::Local);
  int64_t key;
  for (StreamMerge::Kind kind; (kind = merge.peek(key)) != StreamMerge::kDone;) {
    if (kind == StreamMerge::kBook) {
      if (m.book_run(merge) || m.feature_run(merge)) continue;
      m.prefetch_ahead(merge);
      on_book(merge.pop_book(key));
    } else if (kind == StreamMerge::kOrders) on_order_event(merge.pop_order(key));
    else on_trade(merge.pop_trade(key));
  }
  finish();
  return true;
}

}  // namespace bot4::engine
