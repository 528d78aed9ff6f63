#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "buffers.hpp"
#include "feature_config_dict.hpp"
#include "features/feature_catalog.hpp"
#include "features/feature_engine.hpp"
#include "simd/simd_level.hpp"

namespace py = pybind11;

namespace bot4::ext {
namespace {

using features::DecisionMode;
using features::FeatureConfig;
using features::FeatureEngine;

DecisionMode parse_mode(const std::string& mode) {
  if (mode == "message") return DecisionMode::EveryBookMessage;
  if (mode == "events") return DecisionMode::EveryNEvents;
  if (mode == "time") return DecisionMode::TimeGrid;
  if (mode == "none") return DecisionMode::None;
  throw py::value_error("decision mode must be 'message', 'events', 'time' or 'none', got '" + mode + "'");
}

}  // namespace

FeatureConfig feature_config_from_dict(const py::dict& d) {
  FeatureConfig c;
  for (auto item : d) {
    const auto key = item.first.cast<std::string>();
    const py::handle v = item.second;
    auto i64 = [&] { return v.cast<int64_t>(); };
    auto f64 = [&] { return v.cast<double>(); };
    if (key == "decision") c.decision_mode = parse_mode(v.cast<std::string>());
    else if (key == "decision_every_n") c.decision_every_n = i64();
    else if (key == "decision_interval_ns") c.decision_interval_ns = i64();
    else if (key == "sample_interval_ns") c.sample_interval_ns = i64();
    else if (key == "window") c.window = static_cast<int>(i64());
    else if (key == "return_scale") c.return_scale = f64();
    else if (key == "depth_levels") c.depth_levels = static_cast<int>(i64());
    else if (key == "flow_window_ns") c.flow_window_ns = i64();
    else if (key == "cancel_window_ns") c.cancel_window_ns = i64();
    else if (key == "cancel_baseline_ns") c.cancel_baseline_ns = i64();
    else if (key == "cancel_burst_z") c.cancel_burst_z = f64();
    else if (key == "cancel_burst_min") c.cancel_burst_min = i64();
    else if (key == "queue_probabilistic") c.queue_probabilistic = v.cast<bool>();
    else if (key == "queue_power") c.queue_power = f64();
    else if (key == "liquidity_samples") c.liquidity_samples = static_cast<int>(i64());
    else if (key == "roll_trades") c.roll_trades = static_cast<int>(i64());
    else if (key == "spread_halflife_trades") c.spread_halflife_trades = f64();
    else if (key == "realised_horizon_ns") c.realised_horizon_ns = i64();
    else if (key == "vpin_bar_ns") c.vpin_bar_ns = i64();
    else if (key == "vpin_bucket_lots") c.vpin_bucket_lots = i64();
    else if (key == "vpin_auto_ns") c.vpin_auto_ns = i64();
    else if (key == "vpin_buckets") c.vpin_buckets = static_cast<int>(i64());
    else if (key == "vpin_sigma_bars") c.vpin_sigma_bars = static_cast<int>(i64());
    else if (key == "ewma_lambda") c.ewma_lambda = f64();
    else if (key == "range_samples") c.range_samples = static_cast<int>(i64());
    else if (key == "garch_omega") c.garch_omega = f64();
    else if (key == "garch_alpha") c.garch_alpha = f64();
    else if (key == "garch_beta") c.garch_beta = f64();
    else if (key == "garch_backcast") c.garch_backcast = static_cast<int>(i64());
    else if (key == "rsi_period") c.rsi_period = static_cast<int>(i64());
    else if (key == "bollinger_period") c.bollinger_period = static_cast<int>(i64());
    else if (key == "vwap_window_ns") c.vwap_window_ns = i64();
    else if (key == "microprice") {
      auto table = v.cast<py::dict>();
      c.microprice.n_spreads = table["n_spreads"].cast<int>();
      c.microprice.n_imbalance = table["n_imbalance"].cast<int>();
      c.microprice.g = table["g"].cast<std::vector<double>>();
      if (c.microprice.g.size() != static_cast<size_t>(c.microprice.n_spreads) * c.microprice.n_imbalance)
        throw py::value_error("microprice table: g must hold n_spreads * n_imbalance values");
    } else {
      throw py::value_error("unknown feature config key '" + key + "'");
    }
  }
  // Window kernels need a power-of-two window for the FFT and the 4-level wavelet.
  if (c.window < 32 || c.window > static_cast<int>(features::kMaxWindow) || (c.window & (c.window - 1)) != 0)
    throw py::value_error("window must be a power of two in [32, 1024]");
  if (c.decision_every_n < 1 || c.decision_interval_ns < 1 || c.sample_interval_ns < 0)
    throw py::value_error("decision_every_n and decision_interval_ns must be >= 1, sample_interval_ns >= 0");
  if (c.flow_window_ns < 1 || c.cancel_window_ns < 1 || c.cancel_baseline_ns < 1 || c.vpin_bar_ns < 1 ||
      c.vwap_window_ns < 1 || c.realised_horizon_ns < 0 || c.vpin_auto_ns < 1)
    throw py::value_error("time windows must be positive");
  if (c.liquidity_samples < 3 || c.roll_trades < 3 || c.vpin_buckets < 1 || c.vpin_sigma_bars < 2 ||
      c.range_samples < 2 || c.rsi_period < 1 || c.bollinger_period < 2 || c.garch_backcast < 1 ||
      c.vpin_bucket_lots < 0 || !(c.spread_halflife_trades > 0))
    throw py::value_error("sample counts out of range");
  if (!(c.ewma_lambda > 0 && c.ewma_lambda < 1)) throw py::value_error("ewma_lambda must be in (0, 1)");
  if (!(c.garch_omega > 0) || c.garch_alpha < 0 || c.garch_beta < 0 || c.garch_alpha + c.garch_beta >= 1)
    throw py::value_error("GARCH parameters need omega > 0, alpha, beta >= 0, alpha + beta < 1");
  return c;
}

namespace {

py::dict counters_dict(const features::EngineCounters& c) {
  py::dict d;
  d["book_events"] = c.book_events;
  d["order_events"] = c.order_events;
  d["trade_events"] = c.trade_events;
  d["unknown_instrument"] = c.unknown_instrument;
  d["book_rejected"] = c.book_rejected;
  d["trades_rejected"] = c.trades_rejected;
  d["book_ignored_l3"] = c.book_ignored_l3;
  d["orders_ignored_l2"] = c.orders_ignored_l2;
  d["messages"] = c.messages;
  d["one_sided_or_crossed"] = c.one_sided_or_crossed;
  d["samples"] = c.samples;
  d["rows"] = c.rows;
  d["time_gaps"] = c.time_gaps;
  d["sample_steps_skipped"] = c.sample_steps_skipped;
  d["grid_rows_skipped"] = c.grid_rows_skipped;
  return d;
}

template <typename T>
py::array_t<T> to_array(const std::vector<T>& v) {
  py::array_t<T> out(static_cast<py::ssize_t>(v.size()));
  std::copy(v.begin(), v.end(), out.mutable_data());
  return out;
}

}  // namespace

void bind_features(py::module_& f) {
  f.attr("feature_count") = static_cast<int>(features::kFeatureCount);
  f.def("catalog", [] {
    py::list out;
    for (int i = 0; i < features::kFeatureCount; ++i) {
      const auto& info = features::feature_info(i);
      out.append(py::make_tuple(std::string(info.name), std::string(info.family), std::string(info.unit),
                                std::string(info.window), std::string(info.definition)));
    }
    return out;
  }, "(name, family, unit, window, definition) per column, in column order");

  py::class_<FeatureEngine>(f, "FeatureEngine")
      .def(py::init([](const py::dict& config) {
             const auto& active = simd::active_level();
             if (!active.ok) throw py::value_error(active.error);
             return std::make_unique<FeatureEngine>(feature_config_from_dict(config));
           }),
           py::arg("config") = py::dict())
      .def("add_instrument",
           [](FeatureEngine& self, uint32_t id, double tick_size, double lot_size, bool l3) {
             std::string error;
             if (!self.add_instrument({id, tick_size, lot_size, l3}, error)) throw py::value_error(error);
           },
           py::arg("instrument"), py::arg("tick_size") = 1.0, py::arg("lot_size") = 1.0, py::arg("l3") = false)
      .def("run",
           [](FeatureEngine& self, const py::array& book, const py::array& orders, const py::array& trades,
              bool time_rows, bool time_events) {
             size_t nb = 0, no = 0, nt = 0;
             const auto* b = record_buffer<BookEvent>(book, "BOOK_EVENT", nb);
             const auto* o = record_buffer<OrderEvent>(orders, "ORDER_EVENT", no);
             const auto* t = record_buffer<TradeEvent>(trades, "TRADE_EVENT", nt);
             std::vector<int64_t> row_ns, event_ns;
             {
               py::gil_scoped_release release;
               if (time_events) event_ns.reserve(nb + no + nt);
               self.run(b, nb, o, no, t, nt, time_rows ? &row_ns : nullptr, time_events ? &event_ns : nullptr);
             }
             py::dict out;
             if (time_rows) out["row_ns"] = to_array(row_ns);
             if (time_events) out["event_ns"] = to_array(event_ns);
             return out;
           },
           py::arg("book"), py::arg("orders"), py::arg("trades"), py::arg("time_rows") = false,
           py::arg("time_events") = false,
           "Processes the three streams (merged by availability time) without the GIL; appends rows.")
      .def_property_readonly("rows", &FeatureEngine::rows)
      .def_property_readonly("matrix",
                             [](py::object self) {
                               auto& e = self.cast<FeatureEngine&>();
                               const auto rows = static_cast<py::ssize_t>(e.rows());
                               const py::ssize_t cols = FeatureEngine::columns();
                               py::array_t<double> view({rows, cols}, {cols * 8, py::ssize_t{8}}, e.matrix(), self);
                               py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
                               return view;
                             },
                             "Read-only view of the rows (valid until the next run or clear_rows)")
      .def_property_readonly("timestamps",
                             [](py::object self) {
                               auto& e = self.cast<FeatureEngine&>();
                               py::array_t<int64_t> view({static_cast<py::ssize_t>(e.rows())}, {py::ssize_t{8}},
                                                         e.timestamps(), self);
                               py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
                               return view;
                             })
      .def_property_readonly("instruments",
                             [](py::object self) {
                               auto& e = self.cast<FeatureEngine&>();
                               py::array_t<uint32_t> view({static_cast<py::ssize_t>(e.rows())}, {py::ssize_t{4}},
                                                          e.row_instruments(), self);
                               py::detail::array_proxy(view.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
                               return view;
                             })
      .def("clear_rows", &FeatureEngine::clear_rows)
      .def("force_window_recompute", &FeatureEngine::set_force_window_recompute, py::arg("on") = true)
      .def_property_readonly("kernel_level",
                             [](const FeatureEngine& e) { return std::string(simd::level_name(e.kernel_level())); })
      .def_property_readonly("counters", [](const FeatureEngine& e) { return counters_dict(e.counters()); });
}

}  // namespace bot4::ext
