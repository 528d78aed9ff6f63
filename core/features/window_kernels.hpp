#pragma once
// Windowed time-series kernels on a trailing window x[0..n) (oldest sample first), written once
// (window_kernels_impl.hpp) and compiled per instruction set: window_kernels_scalar.cpp (no
// auto-vectorisation), window_kernels_avx2.cpp, window_kernels_avx512.cpp. Callers fetch the
// table once per batch with window_kernels(level) and call through it.
//
// Every kernel reads only x[0..n): a value for the window ending at t never depends on a sample
// after t. A kernel whose value is undefined for this input (too few samples, zero variance, no
// template matches, ...) returns NaN; no kernel returns an infinity.
//
// Reference conventions (tests compare against these packages):
//   acf              statsmodels.tsa.stattools.acf (biased: sum over n-lag terms / (n * var0))
//   c3               tsfresh c3: mean of x[t+2l]*x[t+l]*x[t] over the n-2l terms
//   cid_ce           tsfresh cid_ce(normalize=True): z-score (ddof=0), sqrt(sum of squared diffs)
//   hurst_rs         nolds.hurst_rs(x, nvals=hurst_nvals(n), fit='poly', corrected=False,
//                    unbiased=True)
//   dfa              antropy.detrended_fluctuation(x) (its fixed nvals, linear detrend)
//   sample_entropy   antropy.sample_entropy(x, order=m) (Chebyshev, r = 0.2 * std(ddof=0), <)
//   perm_entropy     antropy.perm_entropy(x, order, delay, normalize=True)
//   spectral_entropy antropy.spectral_entropy(x, sf=1, method='fft', normalize=True)
//                    (one-sided periodogram, constant detrend, boxcar); n a power of two
//   wavelet_energies pywt.wavedec(x, 'db2', mode='periodization', level=L): relative energies
//                    out[0..L) = E(d1..dL) / E_total and out[L] = E(a_L) / E_total, with
//                    E_total the energy of all coefficients; n divisible by 2^L
//   ols_slope        OLS slope of y on x with intercept (numpy.polyfit(x, y, 1)[0])
//
// Where a reference returns a rounding accident or an infinity the kernels return NaN: a window
// whose values are all equal (for every kernel that divides by a spread; c3, perm_entropy and
// wavelet_energies of a non-zero constant stay defined), sample entropy with no (m+1)-matches,
// dfa with fewer than two usable scales. Limits: n <= kMaxWindow; hurst_rs needs n >= 32 (two
// scales), spectral_entropy a power of two n >= 4, perm_entropy 2 <= order <= 10,
// wavelet_energies 1 <= levels <= 10. Every level returns the same bits as the scalar build.
#include <cstddef>

#include "simd/simd_level.hpp"

namespace bot4::features {

inline constexpr size_t kMaxWindow = 1024;  // largest window any kernel accepts

// window_block: the window family's kernels on one window in one call, sharing what they
// compute first (padded copies, mean, deviations, change bits); each value equals the
// single-kernel call's bit for bit.
struct WindowBlockParams {
  size_t acf_lags[4];
  size_t c3_lags[2];
  int sample_entropy_order;
  int perm_orders[2];
  int perm_delay;
  int wavelet_levels;  // out.wavelet gets wavelet_levels + 1 values (<= 11)
};
struct WindowBlockOut {
  double acf[4];
  double c3[2];
  double cid_ce, hurst_rs, dfa, sample_entropy;
  double perm_entropy[2];
  double spectral_entropy;
  double wavelet[12];
};

struct WindowKernels {
  simd::SimdLevel level;
  double (*acf)(const double* x, size_t n, size_t lag);
  double (*c3)(const double* x, size_t n, size_t lag);
  double (*cid_ce)(const double* x, size_t n);
  double (*hurst_rs)(const double* x, size_t n);
  double (*dfa)(const double* x, size_t n);
  double (*sample_entropy)(const double* x, size_t n, int order);
  double (*perm_entropy)(const double* x, size_t n, int order, int delay);
  double (*spectral_entropy)(const double* x, size_t n);
  // Writes levels + 1 values to out (NaN-filled when undefined).
  void (*wavelet_energies)(const double* x, size_t n, int levels, double* out);
  double (*ols_slope)(const double* x, const double* y, size_t n);
  void (*window_block)(const double* x, size_t n, const WindowBlockParams& params, WindowBlockOut& out);
};

// The kernels compiled for `level` (which the CPU must offer).
const WindowKernels& window_kernels(simd::SimdLevel level);
// The kernels of simd::active_level() (BOT4_SIMD honoured).
const WindowKernels& active_window_kernels();

// Chunk sizes used by hurst_rs for a window of n samples (exposed so tests pass the same nvals
// to nolds): powers of two from 8 up to n / 2.
size_t hurst_nvals(size_t n, size_t* out, size_t capacity);

}  // namespace bot4::features
