#pragma once
// Isotonic calibration as a breakpoint table, applied like scikit-learn's
// IsotonicRegression(out_of_bounds='clip').transform: linear interpolation between breakpoints
// (np.interp semantics), clipped to y[0] / y[n-1] outside [x[0], x[n-1]]; NaN stays NaN.
#include <cstddef>
#include <string>
#include <vector>

namespace bot4::inference {

class IsotonicTable {
 public:
  // x strictly increasing and finite, y finite, same length >= 1. False + error otherwise.
  bool assign(std::vector<double> x, std::vector<double> y, std::string& error);
  double apply(double v) const;
  void apply(double* values, size_t n) const;
  bool empty() const { return x_.empty(); }
  size_t size() const { return x_.size(); }
  const std::vector<double>& x() const { return x_; }
  const std::vector<double>& y() const { return y_; }

 private:
  std::vector<double> x_;
  std::vector<double> y_;
};

}  // namespace bot4::inference
