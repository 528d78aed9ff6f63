#pragma once
// Constant tables shared by the per-ISA window kernels. They are computed once, in the baseline
// translation unit (window_kernels.cpp), so every level reads the very same twiddles and
// logarithms and agrees bit for bit wherever its arithmetic does.
#include <cstdint>

#include "features/window_kernels.hpp"

namespace bot4::features {

struct WindowKernelTables {
  // FFT twiddles by stage: entry h + j (h a power of two, j < h) is exp(-2 pi i j / (2h)).
  double tw_re[kMaxWindow];
  double tw_im[kMaxWindow];
  uint16_t bitrev10[1024];            // 10-bit bit reversal
  double log2_int[kMaxWindow + 2];    // log2(k), k >= 1
  double factorial[16];               // k!
  double log2_factorial[16];          // log2(k!)
  double ln_int[kMaxWindow + 2];      // natural log(k), k >= 1
  // antropy's DFA scales for a window of n: nolds' logarithmic_n(4, 0.1 n, 1.2), computed with
  // the same floating-point steps as antropy (libm log and pow), once for every n.
  static constexpr int kMaxDfaScales = 32;
  uint16_t dfa_nvals[kMaxWindow + 1][kMaxDfaScales];
  uint8_t dfa_nvals_count[kMaxWindow + 1];
};

const WindowKernelTables& tables();

}  // namespace bot4::features
