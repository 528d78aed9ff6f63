#pragma once
// Ensemble stage: the model slots' outputs (P(up) each) of one instrument combined into the one
// probability its strategy trades on, per decision, with a disagreement breaker on top.
//
// Modes (EnsembleConfig::mode):
//   none      no ensemble: the strategy reads slot 0 (the engine does not call this stage).
//   mean      p = (1/k) sum p_i.
//   weighted  p = sum w_i p_i / sum w_i with the configured weights (one per slot, any sign,
//             sum > 0), clipped to [0, 1].
//   stacker   p = 1 / (1 + exp(-(b + sum c_i logit(q_i)))), q_i = clip(p_i, stacker_clip,
//             1 - stacker_clip): a logistic regression on the slots' logits (intercept b and
//             coefficients c_i fitted by bot4.research.stacking.fit_stacker, scikit-learn's
//             LogisticRegression on out-of-fold predictions).
//   rank      each slot's output turned into its percentile within that slot's own rolling window
//             of its last rank_window finite outputs (the current one included):
//             pct = (#{w < x} + 0.5 #{w == x}) / n, which is scipy.stats.percentileofscore(window,
//             x, kind="mean") / 100; p = the mean of the slots' percentiles.
//   adaptive  p = sum w_i p_i with weights updated online from realised outcomes:
//             w_i proportional to exp(-eta (L_i - min_j L_j)), L_i the mean loss of slot i over its last
//             loss_window resolved predictions (loss "log": -(y ln q + (1-y) ln(1-q)),
//             q = clip(p, 1e-15, 1 - 1e-15); "brier": (p - y)^2). A prediction made at time t with
//             mid m0 is resolved at the first decision at or after t + horizon_ns, with that
//             decision's mid m1, as in the research labels (bot4.research.dataset.label_definition):
//             r = (m1 / m0 - 1) 1e4 bp, y = 1 if r > 0, 0 if r < 0, no label when r == 0,
//             |r| < dead_zone_bp or a mid is missing. The weights start from `weights` (empty:
//             equal) and are recomputed (a refresh) every refresh_every decisions, every
//             refresh_every_fast decisions while the state is volatile (the row's ewma_vol >=
//             fast_vol_bp, or the dispersion >= fast_dispersion; 0 turns either test off), and at
//             once on refresh() (Engine::refresh_ensemble_weights, the control plane). A refresh
//             before any label has resolved keeps the weights.
//
// Dispersion: the population standard deviation (ddof 0) of the slots' outputs at the decision.
// Breaker: dispersion > fallback_dispersion: the strategy gets the fallback slot's own output
// (the simplest model) and its size is scaled by size_scale; else dispersion > scale_dispersion:
// the combined probability, size scaled by size_scale; else the combined probability at full
// size. (The std of values in [0, 1] is at most 0.5, so a threshold >= 0.5 never trips.)
// A non-finite slot output makes the decision's probability NaN (the strategy stands aside), its
// state Undefined, and is not added to a rank window or a loss.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "common/config_fields.hpp"

namespace bot4::inference {

#define BOT4_ENSEMBLE_FIELDS(X)                                                                                     \
  X(std::string, mode, "none", any, any, "", "none | mean | weighted | stacker | rank | adaptive")                    \
  X(std::vector<double>, weights, {}, any, any, "",                                                                  \
    "weighted: one weight per model slot (sum > 0); adaptive: the starting weights (empty: equal)")                 \
  X(double, intercept, 0.0, any, any, "logit", "stacker: intercept")                                                 \
  X(std::vector<double>, coefficients, {}, any, any, "", "stacker: one coefficient per slot, on logit(p_i)")          \
  X(double, stacker_clip, 1e-9, gt(0), lt(0.5), "probability", "stacker: p_i clipped to [c, 1 - c] before the logit") \
  X(int64_t, rank_window, 256, ge(1), le(1'000'000), "decisions", "rank: each slot's rolling window of outputs")      \
  X(std::string, loss, "log", any, any, "", "adaptive: per-prediction loss, log | brier")                            \
  X(double, eta, 10.0, ge(0), any, "1/loss", "adaptive: w_i proportional to exp(-eta * mean loss_i)")                             \
  X(int64_t, horizon_ns, 1'000'000'000, gt(0), any, "ns", "adaptive: label horizon (mid move over it)")               \
  X(double, dead_zone_bp, 0.0, ge(0), any, "bp", "adaptive: moves below this have no label")                          \
  X(int64_t, loss_window, 500, ge(1), le(1'000'000), "labels", "adaptive: resolved predictions per slot in the mean loss") \
  X(int64_t, refresh_every, 1000, ge(1), any, "decisions", "adaptive: weights refreshed every N decisions")            \
  X(int64_t, refresh_every_fast, 100, ge(1), any, "decisions", "adaptive: every N decisions while volatile")          \
  X(double, fast_vol_bp, 0.0, ge(0), any, "bp per sample", "adaptive: volatile when the row's ewma_vol >= this (0 = off)") \
  X(double, fast_dispersion, 0.0, ge(0), le(1), "probability", "adaptive: volatile when the dispersion >= this (0 = off)") \
  X(double, scale_dispersion, 1.0, ge(0), le(1), "probability", "breaker: dispersion above this scales the size")     \
  X(double, fallback_dispersion, 1.0, ge(0), le(1), "probability", "breaker: above this the fallback slot alone (>= scale_dispersion)") \
  X(double, size_scale, 0.5, gt(0), lt(1), "ratio", "breaker: size multiplier above scale_dispersion")                \
  X(int64_t, fallback_slot, 0, ge(0), any, "", "breaker: the slot used above fallback_dispersion")

BOT4_CONFIG_STRUCT(EnsembleConfig, BOT4_ENSEMBLE_FIELDS)

enum class EnsembleMode : uint8_t { None = 0, Mean, Weighted, Stacker, Rank, Adaptive };
enum class BreakerState : uint8_t { Calm = 0, Scaled = 1, Fallback = 2, Undefined = 3 };
enum class Refresh : uint8_t { None = 0, Normal = 1, Fast = 2 };

// The parsed mode (false for an unknown name).
bool parse_ensemble_mode(const std::string& name, EnsembleMode& out);

struct EnsembleOutput {
  double p = 0.0;            // what the strategy trades on
  double combined = 0.0;     // the mode's combination (before the breaker's fallback)
  double scale = 1.0;        // size multiplier
  double dispersion = 0.0;
  BreakerState state = BreakerState::Calm;
  Refresh refresh = Refresh::None;
};

class Ensemble {
 public:
  // Checks `cfg` for `n_slots` model slots: a known mode and loss, weights / coefficients one per
  // slot and finite, weights summing > 0, fallback_dispersion >= scale_dispersion, the fallback
  // slot in range, refresh_every_fast <= refresh_every, at least one slot. false + `error` else.
  static bool validate(const EnsembleConfig& cfg, size_t n_slots, std::string& error);
  // The checks that do not depend on the slot count (names, finiteness, bounds, orders).
  static bool validate_fields(const EnsembleConfig& cfg, std::string& error);
  // validate() and reset the state.
  bool configure(const EnsembleConfig& cfg, size_t n_slots, std::string& error);
  bool active() const { return mode_ != EnsembleMode::None; }
  EnsembleMode mode() const { return mode_; }
  size_t slots() const { return n_; }

  // One decision at local time t: the slots' outputs p[0..n), the book mid (any unit, <= 0 when
  // there is none) and the row's ewma_vol (bp per sample) for the adaptive cadence.
  EnsembleOutput combine(const double* p, int64_t t, double mid, double vol_bp);
  // Adaptive: recompute the weights from the losses so far (any mode: no-op, false).
  bool refresh();
  const std::vector<double>& weights() const { return w_; }
  // Adaptive: the mean loss per slot over its window (NaN before any label).
  std::vector<double> mean_losses() const;
  uint64_t resolved() const { return resolved_; }

 private:
  void resolve(int64_t t, double mid);

  EnsembleConfig cfg_;
  EnsembleMode mode_ = EnsembleMode::None;
  bool brier_ = false;
  size_t n_ = 0;
  std::vector<double> w_;  // normalised (weighted, adaptive)
  double w_sum_ = 1.0;
  // rank: per slot a ring of rank_window outputs
  std::vector<double> ring_;
  size_t ring_len_ = 0, ring_pos_ = 0, window_ = 0;
  // adaptive: pending predictions (t, mid, p_0..p_{n-1}) in time order, from head_
  std::vector<int64_t> pend_t_;
  std::vector<double> pend_;
  size_t head_ = 0;
  // adaptive: per slot a ring of losses and its running sum
  std::vector<double> loss_ring_;
  std::vector<size_t> loss_len_, loss_pos_;
  uint64_t since_refresh_ = 0;
  uint64_t resolved_ = 0;
};

}  // namespace bot4::inference
