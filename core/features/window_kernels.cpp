// Dispatch for the window kernels, and the constant tables they share.
#include "features/window_kernels.hpp"

#include <cmath>

#include "features/window_kernels_tables.hpp"

namespace bot4::features {

// One table per instruction set, each from its own translation unit (window_kernels_<isa>.cpp).
namespace scalar { const WindowKernels& table(); }
namespace avx2 { const WindowKernels& table(); }
namespace avx512 { const WindowKernels& table(); }

namespace {

// antropy.utils._log_n(min_n, max_n, factor) with min_n = 4, max_n = 0.1 n, factor = 1.2.
size_t antropy_log_n(size_t n, uint16_t* out, size_t capacity) {
  const double max_n = 0.1 * static_cast<double>(n);
  const double max_i = std::floor(std::log(1.0 * max_n / 4.0) / std::log(1.2));
  size_t k = 0;
  out[k++] = 4;
  for (long i = 0; i <= static_cast<long>(max_i) && k < capacity; ++i) {
    const auto v = static_cast<uint16_t>(std::floor(4.0 * std::pow(1.2, static_cast<double>(i))));
    if (v > out[k - 1]) out[k++] = v;
  }
  return k;
}

void fill_tables(WindowKernelTables& t) {
  const double pi = 3.14159265358979323846;
  for (size_t h = 1; h < kMaxWindow; h *= 2) {
    for (size_t j = 0; j < h && h + j < kMaxWindow; ++j) {
      const double angle = pi * static_cast<double>(j) / static_cast<double>(h);
      t.tw_re[h + j] = std::cos(angle);
      t.tw_im[h + j] = -std::sin(angle);
    }
  }
  for (unsigned j = 0; j < 1024; ++j) {
    unsigned r = 0;
    for (int b = 0; b < 10; ++b) r |= ((j >> b) & 1u) << (9 - b);
    t.bitrev10[j] = static_cast<uint16_t>(r);
  }
  t.log2_int[0] = 0.0;  // never read: zero counts are skipped
  for (size_t k = 1; k < kMaxWindow + 2; ++k) {
    t.log2_int[k] = std::log2(static_cast<double>(k));
    t.ln_int[k] = std::log(static_cast<double>(k));
  }
  for (size_t n = 0; n <= kMaxWindow; ++n)
    t.dfa_nvals_count[n] = static_cast<uint8_t>(
        antropy_log_n(n, t.dfa_nvals[n], WindowKernelTables::kMaxDfaScales));
  double f = 1.0;
  for (int k = 0; k < 16; ++k) {
    if (k > 0) f *= k;
    t.factorial[k] = f;
    t.log2_factorial[k] = std::log2(f);
  }
}

}  // namespace

const WindowKernelTables& tables() {
  static WindowKernelTables storage;  // ~80 KB of static storage, filled once (thread-safe)
  static const bool ready = (fill_tables(storage), true);
  (void)ready;
  return storage;
}

const WindowKernels& window_kernels(simd::SimdLevel level) {
  switch (level) {
    case simd::SimdLevel::Avx512: return avx512::table();
    case simd::SimdLevel::Avx2: return avx2::table();
    case simd::SimdLevel::Scalar: break;
  }
  return scalar::table();
}

const WindowKernels& active_window_kernels() {
  // An invalid BOT4_SIMD leaves active_level() at the best level with ok == false; the Python
  // layer reports that error, the core just runs at the level it resolved.
  return window_kernels(simd::active_level().level);
}

size_t hurst_nvals(size_t n, size_t* out, size_t capacity) {
  size_t count = 0;
  for (size_t c = 8; c <= n / 2; c *= 2) {
    if (count < capacity) out[count] = c;
    ++count;
  }
  return count;
}

}  // namespace bot4::features
