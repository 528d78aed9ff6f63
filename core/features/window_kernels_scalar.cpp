// The window kernels one double at a time; the code is window_kernels_impl.hpp. cmake/isa.cmake
// compiles *_scalar.cpp without auto-vectorisation, so this level is genuinely scalar.
#define BOT4_LANES 1
#define BOT4_KERNEL_NS scalar
#include "features/window_kernels_impl.hpp"
