// bot4._core.sim: the market generator (core/sim/market_generator.hpp) and its Hawkes clock.
// Glue only: a flat config dict <-> MarketModelConfig, vectors -> numpy arrays without copies.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/events.hpp"
#include "sim/hawkes_clock.hpp"
#include "sim/market_generator.hpp"

namespace py = pybind11;

namespace bot4::ext {
namespace {

using sim::HawkesParams;
using sim::MarketGenerator;
using sim::MarketModelConfig;
using sim::MarketStream;

const std::set<std::string>& config_keys() {
  static const std::set<std::string> keys = {
      "instrument",        "initial_bid",           "epoch_ns",
      "n_levels",          "size_bin_edges",        "typical_size",
      "add_rate",          "cancel_rate",           "market_rate",
      "inside_add_rate",   "inside_gap_weights",    "level_occupancy",
      "inside_follow_prob", "touch_jump",           "new_touch_size",
      "quantile_probs",    "level_size",            "add_size",
      "cancel_size",       "inside_add_size",       "market_order_size",
      "cancel_newest_prob", "max_orders_per_split", "limit_clock",
      "clear_prob",        "order_size",            "mo_withdraw_prob",
      "market_clock",      "latency_median_ns",     "latency_min_ns",
      "latency_dispersion", "latency_memory_ns"};
  return keys;
}

template <typename T>
T get(const py::dict& d, const char* key) {
  if (!d.contains(key)) throw py::key_error(std::string("market model config: missing '") + key + "'");
  try {
    return d[key].cast<T>();
  } catch (const py::cast_error&) {
    throw py::type_error(std::string("market model config: bad type for '") + key + "'");
  }
}

HawkesParams hawkes_from(const py::dict& d, const char* key) {
  const py::dict h = get<py::dict>(d, key);
  for (auto item : h) {
    const std::string k = py::str(item.first).cast<std::string>();
    if (k != "mu" && k != "alpha" && k != "beta" && k != "alpha2" && k != "beta2")
      throw py::value_error(std::string("market model config: unknown key '") + k + "' in " + key);
  }
  HawkesParams p;
  p.mu = get<double>(h, "mu");
  p.alpha = get<double>(h, "alpha");
  p.beta = get<double>(h, "beta");
  if (h.contains("alpha2")) p.alpha2 = get<double>(h, "alpha2");
  if (h.contains("beta2")) p.beta2 = get<double>(h, "beta2");
  return p;
}

MarketModelConfig config_from(const py::dict& d) {
  for (auto item : d) {
    const std::string key = py::str(item.first).cast<std::string>();
    if (!config_keys().count(key)) throw py::value_error("market model config: unknown key '" + key + "'");
  }
  MarketModelConfig c;
  c.instrument = get<uint32_t>(d, "instrument");
  c.initial_bid = get<int64_t>(d, "initial_bid");
  c.epoch_ns = get<int64_t>(d, "epoch_ns");
  c.n_levels = get<uint32_t>(d, "n_levels");
  c.size_bin_edges = get<std::vector<double>>(d, "size_bin_edges");
  c.typical_size = get<std::vector<double>>(d, "typical_size");
  c.add_rate = get<std::vector<double>>(d, "add_rate");
  c.cancel_rate = get<std::vector<double>>(d, "cancel_rate");
  c.clear_prob = get<std::vector<double>>(d, "clear_prob");
  c.market_rate = get<std::vector<double>>(d, "market_rate");
  c.mo_withdraw_prob = get<std::vector<double>>(d, "mo_withdraw_prob");
  c.inside_add_rate = get<double>(d, "inside_add_rate");
  c.inside_gap_weights = get<std::vector<double>>(d, "inside_gap_weights");
  c.inside_follow_prob = get<double>(d, "inside_follow_prob");
  c.touch_jump = get<std::vector<double>>(d, "touch_jump");
  c.new_touch_size = get<std::vector<double>>(d, "new_touch_size");
  c.level_occupancy = get<std::vector<double>>(d, "level_occupancy");
  c.quantile_probs = get<std::vector<double>>(d, "quantile_probs");
  c.level_size = get<std::vector<std::vector<double>>>(d, "level_size");
  c.add_size = get<std::vector<std::vector<double>>>(d, "add_size");
  c.cancel_size = get<std::vector<std::vector<double>>>(d, "cancel_size");
  c.inside_add_size = get<std::vector<double>>(d, "inside_add_size");
  c.market_order_size = get<std::vector<double>>(d, "market_order_size");
  c.order_size = get<std::vector<double>>(d, "order_size");
  c.cancel_newest_prob = get<double>(d, "cancel_newest_prob");
  c.max_orders_per_split = get<uint32_t>(d, "max_orders_per_split");
  c.limit_clock = hawkes_from(d, "limit_clock");
  c.market_clock = hawkes_from(d, "market_clock");
  c.latency_median_ns = get<int64_t>(d, "latency_median_ns");
  c.latency_min_ns = get<int64_t>(d, "latency_min_ns");
  c.latency_dispersion = get<std::vector<double>>(d, "latency_dispersion");
  c.latency_memory_ns = get<double>(d, "latency_memory_ns");
  const std::string error = sim::validate(c);
  if (!error.empty()) throw py::value_error("market model config: " + error);
  return c;
}

// Hands a vector's buffer to numpy: the array owns the vector through a capsule (no copy).
template <typename Record>
py::array_t<Record> to_array(std::vector<Record>&& v) {
  auto* owned = new std::vector<Record>(std::move(v));
  py::capsule free_when_done(owned, [](void* p) { delete static_cast<std::vector<Record>*>(p); });
  return py::array_t<Record>(static_cast<py::ssize_t>(owned->size()), owned->data(), free_when_done);
}

py::dict counters_dict(const sim::GeneratorCounters& c) {
  py::dict out;
  out["events"] = c.events;
  out["limit_adds"] = c.limit_adds;
  out["inside_adds"] = c.inside_adds;
  out["cancels"] = c.cancels;
  out["level_clears"] = c.level_clears;
  out["order_cancels"] = c.order_cancels;
  out["market_orders"] = c.market_orders;
  out["truncated_market_orders"] = c.truncated_market_orders;
  out["trades"] = c.trades;
  out["withdrawals"] = c.withdrawals;
  out["touch_moves"] = c.touch_moves;
  out["touch_jumps"] = c.touch_jumps;
  out["refilled_levels"] = c.refilled_levels;
  out["dropped_levels"] = c.dropped_levels;
  out["reseeds"] = c.reseeds;
  return out;
}

py::tuple run(MarketGenerator& gen, size_t n_events, int64_t until_ns) {
  MarketStream stream;
  {
    py::gil_scoped_release release;
    gen.generate(n_events, until_ns, stream);
  }
  return py::make_tuple(to_array(std::move(stream.book)), to_array(std::move(stream.orders)),
                        to_array(std::move(stream.trades)));
}

}  // namespace

void bind_sim(py::module_& m) {
  auto s = m.def_submodule("sim", "Seeded, deterministic market generator");

  s.attr("CONFIG_KEYS") = py::cast(std::vector<std::string>(config_keys().begin(), config_keys().end()));

  s.def(
      "validate",
      [](const py::dict& config) {
        config_from(config);
        return true;
      },
      py::arg("config"), "Raise ValueError/KeyError/TypeError if the config dict is unusable.");

  py::class_<MarketGenerator>(s, "MarketGenerator",
                              "Queue-reactive Hawkes market generator (core/sim/market_generator.hpp)")
      .def(py::init([](const py::dict& config, uint64_t seed) {
             return std::make_unique<MarketGenerator>(config_from(config), seed);
           }),
           py::arg("config"), py::arg("seed"))
      .def(
          "generate",
          [](MarketGenerator& self, size_t n_events, int64_t until_ns) {
            return run(self, n_events, until_ns);
          },
          py::arg("n_events"), py::arg("until_ns") = 0,
          "Generate up to n_events atomic events (stopping before ts_exchange > until_ns when "
          "until_ns > 0), GIL released. The first call starts with the book snapshot. Returns "
          "(BOOK_EVENT, ORDER_EVENT, TRADE_EVENT) arrays.")
      .def_property_readonly("now", &MarketGenerator::now)
      .def_property_readonly("best_bid", &MarketGenerator::best_bid)
      .def_property_readonly("best_ask", &MarketGenerator::best_ask)
      .def(
          "level_qty",
          [](const MarketGenerator& self, const std::string& side, int64_t price) {
            if (side == "bid") return self.level_qty(Side::Bid, price);
            if (side == "ask") return self.level_qty(Side::Ask, price);
            throw py::value_error("side must be 'bid' or 'ask'");
          },
          py::arg("side"), py::arg("price"))
      .def("counters", [](const MarketGenerator& self) { return counters_dict(self.counters()); });

  s.def(
      "generate",
      [](const py::dict& config, uint64_t seed, size_t n_events, int64_t until_ns) {
        MarketGenerator gen(config_from(config), seed);
        py::tuple arrays = run(gen, n_events, until_ns);
        return py::make_tuple(arrays[0], arrays[1], arrays[2], counters_dict(gen.counters()));
      },
      py::arg("config"), py::arg("seed"), py::arg("n_events"), py::arg("until_ns") = 0,
      "One-shot generation: (BOOK_EVENT, ORDER_EVENT, TRADE_EVENT, counters dict).");

  s.def(
      "hawkes_log_likelihood",
      [](const py::array_t<double, py::array::c_style | py::array::forcecast>& times, double horizon,
         double mu, double alpha, double beta, double alpha2, double beta2) {
        const HawkesParams p{mu, alpha, beta, alpha2, beta2};
        const double* t = times.data();
        const size_t n = static_cast<size_t>(times.size());
        py::gil_scoped_release release;
        return sim::hawkes_log_likelihood(t, n, horizon, p);
      },
      py::arg("times"), py::arg("horizon"), py::arg("mu"), py::arg("alpha"), py::arg("beta"),
      py::arg("alpha2") = 0.0, py::arg("beta2") = 1.0,
      "Log-likelihood of event times (s, sorted) on [0, horizon] under a two-kernel exponential "
      "Hawkes process (for maximum-likelihood fits).");

  s.def(
      "hawkes_event_times",
      [](double mu, double alpha, double beta, uint64_t seed, size_t n, double alpha2, double beta2) {
        const HawkesParams p{mu, alpha, beta, alpha2, beta2};
        if (!p.valid())
          throw py::value_error("need mu > 0, alpha, alpha2 >= 0, beta, beta2 > 0 and "
                                "alpha/beta + alpha2/beta2 < 1");
        std::vector<double> times;
        {
          py::gil_scoped_release release;
          times = sim::hawkes_event_times(p, seed, n);
        }
        return py::array_t<double>(static_cast<py::ssize_t>(times.size()), times.data());
      },
      py::arg("mu"), py::arg("alpha"), py::arg("beta"), py::arg("seed"), py::arg("n"),
      py::arg("alpha2") = 0.0, py::arg("beta2") = 1.0,
      "First n event times (s) of the exponential-kernel Hawkes clock used by the generator.");
}

}  // namespace bot4::ext
