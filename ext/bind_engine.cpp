// _core.engine: the one-call backtest (TradingEngine) on numpy event arrays, GIL released.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <functional>
#include <map>
#include <string>

#include "buffers.hpp"
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
                    F(strategy, current_vol), F(strategy, fixed_qty_lots), F(strategy, max_qty_lots),
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

  py::dict run(const py::array& book, const py::array& trades) {
    if (used_) throw py::value_error("TradingEngine.run can be called once per engine");
    used_ = true;
    size_t nb = 0, nt = 0;
    const auto* b = record_buffer<BookEvent>(book, "BOOK_EVENT", nb);
    const auto* t = record_buffer<TradeEvent>(trades, "TRADE_EVENT", nt);
    engine::EngineResult r;
    std::string error;
    bool ok;
    {
      py::gil_scoped_release release;
      engine::TradingEngine eng(cfg_, model_);
      ok = eng.run(b, nb, t, nt, r, error);
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
                                        FLD(OrderRec, role, "u1"), FLD(OrderRec, reason, "u1")});
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
    cnt["leg_risk_bypass"] = c.leg_risk_bypass;
    cnt["no_book"] = c.no_book;
    cnt["sim_requests"] = r.sim.requests;
    cnt["sim_fills"] = r.sim.fills;
    cnt["sim_maker_fills"] = r.sim.maker_fills;
    cnt["sim_taker_fills"] = r.sim.taker_fills;
    cnt["sim_stops_triggered"] = r.sim.stops_triggered;
    cnt["sim_market_expired"] = r.sim.market_expired;
    cnt["sim_rejects"] = r.sim.rejects;
    cnt["sim_unknown_cancel"] = r.sim.unknown_cancel;
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
      .def("run", &PyTradingEngine::run, py::arg("book"), py::arg("trades"))
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
  m.def("simulate_orders", [](const py::array& book, const py::array& trades, const py::list& requests,
                              double maker_bps, double taker_bps, int64_t latency_ns) {
    // Replays book then trades (merged by ts_exchange) after sending the requests at t=0: each
    // request a tuple (id, side 0/1, type 0 limit/1 market/2 stop, price, qty). Returns fills
    // as a list of (id, price, qty, maker, fee) and the simulator counters.
    size_t nb = 0, nt = 0;
    const auto* b = record_buffer<BookEvent>(book, "BOOK_EVENT", nb);
    const auto* t = record_buffer<TradeEvent>(trades, "TRADE_EVENT", nt);
    sim::SimConfig sc;
    sc.fees = {maker_bps, taker_bps};
    sc.latency = {latency_ns, 0};
    sim::VenueSimulator v(sc);
    size_t ib = 0, it = 0;
    // book first up to the first request time handled by arrival ordering
    std::vector<sim::SimRequest> reqs;
    for (auto r : requests) {
      auto tup = r.cast<py::tuple>();
      sim::SimRequest q;
      q.id = tup[0].cast<uint64_t>();
      q.side = static_cast<Side>(tup[1].cast<int>());
      q.type = static_cast<sim::SimOrderType>(tup[2].cast<int>());
      q.price = tup[3].cast<int64_t>();
      q.qty = tup[4].cast<int64_t>();
      q.kind = sim::SimRequestKind::New;
      v.send(q, tup.size() > 5 ? tup[5].cast<int64_t>() : 0);
    }
    while (ib < nb || it < nt) {
      if (it >= nt || (ib < nb && b[ib].ts_exchange <= t[it].ts_exchange)) v.on_book(b[ib++]);
      else v.on_trade(t[it++]);
    }
    v.activate(INT64_MAX);
    std::vector<sim::SimResponse> resp;
    v.poll(INT64_MAX, resp);
    py::list fills;
    for (const auto& s : resp)
      if (s.kind == sim::SimResponseKind::Fill) fills.append(py::make_tuple(s.id, s.price, s.qty, s.maker, s.fee));
    return fills;
  }, py::arg("book"), py::arg("trades"), py::arg("requests"), py::arg("maker_bps") = 2.0,
     py::arg("taker_bps") = 5.0, py::arg("latency_ns") = 0);
}

}  // namespace bot4::ext
