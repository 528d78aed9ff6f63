#pragma once
// A fitted signal agent evaluated on feature rows (issue 13; bot4.portfolio.agents is the Python
// reference that also fits the parameters and exports them with `core_spec`). One row at a time
// is the per-event path; `evaluate_rows` is a loop over exactly that path, so a backtest over a
// feature matrix and a live decision read the same arithmetic.
//
// Per row, by kind (METHODS.md §14; the agents.py names in brackets):
//   inputs      the kind's feature columns; columns flagged neutral count as 0 where not finite
//               microprice_ofi  (microprice_offset, ofi_l1_norm, queue_imbalance_l1, trade_imbalance, ewma_vol)
//               vol_breakout    (sign(z) max(|z| - band, 0), ema_cross_5_20, ewma_vol)   z = bollinger_z
//               mean_reversion  (clip(z, -band, band), vwap_deviation, (rsi - 50) / 50, ewma_vol)
//               direction       (2p - 1, ewma_vol), p = clip(isotonic(model's raw P(up)), 0, 1)
//   raw P(up)   direction with a logistic classifier (model_columns given): evaluated here, as
//               bot4.portfolio.agents.logistic_proba does (the reference): per model column
//               x = float32(row value), NaN -> the imputer's median, x = (x - mean) / scale in
//               float32 (sklearn's SimpleImputer + StandardScaler on float32 rows, bit for bit);
//               z = sum_j double(x_j) * double(coef_j) left to right, + intercept, in double
//               (each product is exact, so fused or not the sum is the same); P = 1 / (1 + exp(-z)).
//               Any other classifier kind: model_columns empty, the caller passes its raw P(up).
//   quantiles   q0.1 <= q0.5 <= q0.9 from the linear quantile model, sorted; NaN when an input is
//               not finite (no view)
//   mu, sigma   sigma = (q0.9 - q0.1) / normal_10_90; mu = q0.5 for the rule agents and
//               (2p - 1) E|r_h | regime] for direction (the pooled E|r_h| where the regime is -1)
//   confidence  |2 P(up) - 1|: P(up) = Phi(mu / sigma) (sign of mu when sigma <= 0) for the rule
//               agents and p for direction; 0 without a view
//   regime      the number of volatility edges <= ewma_vol (np.searchsorted side="right"); -1
//               where ewma_vol is not finite
// Bad parameters (unknown kind, a column missing from the rows' layout, non-finite coefficients,
// non-monotone quantile levels or edges) raise StepInputError naming the parameter.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "portfolio/linear_quantiles.hpp"

namespace bot4::portfolio {

enum class AgentKind { MicropriceOfi, VolBreakout, MeanReversion, Direction };

// The kind named as bot4.portfolio.agents names it ("microprice_ofi", ...); StepInputError("kind")
// for any other name.
AgentKind agent_kind(const std::string& name);
const char* agent_kind_name(AgentKind kind);
// The feature columns a kind reads, in the order its inputs use them.
std::vector<std::string> agent_columns(AgentKind kind);

struct AgentSpec {
  std::string kind;              // agent_kind's names
  std::string name;              // agent id on the bus
  std::string model_version;     // hash of the fitted parameters (Python's)
  int64_t horizon = 1;           // feature rows of the row's instrument
  std::vector<std::string> columns;   // agent_columns(kind), as exported (checked)
  std::vector<bool> neutral;          // per column: 0 where not finite
  std::string vol_column = "ewma_vol";  // regime input
  double band = 2.0;             // Bollinger band (vol_breakout, mean_reversion)
  std::vector<double> taus;      // 3 levels, strictly ascending in (0, 1), the middle 0.5
  LinearQuantileModel quantiles;  // taus x inputs
  double normal_10_90 = 2.5631031310892007;  // q0.9 - q0.1 of a standard normal
  std::vector<double> regime_edges;  // ascending
  std::vector<double> iso_x, iso_y;  // direction: the isotonic calibration of the raw P(up)
  std::vector<double> abs_return;    // direction: E|r_h| per regime, then the pooled one
  // direction with a logistic classifier evaluated here (empty model_columns: P(up) is an input);
  // values are float32 (sklearn's fitted float32 parameters), stored as double and checked.
  std::vector<std::string> model_columns;  // the feature columns the classifier reads, in order
  std::vector<double> model_median, model_mean, model_scale, model_coef;  // one per model column
  double model_intercept = 0.0;
};

struct AgentView {
  double mu, sigma;
  std::array<double, 3> q;
  double confidence;
  int64_t regime;
};

class SignalAgent {
 public:
  static constexpr size_t kTaus = 3;
  // Checks the spec and binds its columns to the layout of the rows it will read (feature names
  // in column order).
  SignalAgent(AgentSpec spec, const std::vector<std::string>& feature_names);

  AgentKind kind() const { return kind_; }
  const AgentSpec& spec() const { return spec_; }
  size_t inputs() const { return inputs_; }
  size_t row_width() const { return width_; }
  // Whether the agent reads a model output beside the features (direction whose classifier is
  // not evaluated here: the raw P(up)).
  bool needs_model_output() const { return kind_ == AgentKind::Direction && !has_classifier(); }
  // Whether the direction agent's logistic classifier runs here (model_columns given).
  bool has_classifier() const { return !model_cols_.empty(); }
  // The logistic classifier's raw P(up) of one row (has_classifier()).
  double classifier_p(const double* row) const;

  // One feature row (row_width() values) and, for direction, the model's raw P(up) of that row.
  AgentView evaluate(const double* row, double model_output) const;
  // rows x row_width() matrix (row-major); model_output: one per row or null (kinds without one).
  void evaluate_rows(const double* matrix, size_t rows, const double* model_output, AgentView* out) const;
  int64_t regime(const double* row) const;

 private:
  AgentSpec spec_;
  AgentKind kind_;
  size_t inputs_ = 0, width_ = 0, vol_col_ = 0;
  std::vector<size_t> cols_;
  std::vector<size_t> model_cols_;
  std::vector<float> model_median_, model_mean_, model_scale_, model_coef_;
  float model_intercept_ = 0.0f;
};

}  // namespace bot4::portfolio
