#include "portfolio/portfolio_step.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "portfolio/numeric.hpp"
#include "portfolio/selection.hpp"

namespace bot4::portfolio {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr size_t kMinRiskRows = 20;  // CVaR_95 needs 20 returns

double sign(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); }

void check_limits(const SizingLimits& l, const char* name) {
  const double v[] = {l.risk_per_trade, l.max_position, l.max_group_gross, l.max_gross, l.max_net,
                      l.max_drawdown,   l.cvar_level,   l.max_portfolio_cvar, l.min_unit_risk};
  for (double x : v)
    if (!(std::isfinite(x) && x >= 0)) throw StepInputError(name, "limits must be finite numbers >= 0");
  if (!(l.cvar_level > 0 && l.cvar_level < 1)) throw StepInputError(name, "cvar_level must be in (0, 1)");
  if (!(l.min_unit_risk > 0)) throw StepInputError(name, "min_unit_risk must be > 0");
}
}  // namespace

PortfolioStep::PortfolioStep(StepConfig config, std::vector<LaneSpec> lanes, MetaWeighter meta, Pcg64 rng)
    : cfg_(std::move(config)), lanes_(std::move(lanes)), meta_(std::move(meta)), rng_(rng) {
  if (lanes_.empty()) throw StepInputError("lanes", "no lanes");
  if (cfg_.corr_window < kMinRiskRows) throw StepInputError("corr_window", "must be >= 20 bars");
  if (cfg_.top_k < 1) throw StepInputError("top_k", "must be >= 1");
  if (cfg_.actions.size() < 2) throw StepInputError("actions", "needs at least two scales");
  for (double a : cfg_.actions)
    if (!(a >= 0 && a <= 1)) throw StepInputError("actions", "scales must be in [0, 1]");
  if (!(cfg_.epsilon >= 0 && cfg_.epsilon <= 1)) throw StepInputError("epsilon", "must be in [0, 1]");
  if (cfg_.fixed_action >= static_cast<int>(cfg_.actions.size()))
    throw StepInputError("fixed_action", "must index into actions");
  if (!(std::isfinite(cfg_.equity) && cfg_.equity > 0)) throw StepInputError("equity", "must be finite and > 0");
  if (!(std::isfinite(cfg_.fx) && cfg_.fx > 0)) throw StepInputError("quote_to_account", "must be finite and > 0");
  if (cfg_.horizon < 1) throw StepInputError("horizon", "must be >= 1");
  if (cfg_.grid_ns <= 0) throw StepInputError("grid_s", "must be > 0");
  check_limits(cfg_.full, "limits");
  check_limits(cfg_.buffered, "limits");
  std::vector<LaneRules> rules;
  for (const auto& l : lanes_) {
    if (!(l.lot_size > 0 && std::isfinite(l.lot_size) && l.contract_size > 0 && l.rules.lot_step > 0))
      throw StepInputError("lanes", "lot sizes and contract sizes must be > 0");
    rules.push_back(l.rules);
  }
  sizer_.configure(std::move(rules));
  ring_.assign(cfg_.corr_window * lanes_.size(), 0.0);
}

void PortfolioStep::set_signals(SignalTable t) {
  const size_t n = lanes_.size();
  if (t.inputs != meta_.inputs())
    throw StepInputError("outputs", "the agents' outputs have " + std::to_string(t.inputs / 3) +
                                        " agents, the meta-weighter was fitted on " + std::to_string(meta_.inputs() / 3));
  const size_t rows = t.regime.size();
  if (t.x.size() != rows * t.inputs) throw StepInputError("outputs", "inputs and regimes differ in rows");
  if (t.lane_ts.size() != n || t.lane_rows.size() != n)
    throw StepInputError("outputs", "need the rows of every lane (" + std::to_string(n) + ")");
  for (size_t r = 0; r < rows; ++r) {
    for (size_t a = 0; a < t.inputs / 3; ++a) {
      const double mu = t.x[r * t.inputs + 3 * a], sg = t.x[r * t.inputs + 3 * a + 1];
      if (std::isinf(mu) || std::isinf(sg))
        throw StepInputError("mu", "row " + std::to_string(r) + " agent " + std::to_string(a) +
                                       ": infinite mu or sigma (no view is NaN in both)");
      if (std::isnan(mu) != std::isnan(sg))
        throw StepInputError("mu", "row " + std::to_string(r) + " agent " + std::to_string(a) +
                                       ": NaN in only one of mu and sigma (no view is NaN in both)");
      if (sg < 0)
        throw StepInputError("sigma", "row " + std::to_string(r) + " agent " + std::to_string(a) +
                                          ": negative sigma " + std::to_string(sg));
    }
  }
  for (size_t k = 0; k < n; ++k) {
    if (t.lane_ts[k].size() != t.lane_rows[k].size())
      throw StepInputError("outputs", "lane times and rows differ in length");
    for (size_t j = 0; j < t.lane_rows[k].size(); ++j) {
      if (t.lane_rows[k][j] < 0 || static_cast<size_t>(t.lane_rows[k][j]) >= rows)
        throw StepInputError("outputs", "lane row index out of range");
      if (j > 0 && t.lane_ts[k][j] < t.lane_ts[k][j - 1]) throw StepInputError("outputs", "lane times must ascend");
    }
  }
  table_ = std::move(t);
  has_table_ = true;
}

void PortfolioStep::set_bars(std::vector<int64_t> ends, std::vector<double> mids) {
  if (mids.size() != ends.size() * lanes_.size())
    throw StepInputError("bars", "need one mid per lane per bar end (" + std::to_string(ends.size()) + " x " +
                                     std::to_string(lanes_.size()) + ")");
  for (size_t i = 1; i < ends.size(); ++i)
    if (ends[i] <= ends[i - 1]) throw StepInputError("bar_ends", "must be strictly increasing");
  bar_ends_ = std::move(ends);
  bar_mids_ = std::move(mids);
  pushed_ = 0;
}

void PortfolioStep::push_bar(int64_t end_ns, const double* mids) {
  if (!bar_ends_.empty() && end_ns <= bar_ends_.back()) throw StepInputError("bar_ends", "must be strictly increasing");
  bar_ends_.push_back(end_ns);
  bar_mids_.insert(bar_mids_.end(), mids, mids + lanes_.size());
}

void PortfolioStep::advance_window(int64_t ts) {
  const size_t n = lanes_.size(), cw = cfg_.corr_window;
  const size_t b = static_cast<size_t>(std::upper_bound(bar_ends_.begin(), bar_ends_.end(), ts) - bar_ends_.begin());
  const size_t want = b >= 1 ? b - 1 : 0;  // returns [0, want) are known at ts
  const size_t lo = want > cw ? want - cw : 0;
  if (want < pushed_ || lo > pushed_) {    // back in time, or a jump past the ring: refill from lo
    pushed_ = lo;
  }
  for (; pushed_ < want; ++pushed_) {
    const size_t j = pushed_;
    double* dst = ring_.data() + (j % cw) * n;
    const double* a = bar_mids_.data() + j * n;
    const double* c = a + n;
    for (size_t k = 0; k < n; ++k) dst[k] = std::log(c[k]) - std::log(a[k]);
  }
  // the window: returns [lo, want) with every lane finite
  r_.window.clear();
  r_.window_rows = 0;
  for (size_t j = lo; j < want; ++j) {
    const double* row = ring_.data() + (j % cw) * n;
    bool ok = true;
    for (size_t k = 0; k < n; ++k) ok &= std::isfinite(row[k]);
    if (!ok) continue;
    r_.window.insert(r_.window.end(), row, row + n);
    ++r_.window_rows;
  }
}

void PortfolioStep::blend_table(int64_t ts) {
  if (!has_table_) throw StepInputError("signals", "no signal table loaded (set_signals) for step()");
  const size_t n = lanes_.size();
  q_.resize(meta_.taus());
  for (size_t k = 0; k < n; ++k) {
    const auto& rts = table_.lane_ts[k];
    const auto it = std::upper_bound(rts.begin(), rts.end(), ts);
    r_.mu[k] = r_.sigma[k] = r_.p[k] = kNaN;
    if (it == rts.begin()) continue;
    const size_t j = static_cast<size_t>(it - rts.begin()) - 1;
    if (ts - rts[j] > 2 * cfg_.grid_ns) continue;
    const size_t row = static_cast<size_t>(table_.lane_rows[k][j]);
    const BlendedView v = meta_.blend(table_.x.data() + row * table_.inputs, table_.regime[row], q_.data());
    r_.mu[k] = v.mu;
    r_.sigma[k] = v.sigma;
    r_.p[k] = v.p;
  }
}

void PortfolioStep::check_state(const LaneState& s) const {
  const size_t n = lanes_.size();
  if (!std::isfinite(s.peak)) throw StepInputError("peak", "peak equity must be finite");
  for (size_t k = 0; k < n; ++k) {
    if (!std::isfinite(s.pnl[k])) throw StepInputError("pnl", "lane " + std::to_string(k) + ": P&L must be finite");
    if (!(std::isnan(s.mid[k]) || (std::isfinite(s.mid[k]) && s.mid[k] > 0)))
      throw StepInputError("mid", "lane " + std::to_string(k) + ": mid must be > 0 and finite (NaN: no book)");
  }
}

const StepResult& PortfolioStep::step(int64_t ts, const LaneState& s) {
  const auto t0 = std::chrono::steady_clock::now();
  check_state(s);
  const size_t n = lanes_.size();
  r_.mu.resize(n);
  r_.sigma.resize(n);
  r_.p.resize(n);
  blend_table(ts);
  return run(ts, s, t0);
}

const StepResult& PortfolioStep::step_agents(int64_t ts, const double* x, const int64_t* regime, const uint8_t* have,
                                             const LaneState& s) {
  const auto t0 = std::chrono::steady_clock::now();
  check_state(s);
  blend_agents(x, regime, have);
  return run(ts, s, t0);
}

void PortfolioStep::set_agents(std::vector<SignalAgent> agents) {
  if (3 * agents.size() != meta_.inputs())
    throw StepInputError("agents", "the meta-weighter blends " + std::to_string(meta_.inputs() / 3) + " agents, got " +
                                       std::to_string(agents.size()));
  for (const auto& a : agents)
    if (a.row_width() != agents[0].row_width())
      throw StepInputError("agents", "every agent must read rows of the same feature columns");
  agents_ = std::move(agents);
}

const StepResult& PortfolioStep::step_features(int64_t ts, const double* rows, const double* model_output,
                                               const uint8_t* have, const LaneState& s) {
  const auto t0 = std::chrono::steady_clock::now();
  if (agents_.empty()) throw StepInputError("agents", "no agents loaded: call set_agents first");
  check_state(s);
  const size_t n = lanes_.size(), na = agents_.size(), w = row_width();
  agent_x_.resize(n * 3 * na);
  agent_regime_.assign(n, -1);
  for (size_t k = 0; k < n; ++k) {
    if (!have[k]) continue;
    for (size_t a = 0; a < na; ++a) {
      const AgentView v = agents_[a].evaluate(rows + k * w, model_output[k * na + a]);
      double* x = agent_x_.data() + k * 3 * na + 3 * a;
      // bot4.portfolio.meta.agent_matrix: confidence NaN where the agent has no view
      const bool view = std::isfinite(v.mu) && std::isfinite(v.sigma);
      x[0] = v.mu;
      x[1] = v.sigma;
      x[2] = view ? v.confidence : kNaN;
      if (a == 0) agent_regime_[k] = v.regime;
    }
  }
  blend_agents(agent_x_.data(), agent_regime_.data(), have);
  return run(ts, s, t0);
}

void PortfolioStep::blend_agents(const double* x, const int64_t* regime, const uint8_t* have) {
  const size_t n = lanes_.size(), p = meta_.inputs();
  r_.mu.resize(n);
  r_.sigma.resize(n);
  r_.p.resize(n);
  q_.resize(meta_.taus());
  for (size_t k = 0; k < n; ++k) {
    r_.mu[k] = r_.sigma[k] = r_.p[k] = kNaN;
    if (!have[k]) continue;
    const double* row = x + k * p;
    for (size_t a = 0; a < p / 3; ++a) {
      const double mu = row[3 * a], sg = row[3 * a + 1];
      if (std::isinf(mu) || std::isinf(sg) || std::isnan(mu) != std::isnan(sg))
        throw StepInputError("mu", "lane " + std::to_string(k) + " agent " + std::to_string(a) +
                                       ": mu and sigma must both be finite (a view) or both NaN (none)");
      if (sg < 0)
        throw StepInputError("sigma", "lane " + std::to_string(k) + " agent " + std::to_string(a) +
                                          ": negative sigma " + std::to_string(sg));
    }
    const BlendedView v = meta_.blend(row, regime[k], q_.data());
    r_.mu[k] = v.mu;
    r_.sigma[k] = v.sigma;
    r_.p[k] = v.p;
  }
}

const StepResult& PortfolioStep::step_views(int64_t ts, const double* mu, const double* sigma, const double* p,
                                            const LaneState& s) {
  const auto t0 = std::chrono::steady_clock::now();
  check_state(s);
  r_.mu.assign(mu, mu + lanes_.size());
  r_.sigma.assign(sigma, sigma + lanes_.size());
  r_.p.assign(p, p + lanes_.size());
  return run(ts, s, t0);
}

void PortfolioStep::notional(const int64_t* lots, double* out) const {
  for (size_t k = 0; k < lanes_.size(); ++k) {
    const auto& l = lanes_[k];
    const double m = std::isfinite(mid_copy_[k]) ? mid_copy_[k] : 0.0;
    const double px = l.inverse ? l.contract_size : m;
    out[k] = static_cast<double>(lots[k]) * l.lot_size * px * cfg_.fx;
  }
}

SizingState PortfolioStep::sizing_state() const {
  SizingState st;
  st.equity = r_.equity;
  st.peak_equity = r_.peak;
  st.positions = r_.positions.data();
  st.n = lanes_.size();
  if (r_.has_scenarios) {
    st.scenarios = r_.scenarios.data();
    st.scenario_rows = r_.window_rows;
  }
  return st;
}

const StepResult& PortfolioStep::run(int64_t ts, const LaneState& s, std::chrono::steady_clock::time_point t0) {
  t0_ = t0;
  const size_t n = lanes_.size();
  pos_copy_.assign(s.pos, s.pos + n);
  mid_copy_.assign(s.mid, s.mid + n);
  advance_window(ts);
  const size_t T = r_.window_rows;
  const double h = std::sqrt(static_cast<double>(cfg_.horizon));
  r_.unit.assign(n, kNaN);
  if (T >= kMinRiskRows)
    for (size_t k = 0; k < n; ++k)
      r_.unit[k] = conservative_cvar(r_.window.data() + k, T, n, cfg_.tail, scratch_) * h;
  r_.has_scenarios = cfg_.scenarios && T >= kMinRiskRows;
  r_.scenarios.clear();
  if (r_.has_scenarios) {
    r_.scenarios.resize(T * n);
    for (size_t i = 0; i < T * n; ++i) r_.scenarios[i] = r_.window[i] * h;
  }
  // views and scores
  r_.score.assign(n, 0.0);
  r_.no_risk = 0;
  r_.not_probability = 0;
  std::vector<int> cand;
  const double edge = std::max(cfg_.min_edge_bp, 1e-12);
  for (size_t k = 0; k < n; ++k) {
    const double mu = r_.mu[k], sg = r_.sigma[k], p = r_.p[k];
    bool view = std::isfinite(mu) && std::isfinite(sg) && sg > 0 && std::isfinite(p) && std::isfinite(mid_copy_[k]);
    if (std::isfinite(p) && (p < 0 || p > 1)) {  // no probability: no view, counted
      ++r_.not_probability;
      view = false;
    }
    view = view && std::fabs(mu) >= edge;
    view = view && (p - 0.5) * sign(mu) > kMinConviction && sg > kMinRelativeSigma * std::fabs(mu);
    view = view && (lanes_[k].rules.allow_short || mu > 0);
    double score = view ? std::fabs(mu) / sg : 0.0;
    if (view && !std::isfinite(r_.unit[k])) {
      ++r_.no_risk;
      view = false;
    }
    r_.score[k] = std::isfinite(score) ? score : 0.0;
    if (view) cand.push_back(static_cast<int>(k));
  }
  // selection
  r_.chosen.clear();
  r_.has_safe = false;
  r_.plain.clear();
  r_.has_corr = false;
  r_.corr_topk = r_.corr_div = kNaN;
  if (!cand.empty()) {
    const size_t c = cand.size();
    if (T >= 3) {
      correlation(r_.window.data(), T, n, cand, corr_, tmp_);
    } else {
      corr_.assign(c * c, 0.0);
      for (size_t i = 0; i < c; ++i) corr_[i * c + i] = 1.0;
    }
    cand_scores_.resize(c);
    for (size_t i = 0; i < c; ++i) cand_scores_[i] = r_.score[static_cast<size_t>(cand[i])];
    const std::vector<int> plain = top_k(cand_scores_, cfg_.top_k);
    const std::vector<int> div = greedy_penalty(cand_scores_, corr_, cfg_.top_k, cfg_.penalty);
    for (int i : plain) r_.plain.push_back(cand[static_cast<size_t>(i)]);
    for (int i : div) r_.chosen.push_back(cand[static_cast<size_t>(i)]);
    if (plain.size() >= 2) {
      r_.has_corr = true;
      r_.corr_topk = mean_pairwise(corr_, c, plain);
      r_.corr_div = mean_pairwise(corr_, c, div);
    }
  }
  // actions
  const size_t K = cfg_.actions.size();
  std::vector<double> scale(n, 0.0);
  r_.action.clear();
  r_.greedy.clear();
  r_.propensity.clear();
  std::vector<double> pi(K), cum(K);
  for (int kk : r_.chosen) {
    const size_t k = static_cast<size_t>(kk);
    const double conf = std::fabs(2.0 * r_.p[k] - 1.0);
    const int g = conf >= cfg_.full_confidence ? static_cast<int>(K) - 1 : (static_cast<int>(K) - 1) / 2;
    int a;
    double prop;
    if (cfg_.fixed_action >= 0) {
      a = cfg_.fixed_action;
      prop = 1.0;
    } else {
      for (size_t i = 0; i < K; ++i) pi[i] = cfg_.epsilon / static_cast<double>(K);
      pi[static_cast<size_t>(g)] += 1.0 - cfg_.epsilon;
      double acc = 0.0;
      for (size_t i = 0; i < K; ++i) cum[i] = (acc += pi[i]);
      const double u = rng_.random();
      size_t cnt = static_cast<size_t>(std::upper_bound(cum.begin(), cum.end(), u) - cum.begin());
      a = static_cast<int>(std::min(cnt, K - 1));
      prop = pi[static_cast<size_t>(a)];
    }
    scale[k] = cfg_.actions[static_cast<size_t>(a)];
    r_.action.push_back(a);
    r_.greedy.push_back(g);
    r_.propensity.push_back(prop);
  }
  // the state and the proposal
  r_.equity = cfg_.equity + pairwise_sum(s.pnl, n);
  r_.peak = std::max(s.peak, r_.equity);
  r_.positions.resize(n);
  notional(pos_copy_.data(), r_.positions.data());
  r_.want.resize(n);
  const SizingLimits& L = cfg_.buffered;
  const double eq = std::max(0.0, r_.equity);
  for (size_t k = 0; k < n; ++k) {
    const double d = scale[k] > 0 ? sign(std::isnan(r_.mu[k]) ? 0.0 : r_.mu[k]) : 0.0;
    const double u = std::isfinite(r_.unit[k]) ? r_.unit[k] : 1.0;
    const double risk = std::max(u, L.min_unit_risk);
    const double kk = std::min(std::max(scale[k], 0.0), 1.0);
    r_.want[k] = d * kk * L.risk_per_trade * eq / risk;
  }
  if (!project) return r_;
  r_.projected = r_.want;
  const SizingState st = sizing_state();
  sizer_.project(r_.projected, st, L, r_.binding);
  return finish(nullptr, r_.binding);
}

const StepResult& PortfolioStep::finish_safe(double multiplier, double max_multiplier) {
  const size_t n = lanes_.size();
  if (r_.want.size() != n) throw StepInputError("finish_safe", "no step proposed (call a step with project = false)");
  if (!(max_multiplier >= 0 && std::isfinite(max_multiplier)))
    throw StepInputError("max_multiplier", "must be finite and >= 0");
  scratch_.resize(n);
  const double eq = r_.equity;
  for (size_t k = 0; k < n; ++k) scratch_[k] = eq > 0 ? r_.want[k] / eq : 0.0;
  r_.safety = {};
  sizer_.safe_exposure(multiplier, scratch_.data(), sizing_state(), cfg_.buffered, max_multiplier, r_.safe, r_.safety);
  r_.has_safe = true;
  r_.binding = r_.safe.binding;
  return finish(r_.safe.action.data(), r_.binding);
}

const StepResult& PortfolioStep::finish(const double* projected, const std::vector<int>& binding) {
  const size_t n = lanes_.size();
  if (projected != nullptr) {
    r_.projected.assign(projected, projected + n);
    if (&binding != &r_.binding) r_.binding = binding;
    for (size_t k = 0; k < n; ++k)
      if (!std::isfinite(r_.projected[k])) throw StepInputError("projected", "the projected sizes must be finite");
  }
  const SizingState st = sizing_state();
  const SizingLimits& L = cfg_.buffered;
  px_.resize(n);
  qty_.resize(n);
  tmp_.resize(n);
  for (size_t k = 0; k < n; ++k) {
    const bool tradable = std::isfinite(mid_copy_[k]);
    px_[k] = tradable ? mid_copy_[k] : 1.0;
    qty_[k] = static_cast<double>(pos_copy_[k]) * lanes_[k].lot_size;
    tmp_[k] = tradable ? r_.projected[k] : r_.positions[k];
  }
  sizer_.plan_orders(tmp_, qty_, px_, cfg_.fx, st, L, orders_, pos_after_, r_.counters);
  r_.target.resize(n);
  for (size_t k = 0; k < n; ++k)
    r_.target[k] = pos_copy_[k] + static_cast<int64_t>(std::nearbyint(orders_[k] / lanes_[k].lot_size));
  // the no-trade band
  const double band = cfg_.rebalance_band * L.max_position * r_.equity;
  std::vector<double> new_n(n);
  notional(r_.target.data(), new_n.data());
  r_.within_band = 0;
  bool any = false;
  std::vector<int64_t> trial(r_.target);
  for (size_t k = 0; k < n; ++k) {
    const int64_t t = r_.target[k], p = pos_copy_[k];
    const bool keep = t != p && ((t > 0 && p > 0) || (t < 0 && p < 0)) && std::fabs(new_n[k] - r_.positions[k]) < band;
    if (keep) {
      trial[k] = p;
      any = true;
      ++r_.within_band;
    }
  }
  if (any) {
    std::vector<double> tn(n);
    notional(trial.data(), tn.data());
    const Violations v = sizer_.violations(tn.data(), st, L);
    bool ok = true;
    for (double x : v) ok &= !(x > 0);
    if (ok)
      r_.target = trial;
    else
      r_.within_band = 0;
  }
  r_.step_ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0_).count();
  return r_;
}

Violations PortfolioStep::violations_at_last(const double* exposure, bool full_limits) {
  const SizingState st = sizing_state();
  return sizer_.violations(exposure, st, full_limits ? cfg_.full : cfg_.buffered);
}

}  // namespace bot4::portfolio
