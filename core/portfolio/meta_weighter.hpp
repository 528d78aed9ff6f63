#pragma once
// The meta-weighter's blend at decision time (bot4.portfolio.meta.MetaWeighter is the reference
// and fits the parameters; METHODS.md §17): per row the agents' (mu, sigma, confidence) - p = 3 x
// agents inputs - go through linear quantile models q_tau(x) = b_tau + x . w_tau (one set per
// regime with its own fit, a pooled set for every other regime), sorted per row; mu = q0.5,
// sigma = (q0.75 - q0.25) / normal IQR, raw P(r > 0) = Phi(mu / sigma) (sign of mu when sigma
// <= 0), mapped by the isotonic table (np.interp) and clipped to [clip, 1 - clip]. A row with any
// non-finite input has no view (NaN mu, sigma, p).
#include <cstddef>
#include <cstdint>
#include <vector>

#include "portfolio/linear_quantiles.hpp"

namespace bot4::portfolio {

struct MetaParams {
  std::vector<double> taus;     // ascending; contains 0.25, 0.5 and 0.75
  size_t inputs = 0;            // p = 3 x agents
  std::vector<LinearQuantileModel> models;  // the pooled one (regime -1) is required
  std::vector<double> iso_x, iso_y;  // empty: not calibrated (p is NaN)
  double clip = 0.0;
  double normal_iqr = 1.3489795003921634;
};

struct BlendedView {
  double mu, sigma, p_raw, p;
};

class MetaWeighter {
 public:
  // Checks the parameters (StepInputError naming the one at fault).
  explicit MetaWeighter(MetaParams params);
  MetaWeighter() = default;
  size_t inputs() const { return params_.inputs; }
  size_t taus() const { return params_.taus.size(); }
  // The view of one row of inputs x[0..p) in regime `regime`; `q` receives the sorted quantiles.
  BlendedView blend(const double* x, int64_t regime, double* q) const;
  const MetaParams& params() const { return params_; }

 private:
  const LinearQuantileModel& model_for(int64_t regime) const;
  MetaParams params_;
  size_t pooled_ = 0, i25_ = 0, i50_ = 0, i75_ = 0;
};

}  // namespace bot4::portfolio
