#include "portfolio/risk_budget_sizer.hpp"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <tuple>

#include "portfolio/numeric.hpp"
#include "portfolio/risk_measures.hpp"

namespace bot4::portfolio {

double SizingState::drawdown() const {
  const double peak = std::max(peak_equity, equity);
  return peak <= 0 ? 0.0 : (peak - equity) / peak;
}

bool SizingState::stopped(const SizingLimits& l) const { return equity <= 0 || drawdown() >= l.max_drawdown; }

void RiskBudgetSizer::configure(std::vector<LaneRules> rules) {
  rules_ = std::move(rules);
  group_ids_.clear();
  for (const auto& r : rules_) group_ids_.push_back(r.group);
  std::sort(group_ids_.begin(), group_ids_.end());
  group_ids_.erase(std::unique(group_ids_.begin(), group_ids_.end()), group_ids_.end());
}

void RiskBudgetSizer::box_bounds(const SizingState& st, const SizingLimits& l, std::vector<double>& lo,
                                 std::vector<double>& hi) const {
  const size_t n = rules_.size();
  const double cap = std::max(0.0, l.max_position * st.equity);
  lo.assign(n, -cap);
  hi.assign(n, cap);
  const bool stop = st.stopped(l);
  for (size_t i = 0; i < n; ++i) {
    if (!rules_[i].allow_short) lo[i] = 0.0;
    if (stop) {
      const double p = st.positions[i];
      lo[i] = std::max(lo[i], std::min(p, 0.0));
      hi[i] = std::min(hi[i], std::max(p, 0.0));
    }
  }
}

double RiskBudgetSizer::measure(int kind, int group, const double* a, const SizingState& st, const SizingLimits& l) {
  const size_t n = rules_.size();
  switch (kind) {
    case kGroup: {
      tmp_.clear();
      for (size_t i = 0; i < n; ++i)
        if (rules_[i].group == group) tmp_.push_back(std::fabs(a[i]));
      return pairwise_sum(tmp_.data(), tmp_.size());
    }
    case kGross: return pairwise_sum_fn([a](size_t i) { return std::fabs(a[i]); }, 0, n);
    case kNet: return std::fabs(pairwise_sum(a, n));
    default: return portfolio_cvar(st.scenarios, st.scenario_rows, n, a, l.cvar_level, tmp2_, tmp3_);
  }
}

bool RiskBudgetSizer::shrink(std::vector<double>& a, int kind, int group, double cap, const SizingState& st,
                             const SizingLimits& l) {
  const double m = measure(kind, group, a.data(), st, l);
  if (m <= cap) return false;
  double f = m > 0 ? cap / m : 0.0;
  const size_t n = a.size();
  b_.resize(n);
  for (size_t i = 0; i < n; ++i) b_[i] = a[i] * f;
  double step = 4 * DBL_EPSILON;
  while (f > 0.0 && measure(kind, group, b_.data(), st, l) > cap) {
    f = (step < 1.0 && f > 1e-300) ? f * (1.0 - step) : 0.0;
    step *= 2.0;
    for (size_t i = 0; i < n; ++i) b_[i] = a[i] * f;
  }
  a.swap(b_);
  return true;
}

void RiskBudgetSizer::project(std::vector<double>& a, const SizingState& st, const SizingLimits& l,
                              std::vector<int>& binding) {
  binding.clear();
  const size_t n = rules_.size();
  for (size_t i = 0; i < n; ++i)
    if (std::isnan(a[i])) throw StepInputError("action", "NaN size: a policy bug, there is no direction to project");
  box_bounds(st, l, lo_, hi_);
  bool changed = false;
  for (size_t i = 0; i < n; ++i) {
    const double b = std::min(std::max(a[i], lo_[i]), hi_[i]);
    changed |= b != a[i];
    a[i] = b;
  }
  if (changed) binding.push_back(kBox);
  const double eq = std::max(0.0, st.equity);
  for (int g : group_ids_)
    if (shrink(a, kGroup, g, l.max_group_gross * eq, st, l)) binding.push_back(kGroup);
  if (shrink(a, kGross, 0, l.max_gross * eq, st, l)) binding.push_back(kGross);
  if (shrink(a, kNet, 0, l.max_net * eq, st, l)) binding.push_back(kNet);
  if (st.scenarios != nullptr && shrink(a, kRisk, 0, l.max_portfolio_cvar * eq, st, l)) binding.push_back(kRisk);
}

void RiskBudgetSizer::safe_exposure(double multiplier, const double* base, const SizingState& st, const SizingLimits& l,
                                    double max_multiplier, SafeAction& out, SafetyCounters& counters) {
  const size_t n = rules_.size();
  double m = multiplier;
  if (std::isnan(m)) {
    ++counters[0];
    m = 0.0;
  } else if (!(m >= 0.0 && m <= max_multiplier)) {
    ++counters[1];
    m = std::min(std::max(m, 0.0), max_multiplier);
  }
  out.multiplier = m;
  const double eq = std::max(0.0, st.equity);
  const double cap = kMaxProposal * eq;
  out.proposal.resize(n);
  for (size_t i = 0; i < n; ++i) {
    double b = base[i];
    if (!std::isfinite(b)) {
      ++counters[2];
      b = 0.0;
    }
    double p = m * b * eq;  // (m x b) x eq, numpy's order
    if (!(std::fabs(p) <= cap)) {
      ++counters[3];
      p = std::isnan(p) ? p : std::min(std::max(p, -cap), cap);
    }
    out.proposal[i] = p;
  }
  const Violations v = violations(out.proposal.data(), st, l);
  out.breached.clear();
  for (size_t k = 0; k < kLimits; ++k)
    if (v[k] > 0) out.breached.push_back(static_cast<int>(k));
  out.action = out.proposal;
  project(out.action, st, l, out.binding);
}

Violations RiskBudgetSizer::violations(const double* a, const SizingState& st, const SizingLimits& l) {
  Violations out{};
  box_bounds(st, l, lo_, hi_);
  double lo_max = 0.0, hi_max = 0.0;  // np.max(..., initial=0.0) propagates NaN
  for (size_t i = 0; i < rules_.size(); ++i) {
    const double x = lo_[i] - a[i], y = a[i] - hi_[i];
    lo_max = (std::isnan(lo_max) || std::isnan(x)) ? NAN : std::max(lo_max, x);
    hi_max = (std::isnan(hi_max) || std::isnan(y)) ? NAN : std::max(hi_max, y);
  }
  out[kBox] = py_max(py_max(0.0, lo_max), hi_max);
  const double eq = std::max(0.0, st.equity);
  for (int g : group_ids_)
    out[kGroup] = py_max(out[kGroup], py_max(0.0, measure(kGroup, g, a, st, l) - l.max_group_gross * eq));
  out[kGross] = py_max(out[kGross], py_max(0.0, measure(kGross, 0, a, st, l) - l.max_gross * eq));
  out[kNet] = py_max(out[kNet], py_max(0.0, measure(kNet, 0, a, st, l) - l.max_net * eq));
  if (st.scenarios != nullptr)
    out[kRisk] = py_max(out[kRisk], py_max(0.0, measure(kRisk, 0, a, st, l) - l.max_portfolio_cvar * eq));
  return out;
}

namespace {
double sign(double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : (std::isnan(x) ? x : 0.0)); }
}  // namespace

void RiskBudgetSizer::plan_orders(const std::vector<double>& t, const std::vector<double>& q0,
                                  const std::vector<double>& px, double fx, const SizingState& st,
                                  const SizingLimits& l, std::vector<double>& orders, std::vector<double>& pos,
                                  OrderCounters& counters) {
  const size_t n = rules_.size();
  if (t.size() != n || q0.size() != n || px.size() != n)
    throw StepInputError("targets", "targets, positions_qty, prices and rules need one entry per instrument");
  if (!(std::isfinite(fx) && fx > 0)) throw StepInputError("prices", "prices and fx must be finite and > 0");
  for (size_t i = 0; i < n; ++i)
    if (!(std::isfinite(px[i]) && px[i] > 0)) throw StepInputError("prices", "prices and fx must be finite and > 0");
  counters.fill(0);
  orders.assign(n, 0.0);
  pos.resize(n);
  std::vector<double> tl(n), delta(n), unit(n);
  for (size_t i = 0; i < n; ++i) {
    const auto& r = rules_[i];
    unit[i] = r.unit_value(px[i]) * fx;
    const double lots = r.lot_step;
    double v = std::trunc(t[i] / unit[i] / lots);
    const double up = v + sign(t[i]);
    if (std::fabs(up * lots * unit[i]) <= std::fabs(t[i])) v = up;
    tl[i] = v;
    const double pl = std::nearbyint(q0[i] / lots);
    delta[i] = v - pl;
    pos[i] = pl * lots * unit[i];
  }
  struct Cand {
    int reduces;
    double neg_abs;
    size_t i;
    double val;
  };
  std::vector<Cand> cands;
  for (size_t i = 0; i < n; ++i) {
    if (delta[i] == 0) continue;
    const auto& r = rules_[i];
    const double qty = std::fabs(delta[i]) * r.lot_step;
    if (qty < r.min_qty * (1 - 1e-12)) {
      ++counters[0];
      continue;
    }
    if (qty * r.unit_value(px[i]) < r.min_notional * (1 - 1e-12)) {
      ++counters[1];
      continue;
    }
    const double nv = tl[i] * r.lot_step * unit[i];
    const bool reduces = std::fabs(nv) <= std::fabs(pos[i]) && nv * pos[i] >= 0;
    cands.push_back({reduces ? 0 : 1, -std::fabs(nv), i, nv});
  }
  std::sort(cands.begin(), cands.end(), [](const Cand& a, const Cand& b) {
    return std::tie(a.reduces, a.neg_abs, a.i) < std::tie(b.reduces, b.neg_abs, b.i);
  });
  Violations before{};
  if (!cands.empty()) before = violations(pos.data(), st, l);  // recomputed only when pos changes
  for (const auto& c : cands) {
    trial_ = pos;
    trial_[c.i] = c.val;
    const Violations after = violations(trial_.data(), st, l);
    int worse = -1;
    for (size_t k = 0; k < kLimits; ++k)
      if (after[k] > 0 && after[k] > before[k]) {
        worse = static_cast<int>(k);
        break;
      }
    if (worse >= 0) {
      ++counters[2 + static_cast<size_t>(worse)];
      continue;
    }
    pos.swap(trial_);
    before = after;
    orders[c.i] = delta[c.i] * rules_[c.i].lot_step;
  }
}

}  // namespace bot4::portfolio
