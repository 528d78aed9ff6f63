#include "sim/hawkes_clock.hpp"

namespace bot4::sim {

double HawkesClock::next_gap(Xoshiro256& rng) {
  double gap = rng.exponential() / p_.mu;
  const double alphas[2] = {p_.alpha, p_.alpha2};
  const double betas[2] = {p_.beta, p_.beta2};
  for (int k = 0; k < 2; ++k) {
    if (excess_[k] > 0.0) {
      // P(no arrival of this excess within s) = exp(-excess (1 - e^{-beta s}) / beta).
      const double d = 1.0 - betas[k] * rng.exponential() / excess_[k];
      if (d > 0.0) {
        const double g = -det_log(d) / betas[k];
        if (g < gap) gap = g;
      }
    }
  }
  for (int k = 0; k < 2; ++k) {
    if (alphas[k] > 0.0 || excess_[k] > 0.0) excess_[k] = excess_[k] * det_exp(-betas[k] * gap) + alphas[k];
  }
  return gap;
}

std::vector<double> hawkes_event_times(const HawkesParams& params, uint64_t seed, size_t n) {
  std::vector<double> times;
  times.reserve(n);
  Xoshiro256 rng(seed);
  HawkesClock clock(params);
  double t = 0.0;
  for (size_t i = 0; i < n; ++i) {
    t += clock.next_gap(rng);
    times.push_back(t);
  }
  return times;
}

double hawkes_log_likelihood(const double* t, size_t n, double horizon, const HawkesParams& p) {
  // log L = sum_i log lambda(t_i) - integral_0^T lambda
  //       = sum_i log(mu + A1_i + A2_i) - mu T - sum_k (alpha_k / beta_k) sum_i (1 - e^{-beta_k (T - t_i)})
  double ll = 0.0;
  double a1 = 0.0, a2 = 0.0;
  double compensator = p.mu * horizon;
  for (size_t i = 0; i < n; ++i) {
    if (i > 0) {
      const double dt = t[i] - t[i - 1];
      a1 = (a1 + p.alpha) * std::exp(-p.beta * dt);
      a2 = (a2 + p.alpha2) * std::exp(-p.beta2 * dt);
    }
    ll += std::log(p.mu + a1 + a2);
    const double rest = horizon - t[i];
    compensator += p.alpha / p.beta * (1.0 - std::exp(-p.beta * rest)) +
                   p.alpha2 / p.beta2 * (1.0 - std::exp(-p.beta2 * rest));
  }
  return ll - compensator;
}

}  // namespace bot4::sim
