#include "engine/trading_engine.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "common/cycle_clock.hpp"
#include "common/stream_merge.hpp"
#include "features/feature_engine.hpp"
#include "risk/kill_switch.hpp"
#include "risk/position_sizer.hpp"
#include "risk/pre_trade_checks.hpp"

namespace bot4::engine {

namespace {
sim::SimOrderType to_sim(orders::OrderType t) {
  switch (t) {
    case orders::OrderType::Market: return sim::SimOrderType::Market;
    case orders::OrderType::Stop: return sim::SimOrderType::Stop;
    default: return sim::SimOrderType::Limit;
  }
}
}  // namespace

const char* stage_name(int s) {
  static const char* names[] = {"features", "model", "strategy_risk", "orders", "sim", "tick_to_decision"};
  return s >= 0 && s < kStageCount ? names[s] : "?";
}

struct TradingEngine::Impl {
  EngineConfig cfg;
  inference::Model* model;
  features::FeatureEngine fe;
  risk::PositionSizer sizer;
  risk::KillSwitch kill;
  risk::PreTradeChecks checks;
  orders::OrderManager om;
  sim::VenueSimulator venue;
  EngineResult* out = nullptr;
  const book::L2Book* view = nullptr;  // the feature engine's book of the instrument

  // row hand-off from the feature sink
  bool have_row = false;
  int64_t row_t = 0;
  double row_vol_bp = 0.0;  // ewma_vol of the row, bp per return sample
  double row_vpin = 0.0;
  int64_t first_ts = INT64_MIN;
  std::vector<float> row_f;

  // accounting (exact integers: ticks x lots)
  int64_t position = 0;
  __int128 cost = 0;       // signed cost basis of the open position, ticks*lots
  __int128 realised = 0;   // ticks*lots
  double fees = 0.0;
  double peak = 0.0;
  double max_dd = 0.0;

  // strategy state
  uint64_t next_client = 1;
  OrderId entry_id = 0;   // working (or last) entry
  int64_t entry_sent_ts = 0;
  int64_t last_entry_ts = INT64_MIN / 2;
  bool flattening = false;        // cancelling everything / closing the position (see start_flatten)
  OrderId close_id = 0;           // the reduce-only market close in flight
  std::unordered_map<OrderId, uint64_t> ptc_key;  // order id -> pre-trade check id
  std::unordered_map<OrderId, int64_t> sent_at;   // order id -> local send time (until acked)
  std::vector<sim::SimResponse> responses;

  Impl(const EngineConfig& c, inference::Model* m)
      : cfg(c), model(m), fe(c.features), sizer(c.sizing), kill(c.kill_switch), checks(c.pre_trade, &kill),
        om(make_om(c)), venue(make_sim(c)) {}

  static orders::OrderManagerConfig make_om(const EngineConfig& c) {
    orders::OrderManagerConfig o;
    o.stp = c.stp;
    o.stop_distance_ticks = c.strategy.stop_ticks;
    o.target_distance_ticks = c.strategy.target_ticks;
    o.confirm_cancels = true;
    return o;
  }
  static sim::SimConfig make_sim(const EngineConfig& c) {
    sim::SimConfig s = c.sim;
    s.tick_size = c.tick_size;
    s.lot_size = c.lot_size;
    return s;
  }

  double q(__int128 v) const { return static_cast<double>(v) * cfg.tick_size * cfg.lot_size; }

  void account_fill(Side side, int64_t price, int64_t qty, double fee) {
    const int64_t signed_q = side == Side::Bid ? qty : -qty;
    fees += fee;
    if (position == 0 || (position > 0) == (signed_q > 0)) {
      cost += static_cast<__int128>(price) * signed_q;
      position += signed_q;
      return;
    }
    const int64_t closing_q = std::min(std::abs(signed_q), std::abs(position));
    // average cost of the closed part: cost * closing / |position|
    const __int128 closed_cost = cost * closing_q / std::abs(position);
    const int64_t dir = position > 0 ? 1 : -1;
    realised += static_cast<__int128>(price) * closing_q * dir - closed_cost;
    cost -= closed_cost;
    position += signed_q;
    if (position == 0) cost = 0;
    if ((position > 0) != (dir > 0) && position != 0) {  // flipped
      cost = static_cast<__int128>(price) * position;
    }
  }

  // The venue request for a New or Replace of order `o` (its current side, type, price, size).
  static sim::SimRequest order_request(sim::SimRequestKind kind, const orders::Order& o) {
    sim::SimRequest req;
    req.kind = kind;
    req.id = o.order_id;
    req.side = o.side;
    req.type = to_sim(o.type);
    req.price = o.price_ticks;
    req.qty = o.qty_lots;
    req.reduce_only = o.reduce_only;
    return req;
  }

  // Forwards the order manager's pending events to the venue / pre-trade checks and records them.
  void forward_events(int64_t now) {
    auto events = om.drain_events();
    for (const auto& e : events) {
      const auto kind = static_cast<orders::OrderEventKind>(e.kind);
      const orders::Order* o = om.find(e.order_id);
      OrderRec r{now, e.order_id, e.price_ticks, e.qty_lots, e.filled_lots, e.side,
                 static_cast<uint8_t>(o ? o->type : orders::OrderType::Limit), e.state, e.kind, e.role, e.reason, 0};
      if (kind == orders::OrderEventKind::New && o != nullptr &&
          (o->role == orders::OrderRole::StopLeg || o->role == orders::OrderRole::TargetLeg)) {
        // Protective legs reduce the position; they are tracked by the checks but never refused.
        risk::OrderIntent ri{e.order_id, o->side, o->qty_lots, mark_price(o->side, o->price_ticks), mid_ticks(), now};
        if (checks.check(ri) == risk::RejectReason::Ok) {
          ptc_key[e.order_id] = e.order_id;
        } else {
          ++out->counters.leg_risk_bypass;
          r.flags |= kOrderRiskExempt;
        }
      }
      out->orders.push_back(r);
      switch (kind) {
        case orders::OrderEventKind::New: {
          if (o == nullptr) break;
          sent_at[e.order_id] = now;
          venue.send(order_request(sim::SimRequestKind::New, *o), now);
          break;
        }
        case orders::OrderEventKind::Cancel:
          if (static_cast<orders::OrderState>(e.state) == orders::OrderState::PendingCancel) {
            // A cancel request: the order stays at the venue (and in the exposure) until confirmed.
            sim::SimRequest req;
            req.kind = sim::SimRequestKind::Cancel;
            req.id = e.order_id;
            venue.send(req, now);
            break;
          }
          [[fallthrough]];  // cancelled for good (confirmed, or never sent): exposure goes
        case orders::OrderEventKind::Reject: {
          auto it = ptc_key.find(e.order_id);
          if (it != ptc_key.end()) {
            checks.on_cancel(it->second);
            ptc_key.erase(it);
          }
          break;
        }
        case orders::OrderEventKind::Replace: {
          if (o == nullptr) break;
          venue.send(order_request(sim::SimRequestKind::Replace, *o), now);
          break;
        }
        default:
          break;
      }
    }
  }

  // Latency trigger of the kill switch: each order's send-to-ack round trip as the simulated
  // venue defines it. Not the machine's own compute time, which would make a backtest
  // irreproducible, and not the recording's ts_local - ts_exchange, which on real feeds carries a
  // clock offset and exchange-side batching (BTCUSDT: -1.27 s offset, up to 94 ms above its
  // running minimum) rather than our latency.
  void note_latency(int64_t ns) {
    const bool was = kill.tripped();
    kill.on_latency(ns);
    if (!was && kill.tripped()) ++out->counters.kill_switch_trips;
  }

  // The book as the strategy knows it: the feature engine's, built from the events received so
  // far (the venue's own book runs ahead on the exchange clock and is not ours to look at).
  const book::L2Book& local_book() const { return *view; }

  int64_t mid_ticks() const {
    const auto& b = local_book();
    if (b.best_bid() == kNoBidPrice || b.best_ask() == kNoAskPrice) return 0;
    return (b.best_bid() + b.best_ask()) / 2;
  }
  int64_t mark_price(Side, int64_t price) const { return price > 0 ? price : mid_ticks(); }

  // The order left the venue: its pre-trade exposure goes (a venue reject also feeds the kill
  // switch's reject streak).
  template <typename It>
  void release_checks(It it, bool venue_reject) {
    if (it == ptc_key.end()) return;
    if (venue_reject) checks.on_venue_reject(it->second);
    else checks.on_cancel(it->second);
    ptc_key.erase(it);
  }

  void deliver(int64_t now) {
    venue.poll(now, responses);
    if (responses.empty()) return;
    for (const auto& s : responses) {
      orders::Reason r = orders::Reason::Ok;
      auto it = ptc_key.find(s.id);
      switch (s.kind) {
        case sim::SimResponseKind::Ack:
          r = om.on_ack(s.id, s.local_ts);
          if (it != ptc_key.end()) checks.on_ack(it->second);
          if (auto st = sent_at.find(s.id); st != sent_at.end()) {
            note_latency(s.local_ts - st->second);
            sent_at.erase(st);
          }
          break;
        case sim::SimResponseKind::Fill: {
          const orders::Order* o = om.find(s.id);
          // A venue fill is real whatever the local state: account it, then tell the manager.
          account_fill(s.side, s.price, s.qty, s.fee);
          if (it != ptc_key.end()) checks.on_fill(it->second, s.qty);
          else checks.set_position(position);
          r = om.on_fill(s.id, s.qty, s.price, s.local_ts);
          // Recorded when the engine applies it: responses are delivered at the engine's events,
          // so one received between two events is applied (and recorded) at the next.
          const int64_t applied = now == INT64_MAX ? s.local_ts : std::max(s.local_ts, now);
          out->fills.push_back(FillRec{applied, s.id, s.price, s.qty, s.fee, static_cast<uint8_t>(s.side),
                                       static_cast<uint8_t>(s.maker),
                                       static_cast<uint8_t>(o ? o->role : orders::OrderRole::Single),
                                       static_cast<uint8_t>(r == orders::Reason::Ok), 0});
          if (checks.position() != position) checks.set_position(position);
          if (o != nullptr && !o->working() && it != ptc_key.end()) ptc_key.erase(it);
          break;
        }
        case sim::SimResponseKind::Expire:
          sent_at.erase(s.id);
          r = om.on_expire(s.id, s.local_ts);
          release_checks(it, /*venue_reject=*/false);
          break;
        case sim::SimResponseKind::Reject:
          sent_at.erase(s.id);
          r = om.on_reject(s.id, s.local_ts);
          release_checks(it, /*venue_reject=*/true);
          break;
        case sim::SimResponseKind::Cancelled:
          sent_at.erase(s.id);
          r = om.on_cancel(s.id, s.local_ts);  // confirmation: the Cancel event releases the exposure
          break;
      }
      if (r != orders::Reason::Ok) ++out->counters.om_event_rejections;
    }
    forward_events(now);
  }

  bool entry_working() const {
    if (entry_id == 0) return false;
    const orders::Order* o = om.find(entry_id);
    return o != nullptr && o->working();
  }
  bool any_working() const {
    // entry or legs still open at the manager
    if (entry_working()) return true;
    if (entry_id != 0) {
      const orders::BracketLegs* g = om.bracket(entry_id);
      if (g != nullptr) {
        for (OrderId id : {g->stop, g->target}) {
          const orders::Order* o = id ? om.find(id) : nullptr;
          if (o != nullptr && o->working()) return true;
        }
      }
    }
    return false;
  }

  // Flattening: cancel every working order (pending until the venue confirms, so no leg can fill
  // behind our back), then, with nothing working, close what is left with a reduce-only market
  // order; repeat until flat (late fills of cancelled orders are real and may leave a residue).
  // The kill switch flattens for good; an exit signal flattens and then trading resumes.
  void start_flatten(int64_t now) {
    flattening = true;
    om.cancel_all(now);
    forward_events(now);
  }
  // One step; returns the decision action (3 = close sent, 0 = waiting).
  int8_t flatten_step(int64_t now, bool two_sided, int64_t mid) {
    if (close_id != 0) {
      const orders::Order* c = om.find(close_id);
      if (c != nullptr && c->working()) return 0;  // the close is in flight
      close_id = 0;
    }
    if (position == 0) {
      if (om.live_orders() == 0) flattening = kill.tripped();  // done (a tripped switch stays armed)
      return 0;
    }
    if (om.live_orders() != 0 || !two_sided) return 0;  // cancels not confirmed yet / no book
    const auto& b = local_book();
    const Side side = position > 0 ? Side::Ask : Side::Bid;
    const int64_t qty = std::abs(position);
    const uint64_t cid = next_client++;
    risk::OrderIntent ri{cid | (uint64_t{1} << 62), side, qty, side == Side::Bid ? b.best_ask() : b.best_bid(), mid, now};
    if (checks.check(ri) != risk::RejectReason::Ok) return 4;
    orders::OrderIntent oi;
    oi.kind = orders::IntentKind::Market;
    oi.client_id = cid;
    oi.side = side;
    oi.qty_lots = qty;
    oi.reduce_only = true;
    const auto res = om.submit(oi, now);
    if (res.status != orders::Reason::Ok || res.order_id == 0) {
      checks.on_cancel(ri.order_id);
      ++out->counters.om_rejected;
      return 4;
    }
    ptc_key[res.order_id] = ri.order_id;
    close_id = res.order_id;
    ++out->counters.closes;
    if (kill.tripped()) ++out->counters.kill_switch_closes;
    return 3;
  }

  // The decision at one feature row; returns (target, action).
  std::pair<int8_t, int8_t> decide(double p, int64_t now) {
    const double thr = cfg.strategy.long_threshold;
    int8_t target = 0;
    if (std::isfinite(p)) target = p >= thr ? 1 : (p <= 1.0 - thr ? -1 : 0);
    const auto& b = local_book();
    const bool two_sided = b.best_bid() != kNoBidPrice && b.best_ask() != kNoAskPrice && b.best_bid() < b.best_ask();
    const int64_t mid = two_sided ? (b.best_bid() + b.best_ask()) / 2 : 0;

    // Kill switch: equity check; once tripped, flatten for good (cancel all, then close).
    const double eq = cfg.strategy.equity + current_equity(mid);
    const bool was = kill.tripped();
    kill.on_equity(eq);
    if (kill.tripped() && !was) ++out->counters.kill_switch_trips;
    if (kill.take_cancel_all()) start_flatten(now);
    // Exit signal on an open position: the model turned against it (flip), or no longer backs it
    // (probability on its side below exit_threshold).
    if (!flattening && position != 0 && std::isfinite(p)) {
      const int8_t dir = position > 0 ? 1 : -1;
      const double p_side = dir > 0 ? p : 1.0 - p;
      const bool flip = cfg.strategy.exit_on_flip && target == -dir;
      const bool weak = cfg.strategy.exit_threshold > 0.0 && p_side < cfg.strategy.exit_threshold;
      if (flip || weak) {
        ++out->counters.exits;
        start_flatten(now);
      }
    }
    if (flattening) return {target, flatten_step(now, two_sided, mid)};

    // Entry management.
    if (entry_working()) {
      const orders::Order* o = om.find(entry_id);
      if (o->state == orders::OrderState::PendingCancel) return {target, 0};  // awaiting the venue
      const int8_t dir = o->side == Side::Bid ? 1 : -1;
      const bool stale = cfg.strategy.order_ttl_ns > 0 && now - entry_sent_ts >= cfg.strategy.order_ttl_ns;
      if (o->filled_lots == 0 && (stale || target != dir)) {
        om.request_cancel(entry_id, now);  // pending until the venue confirms (fills may still come)
        ++out->counters.entry_cancels;
        return {target, 2};
      }
      return {target, 0};
    }
    // A position nothing protects any more (a fill raced a cancel after its bracket ended, or a
    // residue of a close) is flattened rather than left open.
    if (position != 0 && om.live_orders() == 0) {
      ++out->counters.orphan_closes;
      start_flatten(now);
      return {target, flatten_step(now, two_sided, mid)};
    }
    if (target == 0 || position != 0 || any_working() || !two_sided) {
      if (!two_sided) ++out->counters.no_book;
      return {target, 0};
    }
    if (now - last_entry_ts < cfg.strategy.min_gap_ns) return {target, 0};

    const Side side = target > 0 ? Side::Bid : Side::Ask;
    const int64_t touch = side == Side::Bid ? (cfg.strategy.market_entry ? b.best_ask() : b.best_bid())
                                            : (cfg.strategy.market_entry ? b.best_bid() : b.best_ask());
    int64_t qty = cfg.strategy.fixed_qty_lots;
    if (qty <= 0) {
      risk::SizingInput in;
      in.p = p;
      in.current_vol = period_vol(now);
      if (!(in.current_vol > 0.0)) {
        ++out->counters.vol_unknown;
        return {target, 0};
      }
      in.crisis_regime = cfg.strategy.crisis_vpin > 0.0 && row_vpin >= cfg.strategy.crisis_vpin;
      if (in.crisis_regime) ++out->counters.crisis_entries;
      const risk::SizeResult sr = sizer.size(in);
      const double price_q = static_cast<double>(touch) * cfg.tick_size;
      qty = sr.status == risk::SizeStatus::Ok ? risk::to_lots(std::abs(sr.size), eq, price_q, cfg.lot_size) : 0;
      const int64_t cap = cfg.strategy.max_qty_lots > 0 ? cfg.strategy.max_qty_lots : cfg.pre_trade.max_position_lots;
      qty = std::min(qty, cap);
    }
    if (qty <= 0) {
      ++out->counters.size_zero;
      return {target, 0};
    }
    const uint64_t cid = next_client++;
    const uint64_t key = cid | (uint64_t{1} << 62);
    risk::OrderIntent ri{key, side, qty, touch, mid, now};
    const risk::RejectReason rr = checks.check(ri);
    if (rr != risk::RejectReason::Ok) return {target, 4};
    kill.on_accept();
    orders::OrderIntent oi;
    oi.kind = orders::IntentKind::Bracket;
    oi.client_id = cid;
    oi.side = side;
    oi.price_ticks = touch;
    oi.qty_lots = qty;
    oi.entry_type = cfg.strategy.market_entry ? orders::OrderType::Market : orders::OrderType::Limit;
    const auto res = om.submit(oi, now);
    if (res.status != orders::Reason::Ok || res.order_id == 0) {
      checks.on_cancel(key);
      ++out->counters.om_rejected;
      return {target, 4};
    }
    ptc_key[res.order_id] = key;
    entry_id = res.order_id;
    entry_sent_ts = now;
    last_entry_ts = now;
    ++out->counters.entries;
    return {target, 1};
  }

  // One decision on the row just written: model -> strategy/risk -> orders, with the stage stamps
  // (counter ticks) t0 (event in, before the venue), t1 (before features), t2 (row written).
  void decision(int64_t now, uint64_t t0, uint64_t t1, uint64_t t2) {
    ++out->counters.decisions;
    const double p = model->predict_one(row_f.data());
    if (!std::isfinite(p)) ++out->counters.nan_predictions;
    const uint64_t t3 = cycle_now();
    const auto [target, action] = decide(p, now);
    const uint64_t t4 = cycle_now();
    forward_events(now);
    const uint64_t t5 = cycle_now();
    auto& lat = out->latency_ns;
    lat[kSim].push_back(static_cast<int64_t>(t1 - t0));
    lat[kFeatures].push_back(static_cast<int64_t>(t2 - t1));
    lat[kModel].push_back(static_cast<int64_t>(t3 - t2));
    lat[kStrategyRisk].push_back(static_cast<int64_t>(t4 - t3));
    lat[kOrders].push_back(static_cast<int64_t>(t5 - t4));
    lat[kTickToDecision].push_back(static_cast<int64_t>(t5 - t1));
    const int64_t mid = mid_ticks();
    out->decisions.push_back(DecisionRec{now, p, target, action, 0, 0, position});
    const double unreal = position != 0 && mid > 0 ? q(static_cast<__int128>(mid) * position - cost) : 0.0;
    const double real = q(realised);
    const double eq = real + unreal - fees;
    out->equity.push_back(EquityRec{now, position, real, unreal, fees, eq});
    peak = std::max(peak, eq);
    max_dd = std::max(max_dd, peak - eq);
  }

  // The sizer's sigma per period from the row's per-sample volatility (see the header); NaN while
  // the features have no volatility yet.
  double period_vol(int64_t now) const {
    if (!cfg.strategy.vol_from_features) return cfg.strategy.current_vol;
    constexpr double kYearNs = 365.25 * 86400.0 * 1e9;
    const double sigma_sample = row_vol_bp / cfg.features.return_scale;
    if (!(sigma_sample > 0.0) || !std::isfinite(sigma_sample)) return std::nan("");
    double samples_per_year;
    if (cfg.features.sample_interval_ns > 0) {
      samples_per_year = kYearNs / static_cast<double>(cfg.features.sample_interval_ns);
    } else {
      const double samples = static_cast<double>(fe.counters().samples);
      const double elapsed = static_cast<double>(now - first_ts);
      if (samples < 2.0 || elapsed <= 0.0) return std::nan("");
      samples_per_year = samples / elapsed * kYearNs;
    }
    return sigma_sample * std::sqrt(samples_per_year / cfg.sizing.periods_per_year);
  }

  double current_equity(int64_t mid) const {
    const double unreal = position != 0 && mid > 0 ? q(static_cast<__int128>(mid) * position - cost) : 0.0;
    return q(realised) + unreal - fees;
  }
};

TradingEngine::TradingEngine(const EngineConfig& cfg, inference::Model* model)
    : impl_(std::make_unique<Impl>(cfg, model)) {}
TradingEngine::~TradingEngine() = default;

bool TradingEngine::run(const BookEvent* book, size_t n_book, const TradeEvent* trades, size_t n_trades,
                        EngineResult& out, std::string& error) {
  return run(book, n_book, nullptr, 0, trades, n_trades, out, error);
}

bool TradingEngine::run(const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
                        const TradeEvent* trades, size_t n_trades, EngineResult& out, std::string& error) {
  Impl& m = *impl_;
  if (m.model == nullptr || m.model->n_features() != static_cast<size_t>(features::FeatureEngine::columns())) {
    error = "model input width does not match the feature engine's columns";
    return false;
  }
  const bool l3 = n_orders > 0;
  if (l3 && n_book > 0) {
    error = "give either L2 book events or L3 order events, not both (one venue mode per run)";
    return false;
  }
  features::InstrumentSetup setup;
  setup.id = m.cfg.instrument;
  setup.tick_size = m.cfg.tick_size;
  setup.lot_size = m.cfg.lot_size;
  setup.l3 = l3;
  if (!m.fe.add_instrument(setup, error)) return false;
  m.view = m.fe.book_view(setup.id);
  m.venue.attach_feed(book, n_book, orders, n_orders, trades, n_trades);
  m.out = &out;
  m.row_f.resize(features::FeatureEngine::columns());
  m.fe.prepare_streaming();
  m.fe.set_row_sink(
      [&m](InstrumentId, int64_t t, const double* row) {
        for (size_t i = 0; i < m.row_f.size(); ++i) m.row_f[i] = static_cast<float>(row[i]);
        m.have_row = true;
        m.row_t = t;
        m.row_vol_bp = row[features::f_ewma_vol];
        m.row_vpin = row[features::f_vpin];
      },
      false);
  const size_t expect = (n_book + n_orders) / 4 + 16;
  out.decisions.reserve(expect);
  out.equity.reserve(expect);
  for (auto& v : out.latency_ns) v.reserve(expect);

  CycleCalibration cal;
  cal.start();
  // Streams merged as the feature engine merges them (on the local clock).
  StreamMerge merge(book, n_book, orders, n_orders, trades, n_trades, StreamMerge::Stamp::Local);
  int64_t now;
  for (StreamMerge::Kind kind; (kind = merge.peek(now)) != StreamMerge::kDone;) {
    if (m.first_ts == INT64_MIN) m.first_ts = now;
    // Timer work due before this event (grid samples, their window kernels, time-grid rows): a
    // live system does it when the timer fires, before the tick arrives, so it is timed apart.
    if (m.fe.timer_due(now)) {
      m.have_row = false;
      const uint64_t a = cycle_now();
      m.fe.on_timer(now);
      const uint64_t b = cycle_now();
      out.timer_ns.push_back(static_cast<int64_t>(b - a));
      if (m.have_row) {  // a time-grid row: decide at its grid time
        m.venue.advance_feed(m.venue.exchange_time(m.row_t));
        m.deliver(m.row_t);
        m.decision(m.row_t, a, a, a);
      }
    }
    // Only events that can end in a decision are timestamped (a message end): the clock read is a
    // large part of the per-event cost otherwise.
    const bool timed = kind == StreamMerge::kBook     ? m.fe.may_write_row(merge.book().flags)
                       : kind == StreamMerge::kOrders ? m.fe.may_write_row(merge.order().flags)
                                                      : false;
    const uint64_t t0 = timed ? cycle_now() : 0;
    // The venue runs ahead on the exchange clock (it has seen everything up to the exchange time
    // of our local now); then the responses due by now reach us.
    if (kind == StreamMerge::kBook) m.venue.observe(merge.book().ts_exchange, merge.book().ts_local);
    else if (kind == StreamMerge::kOrders) m.venue.observe(merge.order().ts_exchange, merge.order().ts_local);
    else m.venue.observe(merge.trade().ts_exchange, merge.trade().ts_local);
    m.venue.advance_feed(m.venue.exchange_time(now));
    m.deliver(now);
    const uint64_t t1 = timed ? cycle_now() : 0;
    m.have_row = false;
    if (kind == StreamMerge::kBook) {
      m.fe.process(merge.pop_book(now));
      ++out.counters.book_events;
    } else if (kind == StreamMerge::kOrders) {
      m.fe.process(merge.pop_order(now));
      ++out.counters.order_events;
    } else {
      m.fe.process(merge.pop_trade(now));
      ++out.counters.trade_events;
    }
    if (m.have_row) {
      const uint64_t t2 = cycle_now();
      m.decision(now, timed ? t0 : t2, timed ? t1 : t2, t2);
    }
  }
  cal.finish();
  // Stamps were counter ticks: convert every latency record to ns with the run's calibration.
  for (auto& v : out.latency_ns)
    for (auto& x : v) x = cal.ns(static_cast<uint64_t>(x));
  for (auto& x : out.timer_ns) x = cal.ns(static_cast<uint64_t>(x));
  // Drain what is still due (responses in flight at the end are delivered at their time).
  m.venue.advance_feed(INT64_MAX);
  m.deliver(INT64_MAX);
  for (size_t i = 0; i < risk::kRejectReasonCount && i < out.rejections.size(); ++i)
    out.rejections[i] = m.checks.count(static_cast<risk::RejectReason>(i));
  const auto& oc = m.om.state_machine().counters();
  for (size_t i = 0; i < oc.size() && i < out.order_reasons.size(); ++i) out.order_reasons[i] = oc[i];
  out.sim = m.venue.counters();
  out.max_drawdown = m.max_dd;
  out.kill_reason = static_cast<int>(m.kill.reason());
  return true;
}

}  // namespace bot4::engine
