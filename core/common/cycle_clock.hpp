#pragma once
// A cheap timestamp for per-event latency records. steady_clock::now() costs ~22 ns here (vDSO
// clock_gettime) and a backtest reads it two or three times per market event; the TSC costs ~9 ns.
// Stamps are raw counter ticks; a CycleCalibration taken across the run (steady_clock at both
// ends) converts tick differences to nanoseconds, so no fixed frequency is assumed. Where there is
// no invariant TSC (non-x86), the counter is steady_clock itself and the ratio is 1.
#include <chrono>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BOT4_HAS_TSC 1
#else
#define BOT4_HAS_TSC 0
#endif

namespace bot4 {

inline uint64_t cycle_now() {
#if BOT4_HAS_TSC
  return __rdtsc();
#else
  return static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
}

// Brackets a measured section: start() before, finish() after; ns(ticks) converts differences.
class CycleCalibration {
 public:
  void start();
  // Ends the bracket; when it lasted less than `min_ns` (short runs), spins until it has, so the
  // ratio is never taken over a too-short interval.
  void finish(int64_t min_ns = 2'000'000);
  double ns_per_tick() const { return ns_per_tick_; }
  int64_t ns(uint64_t ticks) const { return static_cast<int64_t>(static_cast<double>(ticks) * ns_per_tick_ + 0.5); }

 private:
  std::chrono::steady_clock::time_point t0_{};
  uint64_t c0_ = 0;
  double ns_per_tick_ = 1.0;
};

}  // namespace bot4
