#pragma once
// A self-exciting event clock: a univariate Hawkes process with a sum of (at most) two
// exponential kernels,
//   lambda(t) = mu + sum_{t_i < t} [alpha * exp(-beta (t - t_i)) + alpha2 * exp(-beta2 (t - t_i))]
// mu the baseline (events/s), alpha/alpha2 the jumps of the intensity at each event (events/s),
// beta/beta2 their decay rates (1/s). Two time scales let one clock show both the fast
// clustering of trading bursts and the slow drift of activity. Stationary iff the branching
// ratio n = alpha/beta + alpha2/beta2 < 1; then the mean rate is mu / (1 - n).
//
// Sampling is exact (Dassios & Zhao 2013): between events the intensity is the baseline plus
// one decaying excess A_k exp(-beta_k s) per kernel, i.e. a superposition of independent
// Poisson processes, so the next event is the earliest of a baseline arrival Exp(1)/mu and of
// each excess's first arrival, found by inverting its compensator A_k (1 - exp(-beta_k s)) /
// beta_k = Exp(1) (no arrival when the total mass A_k / beta_k is below the draw).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "sim/random.hpp"

namespace bot4::sim {

struct HawkesParams {
  double mu = 1.0;      // baseline intensity, events/s
  double alpha = 0.0;   // intensity jump per event, first kernel, events/s
  double beta = 1.0;    // decay rate of the first kernel, 1/s
  double alpha2 = 0.0;  // intensity jump per event, second kernel, events/s (0: one kernel)
  double beta2 = 1.0;   // decay rate of the second kernel, 1/s

  double branching_ratio() const { return alpha / beta + alpha2 / beta2; }
  double mean_rate() const { return mu / (1.0 - branching_ratio()); }
  bool valid() const {
    return std::isfinite(mu) && std::isfinite(alpha) && std::isfinite(beta) &&
           std::isfinite(alpha2) && std::isfinite(beta2) && mu > 0.0 && alpha >= 0.0 &&
           beta > 0.0 && alpha2 >= 0.0 && beta2 > 0.0 && branching_ratio() < 1.0;
  }
};

class HawkesClock {
 public:
  HawkesClock() = default;
  explicit HawkesClock(const HawkesParams& params) : p_(params) {}

  // Draws the waiting time in seconds from the last event to the next one and moves the clock
  // to that event (the excess intensities decay over the gap, then jump by alpha, alpha2).
  double next_gap(Xoshiro256& rng);

  // Excess intensity above mu just after the last event, events/s.
  double excess() const { return excess_[0] + excess_[1]; }
  const HawkesParams& params() const { return p_; }

 private:
  HawkesParams p_;
  double excess_[2] = {0.0, 0.0};
};

// The first n event times (seconds from 0) of a Hawkes clock started at rest (no excess), for
// tests and calibration checks.
std::vector<double> hawkes_event_times(const HawkesParams& params, uint64_t seed, size_t n);

// Log-likelihood of event times t[0..n) (seconds, non-decreasing) observed on [0, horizon]
// under `params` (O(n) recursion over the kernels' excesses; std::log/exp, for fitting only).
double hawkes_log_likelihood(const double* t, size_t n, double horizon, const HawkesParams& params);

}  // namespace bot4::sim
