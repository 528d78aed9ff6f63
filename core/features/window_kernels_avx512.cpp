// The window kernels eight doubles per vector (AVX-512); the code is window_kernels_impl.hpp.
#define BOT4_LANES 8
#define BOT4_KERNEL_NS avx512
#include "features/window_kernels_impl.hpp"
