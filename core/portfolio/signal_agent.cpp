#include "portfolio/signal_agent.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "portfolio/numeric.hpp"

namespace bot4::portfolio {

namespace {
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr size_t kMaxInputs = 8;

// numpy's np.sign: 0 for +-0 (and NaN stays NaN, which the neutral z never is).
double sign(double v) { return v > 0 ? 1.0 : (v < 0 ? -1.0 : (v == 0 ? 0.0 : v)); }

// np.clip(v, lo, hi) = min(max(v, lo), hi) with NaN passing through.
double clip(double v, double lo, double hi) {
  if (std::isnan(v)) return v;
  return v < lo ? lo : (v > hi ? hi : v);
}

void check_finite(const std::vector<double>& v, const char* param, const char* what) {
  for (double x : v)
    if (!std::isfinite(x)) throw StepInputError(param, std::string("non-finite value in ") + what);
}
}  // namespace

AgentKind agent_kind(const std::string& name) {
  if (name == "microprice_ofi") return AgentKind::MicropriceOfi;
  if (name == "vol_breakout") return AgentKind::VolBreakout;
  if (name == "mean_reversion") return AgentKind::MeanReversion;
  if (name == "direction") return AgentKind::Direction;
  throw StepInputError("kind", "unknown agent kind '" + name +
                                   "' (the core has microprice_ofi, vol_breakout, mean_reversion, direction)");
}

const char* agent_kind_name(AgentKind kind) {
  switch (kind) {
    case AgentKind::MicropriceOfi: return "microprice_ofi";
    case AgentKind::VolBreakout: return "vol_breakout";
    case AgentKind::MeanReversion: return "mean_reversion";
    case AgentKind::Direction: return "direction";
  }
  return "";
}

std::vector<std::string> agent_columns(AgentKind kind) {
  switch (kind) {
    case AgentKind::MicropriceOfi:
      return {"microprice_offset", "ofi_l1_norm", "queue_imbalance_l1", "trade_imbalance", "ewma_vol"};
    case AgentKind::VolBreakout: return {"bollinger_z", "ema_cross_5_20", "ewma_vol"};
    case AgentKind::MeanReversion: return {"bollinger_z", "vwap_deviation", "rsi", "ewma_vol"};
    case AgentKind::Direction: return {"ewma_vol"};
  }
  return {};
}

SignalAgent::SignalAgent(AgentSpec spec, const std::vector<std::string>& feature_names)
    : spec_(std::move(spec)), kind_(agent_kind(spec_.kind)) {
  const auto& s = spec_;
  const auto want = agent_columns(kind_);
  if (s.columns != want) {
    std::string w;
    for (const auto& c : want) w += (w.empty() ? "" : ", ") + c;
    throw StepInputError("columns", "agent kind " + s.kind + " reads the columns (" + w + "), got " +
                                        std::to_string(s.columns.size()) + " others");
  }
  if (s.neutral.size() != s.columns.size())
    throw StepInputError("neutral", "needs one flag per column (" + std::to_string(s.columns.size()) + ")");
  if (s.horizon < 1) throw StepInputError("horizon", "must be >= 1 (rows)");
  // the inputs the quantile model reads: one per column, direction adds 2p - 1 in front
  inputs_ = s.columns.size() + (kind_ == AgentKind::Direction ? 1 : 0);
  width_ = feature_names.size();
  auto index = [&](const std::string& name) {
    const auto it = std::find(feature_names.begin(), feature_names.end(), name);
    if (it == feature_names.end())
      throw StepInputError("features", "the feature rows have no column '" + name + "' (agent " + s.name + " needs it)");
    return static_cast<size_t>(it - feature_names.begin());
  };
  for (const auto& c : s.columns) cols_.push_back(index(c));
  vol_col_ = index(s.vol_column);
  if (s.taus.size() != kTaus || !(s.taus[0] > 0 && s.taus[0] < s.taus[1] && s.taus[1] < s.taus[2] && s.taus[2] < 1) ||
      s.taus[1] != 0.5)
    throw StepInputError("taus", "must be three strictly ascending levels in (0, 1) with 0.5 in the middle");
  check_linear_quantiles(s.quantiles, kTaus, inputs_, "quantiles");
  if (!(std::isfinite(s.normal_10_90) && s.normal_10_90 > 0))
    throw StepInputError("normal_10_90", "must be a finite width > 0");
  if ((kind_ == AgentKind::VolBreakout || kind_ == AgentKind::MeanReversion) && !(std::isfinite(s.band) && s.band > 0))
    throw StepInputError("band", "must be a finite number > 0");
  check_finite(s.regime_edges, "regime_edges", "the volatility edges");
  if (!std::is_sorted(s.regime_edges.begin(), s.regime_edges.end()))
    throw StepInputError("regime_edges", "must be ascending");
  if (kind_ == AgentKind::Direction) {
    if (s.iso_x.empty() || s.iso_x.size() != s.iso_y.size())
      throw StepInputError("iso_x", "the direction agent needs its isotonic table (x and y of equal, non-zero length)");
    check_finite(s.iso_x, "iso_x", "the isotonic table");
    check_finite(s.iso_y, "iso_y", "the isotonic table");
    for (size_t i = 1; i < s.iso_x.size(); ++i)
      if (!(s.iso_x[i] > s.iso_x[i - 1])) throw StepInputError("iso_x", "the isotonic table's x must be strictly increasing");
    if (s.abs_return.size() != s.regime_edges.size() + 2)
      throw StepInputError("abs_return", "needs E|r_h| per regime and the pooled one (" +
                                             std::to_string(s.regime_edges.size() + 2) + " values), got " +
                                             std::to_string(s.abs_return.size()));
    check_finite(s.abs_return, "abs_return", "E|r_h|");
    const size_t m = s.model_columns.size();
    auto as_float = [&](const std::vector<double>& v, const char* param, bool positive, size_t want) {
      if (v.size() != want)
        throw StepInputError(param, "needs one value per model column (" + std::to_string(want) + "), got " +
                                        std::to_string(v.size()));
      std::vector<float> out(want);
      for (size_t j = 0; j < want; ++j) {
        out[j] = static_cast<float>(v[j]);
        if (!std::isfinite(v[j]) || static_cast<double>(out[j]) != v[j])
          throw StepInputError(param, "value " + std::to_string(j) + " is not a finite float32 (" + std::to_string(v[j]) + ")");
        if (positive && !(out[j] > 0)) throw StepInputError(param, "value " + std::to_string(j) + " must be > 0");
      }
      return out;
    };
    if (m > 0) {
      for (const auto& c : s.model_columns) model_cols_.push_back(index(c));
      model_median_ = as_float(s.model_median, "model_median", false, m);
      model_mean_ = as_float(s.model_mean, "model_mean", false, m);
      model_scale_ = as_float(s.model_scale, "model_scale", true, m);
      model_coef_ = as_float(s.model_coef, "model_coef", false, m);
      model_intercept_ = as_float({s.model_intercept}, "model_intercept", false, 1)[0];
    } else if (!s.model_median.empty() || !s.model_mean.empty() || !s.model_scale.empty() || !s.model_coef.empty()) {
      throw StepInputError("model_columns", "classifier parameters without the columns it reads");
    }
  } else if (!s.model_columns.empty()) {
    throw StepInputError("model_columns", "only the direction agent has a classifier");
  }
}

double SignalAgent::classifier_p(const double* row) const {
  double z = 0.0;
  for (size_t j = 0; j < model_cols_.size(); ++j) {
    float x = static_cast<float>(row[model_cols_[j]]);
    if (std::isnan(x)) x = model_median_[j];
    x = (x - model_mean_[j]) / model_scale_[j];  // float32, as sklearn's StandardScaler on float32 rows
    z += static_cast<double>(x) * static_cast<double>(model_coef_[j]);
  }
  z += static_cast<double>(model_intercept_);
  return 1.0 / (1.0 + std::exp(-z));
}

int64_t SignalAgent::regime(const double* row) const {
  const double v = row[vol_col_];
  if (!std::isfinite(v)) return -1;
  const auto& e = spec_.regime_edges;
  return static_cast<int64_t>(std::upper_bound(e.begin(), e.end(), v) - e.begin());
}

AgentView SignalAgent::evaluate(const double* row, double model_output) const {
  const auto& s = spec_;
  double c[kMaxInputs];
  for (size_t j = 0; j < cols_.size(); ++j) {
    const double v = row[cols_[j]];
    c[j] = (s.neutral[j] && !std::isfinite(v)) ? 0.0 : v;
  }
  double x[kMaxInputs];
  double p = kNaN;  // direction: calibrated P(up)
  switch (kind_) {
    case AgentKind::MicropriceOfi:
      std::copy(c, c + cols_.size(), x);
      break;
    case AgentKind::VolBreakout:
      x[0] = sign(c[0]) * py_max(std::fabs(c[0]) - s.band, 0.0);
      x[1] = c[1];
      x[2] = c[2];
      break;
    case AgentKind::MeanReversion:
      x[0] = clip(c[0], -s.band, s.band);
      x[1] = c[1];
      x[2] = (c[2] - 50.0) / 50.0;
      x[3] = c[3];
      break;
    case AgentKind::Direction:
      // agents.py: inputs hold 2p - 1 and predict reads p back as (x + 1) / 2 (kept, so the
      // rounding is the reference's)
      if (has_classifier()) model_output = classifier_p(row);
      x[0] = 2.0 * clip(interp(model_output, s.iso_x.data(), s.iso_y.data(), s.iso_x.size()), 0.0, 1.0) - 1.0;
      x[1] = c[0];
      p = (x[0] + 1.0) / 2.0;
      break;
  }
  AgentView v;
  v.regime = regime(row);
  bool ok = true;
  for (size_t j = 0; j < inputs_; ++j) ok &= std::isfinite(x[j]);
  if (ok) {
    evaluate_sorted_quantiles(s.quantiles, x, inputs_, kTaus, v.q.data());
  } else {
    v.q = {kNaN, kNaN, kNaN};
  }
  v.sigma = (v.q[2] - v.q[0]) / s.normal_10_90;
  if (kind_ == AgentKind::Direction) {
    const size_t k = v.regime >= 0 ? static_cast<size_t>(v.regime) : s.abs_return.size() - 1;
    v.mu = std::isfinite(v.q[1]) ? (2.0 * p - 1.0) * s.abs_return[k] : kNaN;
    v.confidence = std::isfinite(v.mu) ? std::fabs(2.0 * p - 1.0) : 0.0;
    // a NaN p with a finite mu cannot happen: x[0] is finite whenever the quantiles are
    return v;
  }
  v.mu = v.q[1];
  double p_up;
  if (v.sigma > 0)
    p_up = ndtr(v.mu / v.sigma);
  else
    p_up = v.mu > 0 ? 1.0 : (v.mu < 0 ? 0.0 : 0.5);
  if (!std::isfinite(v.mu)) p_up = kNaN;
  v.confidence = std::isfinite(p_up) ? std::fabs(2.0 * p_up - 1.0) : 0.0;
  return v;
}

void SignalAgent::evaluate_rows(const double* matrix, size_t rows, const double* model_output, AgentView* out) const {
  if (needs_model_output() && model_output == nullptr)
    throw StepInputError("model_output", std::string("agent ") + spec_.name + " needs the model's output per row");
  for (size_t i = 0; i < rows; ++i)
    out[i] = evaluate(matrix + i * width_, model_output ? model_output[i] : kNaN);
}

}  // namespace bot4::portfolio
