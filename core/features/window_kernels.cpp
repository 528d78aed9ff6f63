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

WindowKernelTables make_tables() {
  WindowKernelTables t{};
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
  for (size_t k = 1; k < kMaxWindow + 2; ++k) t.log2_int[k] = std::log2(static_cast<double>(k));
  double f = 1.0;
  for (int k = 0; k < 16; ++k) {
    if (k > 0) f *= k;
    t.factorial[k] = f;
    t.log2_factorial[k] = std::log2(f);
  }
  return t;
}

}  // namespace

const WindowKernelTables& tables() {
  static const WindowKernelTables t = make_tables();
  return t;
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
