#pragma once
// Portable randomness for the simulators: a fixed PRNG (xoshiro256**, seeded through splitmix64)
// and sampling written with IEEE-754 basic operations only (+ - * /, exact scaling by powers of
// two). Nothing here calls <random> distributions or libm transcendental functions, whose
// results differ between standard libraries and platforms, so the same seed gives bit-identical
// draws wherever the compiler does not contract a*b+c into a fused multiply-add (x86-64 baseline
// has no FMA; the pragma below switches contraction off for clang elsewhere, GCC in ISO mode
// -std=c++20 does not contract).
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#if defined(__clang__)
#pragma clang fp contract(off)
#endif

namespace bot4::sim {

// splitmix64: expands a 64-bit seed into the generator state (Vigna's recommendation).
inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// xoshiro256** 1.0 (Blackman & Vigna), period 2^256 - 1.
class Xoshiro256 {
 public:
  explicit Xoshiro256(uint64_t seed = 0) { reseed(seed); }

  void reseed(uint64_t seed) {
    uint64_t sm = seed;
    for (auto& word : s_) word = splitmix64(sm);
  }

  uint64_t next() {
    const uint64_t result = std::rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = std::rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  // Uniform in (0, 1].
  double uniform_pos() { return static_cast<double>((next() >> 11) + 1) * 0x1.0p-53; }
  // Uniform integer in [0, n) for n >= 1 (Lemire's multiply-shift; the tiny bias for n far
  // below 2^64 is irrelevant here and the result is portable).
  uint64_t below(uint64_t n) {
    return static_cast<uint64_t>((static_cast<unsigned __int128>(next()) * n) >> 64);
  }
  bool bernoulli(double p) { return uniform() < p; }
  // Exp(1) variate.
  double exponential();

 private:
  uint64_t s_[4];
};

// Natural logarithm of x > 0 from basic operations: x = m * 2^e with m in [sqrt(1/2), sqrt(2)),
// log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, series to s^21 (error < 1e-16).
inline double det_log(double x) {
  int e = 0;
  double m = std::frexp(x, &e);  // m in [0.5, 1): exact
  if (m < 0.70710678118654752440) {
    m *= 2.0;
    e -= 1;
  }
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double poly = 1.0 / 21.0;
  poly = poly * s2 + 1.0 / 19.0;
  poly = poly * s2 + 1.0 / 17.0;
  poly = poly * s2 + 1.0 / 15.0;
  poly = poly * s2 + 1.0 / 13.0;
  poly = poly * s2 + 1.0 / 11.0;
  poly = poly * s2 + 1.0 / 9.0;
  poly = poly * s2 + 1.0 / 7.0;
  poly = poly * s2 + 1.0 / 5.0;
  poly = poly * s2 + 1.0 / 3.0;
  poly = poly * s2 + 1.0;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;  // ln 2 split so e*hi is exact
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  return static_cast<double>(e) * kLn2Hi + (2.0 * s * poly + static_cast<double>(e) * kLn2Lo);
}

// e^x from basic operations: x = k ln2 + r, |r| <= ln2/2, Taylor series of e^r to r^14, then an
// exact scaling by 2^k. Underflows to 0 below -745, saturates to +inf above 709.
inline double det_exp(double x) {
  if (x < -745.0) return 0.0;
  if (x > 709.0) return HUGE_VAL;
  constexpr double kInvLn2 = 1.44269504088896338700;
  constexpr double kLn2Hi = 6.93147180369123816490e-01;
  constexpr double kLn2Lo = 1.90821492927058770002e-10;
  const double kd = std::nearbyint(x * kInvLn2);  // round-to-nearest (default mode): exact
  const int k = static_cast<int>(kd);
  const double r = (x - kd * kLn2Hi) - kd * kLn2Lo;
  double p = 1.0 / 87178291200.0;  // 1/14!
  p = p * r + 1.0 / 6227020800.0;
  p = p * r + 1.0 / 479001600.0;
  p = p * r + 1.0 / 39916800.0;
  p = p * r + 1.0 / 3628800.0;
  p = p * r + 1.0 / 362880.0;
  p = p * r + 1.0 / 40320.0;
  p = p * r + 1.0 / 5040.0;
  p = p * r + 1.0 / 720.0;
  p = p * r + 1.0 / 120.0;
  p = p * r + 1.0 / 24.0;
  p = p * r + 1.0 / 6.0;
  p = p * r + 0.5;
  p = p * r + 1.0;
  p = p * r + 1.0;
  return std::ldexp(p, k);  // exact
}

inline double Xoshiro256::exponential() { return -det_log(uniform_pos()); }

// Inverse-CDF sampler of a distribution given by quantiles `values[i]` at increasing
// probabilities `probs[i]` (probs[0] = 0, probs.back() = 1), linear between the knots.
class QuantileSampler {
 public:
  QuantileSampler() = default;
  QuantileSampler(const std::vector<double>* probs, std::vector<double> values)
      : probs_(probs), values_(std::move(values)) {}

  bool empty() const { return values_.empty(); }
  const std::vector<double>& values() const { return values_; }

  double sample(Xoshiro256& rng) const { return at(rng.uniform()); }

  double at(double u) const {
    const std::vector<double>& p = *probs_;
    // Few knots (tens): a linear search is as fast as a bisection and simpler.
    size_t i = 1;
    const size_t n = p.size();
    while (i < n - 1 && p[i] <= u) ++i;
    const double p0 = p[i - 1];
    const double p1 = p[i];
    const double v0 = values_[i - 1];
    const double v1 = values_[i];
    const double w = p1 > p0 ? (u - p0) / (p1 - p0) : 0.0;
    return v0 + (v1 - v0) * w;
  }

  // Draw rounded to a whole number of lots, at least `floor`.
  int64_t sample_lots(Xoshiro256& rng, int64_t floor = 1) const {
    const int64_t v = static_cast<int64_t>(std::floor(sample(rng) + 0.5));
    return v < floor ? floor : v;
  }

 private:
  const std::vector<double>* probs_ = nullptr;
  std::vector<double> values_;
};

}  // namespace bot4::sim
