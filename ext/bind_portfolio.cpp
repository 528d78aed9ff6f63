// bot4._core.portfolio: the per-decision portfolio step (core/portfolio/portfolio_step) and the
// signal agents evaluated on feature rows (core/portfolio/signal_agent).
// Glue only: numpy arrays in and out, StepInputError -> bot4.errors.InputError(param, problem).
// bot4.portfolio.core_step builds the step from a PortfolioConfig, Lanes and a fitted MetaWeighter;
// bot4.portfolio.agents.core_agent builds a SignalAgent from a fitted agent; a PluginAgent is a C++
// user agent from a shared library (core/portfolio/agent_plugin.hpp, bot4.portfolio.user_agents.CppAgent).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "config_dict.hpp"
#include "portfolio/agent_plugin.hpp"
#include "portfolio/numeric.hpp"
#include "portfolio/portfolio_step.hpp"
#include "portfolio/signal_agent.hpp"

namespace py = pybind11;
using namespace pybind11::literals;

namespace bot4::ext {
namespace {

using namespace bot4::portfolio;
using F64 = py::array_t<double, py::array::c_style | py::array::forcecast>;
using I64 = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;
using U8 = py::array_t<uint8_t, py::array::c_style | py::array::forcecast>;

const double* vec(const F64& a, size_t n, const char* name) {
  if (a.ndim() != 1 || static_cast<size_t>(a.shape(0)) != n)
    throw StepInputError(name, std::string("must be a 1-D array of ") + std::to_string(n) + " values, got " +
                                   std::to_string(a.ndim()) + "-D of " + std::to_string(a.size()));
  return a.data();
}

const int64_t* ivec(const I64& a, size_t n, const char* name) {
  if (a.ndim() != 1 || static_cast<size_t>(a.shape(0)) != n)
    throw StepInputError(name, std::string("must be a 1-D array of ") + std::to_string(n) + " integers, got " +
                                   std::to_string(a.ndim()) + "-D of " + std::to_string(a.size()));
  return a.data();
}

SizingLimits limits_from(const std::vector<double>& v) {
  SizingLimits l;
  size_t n = 0;
  SizingLimits::visit_fields(l, [&](const FieldInfo&, const double&) { ++n; });
  if (v.size() != n)
    throw StepInputError("limits", "need " + std::to_string(n) + " values (limits_schema() fields in order)");
  size_t i = 0;
  // the values' bounds are checked by bot4.portfolio.sizing.SizingLimits (tested against limits_schema())
  SizingLimits::visit_fields(l, [&](const FieldInfo&, double& member) { member = v[i++]; });
  return l;
}

unsigned __int128 u128(const py::int_& v) {
  const py::int_ mask(static_cast<unsigned long long>(~0ULL));
  const auto lo = py::int_(v.attr("__and__")(mask)).cast<unsigned long long>();
  const auto hi = py::int_(v.attr("__rshift__")(64)).attr("__and__")(mask).cast<unsigned long long>();
  return (static_cast<unsigned __int128>(hi) << 64) | lo;
}

py::int_ to_py(unsigned __int128 v) {
  py::int_ hi(static_cast<unsigned long long>(v >> 64));
  py::int_ lo(static_cast<unsigned long long>(v));
  return py::int_(hi.attr("__lshift__")(64).attr("__or__")(lo));
}

template <class T>
py::array_t<T> arr(const std::vector<T>& v) {
  return py::array_t<T>(static_cast<py::ssize_t>(v.size()), v.data());
}

py::array_t<double> mat(const std::vector<double>& v, size_t rows, size_t cols) {
  return py::array_t<double>({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)}, v.data());
}

PortfolioStep::LaneState lane_state(const PortfolioStep& s, const I64& pos, const F64& mid, const F64& pnl,
                                    double peak) {
  const size_t n = s.n();
  return {ivec(pos, n, "pos"), vec(mid, n, "mid"), vec(pnl, n, "pnl"), peak};
}

py::dict counters_dict(const OrderCounters& c) {
  py::dict d;
  d["skipped_min_qty"] = c[0];
  d["skipped_min_notional"] = c[1];
  for (size_t k = 0; k < kLimits; ++k) d[(std::string("vetoed_") + kLimitNames[k]).c_str()] = c[2 + k];
  return d;
}

py::dict violations_dict(const Violations& v) {
  py::dict d;
  for (size_t k = 0; k < kLimits; ++k) d[kLimitNames[k]] = v[k];
  return d;
}

py::tuple limit_names(const std::vector<int>& ids) {
  py::list out;
  for (int b : ids) out.append(kLimitNames[b]);
  return py::tuple(out);
}

py::dict safety_dict(const SafetyCounters& c) {
  py::dict d;
  for (size_t k = 0; k < kSafetyCounters; ++k) d[kSafetyCounterNames[k]] = c[k];
  return d;
}

py::dict safe_dict(const SafeAction& a, const SafetyCounters& c) {
  py::dict d;
  d["multiplier"] = a.multiplier;
  d["proposal"] = arr(a.proposal);
  d["action"] = arr(a.action);
  d["binding"] = limit_names(a.binding);
  d["breached"] = limit_names(a.breached);
  d["counters"] = safety_dict(c);
  return d;
}

// A sizer configured for lanes of `groups` (and allow_short flags) and the state the limits depend
// on (the arrays must outlive the state).
SizingState standalone_state(RiskBudgetSizer& sizer, double equity, double peak_equity, const F64& positions,
                             const I64& groups, const std::optional<std::vector<bool>>& allow_short,
                             const std::optional<F64>& scenarios) {
  if (positions.ndim() != 1) throw StepInputError("positions", "must be 1-D");
  const size_t n = static_cast<size_t>(positions.size());
  std::vector<LaneRules> rules(n);
  const int64_t* g = ivec(groups, n, "groups");
  if (allow_short && allow_short->size() != n) throw StepInputError("allow_short", "one flag per instrument");
  for (size_t k = 0; k < n; ++k) {
    rules[k].group = static_cast<int>(g[k]);
    rules[k].allow_short = allow_short ? (*allow_short)[k] : true;
  }
  sizer.configure(std::move(rules));
  SizingState st;
  st.equity = equity;
  st.peak_equity = peak_equity;
  st.positions = positions.data();
  st.n = n;
  if (scenarios) {
    if (scenarios->ndim() != 2 || static_cast<size_t>(scenarios->shape(1)) != n)
      throw StepInputError("scenarios", "must be T x " + std::to_string(n));
    st.scenarios = scenarios->data();
    st.scenario_rows = static_cast<size_t>(scenarios->shape(0));
  }
  return st;
}

py::tuple view_tuple(const AgentView& v) {
  return py::make_tuple(v.mu, v.sigma, v.q[0], v.q[1], v.q[2], v.confidence, v.regime);
}

py::dict views_dict(const std::vector<AgentView>& out) {
  const auto n = static_cast<py::ssize_t>(out.size());
  py::array_t<double> mu(n), sigma(n), conf(n), q({n, static_cast<py::ssize_t>(SignalAgent::kTaus)});
  py::array_t<int64_t> reg(n);
  auto m = mu.mutable_unchecked<1>();
  auto s = sigma.mutable_unchecked<1>();
  auto c = conf.mutable_unchecked<1>();
  auto qq = q.mutable_unchecked<2>();
  auto r = reg.mutable_unchecked<1>();
  for (py::ssize_t i = 0; i < n; ++i) {
    const auto& v = out[static_cast<size_t>(i)];
    m(i) = v.mu;
    s(i) = v.sigma;
    c(i) = v.confidence;
    r(i) = v.regime;
    for (py::ssize_t t = 0; t < static_cast<py::ssize_t>(SignalAgent::kTaus); ++t) qq(i, t) = v.q[static_cast<size_t>(t)];
  }
  py::dict d;
  d["mu"] = mu;
  d["sigma"] = sigma;
  d["quantiles"] = q;
  d["confidence"] = conf;
  d["regime"] = reg;
  return d;
}

}  // namespace

void bind_portfolio(py::module_& m) {
  using namespace bot4::portfolio;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StepInputError& e) {
      py::object cls = py::module_::import("bot4.errors").attr("InputError");
      py::object err = cls(e.param(), e.what());
      PyErr_SetObject(cls.ptr(), err.ptr());
    }
  });

  py::class_<StepResult>(m, "StepResult",
                         "The last decision of a PortfolioStep (arrays are copies; valid until the next step).")
      .def_property_readonly("target", [](const StepResult& r) { return arr(r.target); },
                             "Target position per lane, engine lots.")
      .def_property_readonly("mu", [](const StepResult& r) { return arr(r.mu); }, "Blended mu per lane (bp).")
      .def_property_readonly("sigma", [](const StepResult& r) { return arr(r.sigma); }, "Blended sigma per lane (bp).")
      .def_property_readonly("p", [](const StepResult& r) { return arr(r.p); }, "Calibrated P(up) per lane.")
      .def_property_readonly("score", [](const StepResult& r) { return arr(r.score); }, "|mu| / sigma (0: no view).")
      .def_property_readonly("unit", [](const StepResult& r) { return arr(r.unit); },
                             "Unit risk per lane: conservative CVaR x sqrt(horizon) (NaN: none).")
      .def_property_readonly("chosen", [](const StepResult& r) { return r.chosen; }, "Lanes picked, greedy order.")
      .def_property_readonly("plain", [](const StepResult& r) { return r.plain; }, "Plain top-K lanes.")
      .def_property_readonly("action", [](const StepResult& r) { return r.action; }, "Action index per pick.")
      .def_property_readonly("greedy", [](const StepResult& r) { return r.greedy; }, "Greedy action per pick.")
      .def_property_readonly("propensity", [](const StepResult& r) { return r.propensity; },
                             "Propensity of each pick's action.")
      .def_property_readonly("corr_topk", [](const StepResult& r) { return r.corr_topk; },
                             "Mean pairwise correlation of plain top-K (NaN below two).")
      .def_property_readonly("corr_div", [](const StepResult& r) { return r.corr_div; },
                             "Mean pairwise correlation of the diversified picks.")
      .def_property_readonly("has_corr", [](const StepResult& r) { return r.has_corr; },
                             "Whether plain top-K had two picks (correlations recorded).")
      .def_property_readonly("want", [](const StepResult& r) { return arr(r.want); }, "Risk-budget proposal (notional).")
      .def_property_readonly("projected", [](const StepResult& r) { return arr(r.projected); },
                             "The proposal after the safety projection (notional).")
      .def_property_readonly(
          "binding",
          [](const StepResult& r) {
            py::list out;
            for (int b : r.binding) out.append(kLimitNames[b]);
            return py::tuple(out);
          },
          "Limits the projection changed the proposal for (a name per group).")
      .def_property_readonly("counters", [](const StepResult& r) { return counters_dict(r.counters); },
                             "Skipped trades by reason and vetoes by limit.")
      .def_property_readonly("no_risk", [](const StepResult& r) { return r.no_risk; },
                             "Lanes with a view but no risk estimate.")
      .def_property_readonly("not_probability", [](const StepResult& r) { return r.not_probability; },
                             "Lanes whose p was finite but outside [0, 1] (no view).")
      .def_property_readonly("within_band", [](const StepResult& r) { return r.within_band; },
                             "Lanes kept by the no-trade band.")
      .def_property_readonly("equity", [](const StepResult& r) { return r.equity; }, "Equity at the step.")
      .def_property_readonly("peak", [](const StepResult& r) { return r.peak; }, "Peak equity after the step.")
      .def_property_readonly("positions", [](const StepResult& r) { return arr(r.positions); },
                             "Notionals held at the step.")
      .def_property_readonly("window", [](const StepResult& r) { return mat(r.window, r.window_rows, r.positions.size()); },
                             "Trailing returns (T x n, finite rows).")
      .def_property_readonly(
          "scenarios",
          [](const StepResult& r) -> py::object {
            if (!r.has_scenarios) return py::none();
            return mat(r.scenarios, r.window_rows, r.positions.size());
          },
          "Portfolio CVaR scenarios (window x sqrt(horizon)) or None.")
      .def_property_readonly("step_ns", [](const StepResult& r) { return r.step_ns; },
                             "Wall time of the step inside the core, ns.")
      .def_property_readonly(
          "safe",
          [](const StepResult& r) -> py::object {
            if (!r.has_safe) return py::none();
            return safe_dict(r.safe, r.safety);
          },
          "finish_safe's safety layer at this step (multiplier, proposal, action, binding, breached, counters) "
          "or None.");

  py::class_<PortfolioStep>(m, "PortfolioStep",
                            "The per-decision portfolio step in the core (see bot4.portfolio.core_step).")
      .def(py::init([](double equity, double fx, int64_t grid_ns, int horizon, size_t corr_window, size_t top_k,
                       double penalty, double min_edge_bp, double full_confidence, std::vector<double> actions,
                       double epsilon, bool scenarios, double rebalance_band, int fixed_action,
                       const std::vector<double>& full, const std::vector<double>& buffered, double tail_z,
                       double tail_pdf, const std::vector<double>& lot_size, const std::vector<bool>& inverse,
                       const std::vector<double>& contract_size, const std::vector<int>& groups,
                       const std::vector<double>& lot_step, const std::vector<double>& min_qty,
                       const std::vector<double>& min_notional, const std::vector<bool>& allow_short,
                       const std::vector<bool>& rule_inverse, const std::vector<double>& rule_contract_size,
                       std::vector<double> taus, size_t inputs, const py::list& models, std::vector<double> iso_x,
                       std::vector<double> iso_y, double clip, double normal_iqr, const py::int_& rng_state,
                       const py::int_& rng_inc) {
             StepConfig c;
             c.equity = equity;
             c.fx = fx;
             c.grid_ns = grid_ns;
             c.horizon = horizon;
             c.corr_window = corr_window;
             c.top_k = top_k;
             c.penalty = penalty;
             c.min_edge_bp = min_edge_bp;
             c.full_confidence = full_confidence;
             c.actions = std::move(actions);
             c.epsilon = epsilon;
             c.scenarios = scenarios;
             c.rebalance_band = rebalance_band;
             c.fixed_action = fixed_action;
             c.full = limits_from(full);
             c.buffered = limits_from(buffered);
             c.tail = NormalTail{c.full.cvar_level, tail_z, tail_pdf};
             const size_t n = lot_size.size();
             for (size_t sz : {inverse.size(), contract_size.size(), groups.size(), lot_step.size(), min_qty.size(),
                               min_notional.size(), allow_short.size(), rule_inverse.size(), rule_contract_size.size()})
               if (sz != n) throw StepInputError("lanes", "every lane field needs one value per lane");
             std::vector<LaneSpec> lanes(n);
             for (size_t k = 0; k < n; ++k) {
               lanes[k].lot_size = lot_size[k];
               lanes[k].inverse = inverse[k];
               lanes[k].contract_size = contract_size[k];
               lanes[k].rules = LaneRules{groups[k],     lot_step[k],      min_qty[k], min_notional[k],
                                          allow_short[k], rule_inverse[k], rule_contract_size[k]};
             }
             MetaParams mp;
             mp.taus = std::move(taus);
             mp.inputs = inputs;
             for (const auto& item : models) {
               const auto t = item.cast<py::tuple>();
               LinearQuantileModel mod;
               mod.regime = t[0].cast<int64_t>();
               const F64 coef = t[1].cast<F64>();
               const F64 icpt = t[2].cast<F64>();
               mod.coef.assign(coef.data(), coef.data() + coef.size());
               mod.intercept.assign(icpt.data(), icpt.data() + icpt.size());
               mp.models.push_back(std::move(mod));
             }
             mp.iso_x = std::move(iso_x);
             mp.iso_y = std::move(iso_y);
             mp.clip = clip;
             mp.normal_iqr = normal_iqr;
             return new PortfolioStep(std::move(c), std::move(lanes), MetaWeighter(std::move(mp)),
                                      Pcg64(u128(rng_state), u128(rng_inc)));
           }),
           py::kw_only(), "equity"_a, "fx"_a, "grid_ns"_a, "horizon"_a, "corr_window"_a, "top_k"_a, "penalty"_a,
           "min_edge_bp"_a, "full_confidence"_a, "actions"_a, "epsilon"_a, "scenarios"_a, "rebalance_band"_a,
           "fixed_action"_a, "full"_a, "buffered"_a, "tail_z"_a, "tail_pdf"_a, "lot_size"_a, "inverse"_a,
           "contract_size"_a, "groups"_a, "lot_step"_a, "min_qty"_a, "min_notional"_a, "allow_short"_a,
           "rule_inverse"_a, "rule_contract_size"_a, "taus"_a, "inputs"_a, "models"_a, "iso_x"_a, "iso_y"_a,
           "clip"_a, "normal_iqr"_a, "rng_state"_a, "rng_inc"_a)
      .def_property_readonly("n", &PortfolioStep::n, "Lanes.")
      .def(
          "set_signals",
          [](PortfolioStep& s, const F64& x, const I64& regime, const std::vector<I64>& lane_ts,
             const std::vector<I64>& lane_rows) {
            if (x.ndim() != 2) throw StepInputError("outputs", "inputs must be a rows x (3 x agents) matrix");
            SignalTable t;
            t.inputs = static_cast<size_t>(x.shape(1));
            const size_t rows = static_cast<size_t>(x.shape(0));
            t.x.assign(x.data(), x.data() + x.size());
            const int64_t* r = ivec(regime, rows, "regime");
            t.regime.assign(r, r + rows);
            for (const auto& a : lane_ts) t.lane_ts.emplace_back(a.data(), a.data() + a.size());
            for (const auto& a : lane_rows) t.lane_rows.emplace_back(a.data(), a.data() + a.size());
            s.set_signals(std::move(t));
          },
          "x"_a, "regime"_a, "lane_ts"_a, "lane_rows"_a,
          "Load every signal row once: inputs (rows x 3 agents: mu, sigma, confidence), regime per row, per "
          "lane its rows' times (ascending) and row indices.")
      .def(
          "set_bars",
          [](PortfolioStep& s, const I64& ends, const F64& mids) {
            if (mids.ndim() != 2 || static_cast<size_t>(mids.shape(1)) != s.n() || mids.shape(0) != ends.size())
              throw StepInputError("bars", "must be bar_ends x lanes");
            s.set_bars(std::vector<int64_t>(ends.data(), ends.data() + ends.size()),
                       std::vector<double>(mids.data(), mids.data() + mids.size()));
          },
          "ends"_a, "mids"_a, "The grid bars: end times (ascending ns) and the lanes' mids at each (bars x lanes).")
      .def(
          "push_bar", [](PortfolioStep& s, int64_t end, const F64& mids) { s.push_bar(end, vec(mids, s.n(), "mids")); },
          "end"_a, "mids"_a, "Append one grid bar as it ends.")
      .def_readwrite("project", &PortfolioStep::project,
                     "False: steps stop after the proposal (want); an outside sizer projects it and calls finish.")
      .def(
          "step",
          [](PortfolioStep& s, int64_t ts, const I64& pos, const F64& mid, const F64& pnl, double peak)
              -> const StepResult& { return s.step(ts, lane_state(s, pos, mid, pnl, peak)); },
          "ts"_a, "pos"_a, "mid"_a, "pnl"_a, "peak"_a, py::return_value_policy::reference_internal,
          "The step at ts from the loaded signal rows.")
      .def(
          "step_agents",
          [](PortfolioStep& s, int64_t ts, const F64& x, const I64& regime, const U8& have, const I64& pos,
             const F64& mid, const F64& pnl, double peak) -> const StepResult& {
            const size_t n = s.n();
            if (x.ndim() != 2 || static_cast<size_t>(x.shape(0)) != n)
              throw StepInputError("x", "must be lanes x (3 x agents), got " + std::to_string(x.ndim()) + "-D");
            if (static_cast<size_t>(x.shape(1)) != s.inputs())
              throw StepInputError("x", "needs " + std::to_string(s.inputs()) + " columns (3 per agent), got " +
                                            std::to_string(x.shape(1)));
            if (have.ndim() != 1 || static_cast<size_t>(have.shape(0)) != n)
              throw StepInputError("have", "needs one flag per lane");
            return s.step_agents(ts, x.data(), ivec(regime, n, "regime"), have.data(),
                                 lane_state(s, pos, mid, pnl, peak));
          },
          "ts"_a, "x"_a, "regime"_a, "have"_a, "pos"_a, "mid"_a, "pnl"_a, "peak"_a,
          py::return_value_policy::reference_internal,
          "The step at ts from this decision's agents' outputs per lane (lanes x 3 agents).")
      .def("set_agents", &PortfolioStep::set_agents, "agents"_a,
           "Load the fitted SignalAgents step_features evaluates, in the meta-weighter's input order.")
      .def(
          "step_features",
          [](PortfolioStep& s, int64_t ts, const F64& rows, const F64& model_output, const U8& have, const I64& pos,
             const F64& mid, const F64& pnl, double peak) -> const StepResult& {
            const size_t n = s.n();
            if (rows.ndim() != 2 || static_cast<size_t>(rows.shape(0)) != n ||
                static_cast<size_t>(rows.shape(1)) != s.row_width())
              throw StepInputError("rows", "must be lanes x " + std::to_string(s.row_width()) + " feature columns");
            if (model_output.ndim() != 2 || static_cast<size_t>(model_output.shape(0)) != n ||
                static_cast<size_t>(model_output.shape(1)) != s.agents())
              throw StepInputError("model_output", "must be lanes x agents (NaN where an agent reads none)");
            if (have.ndim() != 1 || static_cast<size_t>(have.shape(0)) != n)
              throw StepInputError("have", "needs one flag per lane");
            return s.step_features(ts, rows.data(), model_output.data(), have.data(),
                                   lane_state(s, pos, mid, pnl, peak));
          },
          "ts"_a, "rows"_a, "model_output"_a, "have"_a, "pos"_a, "mid"_a, "pnl"_a, "peak"_a,
          py::return_value_policy::reference_internal,
          "The step at ts from each lane's latest feature row: the loaded agents evaluated on it in the core.")
      .def(
          "step_views",
          [](PortfolioStep& s, int64_t ts, const F64& mu, const F64& sigma, const F64& p, const I64& pos,
             const F64& mid, const F64& pnl, double peak) -> const StepResult& {
            const size_t n = s.n();
            return s.step_views(ts, vec(mu, n, "mu"), vec(sigma, n, "sigma"), vec(p, n, "p"),
                                lane_state(s, pos, mid, pnl, peak));
          },
          "ts"_a, "mu"_a, "sigma"_a, "p"_a, "pos"_a, "mid"_a, "pnl"_a, "peak"_a,
          py::return_value_policy::reference_internal, "The step at ts from blended views per lane (NaN: no view).")
      .def(
          "finish",
          [](PortfolioStep& s, const F64& projected, const std::vector<std::string>& binding) -> const StepResult& {
            std::vector<int> b;
            for (const auto& name : binding) {
              int id = -1;
              for (size_t k = 0; k < kLimits; ++k)
                if (name == kLimitNames[k]) id = static_cast<int>(k);
              if (id < 0) throw StepInputError("binding", "unknown limit " + name);
              b.push_back(id);
            }
            return s.finish(vec(projected, s.n(), "projected"), b);
          },
          "projected"_a, "binding"_a, py::return_value_policy::reference_internal,
          "Complete a step proposed with project = False from an outside projection.")
      .def("finish_safe", &PortfolioStep::finish_safe, "multiplier"_a, "max_multiplier"_a,
           py::return_value_policy::reference_internal,
           "Complete a step proposed with project = False through the RL sizer's safety layer in the core "
           "(base = want / equity; result.safe).")
      .def(
          "violations",
          [](PortfolioStep& s, const F64& exposure, bool full) {
            return violations_dict(s.violations_at_last(vec(exposure, s.n(), "exposure"), full));
          },
          "exposure"_a, "full"_a = false,
          "By how much a notional vector exceeds each limit at the last step's state (core arithmetic).")
      .def_property_readonly(
          "rng_state", [](PortfolioStep& s) { return py::make_tuple(to_py(s.rng().state()), to_py(s.rng().inc())); },
          "(state, inc) of the PCG64 stream the action draws take.");

  py::class_<SignalAgent>(m, "SignalAgent",
                          "A fitted signal agent evaluated on feature rows in the core (built by "
                          "bot4.portfolio.agents.core_agent from a fitted agent).")
      .def(py::init([](const std::string& kind, const std::string& name, const std::string& model_version,
                       int64_t horizon, std::vector<std::string> columns, std::vector<bool> neutral,
                       std::string vol_column, double band, std::vector<double> taus, const F64& coef,
                       const F64& intercept, double normal_10_90, std::vector<double> regime_edges,
                       std::vector<double> iso_x, std::vector<double> iso_y, std::vector<double> abs_return,
                       const std::vector<std::string>& feature_names, std::vector<std::string> model_columns,
                       std::vector<double> model_median, std::vector<double> model_mean,
                       std::vector<double> model_scale, std::vector<double> model_coef, double model_intercept) {
             AgentSpec a;
             a.kind = kind;
             a.name = name;
             a.model_version = model_version;
             a.horizon = horizon;
             a.columns = std::move(columns);
             a.neutral = std::move(neutral);
             a.vol_column = std::move(vol_column);
             a.band = band;
             a.taus = std::move(taus);
             a.quantiles.coef.assign(coef.data(), coef.data() + coef.size());
             a.quantiles.intercept.assign(intercept.data(), intercept.data() + intercept.size());
             a.normal_10_90 = normal_10_90;
             a.regime_edges = std::move(regime_edges);
             a.iso_x = std::move(iso_x);
             a.iso_y = std::move(iso_y);
             a.abs_return = std::move(abs_return);
             a.model_columns = std::move(model_columns);
             a.model_median = std::move(model_median);
             a.model_mean = std::move(model_mean);
             a.model_scale = std::move(model_scale);
             a.model_coef = std::move(model_coef);
             a.model_intercept = model_intercept;
             return new SignalAgent(std::move(a), feature_names);
           }),
           py::kw_only(), "kind"_a, "name"_a, "model_version"_a, "horizon"_a, "columns"_a, "neutral"_a,
           "vol_column"_a, "band"_a, "taus"_a, "coef"_a, "intercept"_a, "normal_10_90"_a, "regime_edges"_a,
           "iso_x"_a, "iso_y"_a, "abs_return"_a, "feature_names"_a,
           "model_columns"_a = std::vector<std::string>{}, "model_median"_a = std::vector<double>{},
           "model_mean"_a = std::vector<double>{}, "model_scale"_a = std::vector<double>{},
           "model_coef"_a = std::vector<double>{}, "model_intercept"_a = 0.0)
      .def_property_readonly("kind", [](const SignalAgent& a) { return a.spec().kind; }, "The agent's kind.")
      .def_property_readonly("name", [](const SignalAgent& a) { return a.spec().name; }, "Agent id.")
      .def_property_readonly("model_version", [](const SignalAgent& a) { return a.spec().model_version; },
                             "Hash of the fitted parameters.")
      .def_property_readonly("horizon", [](const SignalAgent& a) { return a.spec().horizon; },
                             "Horizon, feature rows of the row's instrument.")
      .def_property_readonly("row_width", &SignalAgent::row_width, "Feature columns per row.")
      .def_property_readonly("needs_model_output", &SignalAgent::needs_model_output,
                             "Whether rows need the model's raw P(up) beside the features (direction whose "
                             "classifier is not a logistic one evaluated here).")
      .def_property_readonly("has_classifier", &SignalAgent::has_classifier,
                             "Whether the direction agent's logistic classifier runs in the core.")
      .def(
          "classifier_p",
          [](const SignalAgent& a, const F64& row) {
            if (!a.has_classifier()) throw StepInputError("model_columns", "this agent has no classifier in the core");
            return a.classifier_p(vec(row, a.row_width(), "row"));
          },
          "row"_a, "The logistic classifier's raw P(up) of one feature row.")
      .def(
          "evaluate",
          [](const SignalAgent& a, const F64& row, double model_output) {
            return view_tuple(a.evaluate(vec(row, a.row_width(), "row"), model_output));
          },
          "row"_a, "model_output"_a = std::numeric_limits<double>::quiet_NaN(),
          "One feature row -> (mu, sigma, q10, q50, q90, confidence, regime).")
      .def(
          "evaluate_rows",
          [](const SignalAgent& a, const F64& matrix, std::optional<F64> model_output) {
            if (matrix.ndim() != 2 || static_cast<size_t>(matrix.shape(1)) != a.row_width())
              throw StepInputError("matrix", "must be rows x " + std::to_string(a.row_width()) +
                                                 " feature columns, got " + std::to_string(matrix.ndim()) + "-D with " +
                                                 std::to_string(matrix.ndim() == 2 ? matrix.shape(1) : 0) + " columns");
            const size_t rows = static_cast<size_t>(matrix.shape(0));
            const double* mo = model_output ? vec(*model_output, rows, "model_output") : nullptr;
            std::vector<AgentView> out(rows);
            a.evaluate_rows(matrix.data(), rows, mo, out.data());
            return views_dict(out);
          },
          "matrix"_a, "model_output"_a = py::none(),
          "Every row of a feature matrix (a loop over evaluate) -> dict of mu, sigma, quantiles (rows x 3), "
          "confidence, regime.");

  py::class_<PluginAgent>(m, "PluginAgent",
                          "A C++ user agent loaded from a plugin library (BOT4_AGENT_PLUGIN), bound to the rows' "
                          "feature names; its outputs are checked.")
      .def(py::init<const std::string&, const std::string&, const std::vector<std::string>&>(), "path"_a,
           "params_json"_a, "feature_names"_a)
      .def_property_readonly("row_width", &PluginAgent::row_width, "Feature columns per row.")
      .def(
          "evaluate", [](const PluginAgent& a, const F64& row) { return view_tuple(a.evaluate(vec(row, a.row_width(), "row"))); },
          "row"_a, "One feature row -> (mu, sigma, q10, q50, q90, confidence, regime).")
      .def(
          "evaluate_rows",
          [](const PluginAgent& a, const F64& matrix) {
            if (matrix.ndim() != 2 || static_cast<size_t>(matrix.shape(1)) != a.row_width())
              throw StepInputError("matrix", "must be rows x " + std::to_string(a.row_width()) + " feature columns");
            std::vector<AgentView> out(static_cast<size_t>(matrix.shape(0)));
            a.evaluate_rows(matrix.data(), out.size(), out.data());
            return views_dict(out);
          },
          "matrix"_a, "Every row of a feature matrix -> dict of mu, sigma, quantiles, confidence, regime.");
  m.attr("AGENT_PLUGIN_ABI") = agent_plugin_abi();
  m.attr("MIN_CONVICTION") = kMinConviction;
  m.def("limits_schema", &bot4::ext::config_schema<SizingLimits>,
        "The portfolio's hard limits and risk budget as declared in the core (risk_budget_sizer.hpp), in the "
        "order every limits vector takes: [{name, type, default, min, min_exclusive, max, max_exclusive, unit, doc}]");
  m.attr("MIN_RELATIVE_SIGMA") = kMinRelativeSigma;
  m.def(
      "safe_exposure",
      [](double multiplier, const F64& base, double equity, double peak_equity, const F64& positions,
         const I64& groups, std::optional<std::vector<bool>> allow_short, std::optional<F64> scenarios,
         const std::vector<double>& limits, double max_multiplier) {
        RiskBudgetSizer sizer;
        const SizingState st = standalone_state(sizer, equity, peak_equity, positions, groups, allow_short, scenarios);
        if (!(max_multiplier >= 0 && std::isfinite(max_multiplier)))
          throw StepInputError("max_multiplier", "must be finite and >= 0");
        SafeAction out;
        SafetyCounters c{};
        sizer.safe_exposure(multiplier, vec(base, st.n, "base"), st, limits_from(limits), max_multiplier, out, c);
        return safe_dict(out, c);
      },
      "multiplier"_a, "base"_a, "equity"_a, "peak_equity"_a, "positions"_a, "groups"_a, "allow_short"_a,
      "scenarios"_a, "limits"_a, "max_multiplier"_a,
      "The RL sizer's safety layer in the core (bot4.portfolio.rl_sizer.safe_exposure's twin): a dict of "
      "multiplier, proposal, action, binding, breached and counters.");
  m.def(
      "violations",
      [](const F64& exposure, double equity, double peak_equity, const F64& positions, const I64& groups,
         std::optional<std::vector<bool>> allow_short, std::optional<F64> scenarios, const std::vector<double>& limits) {
        RiskBudgetSizer sizer;
        const SizingState st = standalone_state(sizer, equity, peak_equity, positions, groups, allow_short, scenarios);
        return violations_dict(sizer.violations(vec(exposure, st.n, "exposure"), st, limits_from(limits)));
      },
      "exposure"_a, "equity"_a, "peak_equity"_a, "positions"_a, "groups"_a, "allow_short"_a, "scenarios"_a,
      "limits"_a,
      "By how much `exposure` exceeds each limit (0: within), in the core (bot4.portfolio.sizing.violations' "
      "twin): limit name -> excess.");
}

}  // namespace bot4::ext
