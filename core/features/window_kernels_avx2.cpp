// The window kernels four doubles per vector (AVX2); the code is window_kernels_impl.hpp.
#define BOT4_LANES 4
#define BOT4_KERNEL_NS avx2
#include "features/window_kernels_impl.hpp"
