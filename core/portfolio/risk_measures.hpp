#pragma once
// CVaR of a return sample as the portfolio step sizes with it (bot4.portfolio.risk_measures is the
// reference; METHODS.md §7.3): historical VaR / Rockafellar-Uryasev CVaR, the Cornish-Fisher CVaR
// (closed form over the tail, used only where the CF map is monotone and n >= 30), their larger
// value (conservative_cvar), and the historical CVaR of a portfolio's loss over return scenarios.
// Losses are positive fractions; level is the confidence (0.95).
#include <cstddef>
#include <vector>

namespace bot4::portfolio {

// Fewest observations for which the (1 - level) tail holds one full observation.
size_t min_samples_historical(double level);

// Historical CVaR of the returns r[0], r[stride], ... (n of them; StepInputError below
// min_samples_historical). `scratch` is reused between calls.
double historical_cvar(const double* r, size_t n, size_t stride, double level, std::vector<double>& scratch);

// The standard normal quantile z = Phi^-1(1 - level) and its density, fixed per level.
struct NormalTail {
  double level = 0.95;
  double z = 0.0;
  double pdf = 0.0;
};

// max(historical, Cornish-Fisher) where CF is defined (n >= 30, not constant, monotone map).
double conservative_cvar(const double* r, size_t n, size_t stride, const NormalTail& tail,
                         std::vector<double>& scratch);

// Historical CVaR of -scenarios @ w (scenarios: T x n row-major).
double portfolio_cvar(const double* scenarios, size_t T, size_t n, const double* w, double level,
                      std::vector<double>& scratch, std::vector<double>& scratch2);

}  // namespace bot4::portfolio
