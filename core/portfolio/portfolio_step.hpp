#pragma once
// The per-decision portfolio step (issue 13; bot4.portfolio.job.Coordinator.plan is the Python
// reference it must match): at a decision time, from each lane's latest agents' outputs, the
// trailing grid returns, and the lanes' positions, mids and P&L, the target position (engine
// lots) of every lane, with the projection and skip counts.
//
//   1. blend      per lane the agents' outputs of its latest signal row at or before ts (none
//                 older than two grid steps) through the meta-weighter -> mu, sigma, p
//   2. window     the last corr_window log returns of the grid bars ended at or before ts (rows
//                 with a non-finite return dropped), kept in a ring as bars end
//   3. risk       per lane conservative CVaR of its window x sqrt(horizon); the window x
//                 sqrt(horizon) are the portfolio CVaR scenarios (when enabled, >= 20 rows)
//   4. select     candidates: a view (finite, |mu| >= min edge, p on mu's side, shorts allowed)
//                 with a risk estimate; greedy correlation-penalty top-K by |mu| / sigma beside
//                 plain top-K (their mean pairwise correlations)
//   5. actions    per pick an epsilon-greedy draw of a budget scale (numpy's PCG64 stream, so the
//                 draws equal numpy.random.default_rng's), or a fixed action
//   6. size       risk-budget notionals -> safety projection (buffered limits) -> lot-rounded
//                 orders with venue minimums -> the no-trade band
//
// Bad inputs (wrong shapes, inf or negative sigma in the agents' outputs, a NaN in only one of mu
// and sigma, non-finite P&L or peak) raise StepInputError naming the input.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "portfolio/meta_weighter.hpp"
#include "portfolio/risk_budget_sizer.hpp"
#include "portfolio/risk_measures.hpp"
#include "portfolio/signal_agent.hpp"

namespace bot4::portfolio {

// numpy's PCG64 (XSL-RR 128/64) and Generator.random(): (next >> 11) * 2^-53.
class Pcg64 {
 public:
  Pcg64() = default;
  Pcg64(unsigned __int128 state, unsigned __int128 inc) : state_(state), inc_(inc) {}
  uint64_t next64() {
    state_ = state_ * kMult + inc_;
    const uint64_t x = static_cast<uint64_t>(state_ >> 64) ^ static_cast<uint64_t>(state_);
    const unsigned rot = static_cast<unsigned>(state_ >> 122);
    return (x >> rot) | (x << ((64 - rot) & 63));
  }
  double random() { return static_cast<double>(next64() >> 11) * (1.0 / 9007199254740992.0); }
  unsigned __int128 state() const { return state_; }
  unsigned __int128 inc() const { return inc_; }

 private:
  static constexpr unsigned __int128 kMult =
      (static_cast<unsigned __int128>(0x2360ED051FC65DA4ULL) << 64) | 0x4385DF649FCCF645ULL;
  unsigned __int128 state_ = 0, inc_ = 1;
};

// A lane has a view only when its calibrated P(up) leans toward mu's sign by more than this. An
// isotonic map has plateaus at exactly 0.5; mu and sigma agree with the Python reference only to a
// few ulps (their dot products sum in another order), so without a margin p = 0.5 exactly on one
// side and 0.5 - 4e-15 on the other decide differently. No conviction that small is a view.
inline constexpr double kMinConviction = 1e-9;
// Likewise a sigma below this fraction of |mu| is the rounding residue of quantiles that coincide
// (crossing quantile models sorted into one value), not a measured uncertainty: it would score
// |mu| / sigma ~ 1e14, and the ulps in which the two implementations differ are all of it.
inline constexpr double kMinRelativeSigma = 1e-9;

struct StepConfig {
  double equity = 10'000.0;       // starting equity, account currency
  double fx = 1.0;                // account currency per quote unit
  int64_t grid_ns = 1'000'000'000;
  int horizon = 30;
  size_t corr_window = 120;
  size_t top_k = 2;
  double penalty = 1.0;
  double min_edge_bp = 0.0;
  double full_confidence = 0.1;
  std::vector<double> actions{0.0, 0.5, 1.0};
  double epsilon = 0.05;
  bool scenarios = true;
  double rebalance_band = 0.2;
  int fixed_action = -1;          // >= 0: always this action (propensity 1)
  SizingLimits full, buffered;
  NormalTail tail;                // z and pdf at 1 - full.cvar_level
};

// One lane: engine lot size, how its notional is counted, its venue rules.
struct LaneSpec {
  double lot_size = 1.0;          // venue units per engine lot
  bool inverse = false;           // notional = lots x lot x contract_size
  double contract_size = 1.0;
  LaneRules rules;
};

// Every signal row the agents produced, loaded once: inputs (rows x 3 agents: mu, sigma,
// confidence - NaN where the agent has no view), the regime per row, and per lane its rows' times.
struct SignalTable {
  size_t inputs = 0;
  std::vector<double> x;           // rows x inputs
  std::vector<int64_t> regime;     // rows
  std::vector<std::vector<int64_t>> lane_ts;    // per lane, ascending
  std::vector<std::vector<int64_t>> lane_rows;  // per lane, row index of each time
};

struct StepResult {
  std::vector<int64_t> target;              // engine lots per lane
  std::vector<double> mu, sigma, p, score, unit;   // per lane (NaN: none)
  std::vector<int> chosen;                  // lanes picked (greedy order)
  std::vector<int> plain;                   // plain top-K lanes
  std::vector<int> action, greedy;          // per pick
  std::vector<double> propensity;           // per pick
  double corr_topk = 0.0, corr_div = 0.0;   // NaN when fewer than two picks
  bool has_corr = false;
  std::vector<double> want;                 // risk-budget proposal (notional)
  std::vector<double> projected;            // after the safety projection
  std::vector<int> binding;                 // limits the projection changed it for (Limit ids)
  OrderCounters counters{};                 // skipped_min_qty, skipped_min_notional, vetoed_<limit>
  int64_t no_risk = 0;                      // lanes with a view but no risk estimate
  int64_t not_probability = 0;              // lanes whose p was finite but outside [0, 1] (no view)
  int64_t within_band = 0;                  // lanes kept by the no-trade band
  double equity = 0.0, peak = 0.0;
  std::vector<double> positions;            // notionals held at the step
  std::vector<double> window;               // T x n trailing returns (rows finite)
  size_t window_rows = 0;
  bool has_scenarios = false;               // scenarios = window x sqrt(horizon)
  std::vector<double> scenarios;
  int64_t step_ns = 0;                      // wall time of the step in the core
  // finish_safe: the RL sizer's safety layer at this step (multiplier used, proposal, projected
  // action, binding and breached limits) and its counters of this call
  bool has_safe = false;
  SafeAction safe;
  SafetyCounters safety{};
};

class PortfolioStep {
 public:
  PortfolioStep(StepConfig config, std::vector<LaneSpec> lanes, MetaWeighter meta, Pcg64 rng);

  size_t n() const { return lanes_.size(); }
  size_t inputs() const { return meta_.inputs(); }
  const StepConfig& config() const { return cfg_; }
  Pcg64& rng() { return rng_; }

  // The agents' rows (checked once here).
  void set_signals(SignalTable table);
  // Grid bars: ends (ascending ns) and the lanes' mids at each (bars x n row-major); push_bar
  // appends one as it ends.
  void set_bars(std::vector<int64_t> ends, std::vector<double> mids);
  void push_bar(int64_t end_ns, const double* mids);

  // The lanes' state at the decision: positions (engine lots), mids (quote per venue unit, NaN
  // without a two-sided book), P&L (account currency), the peak equity so far.
  struct LaneState {
    const int64_t* pos;
    const double* mid;
    const double* pnl;
    double peak;
  };

  // Full step from the signal table.
  const StepResult& step(int64_t ts, const LaneState& s);
  // Full step from this decision's agents' outputs per lane (n x inputs, regime per lane; a lane
  // with have[k] = false has no row).
  const StepResult& step_agents(int64_t ts, const double* x, const int64_t* regime, const uint8_t* have,
                                const LaneState& s);
  // The fitted agents evaluated per decision (step_features), in the meta-weighter's input order;
  // 3 x agents must be its inputs, and every agent must read rows of the same width.
  void set_agents(std::vector<SignalAgent> agents);
  // Full step from each lane's latest feature row (n x row width; have[k] = false: no row): the
  // agents run on it in the core (SignalAgent::evaluate; model_output: n x agents, the classifier
  // P(up) where an agent reads one, NaN elsewhere), their (mu, sigma, confidence) are blended in
  // the regime of the first agent's row, as step_agents does from outputs computed beforehand.
  const StepResult& step_features(int64_t ts, const double* rows, const double* model_output, const uint8_t* have,
                                  const LaneState& s);
  size_t agents() const { return agents_.size(); }
  size_t row_width() const { return agents_.empty() ? 0 : agents_[0].row_width(); }
  // Full step from blended views per lane (NaN: no view).
  const StepResult& step_views(int64_t ts, const double* mu, const double* sigma, const double* p,
                               const LaneState& s);
  // Steps 1-5 and the proposal only (`project` = false): an outside sizer (the RL sizer) then
  // projects `want` and calls finish with its projection.
  const StepResult& finish(const double* projected, const std::vector<int>& binding);
  // Completes a step proposed with project = false through the RL sizer's safety layer in the
  // core: base = want / equity (0 where equity <= 0), RiskBudgetSizer::safe_exposure against the
  // buffered limits, then finish with its projection (result: safe, safety).
  const StepResult& finish_safe(double multiplier, double max_multiplier);
  bool project = true;

  // The core sizer (for checks: violations of a notional vector at the last step's state).
  Violations violations_at_last(const double* exposure, bool full_limits);

 private:
  void check_state(const LaneState& s) const;
  void blend_agents(const double* x, const int64_t* regime, const uint8_t* have);
  void blend_table(int64_t ts);
  void advance_window(int64_t ts);
  const StepResult& run(int64_t ts, const LaneState& s, std::chrono::steady_clock::time_point t0);
  void notional(const int64_t* lots, double* out) const;
  SizingState sizing_state() const;

  StepConfig cfg_;
  std::vector<LaneSpec> lanes_;
  MetaWeighter meta_;
  Pcg64 rng_;
  RiskBudgetSizer sizer_;
  SignalTable table_;
  bool has_table_ = false;
  std::vector<int64_t> bar_ends_;
  std::vector<double> bar_mids_;
  // ring of the last corr_window returns (returns index j = log(bar j+1) - log(bar j))
  std::vector<double> ring_;
  size_t pushed_ = 0;      // returns [0, pushed_) have been computed (the ring holds the last ones)
  StepResult r_;
  std::vector<double> q_, scratch_, scratch2_, corr_, cand_scores_, tmp_, px_, qty_, orders_, pos_after_;
  std::vector<int64_t> pos_copy_;
  std::vector<SignalAgent> agents_;
  std::vector<double> agent_x_;
  std::vector<int64_t> agent_regime_;
  std::vector<double> mid_copy_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace bot4::portfolio
