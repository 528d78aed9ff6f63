// bot4._core.risk: position sizer, pre-trade checks and kill switch (core/risk).
// Glue only: flat config dicts -> config structs (unknown or missing-typed keys raise
// bot4.errors.ConfigError), status enums -> their names. Checks return names, never raise.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "config_dict.hpp"
#include "portfolio/ledger.hpp"
#include "risk/kill_switch.hpp"
#include "risk/position_sizer.hpp"
#include "risk/pre_trade_checks.hpp"

namespace py = pybind11;

namespace bot4::ext {
namespace {

using namespace bot4::risk;

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
      .def(py::init([](const py::object& cfg) { return PositionSizer(config_from<SizingConfig>(cfg, "sizing")); }),
           py::arg("config") = py::none())
      .def_property_readonly("config", [](const PositionSizer& s) { return config_to(s.config()); })
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
      .def(py::init([](const py::object& cfg) { return KillSwitch(config_from<KillSwitchConfig>(cfg, "kill_switch")); }),
           py::arg("config") = py::none())
      .def_property_readonly("config", [](const KillSwitch& k) { return config_to(k.config()); })
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
             return std::make_unique<PreTradeChecks>(config_from<PreTradeConfig>(cfg, "pre_trade"), ks);
           }),
           py::arg("config") = py::none(), py::arg("kill_switch") = nullptr,
           py::keep_alive<1, 3>())  // the kill switch lives as long as the checks
      .def_property_readonly("config", [](const PreTradeChecks& c) { return config_to(c.config()); })
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
      .def("set_notional_price", &PreTradeChecks::set_notional_price, py::arg("ticks"),
           "inverse contracts: every lot counts contract_size / tick_size ticks of notional (0 = price)")
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

  // --- the engine's ledger (core/portfolio), for checks of its accounting ---
  py::class_<portfolio::Ledger>(m, "Ledger",
                                "Positions, average entry, realised/unrealised P&L and fees per instrument "
                                "(linear and inverse) as the engine keeps them")
      .def(py::init<>())
      .def("add_instrument", &portfolio::Ledger::add_instrument, py::arg("instrument"), py::arg("tick_size"),
           py::arg("lot_size"), py::arg("inverse") = false, py::arg("contract_size") = 1.0, "the slot")
      .def(
          "fill",
          [](portfolio::Ledger& l, size_t slot, const std::string& side, int64_t price, int64_t qty, double fee) {
            const Side sd = parse_side(side);
            if (slot >= l.size()) throw py::index_error("no such ledger slot");
            if (sd == Side::None || price <= 0 || qty <= 0)
              throw py::value_error("a fill needs side buy/sell, price > 0 and qty > 0");
            l.fill(slot, sd, price, qty, fee);
          },
          py::arg("slot"), py::arg("side"), py::arg("price"), py::arg("qty"), py::arg("fee") = 0.0,
          "price in ticks, qty in lots, fee in settlement units (quote; base coin if inverse)")
      .def(
          "mark",
          [](portfolio::Ledger& l, size_t slot, int64_t mid) {
            if (slot >= l.size()) throw py::index_error("no such ledger slot");
            l.mark(slot, mid);
          },
          py::arg("slot"), py::arg("mid"))
      .def(
          "book",
          [](const portfolio::Ledger& l, size_t slot) {
            if (slot >= l.size()) throw py::index_error("no such ledger slot");
            const auto& b = l.book(slot);
            py::dict d;
            d["instrument"] = b.instrument;
            d["inverse"] = b.inverse;
            d["position"] = b.position;
            d["average_entry"] = b.average_entry();
            d["realised"] = b.realised_quote();
            d["realised_coin"] = b.realised_coin;
            d["unrealised"] = b.unrealised_at(b.mark);
            d["unrealised_coin"] = b.unrealised_coin(b.mark);
            d["fees"] = b.fees_quote();
            d["fees_settlement"] = b.fees;
            d["equity"] = b.equity_at(b.mark);
            d["mark"] = b.mark;
            d["fills"] = b.fills;
            return d;
          },
          py::arg("slot"),
          "quote-unit figures at the slot's mark (inverse: coin amounts x mark), the coin ones, average entry in ticks")
      .def("total_equity", py::overload_cast<>(&portfolio::Ledger::total_equity, py::const_))
      .def("total_fees", &portfolio::Ledger::total_fees)
      .def("total_realised", &portfolio::Ledger::total_realised)
      .def("__len__", &portfolio::Ledger::size);
}

}  // namespace bot4::ext
