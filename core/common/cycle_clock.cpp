#include "common/cycle_clock.hpp"

namespace bot4 {

void CycleCalibration::start() {
  t0_ = std::chrono::steady_clock::now();
  c0_ = cycle_now();
}

void CycleCalibration::finish(int64_t min_ns) {
  using namespace std::chrono;
  steady_clock::time_point t1;
  uint64_t c1;
  do {
    t1 = steady_clock::now();
    c1 = cycle_now();
  } while (duration_cast<nanoseconds>(t1 - t0_).count() < min_ns);
  const double ns = static_cast<double>(duration_cast<nanoseconds>(t1 - t0_).count());
  ns_per_tick_ = c1 > c0_ ? ns / static_cast<double>(c1 - c0_) : 1.0;
}

}  // namespace bot4
