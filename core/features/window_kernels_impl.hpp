// The windowed kernels of window_kernels.hpp, written once for a vector of BOT4_LANES doubles.
//
// Included by exactly one translation unit per instruction set, which defines BOT4_LANES (1, 4
// or 8) and BOT4_KERNEL_NS (the namespace the table lands in) before including it. Everything
// here has internal linkage: the same inline helper compiled with -mavx512f in one file and for
// baseline x86-64 in another must never be merged by the linker (an ODR-merged copy could run
// AVX-512 code on a CPU without it). For the same reason nothing below calls an inline std::
// function; compiler builtins expand in place and libm's log is a plain external function.
//
// Reproducibility across levels: every kernel returns the same bits at every width. Sums go
// through csum() (always eight partial sums, element i into partial i % 8, combined in one fixed
// tree), prefix sums through the 8-block Hillis-Steele association of scan8_lanes/prefix_sum8,
// per-chunk statistics run one chunk per lane in the scalar order, the FFT and logarithms are
// elementwise with shared tables, and cmake/isa.cmake compiles these files with
// -ffp-contract=off (no implicit a*b+c -> FMA where the ISA has one). The test suite compares
// the levels exactly.
#if !defined(BOT4_LANES) || !defined(BOT4_KERNEL_NS)
#error "define BOT4_LANES and BOT4_KERNEL_NS before including window_kernels_impl.hpp"
#endif

#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "features/window_kernels.hpp"
#include "features/window_kernels_tables.hpp"

namespace bot4::features::BOT4_KERNEL_NS {
namespace {

constexpr int L = BOT4_LANES;
static_assert(L == 1 || L == 4 || L == 8, "BOT4_LANES must be 1, 4 or 8");

constexpr double kNaN = __builtin_nan("");
inline bool finite(double v) { return __builtin_isfinite(v); }
// Capacity past kMaxWindow in every stack buffer: loops run whole vectors (and the bit-string
// kernels whole 64-bit words) past the end, reading padding they then mask, so none needs a
// scalar tail. copy_padded fills kVecPad or kWordPad of it.
constexpr size_t kPad = 128;
constexpr size_t kBuf = kMaxWindow + kPad;
constexpr size_t kWords = (kMaxWindow + 63) / 64 + 4;

// ------------------------------------------------------------------------------------------
// The vector layer. L == 1 is a plain double so the scalar build is ordinary scalar code.
#if BOT4_LANES == 1
using vd = double;
using vi = long long;
inline vd vload(const double* p) { return *p; }
inline void vstore(double* p, vd v) { *p = v; }
inline vd splat(double a) { return a; }
inline vd iota() { return 0.0; }
inline vi lt(vd a, vd b) { return -static_cast<long long>(a < b); }
inline vi gt(vd a, vd b) { return -static_cast<long long>(a > b); }
inline vd sel(vi m, vd a, vd b) { return m ? a : b; }
inline vd vabs(vd a) { return __builtin_fabs(a); }
inline vi as_int(vd a) { return __builtin_bit_cast(long long, a); }
inline vd as_double(vi a) { return __builtin_bit_cast(double, a); }
inline vd vsqrt(vd a) { return __builtin_sqrt(a); }
inline unsigned bits_lt(vd a, vd b) { return a < b; }
inline unsigned bits_le(vd a, vd b) { return a <= b; }
inline unsigned bits_ne(vd a, vd b) { return a != b; }
inline vd scan(vd v) { return v; }
inline vd bcast_last(vd v) { return v; }
inline vd reverse(vd v) { return v; }
inline void transpose(vd*) {}
#else
typedef double vd __attribute__((vector_size(8 * BOT4_LANES)));
typedef long long vi __attribute__((vector_size(8 * BOT4_LANES)));

inline vd vload(const double* p) {
  vd v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void vstore(double* p, vd v) { __builtin_memcpy(p, &v, sizeof v); }
inline vd splat(double a) { return vd{} + a; }
template <size_t... I>
constexpr vd iota_impl(std::index_sequence<I...>) { return vd{static_cast<double>(I)...}; }
inline vd iota() { return iota_impl(std::make_index_sequence<L>{}); }
inline vi lt(vd a, vd b) { return a < b; }
inline vi gt(vd a, vd b) { return a > b; }
inline vd sel(vi m, vd a, vd b) { return m ? a : b; }
inline vi as_int(vd a) { return reinterpret_cast<vi>(a); }
inline vd as_double(vi a) { return reinterpret_cast<vd>(a); }
inline vd vabs(vd a) { return as_double(as_int(a) & 0x7fffffffffffffffLL); }

// Lane shuffles with masks fixed at compile time.
template <size_t... I, typename F>
constexpr vi mask_impl(std::index_sequence<I...>, F f) { return vi{f(static_cast<int>(I))...}; }
template <typename F>
constexpr vi make_mask(F f) { return mask_impl(std::make_index_sequence<L>{}, f); }

inline vd reverse(vd v) {
  constexpr vi m = make_mask([](int i) -> long long { return L - 1 - i; });
  return __builtin_shuffle(v, m);
}
inline vd bcast_last(vd v) {
  constexpr vi m = make_mask([](int) -> long long { return L - 1; });
  return __builtin_shuffle(v, m);
}
template <int S>
inline vd shift_up(vd v) {  // lane i <- lane i - S, zeros shifted in
  constexpr vi m = make_mask([](int i) -> long long { return i >= S ? i - S : L; });
  return __builtin_shuffle(v, vd{}, m);
}
// Inclusive prefix sum within the vector (log2 L steps).
inline vd scan(vd v) {
  v += shift_up<1>(v);
  v += shift_up<2>(v);
  if constexpr (L == 8) v += shift_up<4>(v);
  return v;
}
// In-place transpose of the L x L block held in r[0..L): log2 L rounds, each swapping the
// off-diagonal g-blocks of the vector pairs (i, i + g).
template <int G>
inline void transpose_round(vd* r) {
  constexpr vi ma = make_mask([](int l) -> long long { return (l & G) ? L + (l - G) : l; });
  constexpr vi mb = make_mask([](int l) -> long long { return (l & G) ? L + l : l + G; });
  for (int i = 0; i < L; ++i) {
    if (i & G) continue;
    const vd a = r[i], b = r[i + G];
    r[i] = __builtin_shuffle(a, b, ma);
    r[i + G] = __builtin_shuffle(a, b, mb);
  }
}
inline void transpose(vd* r) {
  transpose_round<1>(r);
  transpose_round<2>(r);
  if constexpr (L == 8) transpose_round<4>(r);
}
#if BOT4_LANES == 4
inline vd vsqrt(vd a) { return reinterpret_cast<vd>(_mm256_sqrt_pd(reinterpret_cast<__m256d>(a))); }
inline unsigned bits_lt(vd a, vd b) {
  return static_cast<unsigned>(_mm256_movemask_pd(_mm256_cmp_pd(reinterpret_cast<__m256d>(a),
                                                                reinterpret_cast<__m256d>(b), _CMP_LT_OQ)));
}
inline unsigned bits_le(vd a, vd b) {
  return static_cast<unsigned>(_mm256_movemask_pd(_mm256_cmp_pd(reinterpret_cast<__m256d>(a),
                                                                reinterpret_cast<__m256d>(b), _CMP_LE_OQ)));
}
inline unsigned bits_ne(vd a, vd b) {
  return static_cast<unsigned>(_mm256_movemask_pd(_mm256_cmp_pd(reinterpret_cast<__m256d>(a),
                                                                reinterpret_cast<__m256d>(b), _CMP_NEQ_UQ)));
}
#else
inline vd vsqrt(vd a) {
  // the masked form with a defined pass-through keeps GCC 12 from warning about
  // _mm512_undefined_pd inside _mm512_sqrt_pd
  const __m512d v = reinterpret_cast<__m512d>(a);
  return reinterpret_cast<vd>(_mm512_mask_sqrt_pd(v, static_cast<__mmask8>(0xff), v));
}
inline unsigned bits_lt(vd a, vd b) {
  return _mm512_cmp_pd_mask(reinterpret_cast<__m512d>(a), reinterpret_cast<__m512d>(b), _CMP_LT_OQ);
}
inline unsigned bits_le(vd a, vd b) {
  return _mm512_cmp_pd_mask(reinterpret_cast<__m512d>(a), reinterpret_cast<__m512d>(b), _CMP_LE_OQ);
}
inline unsigned bits_ne(vd a, vd b) {
  return _mm512_cmp_pd_mask(reinterpret_cast<__m512d>(a), reinterpret_cast<__m512d>(b), _CMP_NEQ_UQ);
}
#endif
#endif

inline vd vmax(vd a, vd b) { return sel(gt(a, b), a, b); }
inline vd vmin(vd a, vd b) { return sel(lt(a, b), a, b); }
// Canonical inclusive prefix sum of 8 consecutive values: the Hillis-Steele association an
// 8-lane vector computes (add the value 1, then 2, then 4 places back; zeros shifted in), plus a
// running carry. d[j] here are independent sequences per lane (one chunk per lane), so this is
// the same arithmetic whatever L is; the wide form for one sequence is prefix_sum8 below.
inline void scan8_lanes(const vd* d, vd& carry, vd* y) {
  const vd z = splat(0.0);
  vd a[8], b[8];
  a[0] = d[0] + z;
  for (int j = 1; j < 8; ++j) a[j] = d[j] + d[j - 1];
  b[0] = a[0] + z;
  b[1] = a[1] + z;
  for (int j = 2; j < 8; ++j) b[j] = a[j] + a[j - 2];
  for (int j = 0; j < 4; ++j) y[j] = (b[j] + z) + carry;
  for (int j = 4; j < 8; ++j) y[j] = (b[j] + b[j - 4]) + carry;
  carry = y[7];
}

// Inclusive prefix sum of in[0..n8) (n8 a multiple of 8) in blocks of 8 with the association of
// scan8_lanes, so every width writes the same bits.
inline void prefix_sum8(const double* in, double* out, size_t n8) {
#if BOT4_LANES == 8
  vd carry = splat(0.0);
  for (size_t i = 0; i < n8; i += 8) {
    const vd y = scan(vload(in + i)) + carry;
    carry = bcast_last(y);
    vstore(out + i, y);
  }
#elif BOT4_LANES == 4
  constexpr vi m1 = {3, 4, 5, 6};
  constexpr vi m2 = {2, 3, 4, 5};
  vd carry = splat(0.0);
  const vd z = splat(0.0);
  for (size_t i = 0; i < n8; i += 8) {
    const vd lo = vload(in + i), hi = vload(in + i + 4);
    const vd lo1 = lo + shift_up<1>(lo), hi1 = hi + __builtin_shuffle(lo, hi, m1);
    const vd lo2 = lo1 + shift_up<2>(lo1), hi2 = hi1 + __builtin_shuffle(lo1, hi1, m2);
    const vd ylo = (lo2 + z) + carry, yhi = (hi2 + lo2) + carry;
    carry = bcast_last(yhi);
    vstore(out + i, ylo);
    vstore(out + i + 4, yhi);
  }
#else
  double carry = 0.0;
  for (size_t i = 0; i < n8; i += 8) scan8_lanes(in + i, carry, out + i);
#endif
}

// Lanes at or past `count` become 0 (a select, so NaN or garbage there cannot leak).
inline vd keep_first(vd v, size_t count) {
  if (count >= static_cast<size_t>(L)) return v;
  return sel(lt(iota(), splat(static_cast<double>(count))), v, splat(0.0));
}

#if BOT4_LANES == 1
// Baseline x86-64 has no POPCNT instruction and __builtin_popcountll would become a libgcc
// call; the inline bit-twiddling count is what a portable scalar build does best.
inline int popcount(uint64_t w) {
  w = w - ((w >> 1) & 0x5555555555555555ULL);
  w = (w & 0x3333333333333333ULL) + ((w >> 2) & 0x3333333333333333ULL);
  w = (w + (w >> 4)) & 0x0f0f0f0f0f0f0f0fULL;
  return static_cast<int>((w * 0x0101010101010101ULL) >> 56);
}
#else
inline int popcount(uint64_t w) { return __builtin_popcountll(w); }
#endif

// Sum of f(i) over i in [0, n), f(i) returning the vector of elements i .. i+L-1. Fixed order:
// eight partial sums, partial k holding the elements i with i % 8 == k, combined as
// ((s0+s4)+(s2+s6)) + ((s1+s5)+(s3+s7)) -- exactly what one 8-lane vector reduced by halving
// does, so every width produces the same bits. f is called in increasing i, so it may carry
// state (running prefix sums) or store what it computed.
template <typename F>
inline double csum(size_t n, F&& f) {
  constexpr int U = 8 / L;
  vd acc[U];
  for (int u = 0; u < U; ++u) acc[u] = splat(0.0);
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int u = 0; u < U; ++u) acc[u] += f(i + static_cast<size_t>(u * L));
  if (i < n) {
    for (int u = 0; u < U; ++u) {
      const size_t j = i + static_cast<size_t>(u * L);
      if (j < n) acc[u] += keep_first(f(j), n - j);
    }
  }
  double s[8];
  for (int u = 0; u < U; ++u) vstore(s + u * L, acc[u]);
  return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

// Copies x[0..n) into buf and fills `pad_count` slots after it with `pad`. Vector loops read a
// little past n (and mask what they read); the bit-string kernels read up to a word of 64 past.
constexpr size_t kVecPad = 16;
constexpr size_t kWordPad = 64 + 16;
inline void copy_padded(const double* x, size_t n, double* buf, double pad, size_t pad_count) {
  size_t i = 0;
  for (; i + L <= n; i += L) vstore(buf + i, vload(x + i));
  for (; i < n; ++i) buf[i] = x[i];
  const vd p = splat(pad);
  for (size_t k = 0; k < pad_count; k += L) vstore(buf + n + k, p);
}

inline double mean_of(const double* buf, size_t n) {
  return csum(n, [&](size_t i) { return vload(buf + i); }) / static_cast<double>(n);
}

// Population variance sum: sum (x - mean)^2.
inline double centered_ss(const double* buf, size_t n, double mean) {
  const vd mu = splat(mean);
  return csum(n, [&](size_t i) {
    const vd d = vload(buf + i) - mu;
    return d * d;
  });
}

// True when buf[0..n) holds one value (NaN never equals, so a NaN makes it false). A constant
// window must be recognised exactly: its mean can round off the value, leaving a variance of
// rounding noise instead of 0.
inline bool all_equal(const double* buf, size_t n) {
  const vd first = splat(buf[0]);
  unsigned any = 0;
  size_t i = 0;
  for (; i + L <= n; i += L) any |= bits_ne(vload(buf + i), first);
  for (; i < n; ++i) any |= buf[i] != buf[0];
  return any == 0;
}

// Bit t of out = (buf[t] != buf[t-1]) for t in [1, n); bit 0 is 0. buf needs kWordPad slack.
inline void change_bits(const double* buf, size_t n, uint64_t* out) {
  const size_t words = (n + 63) / 64;
  for (size_t w = 0; w < words; ++w) {
    uint64_t bits = 0;
    for (int b = 0; b < 64; b += L) {
      const size_t t = w * 64 + static_cast<size_t>(b);
      if (t == 0) {
        // t = 0 has no predecessor; compare lanes 1.. against their left neighbour only.
        uint64_t lanes = bits_ne(vload(buf + 1), vload(buf));
        bits |= lanes << 1;
        if constexpr (L == 1) bits &= ~uint64_t{1};
        continue;
      }
      bits |= static_cast<uint64_t>(bits_ne(vload(buf + t), vload(buf + t - 1))) << b;
    }
    if (w == words - 1 && n % 64) bits &= (uint64_t{1} << (n % 64)) - 1;
    out[w] = bits;
  }
  out[0] &= ~uint64_t{1};
  for (size_t w = words; w < words + 2; ++w) out[w] = 0;
}

// Any bit set in [lo, hi)?
inline bool any_bit(const uint64_t* bits, size_t lo, size_t hi) {
  while (lo < hi) {
    const size_t w = lo / 64, b = lo % 64;
    const size_t take = (hi - lo < 64 - b) ? hi - lo : 64 - b;
    const uint64_t mask = (take == 64 ? ~uint64_t{0} : ((uint64_t{1} << take) - 1)) << b;
    if (bits[w] & mask) return true;
    lo += take;
  }
  return false;
}

// Bits [64 w + k, 64 w + k + 64) of a bit string stored in words (zero words after the end).
inline uint64_t bits_from(const uint64_t* e, size_t w, size_t k) {
  const size_t q = w + k / 64, r = k % 64;
  return r == 0 ? e[q] : (e[q] >> r) | (e[q + 1] << (64 - r));
}

inline uint64_t low_bits(size_t count_in_word) {
  return count_in_word >= 64 ? ~uint64_t{0} : (uint64_t{1} << count_in_word) - 1;
}

// log2 of x > 0 (finite) per lane, accurate to about 1 ulp: x = 2^k m with m in [sqrt(1/2),
// sqrt(2)), log(m) = log(1+f) from the classic s = f/(2+f) series with minimax coefficients
// (fdlibm's e_log constants). Written with integer bit operations only, so it is the same
// elementwise function at every vector width and needs no libm call per bin.
inline vd vlog2(vd x) {
  const vi tiny = lt(x, splat(0x1p-1022));
  x = sel(tiny, x * splat(0x1p54), x);
  const vi bits = as_int(x);
  const vi biased = (bits >> 52) & 0x7ff;
  vd m = as_double((bits & 0x000fffffffffffffLL) | 0x3ff0000000000000LL);
  const vi big = gt(m, splat(1.4142135623730951));
  m = sel(big, m * splat(0.5), m);
  // The biased exponent (0..2047) as a double, exactly: the 2^52 trick needs no int->fp convert.
  vd k = as_double(biased | 0x4330000000000000LL) - splat(0x1p52);
  k = k - splat(1023.0) + sel(big, splat(1.0), splat(0.0)) - sel(tiny, splat(54.0), splat(0.0));
  const vd f = m - splat(1.0);
  const vd s = f / (splat(2.0) + f);
  const vd z = s * s;
  const vd w = z * z;
  const vd t1 = w * (splat(3.999999999940941908e-01) +
                     w * (splat(2.222219843214978396e-01) + w * splat(1.531383769920937332e-01)));
  const vd t2 = z * (splat(6.666666666666735130e-01) +
                     w * (splat(2.857142874366239149e-01) +
                          w * (splat(1.818357216161805012e-01) + w * splat(1.479819860511658591e-01))));
  const vd hfsq = splat(0.5) * f * f;
  const vd ln1pf = f - (hfsq - s * (hfsq + (t2 + t1)));
  return k + ln1pf * splat(1.4426950408889634);
}

// Shannon entropy in bits of integer counts c[0..k) summing to total, from the log2 table.
inline double entropy_bits(const uint32_t* counts, size_t k, size_t total) {
  const double* lg = tables().log2_int;
  const double lt_ = lg[total];
  const double inv = 1.0 / static_cast<double>(total);
  double h = 0.0;
  for (size_t i = 0; i < k; ++i) {
    const uint32_t c = counts[i];
    if (c) h += (static_cast<double>(c) * inv) * (lt_ - lg[c]);
  }
  return h;
}

// ------------------------------------------------------------------------------------------
// What several kernels compute first from the same window -- the padded copies, the constancy
// test, the mean, the deviations and their sum of squares, the change bits -- made once on
// demand and shared: window_block() runs every kernel of the window family on one Prep, each
// single-kernel entry point on its own. Every value is the very computation the kernel did
// itself (same function, same order), and a kernel reads its copy only where the data is (or
// masks what it reads past n), so the results do not depend on which kernels shared them.
// Needs n <= kMaxWindow.
struct Prep {
  Prep(const double* x_, size_t n_) : x(x_), n(n_) {}
  // x, then kWordPad zeros / NaNs
  const double* zero_padded() {
    if (!have_z) {
      copy_padded(x, n, z, 0.0, kWordPad);
      have_z = true;
    }
    return z;
  }
  const double* nan_padded() {
    if (!have_q) {
      copy_padded(x, n, q, __builtin_nan(""), kWordPad);
      have_q = true;
    }
    return q;
  }
  // Either copy, for kernels that never use the padding unmasked.
  const double* any_padded() { return have_z ? z : have_q ? q : zero_padded(); }
  bool constant() {
    if (eq < 0) eq = all_equal(any_padded(), n) ? 1 : 0;
    return eq != 0;
  }
  double mean() {
    if (!have_mean) {
      mean_ = mean_of(any_padded(), n);
      have_mean = true;
    }
    return mean_;
  }
  // sum (x - mean)^2, storing the deviations (then kVecPad zeros) in dev
  double css() {
    if (!have_dev) {
      const double* b = any_padded();
      const vd mu = splat(mean());
      css_ = csum(n, [&](size_t i) {
        const vd v = vload(b + i) - mu;
        vstore(dev + i, v);
        return v * v;
      });
      for (size_t k = 0; k < kVecPad; ++k) dev[n + k] = 0.0;
      have_dev = true;
    }
    return css_;
  }
  // change_bits of the window (needs the kWordPad slack of a padded copy)
  const uint64_t* changes() {
    if (!have_chg) {
      change_bits(zero_padded(), n, chg);
      have_chg = true;
    }
    return chg;
  }
  // no NaN or infinity in the window
  bool all_finite() {
    if (fin < 0) {
      const double* b = any_padded();
      fin = finite(csum(n, [&](size_t i) { return vload(b + i) * splat(0.0); })) ? 1 : 0;
    }
    return fin != 0;
  }

  const double* x;
  size_t n;
  bool have_z = false, have_q = false, have_mean = false, have_dev = false, have_chg = false;
  int eq = -1, fin = -1;
  double mean_ = 0.0, css_ = 0.0;
  alignas(64) double z[kBuf];
  alignas(64) double q[kBuf];
  alignas(64) double dev[kBuf];
  uint64_t chg[kWords];
};

// ------------------------------------------------------------------------------------------
// acf: statsmodels.tsa.stattools.acf (biased).
double acf_impl(Prep& p, size_t lag) {
  const size_t n = p.n;
  if (n < 2 || n > kMaxWindow || lag >= n) return kNaN;
  if (p.constant()) return kNaN;
  const double var0 = p.css();
  if (!(var0 > 0.0) || !finite(var0)) return kNaN;
  const double* d = p.dev;
  const double c = csum(n - lag, [&](size_t i) { return vload(d + i) * vload(d + i + lag); });
  return c / var0;
}

double acf(const double* x, size_t n, size_t lag) {
  if (n < 2 || n > kMaxWindow || lag >= n) return kNaN;
  Prep p(x, n);
  return acf_impl(p, lag);
}

// c3: mean over t of x[t+2 lag] * x[t+lag] * x[t] (tsfresh's product order).
double c3_impl(Prep& p, size_t lag) {
  const size_t n = p.n;
  if (n > kMaxWindow || 2 * lag >= n) return kNaN;
  const double* xb = p.any_padded();
  const size_t m = n - 2 * lag;
  const double s = csum(m, [&](size_t i) {
    return (vload(xb + i + 2 * lag) * vload(xb + i + lag)) * vload(xb + i);
  });
  const double r = s / static_cast<double>(m);
  return finite(r) ? r : kNaN;
}

double c3(const double* x, size_t n, size_t lag) {
  if (n > kMaxWindow || 2 * lag >= n) return kNaN;
  Prep p(x, n);
  return c3_impl(p, lag);
}

// cid_ce(normalize=True): sqrt(sum of squared differences of the z-scored series).
double cid_ce_impl(Prep& p) {
  const size_t n = p.n;
  if (n < 2 || n > kMaxWindow) return kNaN;
  if (p.constant()) return kNaN;
  const double* xb = p.any_padded();
  const double sd = __builtin_sqrt(p.css() / static_cast<double>(n));
  if (!(sd > 0.0) || !finite(sd)) return kNaN;
  const double ss = csum(n - 1, [&](size_t i) {
    const vd d = vload(xb + i + 1) - vload(xb + i);
    return d * d;
  });
  const double r = __builtin_sqrt(ss) / sd;
  return finite(r) ? r : kNaN;
}

double cid_ce(const double* x, size_t n) {
  if (n < 2 || n > kMaxWindow) return kNaN;
  Prep p(x, n);
  return cid_ce_impl(p);
}

// OLS slope of y on x with intercept, centred two-pass sums.
double ols_slope(const double* x, const double* y, size_t n) {
  if (n < 2 || n > kMaxWindow) return kNaN;
  alignas(64) double xb[kBuf];
  alignas(64) double yb[kBuf];
  copy_padded(x, n, xb, 0.0, kVecPad);
  copy_padded(y, n, yb, 0.0, kVecPad);
  if (all_equal(xb, n)) return kNaN;
  const vd mx = splat(mean_of(xb, n));
  const vd my = splat(mean_of(yb, n));
  const double sxx = csum(n, [&](size_t i) {
    const vd d = vload(xb + i) - mx;
    return d * d;
  });
  const double sxy = csum(n, [&](size_t i) { return (vload(xb + i) - mx) * (vload(yb + i) - my); });
  if (!(sxx > 0.0) || !finite(sxx) || !finite(sxy)) return kNaN;
  return sxy / sxx;
}

// ------------------------------------------------------------------------------------------
// Per-chunk statistics (hurst_rs, dfa) run one chunk per lane: L chunks of `len` samples at
// base + q * len are transposed into tile[t] = (sample t of each chunk), so each lane sums its
// chunk in the same order the scalar build does, and every level returns the same bits.
// Lanes past the last chunk repeat it; callers ignore them.
inline void load_chunk_tile(const double* base, size_t len, size_t q0, size_t chunks, vd* tile) {
  for (size_t t0 = 0; t0 < len; t0 += L) {
    vd rows[L];
    for (int l = 0; l < L; ++l) {
      const size_t q = q0 + static_cast<size_t>(l) < chunks ? q0 + static_cast<size_t>(l) : chunks - 1;
      rows[l] = vload(base + q * len + t0);
    }
    transpose(rows);
    for (int l = 0; l < L; ++l) tile[t0 + static_cast<size_t>(l)] = rows[l];
  }
}

// Natural log of k values (k <= 64) through vlog2, identical at every width.
inline void log_values(const double* v, double* out, size_t k) {
  alignas(64) double tmp[64 + 8];
  for (size_t i = 0; i < k; ++i) tmp[i] = v[i];
  for (size_t i = k; i < k + L; ++i) tmp[i] = 1.0;
  for (size_t i = 0; i < k; i += L) vstore(tmp + i, vlog2(vload(tmp + i)) * splat(0.6931471805599453));
  // vlog2 assumes a positive finite argument; anything else has no logarithm here
  for (size_t i = 0; i < k; ++i) out[i] = (v[i] > 0.0 && v[i] < __builtin_inf()) ? tmp[i] : kNaN;
}

// ------------------------------------------------------------------------------------------
// hurst_rs: nolds.hurst_rs(fit='poly', corrected=False, unbiased=True) with nvals =
// hurst_nvals(n). Chunks are split within the window as nolds does (floor(n / c) chunks from
// the start, the rest dropped). Per chunk: Y = cumsum(x - mean), R = max Y - min Y,
// S = std(ddof=1); (R/S)_c is the mean of R/S over the chunks with R != 0.
double hurst_rs_impl(Prep& p) {
  const size_t n = p.n;
  if (n > kMaxWindow || n < 32) return kNaN;
  const double* xb = p.zero_padded();
  const uint64_t* chg = p.changes();
  double lx[16], rs[16];
  size_t k = 0;
  alignas(64) vd tile[kMaxWindow / 2 + 8];
  alignas(64) double rs_chunk[kMaxWindow / 8 + 8], r_chunk[kMaxWindow / 8 + 8], ss_chunk[kMaxWindow / 8 + 8];
  for (size_t c = 8; c <= n / 2; c *= 2) {
    const size_t chunks = n / c;
    const vd inv_c = splat(1.0 / static_cast<double>(c));
    const vd inv_c1 = splat(1.0 / static_cast<double>(c - 1));
#if BOT4_LANES > 1
    if (chunks < static_cast<size_t>(L) && (c / 4) % static_cast<size_t>(L) == 0) {
      // Fewer chunks than lanes: one chunk per lane would leave lanes idle, so a lane holds one
      // of the four segments of a chunk instead (L / 4 chunks per vector). Every chunk's sums
      // keep the association below: the partial sums s4[j] are lane j of the chunk, and the
      // pairings ((a0 + a1) + (a2 + a3)) are formed by swapping neighbouring lanes, then pairs
      // (IEEE addition commutes exactly, so every lane of a chunk gets the same bits).
      constexpr size_t P = static_cast<size_t>(L) / 4;
      constexpr vi swap1 = make_mask([](int i) -> long long { return i ^ 1; });
      constexpr vi swap2 = make_mask([](int i) -> long long { return i ^ 2; });
      const size_t seg = c / 4;
      for (size_t q0 = 0; q0 < chunks; q0 += P) {
        vd s4 = splat(0.0);
        const double* c0 = xb + q0 * c;
#if BOT4_LANES == 8
        const double* c1 = xb + (q0 + 1 < chunks ? q0 + 1 : chunks - 1) * c;
        for (size_t t = 0; t < c; t += 4)
          s4 += reinterpret_cast<vd>(
              _mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_loadu_pd(c0 + t)), _mm256_loadu_pd(c1 + t), 1));
#else
        for (size_t t = 0; t < c; t += 4) s4 += vload(c0 + t);
#endif
        const vd pair = s4 + __builtin_shuffle(s4, swap1);
        const vd mean = (pair + __builtin_shuffle(pair, swap2)) * inv_c;
        // rows r = 4 pc + j are the consecutive segments from chunk q0 on
        const size_t rows = (chunks - q0) * 4 < static_cast<size_t>(L) ? (chunks - q0) * 4 : static_cast<size_t>(L);
        load_chunk_tile(xb + q0 * c, seg, 0, rows, tile);
        vd y = splat(0.0), h = splat(-__builtin_inf()), l = splat(__builtin_inf()), ss = splat(0.0);
        for (size_t t = 0; t < seg; ++t) {
          const vd dev = tile[t] - mean;
          y += dev;
          h = vmax(h, y);
          l = vmin(l, y);
          const vd d2 = dev * dev;
          const vd e = d2 + __builtin_shuffle(d2, swap1);
          ss += e + __builtin_shuffle(e, swap2);
        }
        alignas(64) double ya[L], ha[L], la[L], sa[L];
        vstore(ya, y);
        vstore(ha, h);
        vstore(la, l);
        vstore(sa, ss);
        auto mx = [](double a, double b) { return a > b ? a : b; };
        auto mn = [](double a, double b) { return a < b ? a : b; };
        for (size_t pc = 0; pc < P && q0 + pc < chunks; ++pc) {
          const double* yy = ya + 4 * pc;
          const double* hh = ha + 4 * pc;
          const double* ll = la + 4 * pc;
          const double off1 = yy[0], off2 = off1 + yy[1], off3 = off2 + yy[2];
          const double hi = mx(mx(hh[0], off1 + hh[1]), mx(off2 + hh[2], off3 + hh[3]));
          const double lo = mn(mn(ll[0], off1 + ll[1]), mn(off2 + ll[2], off3 + ll[3]));
          r_chunk[q0 + pc] = hi - lo;
          ss_chunk[q0 + pc] = sa[4 * pc];
        }
      }
      for (size_t q = chunks; q < static_cast<size_t>(L); ++q) r_chunk[q] = ss_chunk[q] = 1.0;  // unread lanes
    } else
#endif
    for (size_t q0 = 0; q0 < chunks; q0 += L) {
      load_chunk_tile(xb, c, q0, chunks, tile);
      // c is a multiple of 8. Four partial sums for the mean, and Y in four segments of c/4
      // samples run as independent chains: segment k's running sum starts at 0 and its max and
      // min are shifted by the total of the segments before it (rounding is monotonic, so the
      // max of shifted values is the shifted max). Same association at every width.
      const size_t seg = c / 4;
      vd s4[4] = {splat(0.0), splat(0.0), splat(0.0), splat(0.0)};
      for (size_t t = 0; t < c; t += 4)
        for (int j = 0; j < 4; ++j) s4[j] += tile[t + static_cast<size_t>(j)];
      const vd mean = ((s4[0] + s4[1]) + (s4[2] + s4[3])) * inv_c;
      vd y[4], h[4], l[4];
      vd ss = splat(0.0);
      for (int j = 0; j < 4; ++j) {
        y[j] = splat(0.0);
        h[j] = splat(-__builtin_inf());
        l[j] = splat(__builtin_inf());
      }
      for (size_t t = 0; t < seg; ++t) {
        vd d2[4];
        for (int j = 0; j < 4; ++j) {
          const vd dev = tile[static_cast<size_t>(j) * seg + t] - mean;
          y[j] += dev;
          h[j] = vmax(h[j], y[j]);
          l[j] = vmin(l[j], y[j]);
          d2[j] = dev * dev;
        }
        ss += (d2[0] + d2[1]) + (d2[2] + d2[3]);  // one chain, few live registers
      }
      const vd off1 = y[0], off2 = off1 + y[1], off3 = off2 + y[2];
      const vd hi = vmax(vmax(h[0], off1 + h[1]), vmax(off2 + h[2], off3 + h[3]));
      const vd lo = vmin(vmin(l[0], off1 + l[1]), vmin(off2 + l[2], off3 + l[3]));
      // R and the sum of squares only; the square root and division run below over all
      // chunks at once, off the per-chunk dependency chains
      vstore(r_chunk + q0, hi - lo);
      vstore(ss_chunk + q0, ss);
    }
    for (size_t q = 0; q < chunks; q += L)
      vstore(rs_chunk + q, vload(r_chunk + q) / vsqrt(vload(ss_chunk + q) * inv_c1));
    double rs_sum = 0.0;
    size_t used = 0;
    for (size_t q = 0; q < chunks; ++q) {
      // nolds drops chunks with R == 0, i.e. constant chunks; test constancy on x itself so
      // that the rounding noise of a constant chunk's R cannot count
      if (!(r_chunk[q] != 0.0) || !any_bit(chg, q * c + 1, q * c + c)) continue;
      rs_sum += rs_chunk[q];
      ++used;
    }
    if (used == 0) continue;
    lx[k] = tables().ln_int[c];
    rs[k] = rs_sum / static_cast<double>(used);
    ++k;
  }
  if (k < 2) return kNaN;
  double ly[16];
  log_values(rs, ly, k);
  double mx = 0.0, my = 0.0;
  for (size_t i = 0; i < k; ++i) mx += lx[i], my += ly[i];
  mx /= static_cast<double>(k);
  my /= static_cast<double>(k);
  double sxx = 0.0, sxy = 0.0;
  for (size_t i = 0; i < k; ++i) {
    sxx += (lx[i] - mx) * (lx[i] - mx);
    sxy += (lx[i] - mx) * (ly[i] - my);
  }
  const double h = sxy / sxx;
  return finite(h) ? h : kNaN;
}

double hurst_rs(const double* x, size_t n) {
  if (n > kMaxWindow || n < 32) return kNaN;
  Prep p(x, n);
  return hurst_rs_impl(p);
}

// ------------------------------------------------------------------------------------------
// dfa: antropy.detrended_fluctuation. Its scales (tables().dfa_nvals, nolds' logarithmic_n(4,
// 0.1 N, 1.2)) and its regression (the 1e-9 added to the denominator) are reproduced exactly;
// one chunk per lane, so a chunk's sums run in antropy's order.
constexpr double kDfaEpsilon = 1e-9;
constexpr int kDfaGroup = L == 8 ? 2 : L == 4 ? 2 : 4;  // vectors of chunks in flight

// Does x change between two samples of the same chunk (x[t] != x[t-1] with t % len != 0) for
// some t < limit? If not, every chunk of the walk is a straight line and F(len) is exactly 0.
inline bool has_interior_change(const uint64_t* chg, size_t len, size_t limit) {
  const size_t words = (limit + 63) / 64;
  for (size_t w = 0; w < words; ++w) {
    uint64_t bits = chg[w];
    if (w == words - 1 && limit % 64) bits &= (uint64_t{1} << (limit % 64)) - 1;
    while (bits) {
      const auto t = static_cast<uint32_t>(w * 64 + static_cast<size_t>(__builtin_ctzll(bits)));
      if (t % static_cast<uint32_t>(len) != 0) return true;
      bits &= bits - 1;
    }
  }
  return false;
}

double dfa_impl(Prep& p) {
  const size_t n = p.n;
  if (n > kMaxWindow || n < 8) return kNaN;
  const double* xb = p.zero_padded();
  const uint64_t* chg = p.changes();
  if (!any_bit(chg, 1, n)) return kNaN;  // constant window
  const double mean = p.mean();
  if (!finite(mean)) return kNaN;
  alignas(64) double walk[kBuf];  // cumsum(x - mean)
  {
    alignas(64) double dev[kBuf];
    const size_t n8 = (n + 7) / 8 * 8;
    const vd mu = splat(mean);
    for (size_t i = 0; i < n8; i += L) vstore(dev + i, keep_first(vload(xb + i) - mu, n - (i < n ? i : n)));
    prefix_sum8(dev, walk, n8);
    for (size_t i = n8; i < n + kVecPad; ++i) walk[i] = 0.0;
  }
  const WindowKernelTables& tab = tables();
  const uint16_t* nvals = tab.dfa_nvals[n];
  const size_t nv_count = tab.dfa_nvals_count[n];
  double lx[WindowKernelTables::kMaxDfaScales], fv[WindowKernelTables::kMaxDfaScales];
  size_t k = 0;
  // F^2 per chunk of every scale, one block per scale (rounded up to whole groups): the
  // scales' vector work runs first, then their serial sums, which are independent chains the
  // core overlaps instead of waiting on one after each scale. The scales are distinct integers
  // >= 4, so the chunks of all scales number at most n (1/4 + 1/5 + ... + 1/35) < 2.3 n.
  struct Scale {
    size_t nv, chunks, off;
  };
  Scale scales[WindowKernelTables::kMaxDfaScales];
  size_t n_scales = 0, fl_off = 0;
  alignas(64) double fl_all[3 * kMaxWindow + WindowKernelTables::kMaxDfaScales * kDfaGroup * L];
#if BOT4_LANES > 1
  alignas(64) vd tile[kDfaGroup][kMaxWindow / 8 + 16];
#endif
  for (size_t a = 0; a < nv_count; ++a) {
    const size_t nv = nvals[a];
    const size_t chunks = n / nv;
    if (chunks == 0) return kNaN;  // antropy: the mean of no fluctuations is NaN, so is alpha
    // antropy drops F(n) == 0; rounding would hide an exact zero, so test it on x itself
    if (!has_interior_change(chg, nv, chunks * nv)) continue;
    const double dn = static_cast<double>(nv);
    double* fl = fl_all + fl_off;
    double sx = 0.0, sx2 = 0.0;
    for (size_t t = 0; t < nv; ++t) {
      sx += static_cast<double>(t);
      sx2 += static_cast<double>(t) * static_cast<double>(t);
    }
    const vd den = splat(dn * sx2 - sx * sx + kDfaEpsilon);
    const vd vsx = splat(sx), vdn = splat(dn), vmean_t = splat(sx / dn);
    for (size_t q0 = 0; q0 < chunks; q0 += kDfaGroup * L) {
      // kDfaGroup interleaved vectors of chunks: independent chains for the out-of-order core
      const vd* tp[kDfaGroup];
      for (int u = 0; u < kDfaGroup; ++u) {
        const size_t qu = q0 + static_cast<size_t>(u * L);
        const size_t qc = qu < chunks ? qu : chunks - 1;
#if BOT4_LANES == 1
        tp[u] = walk + qc * nv;  // one chunk per lane: its samples are already contiguous
#else
        load_chunk_tile(walk, nv, qc, chunks, tile[u]);
        tp[u] = tile[u];
#endif
      }
      vd sy[kDfaGroup], sty[kDfaGroup];
      for (int u = 0; u < kDfaGroup; ++u) sy[u] = sty[u] = splat(0.0);
      vd tt = splat(0.0);
      for (size_t t = 0; t < nv; ++t) {
        for (int u = 0; u < kDfaGroup; ++u) {
          sy[u] += tp[u][t];
          sty[u] += tt * tp[u][t];
        }
        tt += splat(1.0);
      }
      vd slope[kDfaGroup], intercept[kDfaGroup], rss[kDfaGroup];
      for (int u = 0; u < kDfaGroup; ++u) {
        slope[u] = (vdn * sty[u] - vsx * sy[u]) / den;
        intercept[u] = sy[u] / vdn - slope[u] * vmean_t;
        rss[u] = splat(0.0);
      }
      tt = splat(0.0);
      for (size_t t = 0; t < nv; ++t) {
        for (int u = 0; u < kDfaGroup; ++u) {
          const vd r = tp[u][t] - (intercept[u] + slope[u] * tt);
          rss[u] += r * r;
        }
        tt += splat(1.0);
      }
      for (int u = 0; u < kDfaGroup; ++u) vstore(fl + q0 + static_cast<size_t>(u * L), rss[u] / vdn);
    }
    scales[n_scales++] = Scale{nv, chunks, fl_off};
    constexpr size_t kGroup = static_cast<size_t>(kDfaGroup * L);
    fl_off += (chunks + kGroup - 1) / kGroup * kGroup;
  }
  for (size_t a = 0; a < n_scales; ++a) {
    const double* fl = fl_all + scales[a].off;
    const size_t chunks = scales[a].chunks;
    double total = 0.0;
    for (size_t q = 0; q < chunks; ++q) total += fl[q];
    const double f = __builtin_sqrt(total / static_cast<double>(chunks));
    if (f == 0.0) continue;
    if (!finite(f)) return kNaN;
    lx[k] = tab.ln_int[scales[a].nv];
    fv[k] = f;
    ++k;
  }
  if (k < 2) return kNaN;
  double ly[WindowKernelTables::kMaxDfaScales];
  log_values(fv, ly, k);
  // antropy's _linear_regression, epsilon included
  double sx2 = 0.0, sx = 0.0, sy = 0.0, sxy = 0.0;
  for (size_t i = 0; i < k; ++i) {
    sx2 += lx[i] * lx[i];
    sx += lx[i];
    sxy += lx[i] * ly[i];
    sy += ly[i];
  }
  const double dk = static_cast<double>(k);
  const double alpha = (dk * sxy - sx * sy) / (dk * sx2 - sx * sx + kDfaEpsilon);
  return finite(alpha) ? alpha : kNaN;
}

double dfa(const double* x, size_t n) {
  if (n > kMaxWindow || n < 8) return kNaN;
  Prep p(x, n);
  return dfa_impl(p);
}

// ------------------------------------------------------------------------------------------
// sample_entropy: antropy.sample_entropy (Chebyshev, r = 0.2 std(ddof=0), match when
// |difference| < r). Template pairs (i, i + d), i + d <= N - m - 1, as in antropy's loop.
// For each shift d the comparisons e_t = |x_t - x_{t+d}| < r become a bit string (one vector
// compare yields L bits); a pair of length-m templates matches when m consecutive bits are set,
// which is an AND of shifted words, and the matches are counted with popcount.

// Bits t in [0, 64) of |p[t] - q[t]| < r.
inline uint64_t close_word(const double* p, const double* q, vd vr) {
#if BOT4_LANES == 8
  // eight compare masks straight into one 64-bit mask register, no round trip through GPRs
  __mmask16 k16[4];
  for (int j = 0; j < 4; ++j) {
    const __mmask16 lo = static_cast<__mmask16>(bits_lt(vabs(vload(p + 16 * j) - vload(q + 16 * j)), vr));
    const __mmask16 hi = static_cast<__mmask16>(bits_lt(vabs(vload(p + 16 * j + 8) - vload(q + 16 * j + 8)), vr));
    k16[j] = _mm512_kunpackb(hi, lo);
  }
  const __mmask32 lo32 = _mm512_kunpackw(k16[1], k16[0]);
  const __mmask32 hi32 = _mm512_kunpackw(k16[3], k16[2]);
  return _cvtmask64_u64(_mm512_kunpackd(hi32, lo32));
#else
  uint64_t bits = 0;
  for (int b = 0; b < 64; b += L)
    bits |= static_cast<uint64_t>(bits_lt(vabs(vload(p + b) - vload(q + b)), vr)) << b;
  return bits;
#endif
}

// Bits t in [0, L * nvec) of |p[t] - q[t]| < r, higher bits 0 (nvec <= 64 / L): the last word
// of a shift, whose tail bits are 0 anyway (they compare against the NaN padding).
inline uint64_t close_word_n(const double* p, const double* q, vd vr, size_t nvec) {
  uint64_t bits = 0;
  for (size_t j = 0; j < nvec; ++j)
    bits |= static_cast<uint64_t>(bits_lt(vabs(vload(p + j * L) - vload(q + j * L)), vr)) << (j * L);
  return bits;
}

// Mask of the bits of word w below bit position `end` (all, some or none of them).
inline uint64_t bits_below(size_t end, size_t w) {
  if (end <= w * 64) return 0;
  return low_bits(end - w * 64);
}

// A and B counts for template length m. Bits past the last pair (i = templates - d - 1) vanish
// on their own because e_t = 0 for t >= n - d, except one: the length-m match starting at
// i = templates - d, which has no (m+1)-th sample and which antropy does not count in B; the
// B mask stops just before it.
template <int kM>
void sampen_counts(const double* xb, size_t n, size_t m_runtime, vd vr, uint64_t& a, uint64_t& b) {
  const size_t m = kM > 0 ? static_cast<size_t>(kM) : m_runtime;
  const size_t templates = n - m;  // starts 0 .. n-m-1
  if constexpr (kM > 0) {
    // m < 64: a word's shifted neighbours need only the next word, so the bit string streams
    // through two registers
    for (size_t d = 1; d < templates; ++d) {
      // bits t >= n - d compare against the NaN padding and are 0: the last word only computes
      // the vectors that hold bits below n - d
      const size_t valid = n - d;
      const size_t words = (valid + 63) / 64;
      const size_t last = templates - d;
      auto word = [&](size_t w) {
        const size_t rem = valid - w * 64;
        return rem >= 64 ? close_word(xb + w * 64, xb + w * 64 + d, vr)
                         : close_word_n(xb + w * 64, xb + w * 64 + d, vr, (rem + L - 1) / L);
      };
      uint64_t cur = word(0);
      for (size_t w = 0; w < words; ++w) {
        const uint64_t nxt = w + 1 < words ? word(w + 1) : 0;
        uint64_t bm = cur;
        for (int j = 1; j < kM; ++j) bm &= (cur >> j) | (nxt << (64 - j));
        const uint64_t am = bm & ((cur >> kM) | (nxt << (64 - kM)));
        b += static_cast<uint64_t>(popcount(bm & bits_below(last, w)));
        a += static_cast<uint64_t>(popcount(am));
        cur = nxt;
      }
    }
  } else {
    uint64_t e[2 * kWords];  // shifted reads reach m / 64 + 1 words past the data
    for (size_t d = 1; d < templates; ++d) {
      const size_t words = (n - d + 63) / 64;
      for (size_t w = 0; w < words; ++w) e[w] = close_word(xb + w * 64, xb + w * 64 + d, vr);
      for (size_t w = words; w < words + m / 64 + 2; ++w) e[w] = 0;
      const size_t last = templates - d;
      for (size_t w = 0; w < words; ++w) {
        uint64_t bm = e[w];
        for (size_t j = 1; j < m; ++j) bm &= bits_from(e, w, j);
        b += static_cast<uint64_t>(popcount(bm & bits_below(last, w)));
        a += static_cast<uint64_t>(popcount(bm & bits_from(e, w, m)));
      }
    }
  }
}

double sample_entropy_impl(Prep& p, int order) {
  const size_t n = p.n;
  if (order < 1 || n > kMaxWindow) return kNaN;
  const size_t m = static_cast<size_t>(order);
  if (n < m + 2) return kNaN;
  const double* xb = p.nan_padded();  // the match bits past the pairs rely on the NaN padding
  if (p.constant()) return kNaN;
  const double r = 0.2 * __builtin_sqrt(p.css() / static_cast<double>(n));
  if (!(r > 0.0) || !finite(r)) return kNaN;
  uint64_t a_count = 0, b_count = 0;
  switch (m) {
    case 1: sampen_counts<1>(xb, n, m, splat(r), a_count, b_count); break;
    case 2: sampen_counts<2>(xb, n, m, splat(r), a_count, b_count); break;
    case 3: sampen_counts<3>(xb, n, m, splat(r), a_count, b_count); break;
    default: sampen_counts<0>(xb, n, m, splat(r), a_count, b_count); break;
  }
  if (a_count == 0 || b_count == 0) return kNaN;
  return -__builtin_log(static_cast<double>(a_count) / static_cast<double>(b_count));
}

double sample_entropy(const double* x, size_t n, int order) {
  if (order < 1 || n > kMaxWindow) return kNaN;
  if (n < static_cast<size_t>(order) + 2) return kNaN;
  Prep p(x, n);
  return sample_entropy_impl(p, order);
}

// ------------------------------------------------------------------------------------------
// perm_entropy: antropy.perm_entropy(normalize=True). Ordinal patterns are the stable argsort
// of each embedded vector: x_a precedes x_b (a < b) iff x_a <= x_b.
//
// order <= 4: each pairwise comparison is a bit plane over the windows (L bits per vector
// compare); the count of a pattern is the popcount of the AND of its plane literals.
// order >= 5: each window's Lehmer code (inversion counts weighted by factorials) is built in
// lanes, then counted in a histogram (order <= 6) or by sorting the codes.
constexpr int kMaxPermOrder = 10;

// The literals of a pattern, split into the comparisons among the first order-1 positions
// ("head": pairs (a, b), b < order-1, in lexicographic order) and those against the last
// position ("tail": pairs (a, order-1)). Each pattern's count is popcount(head[ia] & tail[ib]),
// with head[] / tail[] the ANDs of every literal combination, shared by all patterns.
struct PlanePatterns {
  int count = 0;
  uint8_t head[24] = {};  // bit i: head pair i must hold x_a <= x_b
  uint8_t tail[24] = {};  // bit a: x_a <= x_last
};

constexpr PlanePatterns make_patterns(int d) {
  PlanePatterns out;
  int perm[4] = {0, 1, 2, 3};  // perm[i] = rank of position i; lexicographic enumeration
  while (true) {
    uint8_t head = 0, tail = 0;
    int i = 0;
    for (int b = 1; b < d - 1; ++b)  // (0,1), (0,2), (1,2): pairs ordered by b, then a
      for (int a = 0; a < b; ++a, ++i)
        if (perm[a] < perm[b]) head = static_cast<uint8_t>(head | (1u << i));
    for (int a = 0; a < d - 1; ++a)
      if (perm[a] < perm[d - 1]) tail = static_cast<uint8_t>(tail | (1u << a));
    out.head[out.count] = head;
    out.tail[out.count] = tail;
    ++out.count;
    int k = d - 2;
    while (k >= 0 && perm[k] >= perm[k + 1]) --k;
    if (k < 0) break;
    int j = d - 1;
    while (perm[j] <= perm[k]) --j;
    int t = perm[k];
    perm[k] = perm[j];
    perm[j] = t;
    for (int lo = k + 1, hi = d - 1; lo < hi; ++lo, --hi) {
      t = perm[lo];
      perm[lo] = perm[hi];
      perm[hi] = t;
    }
  }
  return out;
}
constexpr PlanePatterns kPatterns2 = make_patterns(2);
constexpr PlanePatterns kPatterns3 = make_patterns(3);
constexpr PlanePatterns kPatterns4 = make_patterns(4);

double finish_perm_entropy(const uint32_t* counts, size_t k, size_t total, int order) {
  double h = entropy_bits(counts, k, total) / tables().log2_factorial[order];
  if (h < 0.0) h = 0.0;
  if (h > 1.0) h = 1.0;
  return h;
}

// Bits t in [0, 64) of p[t] <= q[t].
inline uint64_t le_word(const double* p, const double* q) {
  uint64_t bits = 0;
  for (int s = 0; s < 64; s += L) bits |= static_cast<uint64_t>(bits_le(vload(p + s), vload(q + s))) << s;
  return bits;
}

// All ANDs of `k` literals (literal i is plane[i] or its complement, chosen by bit i of the
// combination), each also ANDed with `base`.
inline void literal_products(const uint64_t* plane, int k, uint64_t base, uint64_t* out) {
  out[0] = base;
  for (int i = 0; i < k; ++i) {
    const int half = 1 << i;
    for (int c = half - 1; c >= 0; --c) {
      out[c | half] = out[c] & plane[i];
      out[c] = out[c] & ~plane[i];
    }
  }
}

double perm_entropy_planes(const double* xb, size_t windows, int order, size_t delay) {
  // x_a <= x_b for positions a < b of the window at t is Q_k[t + a delay], k = b - a, with
  // Q_k[s] = x_s <= x_{s + k delay}: order-1 compared bit strings, every other pair a shift.
  uint64_t q[3][2 * kWords + 2];
  for (int k = 1; k < order; ++k) {
    const size_t span = windows + static_cast<size_t>(order - 1 - k) * delay;  // s < span needed
    const size_t words = (span + 63) / 64;
    const size_t kd = static_cast<size_t>(k) * delay;
    for (size_t w = 0; w < words; ++w) q[k - 1][w] = le_word(xb + w * 64, xb + w * 64 + kd);
    for (size_t w = words; w < words + 2; ++w) q[k - 1][w] = 0;
  }
  const PlanePatterns& pat = order == 2 ? kPatterns2 : order == 3 ? kPatterns3 : kPatterns4;
  const int n_head = (order - 1) * (order - 2) / 2, n_tail = order - 1;
  uint32_t counts[24] = {};
  const size_t words = (windows + 63) / 64;
  for (size_t w = 0; w < words; ++w) {
    uint64_t head_plane[3], tail_plane[3];
    int i = 0;
    for (int b = 1; b < order - 1; ++b)
      for (int a = 0; a < b; ++a, ++i)
        head_plane[i] = bits_from(q[b - a - 1], w, static_cast<size_t>(a) * delay);
    for (int a = 0; a < order - 1; ++a)
      tail_plane[a] = bits_from(q[order - 1 - a - 1], w, static_cast<size_t>(a) * delay);
    uint64_t head[8], tail[8];
    literal_products(head_plane, n_head, low_bits(windows - w * 64), head);
    literal_products(tail_plane, n_tail, ~uint64_t{0}, tail);
    for (int c = 0; c < pat.count; ++c)
      counts[c] += static_cast<uint32_t>(popcount(head[pat.head[c]] & tail[pat.tail[c]]));
  }
  return finish_perm_entropy(counts, static_cast<size_t>(pat.count), windows, order);
}

void sort_doubles(double* a, size_t n) {  // heapsort: no allocation, no std template
  auto sift = [&](size_t root, size_t end) {
    while (2 * root + 1 < end) {
      size_t child = 2 * root + 1;
      if (child + 1 < end && a[child] < a[child + 1]) ++child;
      if (!(a[root] < a[child])) return;
      const double t = a[root];
      a[root] = a[child];
      a[child] = t;
      root = child;
    }
  };
  for (size_t start = n / 2; start-- > 0;) sift(start, n);
  for (size_t end = n; end > 1; --end) {
    const double t = a[0];
    a[0] = a[end - 1];
    a[end - 1] = t;
    sift(0, end - 1);
  }
}

double perm_entropy_lehmer(const double* xb, size_t windows, int order, size_t delay) {
  alignas(64) double codes[kBuf];
  const double* fact = tables().factorial;
  for (size_t t = 0; t < windows; t += L) {
    vd code = splat(0.0);
    for (int a = 0; a < order; ++a) {
      const vd xa = vload(xb + t + static_cast<size_t>(a) * delay);
      const vd weight = splat(fact[order - 1 - a]);
      for (int b = a + 1; b < order; ++b)
        code += sel(lt(vload(xb + t + static_cast<size_t>(b) * delay), xa), weight, splat(0.0));
    }
    vstore(codes + t, code);
  }
  uint32_t counts[kBuf];
  size_t bins = 0;
  if (order <= 6) {
    const size_t k = static_cast<size_t>(fact[order]);
    uint32_t hist[720];
    for (size_t i = 0; i < k; ++i) hist[i] = 0;
    for (size_t t = 0; t < windows; ++t) ++hist[static_cast<size_t>(codes[t])];
    for (size_t i = 0; i < k; ++i)
      if (hist[i]) counts[bins++] = hist[i];
  } else {
    sort_doubles(codes, windows);
    size_t run = 1;
    for (size_t t = 1; t <= windows; ++t) {
      if (t < windows && codes[t] == codes[t - 1]) {
        ++run;
      } else {
        counts[bins++] = static_cast<uint32_t>(run);
        run = 1;
      }
    }
  }
  return finish_perm_entropy(counts, bins, windows, order);
}

double perm_entropy_impl(Prep& p, int order, int delay) {
  const size_t n = p.n;
  if (order < 2 || order > kMaxPermOrder || delay < 1 || n > kMaxWindow) return kNaN;
  const size_t span = static_cast<size_t>(order - 1) * static_cast<size_t>(delay);
  if (span >= n) return kNaN;
  const size_t windows = n - span;
  const double* xb = p.nan_padded();
  // a NaN has no order (antropy returns NaN for it); an infinity poisons the same test
  if (!p.all_finite()) return kNaN;
  if (order <= 4) return perm_entropy_planes(xb, windows, order, static_cast<size_t>(delay));
  return perm_entropy_lehmer(xb, windows, order, static_cast<size_t>(delay));
}

double perm_entropy(const double* x, size_t n, int order, int delay) {
  if (order < 2 || order > kMaxPermOrder || delay < 1 || n > kMaxWindow) return kNaN;
  if (static_cast<size_t>(order - 1) * static_cast<size_t>(delay) >= n) return kNaN;
  Prep p(x, n);
  return perm_entropy_impl(p, order, delay);
}

// ------------------------------------------------------------------------------------------
// spectral_entropy: antropy.spectral_entropy(sf=1, method='fft', normalize=True), i.e. the
// one-sided scipy periodogram (constant detrend, boxcar; DC and Nyquist single, the other bins
// doubled; the 1/(fs n) scale cancels) -> p = P / sum P -> -sum p log2 p / log2(n/2 + 1).
//
// The real FFT of n points is one complex FFT of M = n/2 points on z_j = x_2j + i x_2j+1
// (radix-2, decimation in time: bit-reversed input, natural output), then the usual split
// X_k = E_k + w^k O_k. Butterfly stages with half-size H >= L run on contiguous vectors; the
// first log2 L stages (H < L) act inside pairs of vectors through fixed shuffles.
struct FftWork {
  alignas(64) double re[kMaxWindow / 2 + kPad];
  alignas(64) double im[kMaxWindow / 2 + kPad];
};

inline void butterfly(vd ar, vd ai, vd br, vd bi, vd wr, vd wi, vd& ur, vd& ui, vd& vr, vd& vi_) {
  const vd tr = br * wr - bi * wi;
  const vd ti = br * wi + bi * wr;
  ur = ar + tr;
  ui = ai + ti;
  vr = ar - tr;
  vi_ = ai - ti;
}

void fft_stage_contiguous(const WindowKernelTables& tab, FftWork& w, size_t m, size_t h) {
  const double* twr = tab.tw_re + h;
  const double* twi = tab.tw_im + h;
  for (size_t s = 0; s < m; s += 2 * h) {
    for (size_t j = 0; j < h; j += L) {
      vd ur, ui, vr, vi_;
      butterfly(vload(w.re + s + j), vload(w.im + s + j), vload(w.re + s + j + h), vload(w.im + s + j + h),
                vload(twr + j), vload(twi + j), ur, ui, vr, vi_);
      vstore(w.re + s + j, ur);
      vstore(w.im + s + j, ui);
      vstore(w.re + s + j + h, vr);
      vstore(w.im + s + j + h, vi_);
    }
  }
}

void fft_stage_scalar(const WindowKernelTables& tab, FftWork& w, size_t m, size_t h) {
  const double* twr = tab.tw_re + h;
  const double* twi = tab.tw_im + h;
  for (size_t s = 0; s < m; s += 2 * h) {
    for (size_t j = 0; j < h; ++j) {
      const double br = w.re[s + j + h], bi = w.im[s + j + h];
      const double tr = br * twr[j] - bi * twi[j];
      const double ti = br * twi[j] + bi * twr[j];
      const double ar = w.re[s + j], ai = w.im[s + j];
      w.re[s + j] = ar + tr;
      w.im[s + j] = ai + ti;
      w.re[s + j + h] = ar - tr;
      w.im[s + j + h] = ai - ti;
    }
  }
}

#if BOT4_LANES > 1
// A stage with half-size H < L on 2L consecutive points held in two vectors: the butterfly
// "top" elements (position p with p % 2H < H, in order) and their partners p + H are gathered
// into U and V by shuffles, combined, and put back.
template <int H>
void fft_stage_small(const WindowKernelTables& tab, FftWork& w, size_t m) {
  constexpr vi mu = make_mask([](int l) -> long long { return (l / H) * 2 * H + l % H; });
  constexpr vi mv = make_mask([](int l) -> long long { return (l / H) * 2 * H + l % H + H; });
  // position p of the 2L block comes from U lane or V lane (V lanes are indices L..2L-1)
  constexpr vi ma = make_mask([](int i) -> long long {
    const int blk = i / (2 * H), r = i % (2 * H);
    return r < H ? blk * H + r : L + blk * H + (r - H);
  });
  constexpr vi mb = make_mask([](int i) -> long long {
    const int p = i + L, blk = p / (2 * H), r = p % (2 * H);
    return r < H ? blk * H + r : L + blk * H + (r - H);
  });
  vd wr, wi;
  for (int l = 0; l < L; ++l) {
    wr[l] = tab.tw_re[H + l % H];
    wi[l] = tab.tw_im[H + l % H];
  }
  for (size_t s = 0; s < m; s += 2 * L) {
    const vd ar = vload(w.re + s), br = vload(w.re + s + L);
    const vd ai = vload(w.im + s), bi = vload(w.im + s + L);
    vd ur, ui, vr, vi_;
    butterfly(__builtin_shuffle(ar, br, mu), __builtin_shuffle(ai, bi, mu), __builtin_shuffle(ar, br, mv),
              __builtin_shuffle(ai, bi, mv), wr, wi, ur, ui, vr, vi_);
    vstore(w.re + s, __builtin_shuffle(ur, vr, ma));
    vstore(w.re + s + L, __builtin_shuffle(ur, vr, mb));
    vstore(w.im + s, __builtin_shuffle(ui, vi_, ma));
    vstore(w.im + s + L, __builtin_shuffle(ui, vi_, mb));
  }
}
#endif

// In-place forward complex FFT of m = 2^lm points whose input is already bit-reversed.
void fft_dit(const WindowKernelTables& tab, FftWork& w, size_t m) {
  size_t h = 1;
#if BOT4_LANES > 1
  if (m >= 2 * static_cast<size_t>(L)) {
    fft_stage_small<1>(tab, w, m);
    fft_stage_small<2>(tab, w, m);
    if constexpr (L == 8) fft_stage_small<4>(tab, w, m);
    h = L;
  }
#endif
  for (; h < m; h *= 2) {
    if (h >= static_cast<size_t>(L)) fft_stage_contiguous(tab, w, m, h);
    else fft_stage_scalar(tab, w, m, h);
  }
}

double spectral_entropy_impl(Prep& p) {
  const size_t n = p.n;
  if (n < 4 || n > kMaxWindow || (n & (n - 1)) != 0) return kNaN;
  if (p.constant()) return kNaN;
  const double* xb = p.any_padded();
  const double mean = p.mean();
  const double var = p.css();
  if (!(var > 0.0) || !finite(var)) return kNaN;
  // The periodogram's scale cancels in p = P / sum P; working on unit-variance data keeps |X|^2
  // inside the double range for any finite input.
  const double scale = 1.0 / __builtin_sqrt(var / static_cast<double>(n));
  const size_t m = n / 2;
  int lm = 0;
  while ((size_t{1} << lm) < m) ++lm;
  const WindowKernelTables& tab = tables();
  const uint16_t* rev = tab.bitrev10;
  const int shift = 10 - lm;
  FftWork w;
  for (size_t j = 0; j < m; ++j) {
    const size_t r = static_cast<size_t>(rev[j] >> shift);
    w.re[r] = (xb[2 * j] - mean) * scale;
    w.im[r] = (xb[2 * j + 1] - mean) * scale;
  }
  fft_dit(tab, w, m);
  w.re[m] = w.re[0];
  w.im[m] = w.im[0];
  // one-sided periodogram, bins 0..m
  alignas(64) double pw[kMaxWindow / 2 + kPad];
  const double* twr = tab.tw_re + m;  // exp(-2 pi i k / n), k < m
  const double* twi = tab.tw_im + m;
  const vd half = splat(0.5), two = splat(2.0);
  auto bins = [&](size_t k, vd zr, vd zi, vd cr, vd ci, vd wr, vd wi) {
    // cr, ci: conj(Z[m - k]) lanes
    const vd er = half * (zr + cr), ei = half * (zi + ci);
    const vd orr = half * (zi - ci), oi = -(half * (zr - cr));
    const vd xr = er + (wr * orr - wi * oi);
    const vd xi = ei + (wr * oi + wi * orr);
    vstore(pw + k, two * (xr * xr + xi * xi));
  };
  if (m >= static_cast<size_t>(L)) {
    for (size_t k = 0; k < m; k += L) {
      const size_t c = m - k - (L - 1);
      bins(k, vload(w.re + k), vload(w.im + k), reverse(vload(w.re + c)), -reverse(vload(w.im + c)),
           vload(twr + k), vload(twi + k));
    }
  } else {
    for (size_t k = 0; k < m; ++k) {
      const double zr = w.re[k], zi = w.im[k], cr = w.re[m - k], ci = -w.im[m - k];
      const double er = 0.5 * (zr + cr), ei = 0.5 * (zi + ci);
      const double orr = 0.5 * (zi - ci), oi = -(0.5 * (zr - cr));
      const double xr = er + (twr[k] * orr - twi[k] * oi);
      const double xi = ei + (twr[k] * oi + twi[k] * orr);
      pw[k] = 2.0 * (xr * xr + xi * xi);
    }
  }
  // DC and Nyquist are not doubled: X_0 = Re Z0 + Im Z0, X_{n/2} = Re Z0 - Im Z0.
  pw[0] = (w.re[0] + w.im[0]) * (w.re[0] + w.im[0]);
  pw[m] = (w.re[0] - w.im[0]) * (w.re[0] - w.im[0]);
  for (size_t k = m + 1; k <= m + 8; ++k) pw[k] = 0.0;
  const size_t nb = m + 1;
  const double total = csum(nb, [&](size_t k) { return vload(pw + k); });
  if (!(total > 0.0) || !finite(total)) return kNaN;
  const vd inv = splat(1.0 / total);
  const double h = csum(nb, [&](size_t k) {
    const vd p = vload(pw + k) * inv;
    const vi pos = gt(p, splat(0.0));
    // lanes with p == 0 (or the slack past nb) take log2(1) = 0 and contribute 0
    const vd safe = sel(pos, p, splat(1.0));
    return sel(pos, p * vlog2(safe), splat(0.0));
  });
  return -h / tab.log2_int[nb];
}

double spectral_entropy(const double* x, size_t n) {
  if (n < 4 || n > kMaxWindow || (n & (n - 1)) != 0) return kNaN;
  Prep p(x, n);
  return spectral_entropy_impl(p);
}

// ------------------------------------------------------------------------------------------
// wavelet_energies: pywt.wavedec(x, 'db2', mode='periodization', level=levels). At each level
// (input length N, M = N/2 outputs) pywt computes out[o] = sum_j f[j] x[(2o + 2 - j) mod N];
// with E = even samples and O = odd samples that is f0 E[o+1] + f1 O[o] + f2 E[o] + f3 O[o-1],
// i.e. four contiguous vector loads once E carries E[0] at its end and O carries O[M-1] in front.
// Filter taps as pywt stores them (Wavelet('db2').dec_lo / dec_hi).
constexpr double kLo[4] = {-0.12940952255126037, 0.2241438680420134, 0.8365163037378079, 0.48296291314453416};
constexpr double kHi[4] = {-0.48296291314453416, 0.8365163037378079, -0.2241438680420134, -0.12940952255126037};

#if BOT4_LANES > 1
inline void deinterleave(vd a, vd b, vd& even, vd& odd) {
  constexpr vi me = make_mask([](int l) -> long long { return 2 * l; });
  constexpr vi mo = make_mask([](int l) -> long long { return 2 * l + 1; });
  even = __builtin_shuffle(a, b, me);
  odd = __builtin_shuffle(a, b, mo);
}
#endif

void wavelet_energies(const double* x, size_t n, int levels, double* out) {
  const size_t outs = levels >= 0 ? static_cast<size_t>(levels) + 1 : 0;
  for (size_t i = 0; i < outs; ++i) out[i] = kNaN;
  if (levels < 1 || levels > 10 || n > kMaxWindow) return;
  const size_t block = size_t{1} << levels;
  if (n < block || n % block != 0) return;
  alignas(64) double cur[kBuf];
  alignas(64) double ev[kBuf / 2 + kPad];
  alignas(64) double od[kBuf / 2 + kPad];  // od[0] = O[M-1], od[1 + o] = O[o]
  copy_padded(x, n, cur, 0.0, kVecPad);
  double energy[12];
  size_t len = n;
  for (int lev = 0; lev < levels; ++lev) {
    const size_t m = len / 2;
    size_t o = 0;
#if BOT4_LANES > 1
    for (; o + L <= m; o += L) {
      vd e, d;
      deinterleave(vload(cur + 2 * o), vload(cur + 2 * o + L), e, d);
      vstore(ev + o, e);
      vstore(od + 1 + o, d);
    }
#endif
    for (; o < m; ++o) {
      ev[o] = cur[2 * o];
      od[1 + o] = cur[2 * o + 1];
    }
    ev[m] = ev[0];
    od[0] = od[m];
    for (size_t k = 1; k <= static_cast<size_t>(L) + 1; ++k) ev[m + k] = od[m + k] = 0.0;
    const vd f0 = splat(kLo[0]), f1 = splat(kLo[1]), f2 = splat(kLo[2]), f3 = splat(kLo[3]);
    const vd g0 = splat(kHi[0]), g1 = splat(kHi[1]), g2 = splat(kHi[2]), g3 = splat(kHi[3]);
    energy[lev] = csum(m, [&](size_t i) {
      const vd e1 = vload(ev + i + 1), o0 = vload(od + i + 1), e0 = vload(ev + i), om = vload(od + i);
      vstore(cur + i, ((f0 * e1 + f1 * o0) + f2 * e0) + f3 * om);
      const vd dcoef = ((g0 * e1 + g1 * o0) + g2 * e0) + g3 * om;
      return dcoef * dcoef;
    });
    len = m;
    for (size_t k = 0; k < kVecPad; ++k) cur[len + k] = 0.0;
  }
  const double approx = csum(len, [&](size_t i) {
    const vd a = vload(cur + i);
    return a * a;
  });
  double total = 0.0;
  for (int lev = 0; lev < levels; ++lev) total += energy[lev];
  total += approx;
  if (!(total > 0.0) || !finite(total)) return;
  for (int lev = 0; lev < levels; ++lev) out[lev] = energy[lev] / total;
  out[levels] = approx / total;
}

// Every kernel of the window family on one window, sharing the Prep: the same values as the
// single-kernel calls.
void window_block(const double* x, size_t n, const WindowBlockParams& prm, WindowBlockOut& out) {
  if (n > kMaxWindow) {
    for (int i = 0; i < 4; ++i) out.acf[i] = kNaN;
    out.c3[0] = out.c3[1] = kNaN;
    out.cid_ce = out.hurst_rs = out.dfa = out.sample_entropy = kNaN;
    out.perm_entropy[0] = out.perm_entropy[1] = out.spectral_entropy = kNaN;
    wavelet_energies(x, n, prm.wavelet_levels, out.wavelet);
    return;
  }
  Prep p(x, n);
  for (int i = 0; i < 4; ++i) out.acf[i] = acf_impl(p, prm.acf_lags[i]);
  for (int i = 0; i < 2; ++i) out.c3[i] = c3_impl(p, prm.c3_lags[i]);
  out.cid_ce = cid_ce_impl(p);
  out.hurst_rs = hurst_rs_impl(p);
  out.dfa = dfa_impl(p);
  out.sample_entropy = sample_entropy_impl(p, prm.sample_entropy_order);
  for (int i = 0; i < 2; ++i) out.perm_entropy[i] = perm_entropy_impl(p, prm.perm_orders[i], prm.perm_delay);
  out.spectral_entropy = spectral_entropy_impl(p);
  wavelet_energies(x, n, prm.wavelet_levels, out.wavelet);
}

}  // namespace

const WindowKernels& table() {
  static constexpr WindowKernels kTable{
      static_cast<simd::SimdLevel>(L == 1 ? 0 : L == 4 ? 1 : 2),
      &acf,
      &c3,
      &cid_ce,
      &hurst_rs,
      &dfa,
      &sample_entropy,
      &perm_entropy,
      &spectral_entropy,
      &wavelet_energies,
      &ols_slope,
      &window_block,
  };
  return kTable;
}

}  // namespace bot4::features::BOT4_KERNEL_NS
