#pragma once
// Risk-budget sizing, the safety projection and lot-rounded order planning of the portfolio step
// (bot4.portfolio.sizing is the reference; METHODS.md §7, §16). Exposures are signed notionals in
// the account currency; limits are fractions of equity.
//
//   risk_budget   a_i = sign(d_i) clip(k_i, 0, 1) risk_per_trade max(0, E) / max(u_i, min_unit_risk)
//   project       clip to the box [lo_i, hi_i] (no shorts where forbidden; after the drawdown
//                 stop reduce-only), then scale toward zero by every group's gross, the gross, the
//                 net and the portfolio CVaR over the scenarios in turn; each scaled result is
//                 checked with the exact comparison the caller uses (factor nudged down until it
//                 holds), so a projected action meets every limit without tolerance and a
//                 feasible one comes back bit-identical.
//   safe_exposure the RL sizer's safety layer (bot4.portfolio.rl_sizer.safe_exposure is the
//                 reference): the policy's multiplier sanitised (NaN -> 0, counted; outside
//                 [0, max_multiplier] clipped, counted), non-finite base sizes -> 0 (counted),
//                 proposal = m x base x max(0, E) clipped to +-kMaxProposal x E (counted), the
//                 limits it breaches, then `project`: whatever the policy emits, the action meets
//                 every limit.
//   plan_orders   targets rounded toward zero to the lot step, trades below the venue minimum
//                 quantity or notional skipped (counted), then accepted (reductions first, larger
//                 first) only while no limit is breached or worsened (vetoes counted by limit).
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/config_fields.hpp"

namespace bot4::portfolio {

enum Limit : int { kBox = 0, kGroup = 1, kGross = 2, kNet = 3, kRisk = 4 };
constexpr size_t kLimits = 5;
constexpr const char* kLimitNames[kLimits] = {"box", "group", "gross", "net", "risk"};

// Hard limits and the risk budget, every fraction of current equity: the one declaration. The
// binding's limits_schema() and the order of the limits vectors come from it; the Python
// bot4.portfolio.sizing.SizingLimits is checked against it (tests/portfolio/test_sizing.py).
#define BOT4_PORTFOLIO_LIMIT_FIELDS(X)                                                                              \
  X(double, risk_per_trade, 0.01, ge(0), any, "fraction of equity", "loss at the CVaR level allowed per trade")    \
  X(double, max_position, 0.5, ge(0), any, "fraction of equity", "|exposure| per instrument")                     \
  X(double, max_group_gross, 1.0, ge(0), any, "fraction of equity", "sum |exposure| within a group (one underlying)") \
  X(double, max_gross, 2.0, ge(0), any, "fraction of equity", "sum |exposure|")                                    \
  X(double, max_net, 1.0, ge(0), any, "fraction of equity", "|sum exposure|")                                      \
  X(double, max_drawdown, 0.10, gt(0), lt(1), "fraction of peak equity", "at or beyond it the book is reduce-only") \
  X(double, cvar_level, 0.95, gt(0), lt(1), "probability", "confidence of the CVaR used in sizing and the risk limit") \
  X(double, max_portfolio_cvar, 0.02, ge(0), any, "fraction of equity", "portfolio CVaR over the scenarios")        \
  X(double, min_unit_risk, 0.0005, gt(0), any, "loss fraction", "floor of the per-unit risk (a quiet tail cannot size to infinity)")

BOT4_CONFIG_STRUCT(SizingLimits, BOT4_PORTFOLIO_LIMIT_FIELDS)

// One lane's venue rules (quantities in venue units, notional in quote).
struct LaneRules {
  int group = 0;               // integer group id
  double lot_step = 1.0;       // quantity grid
  double min_qty = 0.0;
  double min_notional = 0.0;
  bool allow_short = true;
  bool inverse = false;        // notional = qty x contract_size (quote), not qty x price
  double contract_size = 1.0;
  double unit_value(double price) const { return inverse ? contract_size : price * contract_size; }
};

// What the feasible set depends on (positions: signed notionals; scenarios: T x n row-major or
// none).
struct SizingState {
  double equity = 0.0;
  double peak_equity = 0.0;
  const double* positions = nullptr;
  size_t n = 0;
  const double* scenarios = nullptr;
  size_t scenario_rows = 0;
  double drawdown() const;
  bool stopped(const SizingLimits& l) const;
};

using Violations = std::array<double, kLimits>;

// The safety layer's counters (rl_sizer.SAFETY_COUNTERS), in this order.
constexpr size_t kSafetyCounters = 4;
constexpr const char* kSafetyCounterNames[kSafetyCounters] = {"rejected_nan_multiplier", "clipped_multiplier",
                                                              "rejected_base", "clipped_proposal"};
using SafetyCounters = std::array<int64_t, kSafetyCounters>;
// A proposal beyond this many times equity per instrument is clipped to it (rl_sizer.MAX_PROPOSAL).
inline constexpr double kMaxProposal = 1e12;

// What reached the market from a policy's multiplier (rl_sizer.SafeAction).
struct SafeAction {
  double multiplier = 0.0;        // the multiplier used (sanitised)
  std::vector<double> proposal;   // m x base x equity, clipped
  std::vector<double> action;     // projected: meets every limit
  std::vector<int> binding;       // limits the projection changed it for (Limit ids, a name per group)
  std::vector<int> breached;      // limits the proposal exceeded (Limit ids, each once, in Limit order)
};
using OrderCounters = std::array<int64_t, 2 + kLimits>;  // skipped_min_qty, skipped_min_notional, vetoed_<limit>

class RiskBudgetSizer {
 public:
  // rules: one per lane; groups are the distinct rule groups in ascending order.
  void configure(std::vector<LaneRules> rules);
  const std::vector<LaneRules>& rules() const { return rules_; }
  size_t n() const { return rules_.size(); }

  void box_bounds(const SizingState& st, const SizingLimits& l, std::vector<double>& lo, std::vector<double>& hi) const;
  // `a` projected in place; `binding` receives the limits that changed it (a name per group).
  void project(std::vector<double>& a, const SizingState& st, const SizingLimits& l, std::vector<int>& binding);
  Violations violations(const double* a, const SizingState& st, const SizingLimits& l);
  // The RL sizer's safety layer (header text); `base`: fractions of equity per lane; counters
  // are incremented.
  void safe_exposure(double multiplier, const double* base, const SizingState& st, const SizingLimits& l,
                     double max_multiplier, SafeAction& out, SafetyCounters& counters);
  // orders (venue quantity per lane) and the counters; `positions_out` the notionals afterwards.
  void plan_orders(const std::vector<double>& targets, const std::vector<double>& positions_qty,
                   const std::vector<double>& prices, double fx, const SizingState& st, const SizingLimits& l,
                   std::vector<double>& orders, std::vector<double>& positions_out, OrderCounters& counters);

 private:
  double measure(int kind, int group, const double* a, const SizingState& st, const SizingLimits& l);
  bool shrink(std::vector<double>& a, int kind, int group, double cap, const SizingState& st, const SizingLimits& l);

  std::vector<LaneRules> rules_;
  std::vector<int> group_ids_;  // distinct, ascending
  std::vector<double> tmp_, tmp2_, tmp3_, lo_, hi_, trial_, b_;
};

}  // namespace bot4::portfolio
