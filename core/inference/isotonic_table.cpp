#include "inference/isotonic_table.hpp"

#include <algorithm>
#include <cmath>

namespace bot4::inference {

bool IsotonicTable::assign(std::vector<double> x, std::vector<double> y, std::string& error) {
  if (x.empty() || x.size() != y.size()) {
    error = "calibration table: x and y must be non-empty and of equal length (got " + std::to_string(x.size()) +
            " and " + std::to_string(y.size()) + ")";
    return false;
  }
  for (size_t i = 0; i < x.size(); ++i) {
    if (!std::isfinite(x[i]) || !std::isfinite(y[i])) {
      error = "calibration table: non-finite breakpoint at index " + std::to_string(i);
      return false;
    }
    if (i > 0 && !(x[i] > x[i - 1])) {
      error = "calibration table: x not strictly increasing at index " + std::to_string(i);
      return false;
    }
  }
  x_ = std::move(x);
  y_ = std::move(y);
  return true;
}

double IsotonicTable::apply(double v) const {
  const size_t n = x_.size();
  if (n == 0) return v;
  if (std::isnan(v)) return v;
  if (v <= x_[0]) return y_[0];
  if (v >= x_[n - 1]) return y_[n - 1];
  // x_[j] <= v < x_[j+1]; same formula as np.interp (slope * (v - x_j) + y_j, exact at x_j).
  const size_t j = static_cast<size_t>(std::upper_bound(x_.begin(), x_.end(), v) - x_.begin()) - 1;
  if (v == x_[j]) return y_[j];
  const double slope = (y_[j + 1] - y_[j]) / (x_[j + 1] - x_[j]);
  return slope * (v - x_[j]) + y_[j];
}

void IsotonicTable::apply(double* values, size_t n) const {
  if (x_.empty()) return;
  for (size_t i = 0; i < n; ++i) values[i] = apply(values[i]);
}

}  // namespace bot4::inference
