#include "features/feature_engine.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "common/stream_merge.hpp"

namespace bot4::features {

namespace {
using Clock = std::chrono::steady_clock;
int64_t elapsed_ns(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - start).count();
}
constexpr int kTradedSlots = 8;
}  // namespace

struct FeatureEngine::Instrument {
  Instrument(const InstrumentSetup& s, const FeatureConfig& c)
      : setup(s),
        l3(s.l3 ? std::make_unique<book::L3Book>() : nullptr),
        book_state(c, s.tick_size),
        flow(c),
        queue(c, s.l3),
        liquidity(c, s.tick_size, s.lot_size),
        volatility(c),
        window(c),
        technical(c),
        returns(static_cast<size_t>(c.window)) {}

  const book::L2Book& book() const { return l3 ? l3->l2() : l2; }
  double mid() const { return snap.two_sided() ? snap.mid() : kNaN; }

  InstrumentSetup setup;
  book::L2Book l2;
  std::unique_ptr<book::L3Book> l3;
  BookSnapshot snap;
  BookSnapshot prev;
  bool have_prev = false;
  bool started = false;
  BookStateFeatures book_state;
  OrderFlowFeatures flow;
  QueueFeatures queue;
  LiquidityFeatures liquidity;
  VolatilityFeatures volatility;
  WindowFeatures window;
  TechnicalFeatures technical;
  SampleWindow returns;
  double last_sample_mid = kNaN;
  int64_t events_since_row = 0;
  // L2 cancel inference: volume traded at recent prices, per side, not yet matched to a decrease.
  int64_t traded_price[2][kTradedSlots] = {};
  int64_t traded_qty[2][kTradedSlots] = {};
  int traded_next[2] = {0, 0};
};

FeatureEngine::FeatureEngine(FeatureConfig config)
    : config_(std::move(config)), kernels_(&active_window_kernels()) {
  config_.depth_levels = std::clamp(config_.depth_levels, 1, kMaxDepthLevels);
}

FeatureEngine::~FeatureEngine() = default;

bool FeatureEngine::add_instrument(const InstrumentSetup& setup, std::string& error) {
  for (const auto& inst : instruments_) {
    if (inst->setup.id == setup.id) {
      error = "instrument " + std::to_string(setup.id) + " is already registered";
      return false;
    }
  }
  if (!(setup.tick_size > 0) || !(setup.lot_size > 0)) {
    error = "tick_size and lot_size must be positive";
    return false;
  }
  instruments_.push_back(std::make_unique<Instrument>(setup, config_));
  cached_ = nullptr;
  return true;
}

inline FeatureEngine::Instrument* FeatureEngine::lookup(InstrumentId id) {
  if (cached_ != nullptr && cached_->setup.id == id) return cached_;
  for (auto& inst : instruments_) {
    if (inst->setup.id == id) {
      cached_ = inst.get();
      return cached_;
    }
  }
  return nullptr;
}

size_t FeatureEngine::row_bound(const BookEvent* book, size_t n_book, const OrderEvent* orders,
                                size_t n_orders, const TradeEvent* trades, size_t n_trades) const {
  switch (config_.decision_mode) {
    case DecisionMode::None:
      return 0;
    case DecisionMode::EveryBookMessage:
    case DecisionMode::EveryNEvents: {
      size_t n = 0;
      for (size_t i = 0; i < n_book; ++i) n += (book[i].flags & event_flag::kLast) != 0;
      for (size_t i = 0; i < n_orders; ++i) n += (orders[i].flags & event_flag::kLast) != 0;
      return n;
    }
    case DecisionMode::TimeGrid: {
      // The rows the grid can write between consecutive engine keys (the merged running maxima
      // of the streams' ts_local, as run() sees them): the grid points in each interval, at most
      // kMaxGapSteps + 1 per interval (advance_grids skips the rest of a long gap). Unsigned
      // differences: the span of arbitrary int64 timestamps does not fit int64.
      const auto step = static_cast<uint64_t>(config_.decision_interval_ns);
      const uint64_t cap = static_cast<uint64_t>(kMaxGapSteps) + 2;
      size_t ib = 0, io = 0, it = 0;
      int64_t kb = key_book_, ko = key_orders_, kt = key_trades_;
      int64_t prev = next_grid_;  // the next grid point, itself counted
      bool have_prev = next_grid_ != INT64_MIN;
      uint64_t rows = 0;
      while (ib < n_book || io < n_orders || it < n_trades) {
        const int64_t cb = ib < n_book ? std::max(kb, book[ib].ts_local) : INT64_MAX;
        const int64_t co = io < n_orders ? std::max(ko, orders[io].ts_local) : INT64_MAX;
        const int64_t ct = it < n_trades ? std::max(kt, trades[it].ts_local) : INT64_MAX;
        int64_t k;
        if (ib < n_book && cb <= co && cb <= ct) k = kb = cb, ++ib;
        else if (io < n_orders && co <= ct) k = ko = co, ++io;
        else k = kt = ct, ++it;
        if (!have_prev) {
          prev = k;
          have_prev = true;
        } else if (k > prev) {
          rows += std::min((static_cast<uint64_t>(k) - static_cast<uint64_t>(prev)) / step + 1, cap);
          prev = k;
        }
      }
      return static_cast<size_t>(rows + 2) * instruments_.size();
    }
  }
  return 0;
}

const book::L2Book* FeatureEngine::book_view(InstrumentId id) const {
  for (const auto& inst : instruments_)
    if (inst->setup.id == id) return &inst->book();
  return nullptr;
}

void FeatureEngine::clear_rows() {
  matrix_.clear();
  timestamps_.clear();
  row_instruments_.clear();
}

void FeatureEngine::write_row(Instrument& inst, int64_t t) {
  const auto start = row_ns_ != nullptr ? Clock::now() : Clock::time_point{};
  double* row;
  if (keep_rows_) {
    const size_t r = timestamps_.size();
    matrix_.resize((r + 1) * kFeatureCount);
    row = matrix_.data() + r * kFeatureCount;
  } else {
    scratch_row_.resize(kFeatureCount);
    row = scratch_row_.data();
  }
  const double mid = inst.mid();
  inst.liquidity.advance(t, mid, true);
  inst.book_state.write(inst.snap, row);
  inst.flow.write(t, row);
  inst.queue.write(t, row);
  inst.liquidity.write(*kernels_, row);
  inst.volatility.write(inst.returns, row);
  if (force_window_) inst.window.invalidate();
  inst.window.write(*kernels_, inst.returns, row);
  inst.technical.write(t, mid, row);
  if (keep_rows_) {
    timestamps_.push_back(t);
    row_instruments_.push_back(inst.setup.id);
  }
  inst.events_since_row = 0;
  ++counters_.rows;
  if (row_ns_ != nullptr) row_ns_->push_back(elapsed_ns(start));
  if (sink_) sink_(inst.setup.id, t, row);
}

void FeatureEngine::take_sample(Instrument& inst, int64_t /*t*/) {
  const double mid = inst.snap.mid();
  const bool has_return = std::isfinite(inst.last_sample_mid);
  const double r = has_return ? std::log(mid / inst.last_sample_mid) * config_.return_scale : kNaN;
  if (has_return) {
    inst.returns.push(r);
    inst.liquidity.on_sample(r);
  } else {
    inst.liquidity.start_interval();
  }
  inst.volatility.on_sample(mid, has_return, r);
  inst.technical.on_sample(mid);
  inst.book_state.on_sample(inst.snap);
  inst.last_sample_mid = mid;
  ++counters_.samples;
}

namespace {
// First grid point strictly after t on the grid of step `step` (INT64_MAX when there is none).
int64_t grid_after(int64_t t, int64_t step) {
  const int64_t q = t / step - (t % step < 0 ? 1 : 0);  // floor(t / step)
  if (q >= INT64_MAX / step - 1) return INT64_MAX;
  return (q + 1) * step;
}
// g + step, or INT64_MAX (the grid is exhausted) when that leaves int64.
int64_t grid_next(int64_t g, int64_t step) { return g > INT64_MAX - step ? INT64_MAX : g + step; }
}  // namespace

void FeatureEngine::advance_grids(int64_t t) {
  const bool sampling = config_.sample_interval_ns > 0;
  const bool grid = config_.decision_mode == DecisionMode::TimeGrid;
  if (sampling && next_sample_ == INT64_MIN) next_sample_ = grid_after(t, config_.sample_interval_ns);
  if (grid && next_grid_ == INT64_MIN) next_grid_ = grid_after(t, config_.decision_interval_ns);
  // A gap of more than kMaxGapSteps steps of a grid is a break in the input (a recorder outage,
  // a session boundary or a damaged timestamp): the grid takes its first kMaxGapSteps steps, then
  // resumes at the last point before t, and the steps in between are counted, not taken. The
  // book is frozen across the gap, so the skipped samples would all be zero returns and the
  // skipped rows copies of one state; stepping them made one jumped timestamp cost O(gap).
  int64_t sample_budget = kMaxGapSteps, row_budget = kMaxGapSteps;
  // Both grids step in time order (a sample before a row on ties), so a row at g never sees a
  // sample dated after g, whatever the timing of the next event.
  while (true) {
    const int64_t sample_at = sampling && next_sample_ < t ? next_sample_ : INT64_MAX;
    const int64_t row_at = grid && next_grid_ < t ? next_grid_ : INT64_MAX;
    if (sample_at == INT64_MAX && row_at == INT64_MAX) break;
    if (sample_at <= row_at) {
      if (sample_budget-- == 0) {
        const int64_t resume = grid_after(t - 1, config_.sample_interval_ns) - config_.sample_interval_ns;
        counters_.sample_steps_skipped +=
            (static_cast<uint64_t>(resume) - static_cast<uint64_t>(next_sample_)) /
            static_cast<uint64_t>(config_.sample_interval_ns);
        next_sample_ = resume;
        ++counters_.time_gaps;
        sample_budget = -1;  // unlimited from here: at most one step is left before t
        continue;
      }
      for (auto& inst : instruments_)
        if (inst->started && inst->snap.two_sided()) take_sample(*inst, sample_at);
      next_sample_ = grid_next(next_sample_, config_.sample_interval_ns);
    } else {
      if (row_budget-- == 0) {
        const int64_t resume = grid_after(t - 1, config_.decision_interval_ns) - config_.decision_interval_ns;
        counters_.grid_rows_skipped +=
            (static_cast<uint64_t>(resume) - static_cast<uint64_t>(next_grid_)) /
            static_cast<uint64_t>(config_.decision_interval_ns);
        next_grid_ = resume;
        ++counters_.time_gaps;
        row_budget = -1;
        continue;
      }
      for (auto& inst : instruments_)
        if (inst->started) write_row(*inst, row_at);
      next_grid_ = grid_next(next_grid_, config_.decision_interval_ns);
    }
  }
}

void FeatureEngine::on_timer(int64_t t) {
  advance(t);
  if (force_window_) return;
  for (auto& inst : instruments_)
    if (inst->started) inst->window.refresh(*kernels_, inst->returns);
}

void FeatureEngine::message_end(Instrument& inst, int64_t t) {
  ++counters_.messages;
  inst.snap.capture(inst.book(), config_.depth_levels, t);
  inst.queue.on_message(inst.snap, inst.l3.get());
  if (inst.snap.two_sided()) {
    if (inst.have_prev) inst.flow.on_message(inst.prev, inst.snap);
    inst.prev = inst.snap;
    inst.have_prev = true;
    if (config_.sample_interval_ns == 0) take_sample(inst, t);
  } else {
    ++counters_.one_sided_or_crossed;
    inst.have_prev = false;  // OFI skips crossed, locked and one-sided states
  }
  if (config_.decision_mode == DecisionMode::EveryBookMessage) {
    write_row(inst, t);
  } else if (config_.decision_mode == DecisionMode::EveryNEvents &&
             inst.events_since_row >= config_.decision_every_n) {
    write_row(inst, t);
  }
}

inline FeatureEngine::Instrument* FeatureEngine::begin_event(InstrumentId id, int64_t t, StreamKind kind) {
  Instrument* inst = lookup(id);
  if (inst == nullptr) {
    ++counters_.unknown_instrument;
    return nullptr;
  }
  if (kind == StreamKind::Book && inst->l3) {
    ++counters_.book_ignored_l3;
    return nullptr;
  }
  if (kind == StreamKind::Orders && !inst->l3) {
    ++counters_.orders_ignored_l2;
    return nullptr;
  }
  if (!inst->started) {
    inst->started = true;
    inst->flow.start(t);
    inst->technical.start(t);
  }
  if (inst->liquidity.advance_due(t, false)) inst->liquidity.advance(t, inst->mid(), false);
  ++inst->events_since_row;
  return inst;
}

void FeatureEngine::on_book(const BookEvent& ev, int64_t t) {
  ++counters_.book_events;
  Instrument* inst = begin_event(ev.instrument, t, StreamKind::Book);
  if (inst == nullptr) return;
  const bool counted = (ev.flags & (event_flag::kSnapshot | event_flag::kClear)) == 0 &&
                       (ev.side == static_cast<uint8_t>(Side::Bid) || ev.side == static_cast<uint8_t>(Side::Ask));
  const book::BookStatus status = inst->l2.apply(ev);
  if (status <= book::BookStatus::Crossed) {  // applied (Ok, DeleteAbsent, Crossed)
    if (counted) {
      inst->flow.on_order_message(t);
      // the level's size before this event (an accepted event without kClear set it)
      int64_t decrease = inst->l2.last_prev_qty() - ev.qty;
      if (decrease > 0) {
        const int side = ev.side;
        for (int k = 0; k < kTradedSlots && decrease > 0; ++k) {
          if (inst->traded_price[side][k] == ev.price && inst->traded_qty[side][k] > 0) {
            const int64_t take = std::min(decrease, inst->traded_qty[side][k]);
            inst->traded_qty[side][k] -= take;
            decrease -= take;
          }
        }
        if (decrease > 0) inst->flow.on_cancel(t);
      }
    }
  } else {
    ++counters_.book_rejected;
  }
  if (ev.flags & event_flag::kLast) message_end(*inst, t);
}

void FeatureEngine::on_order(const OrderEvent& ev, int64_t t) {
  ++counters_.order_events;
  Instrument* inst = begin_event(ev.instrument, t, StreamKind::Orders);
  if (inst == nullptr) return;
  const book::BookStatus status = inst->l3->apply(ev);
  if (status <= book::BookStatus::Crossed) {
    inst->queue.on_order_event(ev);
    const auto action = static_cast<OrderAction>(ev.action);
    if ((ev.flags & event_flag::kSnapshot) == 0 && action != OrderAction::Execute &&
        action != OrderAction::Clear) {
      inst->flow.on_order_message(t);
      if (action == OrderAction::Cancel || (action == OrderAction::Modify && ev.qty == 0))
        inst->flow.on_cancel(t);
    }
  } else {
    ++counters_.book_rejected;
  }
  if (ev.flags & event_flag::kLast) message_end(*inst, t);
}

void FeatureEngine::on_trade(const TradeEvent& ev, int64_t t) {
  ++counters_.trade_events;
  Instrument* inst = begin_event(ev.instrument, t, StreamKind::Trades);
  if (inst == nullptr) return;
  const double mid = inst->mid();
  // Sizes and prices beyond 2^40 lots/ticks cannot come from a venue and would overflow the
  // exact integer sums (price x qty) downstream.
  constexpr int64_t kMaxTradeValue = int64_t{1} << 40;
  if (ev.qty <= 0 || ev.price <= 0 || ev.qty >= kMaxTradeValue || ev.price >= kMaxTradeValue) {
    ++counters_.trades_rejected;
    return;
  }
  inst->flow.on_trade(t, ev.aggressor, ev.qty);
  inst->queue.on_trade(ev.price, ev.aggressor, ev.qty);
  inst->liquidity.on_trade(t, ev.price, ev.qty, ev.aggressor, mid);
  inst->technical.on_trade(t, ev.price, ev.qty);
  // A buyer lifts asks, a seller hits bids: remember the volume so the matching size decrease is
  // not mistaken for a cancel.
  const int side = ev.aggressor == static_cast<uint8_t>(Side::Bid)   ? 1
                   : ev.aggressor == static_cast<uint8_t>(Side::Ask) ? 0
                                                                     : -1;
  if (side >= 0 && !inst->l3) {
    for (int k = 0; k < kTradedSlots; ++k) {
      if (inst->traded_price[side][k] == ev.price) {
        inst->traded_qty[side][k] += ev.qty;
        return;
      }
    }
    const int slot = inst->traded_next[side];
    inst->traded_price[side][slot] = ev.price;
    inst->traded_qty[side][slot] = ev.qty;
    inst->traded_next[side] = (slot + 1) % kTradedSlots;
  }
}

void FeatureEngine::run(const BookEvent* book, size_t n_book, const OrderEvent* orders,
                        size_t n_orders, const TradeEvent* trades, size_t n_trades,
                        std::vector<int64_t>* row_ns, std::vector<int64_t>* event_ns) {
  kernels_ = &active_window_kernels();  // dispatch once per batch
  row_ns_ = row_ns;
  const size_t bound = row_bound(book, n_book, orders, n_orders, trades, n_trades);
  matrix_.reserve((timestamps_.size() + bound) * kFeatureCount);
  timestamps_.reserve(timestamps_.size() + bound);
  row_instruments_.reserve(row_instruments_.size() + bound);

  StreamMerge merge(book, n_book, orders, n_orders, trades, n_trades, StreamMerge::Stamp::Local);
  merge.set_keys(key_book_, key_orders_, key_trades_);
  int64_t key;
  for (StreamMerge::Kind kind; (kind = merge.peek(key)) != StreamMerge::kDone;) {
    const auto start = event_ns != nullptr ? Clock::now() : Clock::time_point{};
    advance(key);
    if (kind == StreamMerge::kBook) on_book(merge.pop_book(key), key);
    else if (kind == StreamMerge::kOrders) on_order(merge.pop_order(key), key);
    else on_trade(merge.pop_trade(key), key);
    if (event_ns != nullptr) event_ns->push_back(elapsed_ns(start));
  }
  key_book_ = merge.key_book();
  key_orders_ = merge.key_orders();
  key_trades_ = merge.key_trades();
  row_ns_ = nullptr;
}

}  // namespace bot4::features
