// bot4._core.risk: position sizer, pre-trade checks and kill switch (core/risk).
// Glue only: flat config dicts -> config structs (unknown or missing-typed keys raise
// bot4.errors.ConfigError), status enums -> their names. Checks return names, never raise.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "risk/kill_switch.hpp"
#include "risk/position_sizer.hpp"
#include "risk/pre_trade_checks.hpp"

namespace py = pybind11;

namespace bot4::ext {
namespace {

using namespace bot4::risk;

[[noreturn]] void config_error(const std::string& msg) {
  py::object cls = py::module_::import("bot4.errors").attr("ConfigError");
  PyErr_SetString(cls.ptr(), msg.c_str());
  throw py::error_already_set();
}

// One field of a config struct: its key and a setter/getter pair on the struct.
template <typename Cfg>
struct Field {
  const char* key;
  void (*set)(Cfg&, py::handle, const char* section, const char* key);
  py::object (*get)(const Cfg&);
};

template <typename T>
T cast_field(py::handle v, const char* section, const char* key) {
  // bool is an int in Python; refuse it for numeric fields so a typo'd `true` is caught.
  if (py::isinstance<py::bool_>(v)) config_error(std::string(section) + ": '" + key + "' must be a number, got bool");
  if constexpr (std::is_integral_v<T>) {
    if (!py::isinstance<py::int_>(v)) config_error(std::string(section) + ": '" + key + "' must be an integer");
  } else {
    if (!py::isinstance<py::int_>(v) && !py::isinstance<py::float_>(v))
      config_error(std::string(section) + ": '" + key + "' must be a number");
  }
  try {
    return v.cast<T>();
  } catch (const py::cast_error&) {
    config_error(std::string(section) + ": '" + key + "' out of range");
  }
}

#define BOT4_FIELD(Cfg, name)                                                                          \
  Field<Cfg> {                                                                                         \
    #name, [](Cfg& c, py::handle v, const char* s, const char* k) {                                    \
      c.name = cast_field<decltype(c.name)>(v, s, k);                                                  \
    },                                                                                                 \
        [](const Cfg& c) -> py::object { return py::cast(c.name); }                                    \
  }

const std::vector<Field<SizingConfig>>& sizing_fields() {
  static const std::vector<Field<SizingConfig>> f = {
      BOT4_FIELD(SizingConfig, kelly_fraction),      BOT4_FIELD(SizingConfig, payoff_ratio),
      BOT4_FIELD(SizingConfig, edge_threshold),      BOT4_FIELD(SizingConfig, target_vol),
      BOT4_FIELD(SizingConfig, periods_per_year),    BOT4_FIELD(SizingConfig, max_vol_scale),
      BOT4_FIELD(SizingConfig, max_symbol_fraction), BOT4_FIELD(SizingConfig, max_leverage),
      BOT4_FIELD(SizingConfig, var_limit),           BOT4_FIELD(SizingConfig, var_confidence),
      BOT4_FIELD(SizingConfig, max_heat),            BOT4_FIELD(SizingConfig, crisis_correlation),
      BOT4_FIELD(SizingConfig, crisis_multiplier)};
  return f;
}

const std::vector<Field<PreTradeConfig>>& pre_trade_fields() {
  static const std::vector<Field<PreTradeConfig>> f = {
      BOT4_FIELD(PreTradeConfig, max_position_lots), BOT4_FIELD(PreTradeConfig, max_notional),
      BOT4_FIELD(PreTradeConfig, max_open_orders),   BOT4_FIELD(PreTradeConfig, rate_capacity),
      BOT4_FIELD(PreTradeConfig, rate_per_second),   BOT4_FIELD(PreTradeConfig, collar_ticks),
      BOT4_FIELD(PreTradeConfig, collar_bps)};
  return f;
}

const std::vector<Field<KillSwitchConfig>>& kill_switch_fields() {
  static const std::vector<Field<KillSwitchConfig>> f = {
      BOT4_FIELD(KillSwitchConfig, max_drawdown), BOT4_FIELD(KillSwitchConfig, max_consecutive_rejects),
      BOT4_FIELD(KillSwitchConfig, max_latency_ns)};
  return f;
}
#undef BOT4_FIELD

// Missing keys keep the struct defaults; unknown keys are an error naming the key.
template <typename Cfg>
Cfg config_from(const py::object& obj, const std::vector<Field<Cfg>>& fields, const char* section) {
  Cfg cfg{};
  if (obj.is_none()) return cfg;
  if (!py::isinstance<py::dict>(obj)) config_error(std::string(section) + ": config must be a dict");
  const py::dict d = obj.cast<py::dict>();
  for (auto item : d) {
    const std::string key = py::str(item.first).cast<std::string>();
    const Field<Cfg>* hit = nullptr;
    for (const auto& f : fields)
      if (key == f.key) hit = &f;
    if (!hit) config_error(std::string(section) + ": unknown key '" + key + "'");
    hit->set(cfg, item.second, section, hit->key);
  }
  return cfg;
}

template <typename Cfg>
py::dict config_to(const Cfg& cfg, const std::vector<Field<Cfg>>& fields) {
  py::dict d;
  for (const auto& f : fields) d[f.key] = f.get(cfg);
  return d;
}

Side parse_side(const std::string& s) {
  if (s == "buy" || s == "bid" || s == "BUY" || s == "Buy") return Side::Bid;
  if (s == "sell" || s == "ask" || s == "SELL" || s == "Sell") return Side::Ask;
  return Side::None;  // -> BadOrder status, not an exception
}

// Exact: the exposure sum is 128-bit so a Python int is built from its decimal digits.
py::object i128_to_py(__int128 v) {
  const bool neg = v < 0;
  unsigned __int128 u = neg ? -static_cast<unsigned __int128>(v) : static_cast<unsigned __int128>(v);
  std::string digits;
  do {
    digits.insert(digits.begin(), static_cast<char>('0' + static_cast<int>(u % 10)));
    u /= 10;
  } while (u);
  if (neg) digits.insert(digits.begin(), '-');
  return py::int_(py::str(digits));
}

py::dict side_dict(const SideExposure& s) {
  py::dict d;
  d["inflight_qty"] = s.inflight_qty;
  d["open_qty"] = s.open_qty;
  d["orders"] = s.orders;
  d["notional"] = i128_to_py(s.notional);
  return d;
}

TripReason parse_trip(const std::string& s) {
  if (s == "drawdown") return TripReason::Drawdown;
  if (s == "consecutive_rejects") return TripReason::ConsecutiveRejects;
  if (s == "latency") return TripReason::Latency;
  if (s == "manual") return TripReason::Manual;
  throw py::value_error("unknown trip reason '" + s + "' (drawdown, consecutive_rejects, latency, manual)");
}

}  // namespace

void bind_risk(py::module_& m) {
  // --- formulas (METHODS §7) ---
  m.def("kelly_binary", py::overload_cast<double, double>(&kelly_binary), py::arg("p"), py::arg("b"),
        "f* = p − (1−p)/b for a win of +b and a loss of −1 per unit staked (may be negative)");
  m.def("kelly_binary_loss", py::overload_cast<double, double, double>(&kelly_binary), py::arg("p"),
        py::arg("a"), py::arg("b"), "f* = p/a − (1−p)/b for a loss of −a per unit staked");
  m.def("kelly_growth", &kelly_growth, py::arg("f"), py::arg("p"), py::arg("b"),
        "g(f) = p ln(1+fb) + (1−p) ln(1−f)");
  m.def("vol_target_weight", &vol_target_weight, py::arg("target_vol_annual"), py::arg("vol_per_period"),
        py::arg("periods_per_year"), py::arg("max_scale"),
        "w = min(L_max, σ_target / (σ_period · sqrt(periods_per_year)))");
  m.def("normal_quantile", &normal_quantile, py::arg("prob"));
  m.def("var_normal", &var_normal, py::arg("mu"), py::arg("sigma"), py::arg("beta"),
        "parametric normal VaR, losses positive: −(μ − z_β σ)");
  m.def("es_normal", &es_normal, py::arg("mu"), py::arg("sigma"), py::arg("beta"),
        "parametric normal expected shortfall: −μ + σ φ(z_β)/(1−β)");
  m.def("var_historical", [](const std::vector<double>& r, double beta) { return var_historical(r, beta); },
        py::arg("returns"), py::arg("beta"), "historical VaR, skfolio 1.12.2 convention (METHODS §7.3)");
  m.def("cvar_historical", [](const std::vector<double>& r, double beta) { return cvar_historical(r, beta); },
        py::arg("returns"), py::arg("beta"), "historical CVaR, Rockafellar–Uryasev fractional tail mean");
  m.def(
      "portfolio_heat",
      [](const std::vector<std::tuple<double, double, double, double>>& rows, double equity) {
        std::vector<HeatPosition> pos;
        pos.reserve(rows.size());
        for (const auto& [e, s, q, mult] : rows) pos.push_back({e, s, q, mult});
        return portfolio_heat(pos, equity);
      },
      py::arg("positions"), py::arg("equity"),
      "Σ |entry − stop| · qty · multiplier / equity over (entry, stop, qty, multiplier) tuples");
  m.def("to_lots", &to_lots, py::arg("size"), py::arg("equity"), py::arg("price"), py::arg("lot_value"),
        "signed lots = trunc(size · equity / (price · lot_value))");

  // --- sizer ---
  py::class_<PositionSizer>(m, "PositionSizer")
      .def(py::init([](const py::object& cfg) { return PositionSizer(config_from(cfg, sizing_fields(), "sizing")); }),
           py::arg("config") = py::none())
      .def_property_readonly("config", [](const PositionSizer& s) { return config_to(s.config(), sizing_fields()); })
      .def("edge_scale", &PositionSizer::edge_scale, py::arg("p"), "f(p) in [0, 1]")
      .def(
          "size",
          [](const PositionSizer& s, double p, double current_vol, double heat, double gross_exposure,
             double correlation, bool crisis) {
            const SizeResult r = s.size({p, current_vol, heat, gross_exposure, correlation, crisis});
            py::dict d;
            d["status"] = size_status_name(r.status);
            d["size"] = r.size;
            d["edge_scale"] = r.edge_scale;
            d["kelly"] = r.kelly;
            d["vol_scale"] = r.vol_scale;
            d["heat_room"] = r.heat_room;
            d["var_cap"] = r.var_cap;
            d["cap"] = r.cap;
            d["crisis"] = r.crisis;
            return d;
          },
          py::arg("p"), py::arg("current_vol"), py::arg("heat") = 0.0, py::arg("gross_exposure") = 0.0,
          py::arg("correlation") = 0.0, py::arg("crisis") = false,
          "signed size in fraction of equity plus its components; status names why it is 0");

  // --- kill switch ---
  py::class_<KillSwitch>(m, "KillSwitch")
      .def(py::init([](const py::object& cfg) { return KillSwitch(config_from(cfg, kill_switch_fields(), "kill_switch")); }),
           py::arg("config") = py::none())
      .def_property_readonly("config", [](const KillSwitch& k) { return config_to(k.config(), kill_switch_fields()); })
      .def("on_equity", &KillSwitch::on_equity, py::arg("equity"))
      .def("on_reject", &KillSwitch::on_reject)
      .def("on_accept", &KillSwitch::on_accept)
      .def("on_latency", &KillSwitch::on_latency, py::arg("latency_ns"))
      .def("trip", [](KillSwitch& k, const std::string& reason) { k.trip(parse_trip(reason)); },
           py::arg("reason") = "manual")
      .def_property_readonly("tripped", &KillSwitch::tripped)
      .def_property_readonly("reason", [](const KillSwitch& k) { return trip_reason_name(k.reason()); })
      .def("take_cancel_all", &KillSwitch::take_cancel_all, "true exactly once per trip: issue one cancel-all")
      .def_property_readonly("cancel_all_pending", &KillSwitch::cancel_all_pending)
      .def_property_readonly("peak_equity", &KillSwitch::peak_equity)
      .def_property_readonly("drawdown", &KillSwitch::drawdown)
      .def_property_readonly("consecutive_rejects", &KillSwitch::consecutive_rejects)
      .def("reset", &KillSwitch::reset);

  // --- pre-trade checks ---
  py::list names;
  for (size_t i = 0; i < kRejectReasonCount; ++i) names.append(reject_reason_name(static_cast<RejectReason>(i)));
  m.attr("REJECT_REASONS") = names;

  py::class_<PreTradeChecks>(m, "PreTradeChecks")
      .def(py::init([](const py::object& cfg, KillSwitch* ks) {
             return std::make_unique<PreTradeChecks>(config_from(cfg, pre_trade_fields(), "pre_trade"), ks);
           }),
           py::arg("config") = py::none(), py::arg("kill_switch") = nullptr,
           py::keep_alive<1, 3>())  // the kill switch lives as long as the checks
      .def_property_readonly("config", [](const PreTradeChecks& c) { return config_to(c.config(), pre_trade_fields()); })
      .def(
          "check",
          [](PreTradeChecks& c, uint64_t order_id, const std::string& side, int64_t qty, int64_t price, int64_t mid,
             int64_t now_ns) {
            return std::string(reject_reason_name(c.check({order_id, parse_side(side), qty, price, mid, now_ns})));
          },
          py::arg("order_id"), py::arg("side"), py::arg("qty"), py::arg("price"), py::arg("mid"), py::arg("now_ns"),
          "'ok' (recorded as in-flight) or the reject reason name; never raises on a bad order")
      .def("on_ack", &PreTradeChecks::on_ack, py::arg("order_id"))
      .def("on_fill", &PreTradeChecks::on_fill, py::arg("order_id"), py::arg("qty"))
      .def("on_cancel", &PreTradeChecks::on_cancel, py::arg("order_id"))
      .def("on_venue_reject", &PreTradeChecks::on_venue_reject, py::arg("order_id"))
      .def_property("reduce_only", &PreTradeChecks::reduce_only, &PreTradeChecks::set_reduce_only)
      .def_property("position", &PreTradeChecks::position, &PreTradeChecks::set_position)
      .def_property_readonly("live_orders", &PreTradeChecks::live_orders)
      .def_property_readonly("buys", [](const PreTradeChecks& c) { return side_dict(c.buys()); })
      .def_property_readonly("sells", [](const PreTradeChecks& c) { return side_dict(c.sells()); })
      .def("counters", [](const PreTradeChecks& c) {
        py::dict d;
        for (size_t i = 0; i < kRejectReasonCount; ++i) {
          const auto r = static_cast<RejectReason>(i);
          d[reject_reason_name(r)] = c.count(r);
        }
        return d;
      }, "count per reason name; 'ok' counts accepted orders");
}

}  // namespace bot4::ext
