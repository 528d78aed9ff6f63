// _core.engine: the one-call backtest (TradingEngine) on numpy event arrays, GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <functional>
#include <map>
#include <string>

#include "buffers.hpp"
#include "feature_config_dict.hpp"
#include "engine/trading_engine.hpp"
#include "risk/kill_switch.hpp"
#include "risk/pre_trade_checks.hpp"

namespace py = pybind11;

namespace bot4::ext {
namespace {

using engine::EngineConfig;
using Setter = std::function<void(EngineConfig&, const py::handle&)>;


#define F(section, name) {#name, [](EngineConfig& c, const py::handle& v) { \
    c.section.name = v.cast<std::decay_t<decltype(c.section.name)>>(); }}

const std::map<std::string, std::map<std::string, Setter>>& setters() {
  static const std::map<std::string, std::map<std::string, Setter>> table = {
      {"strategy", {F(strategy, long_threshold), F(strategy, market_entry), F(strategy, stop_ticks),
                    F(strategy, target_ticks), F(strategy, order_ttl_ns), F(strategy, equity),
                    F(strategy, current_vol), F(strategy, vol_from_features), F(strategy, crisis_vpin),
                    F(strategy, fixed_qty_lots), F(strategy, exit_on_flip), F(strategy, exit_threshold), F(strategy, max_qty_lots),
                    F(strategy, min_gap_ns)}},
      {"sizing", {F(sizing, kelly_fraction), F(sizing, payoff_ratio), F(sizing, edge_threshold),
                  F(sizing, target_vol), F(sizing, periods_per_year), F(sizing, max_vol_scale),
                  F(sizing, max_symbol_fraction), F(sizing, max_leverage), F(sizing, var_limit),
                  F(sizing, var_confidence), F(sizing, max_heat), F(sizing, crisis_correlation),
                  F(sizing, crisis_multiplier)}},
      {"pre_trade", {F(pre_trade, max_position_lots), F(pre_trade, max_notional), F(pre_trade, max_open_orders),
                     F(pre_trade, rate_capacity), F(pre_trade, rate_per_second), F(pre_trade, collar_ticks),
                     F(pre_trade, collar_bps)}},
      {"kill_switch", {F(kill_switch, max_drawdown), F(kill_switch, max_consecutive_rejects),
                       F(kill_switch, max_latency_ns)}},
      {"sim", {{"entry_latency_ns", [](EngineConfig& c, const py::handle& v) { c.sim.latency.entry_ns = v.cast<int64_t>(); }},
               {"response_latency_ns", [](EngineConfig& c, const py::handle& v) { c.sim.latency.response_ns = v.cast<int64_t>(); }},
               {"align_clocks", [](EngineConfig& c, const py::handle& v) { c.sim.latency.align_clocks = v.cast<bool>(); }},
               {"maker_bps", [](EngineConfig& c, const py::handle& v) { c.sim.fees.maker_bps = v.cast<double>(); }},
               {"taker_bps", [](EngineConfig& c, const py::handle& v) { c.sim.fees.taker_bps = v.cast<double>(); }},
               {"queue_power", [](EngineConfig& c, const py::handle& v) { c.sim.queue.power = v.cast<double>(); }},
               {"queue_model", [](EngineConfig& c, const py::handle& v) {
                  const auto s = v.cast<std::string>();
                  if (s == "risk_averse") c.sim.queue.kind = sim::QueueModelKind::RiskAverse;
                  else if (s == "power") c.sim.queue.kind = sim::QueueModelKind::PowerProb;
                  else if (s == "log") c.sim.queue.kind = sim::QueueModelKind::LogProb;
                  else throw py::value_error("sim.queue_model: expected risk_averse, power or log, got " + s);
                }},
               {"stp", [](EngineConfig& c, const py::handle& v) { c.stp = static_cast<orders::StpPolicy>(v.cast<int>()); }},
               {"instrument", [](EngineConfig& c, const py::handle& v) { c.instrument = v.cast<uint32_t>(); }}}},
  };
  return table;
}
#undef F

EngineConfig config_from_dict(const py::dict& d) {
  EngineConfig c;
  const auto& table = setters();
  for (auto item : d) {
    const auto section = item.first.cast<std::string>();
    if (section == "features") {  // the model's FeatureConfig (train/serve parity)
      if (!item.second.is_none()) c.features = feature_config_from_dict(item.second.cast<py::dict>());
      continue;
    }
    auto st = table.find(section);
    if (st == table.end()) throw py::value_error("unknown engine config section: " + section);
    if (item.second.is_none()) continue;
    for (auto kv : item.second.cast<py::dict>()) {
      const auto key = kv.first.cast<std::string>();
      auto f = st->second.find(key);
      if (f == st->second.end()) throw py::value_error("unknown engine config key: " + section + "." + key);
      f->second(c, kv.second);
    }
  }
  return c;
}

py::dict config_to_dict(const EngineConfig& c) {
  py::dict d, s, sim;
  s["long_threshold"] = c.strategy.long_threshold;
  s["market_entry"] = c.strategy.market_entry;
  s["stop_ticks"] = c.strategy.stop_ticks;
  s["target_ticks"] = c.strategy.target_ticks;
  s["order_ttl_ns"] = c.strategy.order_ttl_ns;
  s["equity"] = c.strategy.equity;
  s["fixed_qty_lots"] = c.strategy.fixed_qty_lots;
  s["max_qty_lots"] = c.strategy.max_qty_lots;
  sim["entry_latency_ns"] = c.sim.latency.entry_ns;
  sim["response_latency_ns"] = c.sim.latency.response_ns;
  sim["maker_bps"] = c.sim.fees.maker_bps;
  sim["taker_bps"] = c.sim.fees.taker_bps;
  d["strategy"] = s;
  d["sim"] = sim;
  return d;
}

struct Field {
  const char* name;
  const char* format;
  size_t offset;
};

template <typename Rec>
py::array to_numpy(const std::vector<Rec>& v, std::initializer_list<Field> fields) {
  py::list names, formats, offsets;
  for (const auto& f : fields) {
    names.append(f.name);
    formats.append(f.format);
    offsets.append(f.offset);
  }
  py::dict spec;
  spec["names"] = names;
  spec["formats"] = formats;
  spec["offsets"] = offsets;
  spec["itemsize"] = sizeof(Rec);
  py::module_ np = py::module_::import("numpy");
  py::object dt = np.attr("dtype")(spec);
  py::array arr = np.attr("empty")(v.size(), dt);
  if (!v.empty()) std::memcpy(arr.mutable_data(), v.data(), v.size() * sizeof(Rec));
  return arr;
}

#define FLD(Rec, name, fmt) Field{#name, fmt, offsetof(Rec, name)}

class PyTradingEngine {
 public:
  PyTradingEngine(const py::dict& config, py::object model, double tick_size, double lot_size)
      : model_obj_(std::move(model)) {
    cfg_ = config_from_dict(config);
    cfg_.tick_size = tick_size;
    cfg_.lot_size = lot_size;
    py::object core = py::hasattr(model_obj_, "core") && !py::isinstance<inference::Model>(model_obj_)
                          ? model_obj_.attr("core")
                          : model_obj_;
    model_ = core.cast<inference::Model*>();
    model_obj_ = core;
  }

  py::dict run(const py::array& book, const py::array& trades, const py::object& orders) {
    if (used_) throw py::value_error("TradingEngine.run can be called once per engine");
    used_ = true;
    size_t nb = 0, nt = 0, no = 0;
    const auto* b = record_buffer<BookEvent>(book, "BOOK_EVENT", nb);
    const auto* t = record_buffer<TradeEvent>(trades, "TRADE_EVENT", nt);
    const OrderEvent* o = nullptr;
    py::array orders_arr;
    if (!orders.is_none()) {
      orders_arr = orders.cast<py::array>();
      o = record_buffer<OrderEvent>(orders_arr, "ORDER_EVENT", no);
    }
    engine::EngineResult r;
    std::string error;
    bool ok;
    {
      py::gil_scoped_release release;
      engine::TradingEngine eng(cfg_, model_);
      ok = eng.run(b, nb, o, no, t, nt, r, error);
    }
    if (!ok) throw py::value_error(error);
    using engine::DecisionRec;
    using engine::EquityRec;
    using engine::FillRec;
    using engine::OrderRec;
    py::dict out;
    out["decisions"] = to_numpy(r.decisions, {FLD(DecisionRec, ts, "<i8"), FLD(DecisionRec, p, "<f8"),
                                              FLD(DecisionRec, target, "i1"), FLD(DecisionRec, action, "i1"),
                                              FLD(DecisionRec, position, "<i8")});
    out["orders"] = to_numpy(r.orders, {FLD(OrderRec, ts, "<i8"), FLD(OrderRec, id, "<u8"), FLD(OrderRec, side, "u1"),
                                        FLD(OrderRec, price, "<i8"), FLD(OrderRec, qty, "<i8"), FLD(OrderRec, filled, "<i8"),
                                        FLD(OrderRec, type, "u1"), FLD(OrderRec, status, "u1"), FLD(OrderRec, kind, "u1"),
                                        FLD(OrderRec, role, "u1"), FLD(OrderRec, reason, "u1"),
                                        FLD(OrderRec, flags, "<u2")});
    out["fills"] = to_numpy(r.fills, {FLD(FillRec, ts, "<i8"), FLD(FillRec, id, "<u8"), FLD(FillRec, side, "u1"),
                                      FLD(FillRec, price, "<i8"), FLD(FillRec, qty, "<i8"), FLD(FillRec, fee, "<f8"),
                                      FLD(FillRec, maker, "u1"), FLD(FillRec, role, "u1"), FLD(FillRec, accepted, "u1")});
    out["equity"] = to_numpy(r.equity, {FLD(EquityRec, ts, "<i8"), FLD(EquityRec, position, "<i8"),
                                        FLD(EquityRec, realised, "<f8"), FLD(EquityRec, unrealised, "<f8"),
                                        FLD(EquityRec, fees, "<f8"), FLD(EquityRec, equity, "<f8")});
    py::dict lat;
    for (int s = 0; s < engine::kStageCount; ++s) {
      const auto& v = r.latency_ns[s];
      py::array_t<int64_t> a(v.size());
      if (!v.empty()) std::memcpy(a.mutable_data(), v.data(), v.size() * sizeof(int64_t));
      lat[engine::stage_name(s)] = a;
    }
    py::array_t<int64_t> timer(r.timer_ns.size());
    if (!r.timer_ns.empty()) std::memcpy(timer.mutable_data(), r.timer_ns.data(), r.timer_ns.size() * sizeof(int64_t));
    lat["timer"] = timer;
    out["latency_ns"] = lat;
    py::dict rej;
    for (size_t i = 1; i < risk::kRejectReasonCount; ++i)
      rej[risk::reject_reason_name(static_cast<risk::RejectReason>(i))] = r.rejections[i];
    out["rejections"] = rej;
    py::dict oreasons;
    for (size_t i = 1; i < static_cast<size_t>(orders::Reason::Count); ++i)
      oreasons[orders::reason_name(static_cast<orders::Reason>(i))] = r.order_reasons[i];
    out["order_rejections"] = oreasons;
    const auto& c = r.counters;
    py::dict cnt;
    cnt["book_events"] = c.book_events;
    cnt["order_events"] = c.order_events;
    cnt["trade_events"] = c.trade_events;
    cnt["decisions"] = c.decisions;
    cnt["nan_predictions"] = c.nan_predictions;
    cnt["entries"] = c.entries;
    cnt["entry_cancels"] = c.entry_cancels;
    cnt["size_zero"] = c.size_zero;
    cnt["om_rejected"] = c.om_rejected;
    cnt["om_event_rejections"] = c.om_event_rejections;
    cnt["kill_switch_trips"] = c.kill_switch_trips;
    cnt["kill_switch_closes"] = c.kill_switch_closes;
    cnt["exits"] = c.exits;
    cnt["orphan_closes"] = c.orphan_closes;
    cnt["closes"] = c.closes;
    cnt["leg_risk_bypass"] = c.leg_risk_bypass;
    cnt["no_book"] = c.no_book;
    cnt["vol_unknown"] = c.vol_unknown;
    cnt["crisis_entries"] = c.crisis_entries;
    cnt["sim_requests"] = r.sim.requests;
    cnt["sim_fills"] = r.sim.fills;
    cnt["sim_maker_fills"] = r.sim.maker_fills;
    cnt["sim_taker_fills"] = r.sim.taker_fills;
    cnt["sim_stops_triggered"] = r.sim.stops_triggered;
    cnt["sim_market_expired"] = r.sim.market_expired;
    cnt["sim_rejects"] = r.sim.rejects;
    cnt["sim_unknown_cancel"] = r.sim.unknown_cancel;
    cnt["sim_reduce_only_expired"] = r.sim.reduce_only_expired;
    cnt["sim_stp_expired"] = r.sim.stp_expired;
    cnt["sim_book_rejected"] = r.sim.book_rejected;
    out["counters"] = cnt;
    out["max_drawdown"] = r.max_drawdown;
    out["kill_reason"] = std::string(risk::trip_reason_name(static_cast<risk::TripReason>(r.kill_reason)));
    return out;
  }

  py::dict config() const { return config_to_dict(cfg_); }

 private:
  EngineConfig cfg_;
  py::object model_obj_;  // keeps the model alive
  inference::Model* model_ = nullptr;
  bool used_ = false;
};

}  // namespace

void bind_engine(py::module_& m) {
  py::class_<PyTradingEngine>(m, "TradingEngine", "One-call backtest: book -> features -> model -> strategy -> risk -> orders -> venue simulator")
      .def(py::init<const py::dict&, py::object, double, double>(), py::arg("config"), py::arg("model"),
           py::arg("tick_size"), py::arg("lot_size"))
      .def("run", &PyTradingEngine::run, py::arg("book"), py::arg("trades"), py::arg("orders") = py::none())
      .def_property_readonly("config", &PyTradingEngine::config);

  // Simulator pieces for unit tests.
  m.def("queue_level_change", [](double front, int64_t prev, int64_t next, const std::string& model, double power) {
    sim::QueueModelConfig qc;
    qc.kind = model == "risk_averse" ? sim::QueueModelKind::RiskAverse
              : model == "log"       ? sim::QueueModelKind::LogProb
                                     : sim::QueueModelKind::PowerProb;
    qc.power = power;
    sim::QueueModel qm(qc);
    sim::QueuePosition q{front, 0.0};
    qm.on_level_change(q, prev, next);
    return q.front;
  }, py::arg("front"), py::arg("prev"), py::arg("next"), py::arg("model") = "power", py::arg("power") = 2.0);
  m.def("fee", [](int64_t price, int64_t qty, bool maker, double tick, double lot, double maker_bps, double taker_bps) {
    sim::FeeModel f({maker_bps, taker_bps});
    return f.fee(price, qty, maker, tick, lot);
  }, py::arg("price"), py::arg("qty"), py::arg("maker"), py::arg("tick_size"), py::arg("lot_size"),
     py::arg("maker_bps") = 2.0, py::arg("taker_bps") = 5.0);
  m.def("simulate_orders", [](const py::object& book, const py::object& trades, const py::list& requests,
                              double maker_bps, double taker_bps, int64_t latency_ns, const py::object& orders,
                              const std::string& mode, int64_t response_latency_ns, const std::string& queue_model,
                              double queue_power, const py::object& trace_id, bool details, bool trades_first) {
    // Replays BOOK_EVENT, ORDER_EVENT and TRADE_EVENT arrays merged by ts_exchange (ties: book,
    // then order events, then trades, or trades first with trades_first; each stream in its own
    // order) through one VenueSimulator.
    // Each request is a tuple (id, side 0/1, type 0 limit/1 market/2 stop, price, qty
    // [, send_ts local ns = 0 [, kind 0 new/1 cancel/2 replace]]), sent in send_ts order.
    // Returns the fills as a list of (id, price, qty, maker, fee); with details=True a dict:
    // fills (id, price, qty, maker, fee, venue_ts), responses (kind, id, price, qty, venue_ts,
    // local_ts), counters, mode, and, with trace_id, the queue ahead of that order after every
    // market event (trace_stream 0 book / 1 order / 2 trade, trace_index, trace_ahead; -1 when
    // the order is not resting).
    size_t nb = 0, nt = 0, no = 0;
    const BookEvent* b = nullptr;
    const TradeEvent* t = nullptr;
    const OrderEvent* o = nullptr;
    if (!book.is_none()) b = record_buffer<BookEvent>(book.cast<py::array>(), "BOOK_EVENT", nb);
    if (!trades.is_none()) t = record_buffer<TradeEvent>(trades.cast<py::array>(), "TRADE_EVENT", nt);
    if (!orders.is_none()) o = record_buffer<OrderEvent>(orders.cast<py::array>(), "ORDER_EVENT", no);
    sim::SimConfig sc;
    sc.fees = {maker_bps, taker_bps};
    sc.latency = {latency_ns, response_latency_ns};
    if (mode == "auto") sc.mode = sim::SimMode::Auto;
    else if (mode == "l2") sc.mode = sim::SimMode::L2;
    else if (mode == "l3") sc.mode = sim::SimMode::L3;
    else throw py::value_error("mode: expected auto, l2 or l3, got " + mode);
    if (queue_model == "risk_averse") sc.queue.kind = sim::QueueModelKind::RiskAverse;
    else if (queue_model == "power") sc.queue.kind = sim::QueueModelKind::PowerProb;
    else if (queue_model == "log") sc.queue.kind = sim::QueueModelKind::LogProb;
    else throw py::value_error("queue_model: expected risk_averse, power or log, got " + queue_model);
    sc.queue.power = queue_power;
    sim::VenueSimulator v(sc);
    std::vector<std::pair<int64_t, sim::SimRequest>> reqs;
    for (auto r : requests) {
      auto tup = r.cast<py::tuple>();
      if (tup.size() < 5) throw py::value_error("a request is (id, side, type, price, qty[, send_ts[, kind]])");
      sim::SimRequest q;
      q.id = tup[0].cast<uint64_t>();
      q.side = static_cast<Side>(tup[1].cast<int>());
      q.type = static_cast<sim::SimOrderType>(tup[2].cast<int>());
      q.price = tup[3].cast<int64_t>();
      q.qty = tup[4].cast<int64_t>();
      const int kind = tup.size() > 6 ? tup[6].cast<int>() : 0;
      if (kind < 0 || kind > 2) throw py::value_error("request kind: expected 0 new, 1 cancel or 2 replace");
      q.kind = static_cast<sim::SimRequestKind>(kind);
      reqs.emplace_back(tup.size() > 5 ? tup[5].cast<int64_t>() : 0, q);
    }
    std::stable_sort(reqs.begin(), reqs.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
    for (const auto& [sent, q] : reqs) v.send(q, sent);
    const bool tracing = !trace_id.is_none();
    const uint64_t tid = tracing ? trace_id.cast<uint64_t>() : 0;
    std::vector<uint8_t> tr_stream;
    std::vector<int64_t> tr_index;
    std::vector<double> tr_ahead;
    {
      py::gil_scoped_release release;
      size_t ib = 0, io = 0, it = 0;
      while (ib < nb || io < no || it < nt) {
        const int64_t tb = ib < nb ? b[ib].ts_exchange : INT64_MAX;
        const int64_t to = io < no ? o[io].ts_exchange : INT64_MAX;
        const int64_t tt = it < nt ? t[it].ts_exchange : INT64_MAX;
        uint8_t stream;
        int64_t index;
        if (ib < nb && tb <= to && (trades_first ? tb < tt : tb <= tt)) {
          stream = 0, index = static_cast<int64_t>(ib);
          v.on_book(b[ib++]);
        } else if (io < no && (trades_first ? to < tt : to <= tt)) {
          stream = 1, index = static_cast<int64_t>(io);
          v.on_order(o[io++]);
        } else {
          stream = 2, index = static_cast<int64_t>(it);
          v.on_trade(t[it++]);
        }
        if (tracing) {
          tr_stream.push_back(stream);
          tr_index.push_back(index);
          tr_ahead.push_back(v.queue_ahead(tid));
        }
      }
      v.activate(INT64_MAX);
    }
    std::vector<sim::SimResponse> resp;
    v.poll(INT64_MAX, resp);
    py::list fills;
    for (const auto& s : resp)
      if (s.kind == sim::SimResponseKind::Fill) {
        if (details) fills.append(py::make_tuple(s.id, s.price, s.qty, s.maker, s.fee, s.venue_ts));
        else fills.append(py::make_tuple(s.id, s.price, s.qty, s.maker, s.fee));
      }
    if (!details) return py::object(fills);
    static const char* kKinds[] = {"ack", "fill", "expire", "reject", "cancelled"};
    py::list responses;
    for (const auto& s : resp)
      responses.append(py::make_tuple(kKinds[static_cast<int>(s.kind)], s.id, s.price, s.qty, s.venue_ts, s.local_ts));
    const auto& c = v.counters();
    py::dict cnt;
    cnt["requests"] = c.requests;
    cnt["fills"] = c.fills;
    cnt["maker_fills"] = c.maker_fills;
    cnt["taker_fills"] = c.taker_fills;
    cnt["stops_triggered"] = c.stops_triggered;
    cnt["market_expired"] = c.market_expired;
    cnt["rejects"] = c.rejects;
    cnt["unknown_cancel"] = c.unknown_cancel;
    cnt["book_rejected"] = c.book_rejected;
    cnt["order_events"] = c.order_events;
    cnt["ignored_events"] = c.ignored_events;
    cnt["stp_expired"] = c.stp_expired;
    cnt["reduce_only_expired"] = c.reduce_only_expired;
    py::dict out;
    out["fills"] = fills;
    out["responses"] = responses;
    out["counters"] = cnt;
    out["mode"] = v.mode() == sim::SimMode::L3 ? "l3" : v.mode() == sim::SimMode::L2 ? "l2" : "auto";
    out["resting"] = v.resting();
    if (tracing) {
      out["trace_stream"] = py::array_t<uint8_t>(static_cast<py::ssize_t>(tr_stream.size()), tr_stream.data());
      out["trace_index"] = py::array_t<int64_t>(static_cast<py::ssize_t>(tr_index.size()), tr_index.data());
      out["trace_ahead"] = py::array_t<double>(static_cast<py::ssize_t>(tr_ahead.size()), tr_ahead.data());
    }
    return py::object(out);
  }, py::arg("book"), py::arg("trades"), py::arg("requests"), py::arg("maker_bps") = 2.0,
     py::arg("taker_bps") = 5.0, py::arg("latency_ns") = 0, py::kw_only(), py::arg("orders") = py::none(),
     py::arg("mode") = "auto", py::arg("response_latency_ns") = 0, py::arg("queue_model") = "risk_averse",
     py::arg("queue_power") = 2.0, py::arg("trace_id") = py::none(), py::arg("details") = false,
     py::arg("trades_first") = false);
}

}  // namespace bot4::ext
