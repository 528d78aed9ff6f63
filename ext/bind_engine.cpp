// _core.engine: the engine (backtest over numpy event arrays, GIL released), strategies (built-in
// or Python objects), the config schema of every stage, and simulator pieces for tests.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "buffers.hpp"
#include "config_dict.hpp"
#include "engine/backtest.hpp"
#include "engine/streaming_backtest.hpp"
#include "feature_config_dict.hpp"
#include "risk/kill_switch.hpp"
#include "risk/pre_trade_checks.hpp"
#include "sim/request_replay.hpp"
#include "sim/sim_venue.hpp"
#include "sim/sim_params.hpp"
#include "strategy/builtins.hpp"
#include "strategy/callback_strategy.hpp"
#include "strategy/plugin.hpp"

namespace py = pybind11;

namespace bot4::ext {
namespace {

using engine::EngineConfig;
using strategy::DecisionContext;

// ---------------------------------------------------------------- config
EngineConfig engine_config_from(const py::dict& d) {
  EngineConfig c;
  for (auto item : d) {
    const auto section = py::str(item.first).cast<std::string>();
    if (section == "engine") c.engine = config_from<engine::EngineParams>(item.second, "engine");
    else if (section == "sizing") c.sizing = config_from<risk::SizingConfig>(item.second, "sizing");
    else if (section == "pre_trade") c.pre_trade = config_from<risk::PreTradeConfig>(item.second, "pre_trade");
    else if (section == "kill_switch") c.kill_switch = config_from<risk::KillSwitchConfig>(item.second, "kill_switch");
    else if (section == "ensemble") {
      c.ensemble = config_from<inference::EnsembleConfig>(item.second, "ensemble");
      std::string error;
      if (!inference::Ensemble::validate_fields(c.ensemble, error)) config_error(error);
    }
    else if (section == "features") {  // the model's FeatureConfig (train/serve parity)
      if (!item.second.is_none()) c.features = feature_config_from_dict(item.second.cast<py::dict>());
    } else if (section == "sim" || section == "strategy") {
      continue;  // per instrument (sim) / the strategy object's own
    } else {
      config_error("unknown engine config section: " + section);
    }
  }
  return c;
}

sim::SimConfig sim_config_from(const py::handle& d) {
  const auto p = config_from<sim::SimParams>(d, "sim");
  sim::SimConfig sc;
  std::string error;
  if (!sim::to_sim_config(p, sc, error)) config_error(error);
  return sc;
}

py::dict schema() {
  py::dict d;
  d["engine"] = config_schema<engine::EngineParams>();
  d["sizing"] = config_schema<risk::SizingConfig>();
  d["pre_trade"] = config_schema<risk::PreTradeConfig>();
  d["kill_switch"] = config_schema<risk::KillSwitchConfig>();
  d["sim"] = config_schema<sim::SimParams>();
  d["ensemble"] = config_schema<inference::EnsembleConfig>();
  py::dict strategies;
  strategy::for_each_builtin([&](auto tag) {
    using S = typename decltype(tag)::type;
    py::dict s;
    s["doc"] = S::kDoc;
    s["fields"] = config_schema<typename S::Config>();
    strategies[S::kName] = s;
  });
  d["strategies"] = strategies;
  py::list counters;
  engine::EngineCounters c;
  engine::EngineCounters::visit(c, [&](const char* name, const char* doc, uint64_t&) {
    counters.append(py::make_tuple(name, doc));
  });
  d["counters"] = counters;
  py::dict names;
  auto list_of = [](const auto& arr) {
    py::list l;
    for (const char* n : arr) l.append(n);
    return l;
  };
  names["order_states"] = list_of(orders::kOrderStateNames);
  names["order_types"] = list_of(orders::kOrderTypeNames);
  names["order_roles"] = list_of(orders::kOrderRoleNames);
  names["order_event_kinds"] = list_of(orders::kOrderEventKindNames);
  py::list actions;
  for (int a = 0; a <= static_cast<int>(strategy::DecisionAction::Rejected); ++a)
    actions.append(strategy::decision_action_name(static_cast<strategy::DecisionAction>(a)));
  names["decision_actions"] = actions;
  py::list stages;
  for (int s = 0; s < engine::kStageCount; ++s) stages.append(engine::stage_name(s));
  names["stages"] = stages;
  d["names"] = names;
  return d;
}

// ---------------------------------------------------------------- strategies
// A strategy object as Python holds it: a built-in (owned here) or a Python object wrapped.
class StrategyHandle {
 public:
  virtual ~StrategyHandle() = default;
  virtual strategy::Strategy* get() = 0;
  std::string label() { return get()->name(); }
  virtual py::dict stats() { return {}; }
  // Rethrows what a Python strategy raised during a run.
  virtual void raise_if_failed() {}
};

class BuiltinStrategy final : public StrategyHandle {
 public:
  BuiltinStrategy(const std::string& name, const py::object& params) {
    const bool found = strategy::visit_builtin(name, [&](auto tag) {
      using S = typename decltype(tag)::type;
      auto cfg = config_from<typename S::Config>(params, "strategy." + name);
      impl_ = std::make_unique<S>(cfg);
      config_ = config_to(cfg);
    });
    if (!found) {
      std::string known;
      strategy::for_each_builtin([&](auto tag) {
        known += (known.empty() ? "" : ", ") + std::string(decltype(tag)::type::kName);
      });
      config_error("unknown strategy '" + name + "' (built-ins: " + known + ")");
    }
  }
  strategy::Strategy* get() override { return impl_.get(); }
  py::dict config() const { return config_; }
  // A live change of some fields (the others keep their values); validated as a whole before
  // the strategy sees it (config_error, nothing changed, on an unknown field or a bad value).
  void set_config(const py::dict& fields) {
    py::dict merged;  // a copy: config_ changes only once the whole is valid
    for (auto item : config_) merged[item.first] = item.second;
    for (auto item : fields) merged[item.first] = item.second;
    strategy::visit_builtin(impl_->name(), [&](auto tag) {
      using S = typename decltype(tag)::type;
      const auto cfg = config_from<typename S::Config>(merged, std::string("strategy.") + S::kName);
      auto* s = static_cast<S*>(impl_.get());
      if constexpr (requires { s->set_config(cfg); }) {
        s->set_config(cfg);
      } else if (!fields.empty()) {
        config_error(std::string("strategy ") + S::kName + " has no parameters to change");
      }
      config_ = config_to(cfg);
    });
  }
  py::dict stats() override {
    py::dict d;
    if (auto* t = dynamic_cast<strategy::TopOfBook*>(impl_.get())) {
      d["reads"] = t->reads();
      d["checksum"] = t->checksum();
      d["spread_sum"] = t->spread_sum();
    } else if (auto* mm = dynamic_cast<strategy::MarketMaker*>(impl_.get())) {
      d["pulls"] = mm->pulls();
      d["requotes"] = mm->requotes();
    }
    return d;
  }

 private:
  std::unique_ptr<strategy::Strategy> impl_;
  py::dict config_;
};

// A Python object with on_decision(ctx) (and optionally on_fill(fill), on_reject(reject)),
// called with the GIL taken; what on_decision returns (an iterable of intents) is applied in
// order through each intent's _apply(ctx). The first exception stops further calls and is raised
// when the run returns.
class PyStrategy final : public strategy::Strategy, public StrategyHandle {
 public:
  explicit PyStrategy(py::object obj) : obj_(std::move(obj)) {
    on_decision_ = obj_.attr("on_decision");
    if (py::hasattr(obj_, "on_fill")) on_fill_ = obj_.attr("on_fill");
    if (py::hasattr(obj_, "on_reject")) on_reject_ = obj_.attr("on_reject");
    name_ = py::str(py::type::of(obj_).attr("__name__")).cast<std::string>();
    if (py::hasattr(obj_, "holds_inventory")) holds_inventory_ = obj_.attr("holds_inventory").cast<bool>();
    if (py::hasattr(obj_, "book_only")) book_only_ = obj_.attr("book_only").cast<bool>();
  }
  ~PyStrategy() override {
    py::gil_scoped_acquire gil;
    on_decision_ = py::object();
    on_fill_ = py::object();
    on_reject_ = py::object();
    obj_ = py::object();
  }
  strategy::Strategy* get() override { return this; }
  const char* name() const override { return name_.c_str(); }
  bool holds_inventory() const override { return holds_inventory_; }
  bool book_only() const override { return book_only_; }

  void on_decision(DecisionContext& ctx) override {
    if (failed_) return;
    py::gil_scoped_acquire gil;
    try {
      py::object r = on_decision_(py::cast(&ctx, py::return_value_policy::reference));
      if (!r.is_none()) {
        py::object ctx_obj = py::cast(&ctx, py::return_value_policy::reference);
        for (auto intent : r) intent.attr("_apply")(ctx_obj);
      }
    } catch (py::error_already_set& e) {
      fail(e);
    }
  }
  void on_fill(const strategy::FillInfo& f) override {
    if (failed_ || !on_fill_) return;
    py::gil_scoped_acquire gil;
    try {
      on_fill_(py::cast(f));
    } catch (py::error_already_set& e) {
      fail(e);
    }
  }
  void on_reject(const strategy::RejectInfo& r) override {
    if (failed_ || !on_reject_) return;
    py::gil_scoped_acquire gil;
    try {
      on_reject_(py::cast(r));
    } catch (py::error_already_set& e) {
      fail(e);
    }
  }
  void raise_if_failed() override {
    if (!failed_) return;
    failed_ = false;
    error_->restore();
    error_.reset();
    throw py::error_already_set();
  }

 private:
  void fail(py::error_already_set& e) {
    failed_ = true;
    error_.emplace(std::move(e));
  }
  py::object obj_, on_decision_, on_fill_, on_reject_;
  std::string name_;
  bool holds_inventory_ = false;
  bool book_only_ = false;
  bool failed_ = false;
  std::optional<py::error_already_set> error_;
};

// A C++ strategy from a plugin library (core/strategy/plugin.hpp), params as a flat JSON object.
class PluginStrategyHandle final : public StrategyHandle {
 public:
  PluginStrategyHandle(const std::string& path, const py::object& params) {
    std::string error;
    auto lib = strategy::StrategyLibrary::open(path, error);
    if (!lib) throw py::value_error(error);
    const std::string json = params.is_none() ? std::string("{}")
                                              : py::module_::import("json").attr("dumps")(params).cast<std::string>();
    impl_ = lib->make(json, error);
    if (!impl_) throw py::value_error(error);
    path_ = path;
  }
  strategy::Strategy* get() override { return impl_.get(); }
  const std::string& path() const { return path_; }

 private:
  strategy::StrategyLibrary::Ptr impl_;
  std::string path_;
};

// An object whose __bot4_callbacks__() returns a capsule "bot4.StrategyCallbacks" holding a
// strategy::StrategyCallbacks (a Cython cdef class through bot4/strategy_api.pxd): called by the
// core directly, without the GIL. The object is kept alive for the handle's life.
class CallbackStrategyHandle final : public StrategyHandle {
 public:
  explicit CallbackStrategyHandle(py::object obj) : obj_(std::move(obj)) {
    py::object cap = obj_.attr("__bot4_callbacks__")();
    void* p = PyCapsule_GetPointer(cap.ptr(), "bot4.StrategyCallbacks");
    if (p == nullptr) {
      PyErr_Clear();
      throw py::type_error("__bot4_callbacks__() must return the capsule of bot4.strategy_api.callbacks()");
    }
    const auto& cb = *static_cast<const strategy::StrategyCallbacks*>(p);
    if (std::string why = strategy::CallbackStrategy::check(cb); !why.empty()) throw py::value_error(why);
    capsule_ = cap;
    impl_ = std::make_unique<strategy::CallbackStrategy>(
        cb, py::str(py::type::of(obj_).attr("__name__")).cast<std::string>());
  }
  ~CallbackStrategyHandle() override {
    py::gil_scoped_acquire gil;
    capsule_ = py::object();
    obj_ = py::object();
  }
  strategy::Strategy* get() override { return impl_.get(); }
  py::dict stats() override {
    if (py::hasattr(obj_, "stats")) return obj_.attr("stats")().cast<py::dict>();
    return {};
  }
  py::object object() const { return obj_; }

 private:
  py::object obj_, capsule_;
  std::unique_ptr<strategy::CallbackStrategy> impl_;
};

std::shared_ptr<StrategyHandle> strategy_handle(const py::object& s) {
  if (py::isinstance<StrategyHandle>(s)) return s.cast<std::shared_ptr<StrategyHandle>>();
  if (py::hasattr(s, "__bot4_callbacks__")) return std::make_shared<CallbackStrategyHandle>(s);
  if (!py::hasattr(s, "on_decision"))
    throw py::type_error("a strategy is a built-in (bot4.strategies.make) or an object with on_decision(ctx)");
  return std::make_shared<PyStrategy>(s);
}

// ---------------------------------------------------------------- results
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

py::dict sim_counters(const sim::SimCounters& s) {
  py::dict d;
  d["requests"] = s.requests;
  d["fills"] = s.fills;
  d["maker_fills"] = s.maker_fills;
  d["taker_fills"] = s.taker_fills;
  d["stops_triggered"] = s.stops_triggered;
  d["market_expired"] = s.market_expired;
  d["rejects"] = s.rejects;
  d["unknown_cancel"] = s.unknown_cancel;
  d["reduce_only_expired"] = s.reduce_only_expired;
  d["stp_expired"] = s.stp_expired;
  d["book_rejected"] = s.book_rejected;
  d["order_events"] = s.order_events;
  d["ignored_events"] = s.ignored_events;
  d["prints_after_level_drop"] = s.prints_after_level_drop;
  d["late_feed_events"] = s.late_feed_events;
  return d;
}

// The per-event records of a result or of a part taken from a streamed run, as NumPy arrays.
template <typename Records>
void records_into(py::dict& out, const Records& r) {
  using engine::DecisionRec;
  using engine::EquityRec;
  using engine::FillRec;
  using engine::OrderRec;
  out["decisions"] = to_numpy(r.decisions, {FLD(DecisionRec, ts, "<i8"), FLD(DecisionRec, p, "<f8"),
                                            FLD(DecisionRec, target, "i1"), FLD(DecisionRec, action, "i1"),
                                            FLD(DecisionRec, instrument, "<u4"), FLD(DecisionRec, position, "<i8")});
  out["scores"] = to_numpy(r.scores, {FLD(engine::ScoreRec, ts, "<i8"), FLD(engine::ScoreRec, p, "<f8"),
                                      FLD(engine::ScoreRec, instrument, "<u4"), FLD(engine::ScoreRec, slot, "<u4")});
  out["orders"] = to_numpy(r.orders, {FLD(OrderRec, ts, "<i8"), FLD(OrderRec, id, "<u8"), FLD(OrderRec, side, "u1"),
                                      FLD(OrderRec, price, "<i8"), FLD(OrderRec, qty, "<i8"), FLD(OrderRec, filled, "<i8"),
                                      FLD(OrderRec, type, "u1"), FLD(OrderRec, status, "u1"), FLD(OrderRec, kind, "u1"),
                                      FLD(OrderRec, role, "u1"), FLD(OrderRec, reason, "u1"),
                                      FLD(OrderRec, flags, "<u2"), FLD(OrderRec, instrument, "<u4")});
  out["fills"] = to_numpy(r.fills, {FLD(FillRec, ts, "<i8"), FLD(FillRec, id, "<u8"), FLD(FillRec, side, "u1"),
                                    FLD(FillRec, price, "<i8"), FLD(FillRec, qty, "<i8"), FLD(FillRec, fee, "<f8"),
                                    FLD(FillRec, maker, "u1"), FLD(FillRec, role, "u1"), FLD(FillRec, accepted, "u1"),
                                    FLD(FillRec, instrument, "<u4")});
  out["equity"] = to_numpy(r.equity, {FLD(EquityRec, ts, "<i8"), FLD(EquityRec, position, "<i8"),
                                      FLD(EquityRec, realised, "<f8"), FLD(EquityRec, unrealised, "<f8"),
                                      FLD(EquityRec, fees, "<f8"), FLD(EquityRec, equity, "<f8"),
                                      FLD(EquityRec, total_equity, "<f8"), FLD(EquityRec, instrument, "<u4")});
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
}

py::dict result_dict(engine::EngineResult& r) {
  py::dict out;
  records_into(out, r);
  py::dict rej;
  for (size_t i = 1; i < risk::kRejectReasonCount; ++i)
    rej[risk::reject_reason_name(static_cast<risk::RejectReason>(i))] = r.rejections[i];
  out["rejections"] = rej;
  py::dict oreasons;
  for (size_t i = 1; i < static_cast<size_t>(orders::Reason::Count); ++i)
    oreasons[orders::reason_name(static_cast<orders::Reason>(i))] = r.order_reasons[i];
  out["order_rejections"] = oreasons;
  py::dict cnt;
  engine::EngineCounters::visit(r.counters, [&](const char* name, const char*, uint64_t& v) { cnt[name] = v; });
  for (auto item : sim_counters(r.sim)) cnt[py::str("sim_" + py::str(item.first).cast<std::string>())] = item.second;
  out["counters"] = cnt;
  py::list inst;
  for (const auto& s : r.instruments) {
    py::dict d;
    d["instrument"] = s.instrument;
    d["events"] = s.events;
    d["decisions"] = s.decisions;
    d["orders"] = s.orders;
    d["fills"] = s.fills;
    d["position"] = s.position;
    d["realised"] = s.realised;
    d["unrealised"] = s.unrealised;
    d["fees"] = s.fees;
    d["pnl"] = s.pnl;
    d["sim"] = sim_counters(s.sim);
    inst.append(d);
  }
  out["instruments"] = inst;
  out["max_drawdown"] = r.max_drawdown;
  out["kill_reason"] = std::string(risk::trip_reason_name(static_cast<risk::TripReason>(r.kill_reason)));
  return out;
}

inference::Model* model_ptr(const py::handle& m) {
  py::object core = py::hasattr(m, "core") && !py::isinstance<inference::Model>(m) ? m.attr("core")
                                                                                   : py::reinterpret_borrow<py::object>(m);
  return core.cast<inference::Model*>();
}

// instruments: [{"id", "tick_size", "lot_size", "l3", "strategy", "models": [...], "sim": {...}}]
struct InstrumentsArg {
  std::vector<engine::BacktestInstrument> spec;
  std::vector<std::shared_ptr<StrategyHandle>> handles;
  std::vector<py::object> keep;  // models stay alive for the run
};

InstrumentsArg instruments_from(const py::list& instruments) {
  InstrumentsArg a;
  for (auto item : instruments) {
    const py::dict d = item.cast<py::dict>();
    engine::BacktestInstrument bi;
    bi.spec.id = d["id"].cast<uint32_t>();
    bi.spec.tick_size = d["tick_size"].cast<double>();
    bi.spec.lot_size = d["lot_size"].cast<double>();
    bi.spec.l3 = d.contains("l3") ? d["l3"].cast<bool>() : false;
    bi.spec.inverse = d.contains("inverse") ? d["inverse"].cast<bool>() : false;
    bi.spec.contract_size = d.contains("contract_size") ? d["contract_size"].cast<double>() : 1.0;
    a.handles.push_back(strategy_handle(d["strategy"]));
    bi.strategy = a.handles.back()->get();
    if (d.contains("models"))
      for (auto m : d["models"]) {
        a.keep.push_back(py::reinterpret_borrow<py::object>(m));
        bi.models.push_back(model_ptr(m));
      }
    bi.sim = sim_config_from(d.contains("sim") ? py::object(d["sim"]) : py::object(py::none()));
    a.spec.push_back(std::move(bi));
  }
  return a;
}

py::dict backtest(const py::dict& config, const py::list& instruments, const py::array& book, const py::array& trades,
                  const py::object& orders) {
  const EngineConfig cfg = engine_config_from(config);
  size_t nb = 0, nt = 0, no = 0;
  const auto* b = record_buffer<BookEvent>(book, "BOOK_EVENT", nb);
  const auto* t = record_buffer<TradeEvent>(trades, "TRADE_EVENT", nt);
  const OrderEvent* o = nullptr;
  py::array orders_arr;
  if (!orders.is_none()) {
    orders_arr = orders.cast<py::array>();
    o = record_buffer<OrderEvent>(orders_arr, "ORDER_EVENT", no);
  }
  InstrumentsArg ins = instruments_from(instruments);
  engine::EngineResult r;
  std::string error;
  bool ok;
  {
    py::gil_scoped_release release;
    ok = engine::run_backtest(cfg, ins.spec, b, nb, o, no, t, nt, r, error);
  }
  for (auto& h : ins.handles) h->raise_if_failed();
  if (!ok) throw py::value_error(error);
  return result_dict(r);
}

// The engine's remote venues reach Python through `exchange(instrument, requests, clock_offset,
// now) -> (responses, live)` (arrays of the VenueRequest / VenueResponse records; see
// execution::VenueTransport). Called with the GIL taken from inside the engine's run; the first
// error is kept and raised once the core returns, and the venue then counts as idle.
class PyVenueTransport final : public execution::VenueTransport {
 public:
  explicit PyVenueTransport(py::object fn) : fn_(std::move(fn)) {}
  bool exchange(InstrumentId instrument, const std::vector<execution::VenueRequestRecord>& requests,
                int64_t clock_offset, int64_t now, std::vector<execution::VenueResponseRecord>& out) override {
    py::gil_scoped_acquire gil;
    if (failed_) return false;
    try {
      py::array_t<execution::VenueRequestRecord> req(static_cast<py::ssize_t>(requests.size()));
      if (!requests.empty())
        std::memcpy(req.mutable_data(), requests.data(), requests.size() * sizeof(execution::VenueRequestRecord));
      py::tuple got = fn_(instrument, req, clock_offset, now).cast<py::tuple>();
      if (got.size() != 2) throw py::value_error("a venue exchange returns (responses, live)");
      size_t n = 0;
      const auto* r = record_buffer<execution::VenueResponseRecord>(got[0].cast<py::array>(), "VENUE_RESPONSE", n);
      out.insert(out.end(), r, r + n);
      return got[1].cast<bool>();
    } catch (py::error_already_set& e) {
      failed_ = true;
      error_ = py::reinterpret_borrow<py::object>(e.value());
      return false;
    } catch (py::builtin_exception& e) {  // (a TypeError from a wrong response dtype stays one)
      e.set_error();
      py::error_already_set err;
      failed_ = true;
      error_ = py::reinterpret_borrow<py::object>(err.value());
      return false;
    } catch (const std::exception& e) {
      failed_ = true;
      error_ = py::reinterpret_borrow<py::object>(PyExc_ValueError)(e.what());
      return false;
    }
  }
  void raise_if_failed() {
    if (!failed_) return;
    PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(error_.ptr())), error_.ptr());
    throw py::error_already_set();
  }

 private:
  py::object fn_;
  bool failed_ = false;
  py::object error_;
};

class SimVenueHandle {
 public:
  SimVenueHandle(const py::object& sim, double tick_size, double lot_size, bool inverse, double contract_size)
      : venue_(config(sim, tick_size, lot_size, inverse, contract_size)) {
    venue_.append_feed(nullptr, 0, nullptr, 0, nullptr, 0);
  }
  void append_feed(const py::object& book, const py::object& trades, const py::object& orders) {
    size_t nb = 0, nt = 0, no = 0;
    const BookEvent* b = nullptr;
    const TradeEvent* t = nullptr;
    const OrderEvent* o = nullptr;
    if (!book.is_none()) b = record_buffer<BookEvent>(book.cast<py::array>(), "BOOK_EVENT", nb);
    if (!trades.is_none()) t = record_buffer<TradeEvent>(trades.cast<py::array>(), "TRADE_EVENT", nt);
    if (!orders.is_none()) o = record_buffer<OrderEvent>(orders.cast<py::array>(), "ORDER_EVENT", no);
    py::gil_scoped_release release;
    venue_.append_feed(b, nb, o, no, t, nt);
  }
  py::tuple exchange(uint32_t instrument, const py::array& requests, int64_t clock_offset, int64_t now) {
    size_t n = 0;
    const auto* r = record_buffer<execution::VenueRequestRecord>(requests, "VENUE_REQUEST", n);
    out_.clear();
    bool live;
    {
      py::gil_scoped_release release;
      live = venue_.exchange(instrument, r, n, clock_offset, now, out_);
    }
    py::array_t<execution::VenueResponseRecord> responses(static_cast<py::ssize_t>(out_.size()));
    if (!out_.empty())
      std::memcpy(responses.mutable_data(), out_.data(), out_.size() * sizeof(execution::VenueResponseRecord));
    return py::make_tuple(responses, live);
  }
  py::dict counters() { return sim_counters(venue_.counters()); }

 private:
  static sim::SimConfig config(const py::object& sim, double tick_size, double lot_size, bool inverse,
                                double contract_size) {
    sim::SimConfig sc = sim_config_from(sim);
    sc.tick_size = tick_size;
    sc.lot_size = lot_size;
    sc.inverse = inverse;
    sc.contract_size = contract_size;
    return sc;
  }
  sim::SimVenue venue_;
  std::vector<execution::VenueResponseRecord> out_;
};

// A backtest fed in pieces (engine/streaming_backtest.hpp); strategies and models stay alive
// with it. venue: None = a simulator per instrument in the process; a callable = the venue is
// outside (see PyVenueTransport).
class StreamingBacktestHandle {
 public:
  StreamingBacktestHandle(const py::dict& config, const py::list& instruments, const py::object& venue)
      : ins_(instruments_from(instruments)),
        transport_(venue.is_none() ? nullptr : std::make_unique<PyVenueTransport>(venue)),
        run_(engine_config_from(config), ins_.spec, transport_.get()) {
    std::string error;
    if (!run_.start(error)) throw py::value_error(error);
  }
  py::dict remote_venue_counters() const {
    const auto c = run_.remote_counters();
    py::dict d;
    d["requests"] = c.requests;
    d["exchanges"] = c.exchanges;
    d["skipped"] = c.skipped;
    d["responses"] = c.responses;
    return d;
  }
  void push(const py::object& book, const py::object& trades, const py::object& orders, int64_t watermark) {
    if (finished_) throw py::value_error("push after finish");
    size_t nb = 0, nt = 0, no = 0;
    py::array ba, ta, oa;
    const BookEvent* b = nullptr;
    const TradeEvent* t = nullptr;
    const OrderEvent* o = nullptr;
    if (!book.is_none()) b = record_buffer<BookEvent>(ba = book.cast<py::array>(), "BOOK_EVENT", nb);
    if (!trades.is_none()) t = record_buffer<TradeEvent>(ta = trades.cast<py::array>(), "TRADE_EVENT", nt);
    if (!orders.is_none()) o = record_buffer<OrderEvent>(oa = orders.cast<py::array>(), "ORDER_EVENT", no);
    std::string error;
    bool ok;
    {
      py::gil_scoped_release release;
      ok = run_.push(b, nb, o, no, t, nt, watermark, error);
    }
    raise_if_failed();
    if (!ok) throw py::value_error(error);
  }
  py::dict take_records() {
    engine::EngineRecords rec;
    run_.take_records(rec);
    py::dict out;
    records_into(out, rec);
    return out;
  }
  py::dict finish() {
    if (finished_) throw py::value_error("finish called twice");
    finished_ = true;
    engine::EngineResult* r;
    {
      py::gil_scoped_release release;
      r = &run_.finish();
    }
    raise_if_failed();
    return result_dict(*r);
  }
  // The running engine, sizing, pre-trade and kill-switch sections.
  py::dict config() {
    const EngineConfig& c = run_.engine().config();
    py::dict d;
    d["engine"] = config_to(c.engine);
    d["sizing"] = config_to(c.sizing);
    d["pre_trade"] = config_to(c.pre_trade);
    d["kill_switch"] = config_to(c.kill_switch);
    return d;
  }
  // {section: {field: value}}: the given fields change, the rest keep their running values; every
  // section is validated before any is applied (Engine::set_config applies them at once).
  void set_config(const py::dict& sections) {
    EngineConfig next = run_.engine().config();
    const py::dict current = config();
    for (auto item : sections) {
      const auto section = py::str(item.first).cast<std::string>();
      if (!current.contains(section.c_str()))
        config_error("unknown or fixed config section: " + section + " (live: engine, sizing, pre_trade, kill_switch)");
      py::dict merged = current[section.c_str()].cast<py::dict>();
      for (auto kv : item.second.cast<py::dict>()) merged[kv.first] = kv.second;
      if (section == "engine") next.engine = config_from<engine::EngineParams>(merged, "engine");
      else if (section == "sizing") next.sizing = config_from<risk::SizingConfig>(merged, "sizing");
      else if (section == "pre_trade") next.pre_trade = config_from<risk::PreTradeConfig>(merged, "pre_trade");
      else next.kill_switch = config_from<risk::KillSwitchConfig>(merged, "kill_switch");
    }
    std::string error;
    if (!run_.engine().set_config(next, error)) config_error(error);
  }
  // The built-in strategy's name and running fields ({"name", field...}; of the first
  // instrument: every instrument runs the same built-in with the same fields); None for a user
  // strategy.
  py::object strategy_config() {
    if (ins_.handles.empty()) return py::none();
    auto* b = dynamic_cast<BuiltinStrategy*>(ins_.handles.front().get());
    if (b == nullptr) return py::none();
    py::dict d;
    d["name"] = b->label();
    for (auto item : b->config()) d[item.first] = item.second;
    return py::object(d);
  }
  // Some fields of the built-in strategy of every instrument; validated before any changes.
  void set_strategy_config(const py::dict& fields) {
    std::vector<BuiltinStrategy*> all;
    for (auto& h : ins_.handles) {
      auto* b = dynamic_cast<BuiltinStrategy*>(h.get());
      if (b == nullptr) config_error("strategy parameters: only a built-in strategy's fields can change live");
      all.push_back(b);
    }
    // Every instrument runs the same built-in with the same fields (one [strategy] table), so
    // the first one's validation (config_error before it changes) stands for all.
    for (auto* b : all) b->set_config(fields);
  }
  // Model slot `slot` of every feature-reading instrument replaced by `model` (an
  // inference.Model or an object with .core), from the next decision on; kept alive with the run.
  void swap_model(const py::object& model, size_t slot) {
    inference::Model* ptr = model_ptr(model);
    std::string error;
    if (!run_.engine().swap_model(slot, ptr, error)) throw py::value_error(error);
    ins_.keep.push_back(model);
  }
  void kill(const py::object& instrument) {
    if (instrument.is_none()) run_.engine().kill();
    else if (!run_.engine().halt(instrument.cast<uint32_t>())) unknown_instrument(instrument);
  }
  size_t refresh_ensemble_weights() { return run_.engine().refresh_ensemble_weights(); }
  void flatten(const py::object& instrument) {
    if (instrument.is_none()) run_.engine().flatten();
    else if (!run_.engine().flatten(instrument.cast<uint32_t>())) unknown_instrument(instrument);
  }
  void pause(bool on, const py::object& instrument) {
    if (instrument.is_none()) run_.engine().pause(on);
    else if (!run_.engine().pause(instrument.cast<uint32_t>(), on)) unknown_instrument(instrument);
  }
  bool paused(const py::object& instrument) {
    return instrument.is_none() ? run_.engine().paused() : run_.engine().paused(instrument.cast<uint32_t>());
  }
  bool halted(uint32_t instrument) { return run_.engine().halted(instrument); }
  size_t buffered() const { return run_.buffered(); }
  uint64_t late_events() const { return run_.late_events(); }
  int64_t watermark() const { return run_.watermark(); }

 private:
  void raise_if_failed() {
    for (auto& h : ins_.handles) h->raise_if_failed();
    if (transport_) transport_->raise_if_failed();
  }
  [[noreturn]] static void unknown_instrument(const py::object& instrument) {
    throw py::value_error("instrument " + py::str(instrument).cast<std::string>() + " is not traded by this engine");
  }
  InstrumentsArg ins_;
  std::unique_ptr<PyVenueTransport> transport_;
  engine::StreamingBacktest run_;
  bool finished_ = false;
};

// ---------------------------------------------------------------- the strategy context
strategy::OrderKind order_kind(const std::string& k) {
  using strategy::OrderKind;
  if (k == "limit") return OrderKind::Limit;
  if (k == "market") return OrderKind::Market;
  if (k == "stop") return OrderKind::Stop;
  if (k == "bracket") return OrderKind::Bracket;
  if (k == "oco") return OrderKind::Oco;
  if (k == "oto") return OrderKind::Oto;
  throw py::value_error("order kind: expected limit, market, stop, bracket, oco or oto, got " + k);
}

Side side_of(const std::string& s) {
  if (s == "buy" || s == "bid") return Side::Bid;
  if (s == "sell" || s == "ask") return Side::Ask;
  throw py::value_error("side: expected 'buy' or 'sell', got '" + s + "'");
}

py::dict outcome_dict(const strategy::Outcome& o) {
  py::dict d;
  d["ok"] = o.ok;
  d["order_id"] = o.order_id;
  d["reason"] = orders::reason_name(o.order_reason);
  d["risk_reason"] = risk::reject_reason_name(static_cast<risk::RejectReason>(o.risk_reason));
  d["sized_zero"] = o.sized_zero;
  return d;
}

py::object order_dict(const orders::Order* o) {
  if (o == nullptr) return py::none();
  const auto& kStates = orders::kOrderStateNames;
  const auto& kTypes = orders::kOrderTypeNames;
  const auto& kRoles = orders::kOrderRoleNames;
  py::dict d;
  d["id"] = o->order_id;
  d["client_id"] = o->client_id;
  d["side"] = o->side == Side::Bid ? "buy" : "sell";
  d["type"] = kTypes[static_cast<int>(o->type)];
  d["state"] = kStates[static_cast<int>(o->state)];
  d["role"] = kRoles[static_cast<int>(o->role)];
  d["price"] = o->price_ticks;
  d["qty"] = o->qty_lots;
  d["filled"] = o->filled_lots;
  d["group"] = o->group_id;
  d["working"] = o->working();
  return py::object(d);
}

void bind_context(py::module_& m) {
  using strategy::ExecPolicy;
  py::class_<DecisionContext>(m, "DecisionContext",
                              "What a strategy sees at a decision (valid only during the call). Prices in ticks, "
                              "sizes in lots, money in quote units, times in ns.")
      .def_readonly("ts", &DecisionContext::ts)
      .def_readonly("instrument", &DecisionContext::instrument)
      .def_readonly("tick_size", &DecisionContext::tick_size)
      .def_readonly("lot_size", &DecisionContext::lot_size)
      .def_property_readonly("bid", [](const DecisionContext& c) { return c.top.bid_price; })
      .def_property_readonly("ask", [](const DecisionContext& c) { return c.top.ask_price; })
      .def_property_readonly("bid_qty", [](const DecisionContext& c) { return c.top.bid_qty; })
      .def_property_readonly("ask_qty", [](const DecisionContext& c) { return c.top.ask_qty; })
      .def_property_readonly("two_sided", [](const DecisionContext& c) { return c.top.two_sided(); })
      .def_property_readonly("mid", [](const DecisionContext& c) { return c.top.mid(); })
      .def_property_readonly("p", [](const DecisionContext& c) { return c.probability(); },
                             "the probability to trade on (P(up)): the ensemble's when one is configured, else "
                             "model slot 0's output; NaN without a model")
      .def_readonly("has_ensemble", &DecisionContext::has_ensemble, "an [ensemble] is configured")
      .def_readonly("ensemble", &DecisionContext::ensemble,
                    "the ensemble's P(up) after the disagreement breaker (NaN without an ensemble)")
      .def_readonly("size_scale", &DecisionContext::size_scale,
                    "the breaker's multiplier on entry sizes, applied by the router (1 without an ensemble)")
      .def_property_readonly("models", [](const DecisionContext& c) {
        return std::vector<double>(c.models, c.models + c.n_models);
      })
      .def("feature", [](const DecisionContext& c, size_t i) { return c.feature(i); }, py::arg("index"))
      .def_property_readonly("features", [](const DecisionContext& c) {
        py::array_t<float> a(static_cast<py::ssize_t>(c.n_features));
        if (c.n_features) std::memcpy(a.mutable_data(), c.features, c.n_features * sizeof(float));
        return a;
      }, "a copy of the feature row (float32; names: bot4.features.names())")
      .def_readonly("position", &DecisionContext::position)
      .def_readonly("average_entry", &DecisionContext::average_entry)
      .def_readonly("realised", &DecisionContext::realised)
      .def_readonly("unrealised", &DecisionContext::unrealised)
      .def_readonly("fees", &DecisionContext::fees)
      .def_readonly("equity", &DecisionContext::equity)
      .def_readonly("flattening", &DecisionContext::flattening)
      .def_property_readonly("headroom", [](const DecisionContext& c) {
        py::dict d;
        d["long_lots"] = c.headroom.long_lots;
        d["short_lots"] = c.headroom.short_lots;
        d["open_orders"] = c.headroom.open_orders;
        d["kill_switch"] = c.headroom.kill_switch;
        return d;
      })
      .def_readwrite("signal", &DecisionContext::signal, "the strategy's view, recorded with the decision (+1/-1/0)")
      .def("submit",
           [](DecisionContext& c, const std::string& kind, const std::string& side, int64_t price, int64_t qty,
              double probability, int64_t max_qty, bool reduce_only, const std::string& entry, int64_t stop_ticks,
              int64_t target_ticks, const py::object& second, uint64_t client_id) {
             strategy::OrderSpec o;
             o.kind = order_kind(kind);
             o.side = side_of(side);
             o.price_ticks = price;
             o.qty_lots = qty;
             o.probability = probability;
             o.max_qty_lots = max_qty;
             o.reduce_only = reduce_only;
             o.entry_type = order_kind(entry);
             o.stop_ticks = stop_ticks;
             o.target_ticks = target_ticks;
             o.client_id = client_id;
             if (!second.is_none()) {  // (kind, side, price, qty) of the OCO second order / OTO child
               auto t = second.cast<py::tuple>();
               if (t.size() != 4) throw py::value_error("second: (kind, side, price, qty)");
               const auto k = order_kind(t[0].cast<std::string>());
               o.second.type = k == strategy::OrderKind::Market ? orders::OrderType::Market
                               : k == strategy::OrderKind::Stop ? orders::OrderType::Stop
                                                                : orders::OrderType::Limit;
               o.second.side = side_of(t[1].cast<std::string>());
               o.second.price_ticks = t[2].cast<int64_t>();
               o.second.qty_lots = t[3].cast<int64_t>();
             }
             return outcome_dict(c.exec->submit(o));
           },
           py::arg("kind"), py::arg("side"), py::arg("price") = 0, py::arg("qty") = 0, py::arg("probability") = 0.5,
           py::arg("max_qty") = 0, py::arg("reduce_only") = false, py::arg("entry") = "limit",
           py::arg("stop_ticks") = -1, py::arg("target_ticks") = -1, py::arg("second") = py::none(),
           py::arg("client_id") = 0,
           "An explicit order; qty 0 = sized by the risk stage from `probability`. Returns {ok, order_id, reason, "
           "risk_reason, sized_zero}.")
      .def("target",
           [](DecisionContext& c, int64_t position, const std::string& policy, bool bracket, int64_t stop_ticks,
              int64_t target_ticks) {
             strategy::TargetSpec t;
             t.position_lots = position;
             if (policy == "passive") t.policy = ExecPolicy::Passive;
             else if (policy == "aggressive") t.policy = ExecPolicy::Aggressive;
             else throw py::value_error("policy: expected passive or aggressive, got " + policy);
             t.bracket = bracket;
             t.stop_ticks = stop_ticks;
             t.target_ticks = target_ticks;
             return outcome_dict(c.exec->target(t));
           },
           py::arg("position"), py::arg("policy") = "passive", py::arg("bracket") = false,
           py::arg("stop_ticks") = -1, py::arg("target_ticks") = -1)
      .def("cancel", [](DecisionContext& c, uint64_t id) { return c.exec->cancel(id); }, py::arg("order_id"))
      .def("replace", [](DecisionContext& c, uint64_t id, int64_t price, int64_t qty) {
        return outcome_dict(c.exec->replace(id, price, qty));
      }, py::arg("order_id"), py::arg("price"), py::arg("qty"))
      .def("flatten", [](DecisionContext& c) { c.exec->flatten(); })
      .def("order", [](const DecisionContext& c, uint64_t id) { return order_dict(c.exec->order(id)); },
           py::arg("order_id"))
      .def("group", [](const DecisionContext& c, uint64_t id) -> py::object {
        const orders::BracketLegs* g = c.exec->group(id);
        if (g == nullptr) return py::none();
        static const char* kKinds[] = {"bracket", "oco", "oto"};
        py::dict d;
        d["kind"] = kKinds[static_cast<int>(g->kind)];
        d["entry"] = g->entry;
        d["stop"] = g->stop;
        d["target"] = g->target;
        d["second"] = g->second;
        return py::object(d);
      }, py::arg("first_id"), "The contingent group an order opened ({kind, entry, stop, target, second} ids; "
                              "0 = not created yet), or None")
      .def("open_orders", [](const DecisionContext& c) {
        std::vector<const orders::Order*> v;
        c.exec->open_orders(v);
        py::list out;
        for (const auto* o : v) out.append(order_dict(o));
        return out;
      });

  py::class_<strategy::FillInfo>(m, "FillInfo", "A fill of one of the strategy's orders")
      .def_readonly("ts", &strategy::FillInfo::ts)
      .def_readonly("instrument", &strategy::FillInfo::instrument)
      .def_readonly("order_id", &strategy::FillInfo::order_id)
      .def_property_readonly("side", [](const strategy::FillInfo& f) { return f.side == Side::Bid ? "buy" : "sell"; })
      .def_readonly("price", &strategy::FillInfo::price_ticks)
      .def_readonly("qty", &strategy::FillInfo::qty_lots)
      .def_readonly("fee", &strategy::FillInfo::fee)
      .def_readonly("maker", &strategy::FillInfo::maker)
      .def_readonly("position", &strategy::FillInfo::position);
  py::class_<strategy::RejectInfo>(m, "RejectInfo", "A rejection of one of the strategy's orders")
      .def_readonly("ts", &strategy::RejectInfo::ts)
      .def_readonly("instrument", &strategy::RejectInfo::instrument)
      .def_readonly("order_id", &strategy::RejectInfo::order_id)
      .def_readonly("by_venue", &strategy::RejectInfo::by_venue)
      .def_property_readonly("reason", [](const strategy::RejectInfo& r) { return orders::reason_name(r.reason); });
}

}  // namespace

void bind_engine(py::module_& m) {
  bind_context(m);
  py::class_<StrategyHandle, std::shared_ptr<StrategyHandle>>(m, "StrategyHandle")
      .def_property_readonly("name", [](StrategyHandle& h) { return h.label(); })
      .def("stats", &StrategyHandle::stats);
  py::class_<BuiltinStrategy, StrategyHandle, std::shared_ptr<BuiltinStrategy>>(m, "BuiltinStrategy",
                                                                                "A built-in strategy with its config")
      .def(py::init<const std::string&, const py::object&>(), py::arg("name"), py::arg("params") = py::none())
      .def_property_readonly("config", &BuiltinStrategy::config);
  py::class_<PluginStrategyHandle, StrategyHandle, std::shared_ptr<PluginStrategyHandle>>(
      m, "PluginStrategy", "A C++ strategy loaded from a plugin library (BOT4_STRATEGY_PLUGIN)")
      .def(py::init<const std::string&, const py::object&>(), py::arg("path"), py::arg("params") = py::none())
      .def_property_readonly("path", &PluginStrategyHandle::path);
  py::class_<CallbackStrategyHandle, StrategyHandle, std::shared_ptr<CallbackStrategyHandle>>(
      m, "CallbackStrategy", "A strategy called through C function pointers (a Cython cdef class), without the GIL")
      .def(py::init<py::object>(), py::arg("obj"))
      .def_property_readonly("object", &CallbackStrategyHandle::object);
  m.attr("PLUGIN_ABI") = strategy::plugin_abi();
  m.def("check_ensemble", [](const py::dict& section) {
    const auto c = config_from<inference::EnsembleConfig>(section, "ensemble");
    std::string error;
    if (!inference::Ensemble::validate_fields(c, error)) config_error(error);
  }, py::arg("section"), "ConfigError for an [ensemble] section the core refuses (the checks without the slot count)");
  m.def("echo_config", [](const py::dict& config) {
    // The config as the core parsed it (sections -> fields), for checks that every field arrives.
    const EngineConfig c = engine_config_from(config);
    py::dict out;
    out["engine"] = config_to(c.engine);
    out["sizing"] = config_to(c.sizing);
    out["pre_trade"] = config_to(c.pre_trade);
    out["kill_switch"] = config_to(c.kill_switch);
    out["ensemble"] = config_to(c.ensemble);
    out["sim"] = config_to(config_from<sim::SimParams>(config.contains("sim") ? py::object(config["sim"]) : py::object(py::none()), "sim"));
    if (config.contains("strategy")) {
      py::dict st = py::dict(config["strategy"]);
      const std::string name = st.contains("name") ? st["name"].cast<std::string>() : "threshold_bracket";
      if (st.contains("name")) PyDict_DelItemString(st.ptr(), "name");
      out["strategy"] = BuiltinStrategy(name, st).config();
    }
    return out;
  }, py::arg("config"));
  py::class_<StreamingBacktestHandle>(m, "StreamingBacktest",
                                      "A backtest fed the recording in pieces, with bounded memory; equal to one "
                                      "backtest() over the concatenated pieces when late_events and the venues' "
                                      "late_feed_events are 0")
      .def(py::init<const py::dict&, const py::list&, const py::object&>(), py::arg("config"), py::arg("instruments"),
           py::arg("venue") = py::none())
      .def("remote_venue_counters", &StreamingBacktestHandle::remote_venue_counters,
           "requests, exchanges (round trips), skipped (polls of an idle venue) and responses of the remote venues")
      .def("push", &StreamingBacktestHandle::push, py::arg("book") = py::none(), py::arg("trades") = py::none(),
           py::arg("orders") = py::none(), py::arg("watermark"),
           "The next piece of each stream; every record not yet pushed has a merge key (its stream's running "
           "maximum of ts_local) >= watermark")
      .def("take_records", &StreamingBacktestHandle::take_records,
           "decisions, orders, fills, equity and latency_ns produced so far (then forgotten by the engine)")
      .def("finish", &StreamingBacktestHandle::finish, "processes the rest; the result as backtest() returns it")
      .def("kill", &StreamingBacktestHandle::kill, py::arg("instrument") = py::none(),
           "trip the kill switch (manual): every instrument cancels, closes and stays flat; with an instrument, "
           "that one halts (cancels, closes, its strategy not called again) and the others trade on")
      .def("refresh_ensemble_weights", &StreamingBacktestHandle::refresh_ensemble_weights,
           "adaptive ensemble: every instrument's weights recomputed now from the losses so far (a control "
           "command); the number of instruments refreshed")
      .def("flatten", &StreamingBacktestHandle::flatten, py::arg("instrument") = py::none(),
           "every instrument (or the one given) cancels and closes, then trades again")
      .def("pause", &StreamingBacktestHandle::pause, py::arg("on"), py::arg("instrument") = py::none(),
           "strategies (or one instrument's) not called while paused (working orders stay, responses arrive)")
      .def("is_paused", &StreamingBacktestHandle::paused, py::arg("instrument") = py::none(),
           "whether the engine (or one instrument's strategy) is paused")
      .def("halted", &StreamingBacktestHandle::halted, py::arg("instrument"), "whether an instrument was halted")
      .def("config", &StreamingBacktestHandle::config,
           "the running engine, sizing, pre_trade and kill_switch sections, {section: {field: value}}")
      .def("set_config", &StreamingBacktestHandle::set_config, py::arg("sections"),
           "change some fields of the engine, sizing, pre_trade and kill_switch sections from the next event on "
           "({section: {field: value}}; the rest keep their values); validated as a whole, nothing changes on an "
           "error (engine.stp cannot change)")
      .def("strategy_config", &StreamingBacktestHandle::strategy_config,
           "the built-in strategy's name and running fields, {'name': ..., field: value} (None for a user strategy)")
      .def("set_strategy_config", &StreamingBacktestHandle::set_strategy_config, py::arg("fields"),
           "change some fields of the built-in strategy from the next decision on; validated first, nothing "
           "changes on an error")
      .def("swap_model", &StreamingBacktestHandle::swap_model, py::arg("model"), py::arg("slot") = 0,
           "replace model slot `slot` of every feature-reading instrument from the next decision on (slot = the "
           "model count appends); ValueError and no change for a model of the wrong input width")
      .def_property_readonly("paused", [](StreamingBacktestHandle& h) { return h.paused(py::none()); })
      .def_property_readonly("buffered", &StreamingBacktestHandle::buffered)
      .def_property_readonly("late_events", &StreamingBacktestHandle::late_events)
      .def_property_readonly("watermark", &StreamingBacktestHandle::watermark);
  m.def("schema", &schema, "Every engine config section, built-in strategy and counter, from the core's declarations");
  m.def("backtest", &backtest, py::arg("config"), py::arg("instruments"), py::arg("book"), py::arg("trades"),
        py::arg("orders") = py::none(),
        "Runs the merged event streams through the engine, each instrument against its venue simulator");

  // Simulator pieces for unit tests.
  m.def("queue_level_change", [](double front, int64_t prev, int64_t next, const std::string& model, double power) {
    sim::QueueModelConfig qc;
    if (!sim::parse_queue_model(model, qc.kind)) throw py::value_error("model: expected risk_averse, power or log");
    qc.power = power;
    sim::QueueModel qm(qc);
    sim::QueuePosition q{front, 0.0};
    qm.on_level_change(q, prev, next);
    return q.front;
  }, py::arg("front"), py::arg("prev"), py::arg("next"), py::arg("model") = "power", py::arg("power") = 2.0);
  m.def("fee", [](int64_t price, int64_t qty, bool maker, double tick, double lot, double maker_bps, double taker_bps,
                  bool inverse, double contract_size) {
    sim::FeeModel f({maker_bps, taker_bps});
    return f.fee(price, qty, maker, tick, lot, inverse, contract_size);
  }, py::arg("price"), py::arg("qty"), py::arg("maker"), py::arg("tick_size"), py::arg("lot_size"),
     py::arg("maker_bps") = 2.0, py::arg("taker_bps") = 5.0, py::arg("inverse") = false, py::arg("contract_size") = 1.0);
  py::class_<SimVenueHandle>(m, "SimVenue",
                             "The venue simulator of one instrument serving an engine in another process "
                             "(sim::SimVenue::exchange)")
      .def(py::init<const py::object&, double, double, bool, double>(), py::arg("sim"), py::arg("tick_size"),
           py::arg("lot_size"), py::arg("inverse") = false, py::arg("contract_size") = 1.0)
      .def("append_feed", &SimVenueHandle::append_feed, py::arg("book") = py::none(), py::arg("trades") = py::none(),
           py::arg("orders") = py::none(), "the next records of this instrument's recording (each stream in receive order)")
      .def("exchange", &SimVenueHandle::exchange, py::arg("instrument"), py::arg("requests"), py::arg("clock_offset"),
           py::arg("now"), "takes the engine's requests, answers its poll at `now`: (responses, live)")
      .def("counters", &SimVenueHandle::counters, "the simulator's counters");
  m.def("simulate_orders", [](const py::object& book, const py::object& trades, const py::list& requests,
                              double maker_bps, double taker_bps, int64_t latency_ns, const py::object& orders,
                              const std::string& mode, int64_t response_latency_ns, const std::string& queue_model,
                              double queue_power, const py::object& trace_id, bool details, bool trades_first) {
    // Each request is a tuple (id, side 0/1, type 0 limit/1 market/2 stop, price, qty
    // [, send_ts local ns = 0 [, kind 0 new/1 cancel/2 replace]]). Returns the fills as a list of
    // (id, price, qty, maker, fee); with details=True a dict: fills (id, price, qty, maker, fee,
    // venue_ts), responses (kind, id, price, qty, venue_ts, local_ts), counters, mode, and, with
    // trace_id, the queue ahead of that order after every market event (sim::replay_requests).
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
    if (!sim::parse_sim_mode(mode, sc.mode)) throw py::value_error("mode: expected auto, l2 or l3, got " + mode);
    if (!sim::parse_queue_model(queue_model, sc.queue.kind))
      throw py::value_error("queue_model: expected risk_averse, power or log, got " + queue_model);
    sc.queue.power = queue_power;
    sim::VenueSimulator v(sc);
    std::vector<sim::TimedRequest> reqs;
    for (auto r : requests) {
      auto tup = r.cast<py::tuple>();
      if (tup.size() < 5) throw py::value_error("a request is (id, side, type, price, qty[, send_ts[, kind]])");
      sim::TimedRequest q;
      q.request.id = tup[0].cast<uint64_t>();
      q.request.side = static_cast<Side>(tup[1].cast<int>());
      q.request.type = static_cast<sim::SimOrderType>(tup[2].cast<int>());
      q.request.price = tup[3].cast<int64_t>();
      q.request.qty = tup[4].cast<int64_t>();
      const int kind = tup.size() > 6 ? tup[6].cast<int>() : 0;
      if (kind < 0 || kind > 2) throw py::value_error("request kind: expected 0 new, 1 cancel or 2 replace");
      q.request.kind = static_cast<sim::SimRequestKind>(kind);
      q.sent_local = tup.size() > 5 ? tup[5].cast<int64_t>() : 0;
      reqs.push_back(q);
    }
    sim::QueueTrace trace;
    const bool tracing = !trace_id.is_none();
    if (tracing) trace.order_id = trace_id.cast<uint64_t>();
    std::vector<sim::SimResponse> resp;
    {
      py::gil_scoped_release release;
      resp = sim::replay_requests(v, b, nb, o, no, t, nt, std::move(reqs), trades_first, tracing ? &trace : nullptr);
    }
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
    py::dict out;
    out["fills"] = fills;
    out["responses"] = responses;
    out["counters"] = sim_counters(v.counters());
    out["mode"] = v.mode() == sim::SimMode::L3 ? "l3" : v.mode() == sim::SimMode::L2 ? "l2" : "auto";
    out["resting"] = v.resting();
    if (tracing) {
      out["trace_stream"] = py::array_t<uint8_t>(static_cast<py::ssize_t>(trace.stream.size()), trace.stream.data());
      out["trace_index"] = py::array_t<int64_t>(static_cast<py::ssize_t>(trace.index.size()), trace.index.data());
      out["trace_ahead"] = py::array_t<double>(static_cast<py::ssize_t>(trace.ahead.size()), trace.ahead.data());
    }
    return py::object(out);
  }, py::arg("book"), py::arg("trades"), py::arg("requests"), py::arg("maker_bps") = 2.0,
     py::arg("taker_bps") = 5.0, py::arg("latency_ns") = 0, py::kw_only(), py::arg("orders") = py::none(),
     py::arg("mode") = "auto", py::arg("response_latency_ns") = 0, py::arg("queue_model") = "risk_averse",
     py::arg("queue_power") = 2.0, py::arg("trace_id") = py::none(), py::arg("details") = false,
     py::arg("trades_first") = false);
}

}  // namespace bot4::ext
