# One source per instruction set: files named *_avx2.cpp / *_avx512.cpp get that ISA's flags,
# everything else is compiled for the baseline. Never a global -march=native.
# *_scalar.cpp is the reference level of a dispatched kernel: no auto-vectorisation, so the
# speedup of the vector levels is measured against genuinely scalar code.
# All three get -ffp-contract=off: GCC would otherwise fuse a*b+c into an FMA where the ISA has
# one (C++ defaults to fp-contract=fast), so the levels would round differently. Kernels that
# want an FMA call it explicitly (__builtin_fma, _mm256_fmadd_pd), which this flag leaves alone.
set(BOT4_LEVEL_FP "-ffp-contract=off")
function(bot4_isa_flags)
  foreach(src IN LISTS ARGN)
    if(src MATCHES "_avx512\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS
        "-mavx512f;-mavx512bw;-mavx512dq;-mavx512vl;-mavx2;-mfma;-mbmi;-mbmi2;-mlzcnt;-mpopcnt;${BOT4_LEVEL_FP}")
    elseif(src MATCHES "_avx2\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS
        "-mavx2;-mfma;-mbmi;-mbmi2;-mlzcnt;-mpopcnt;${BOT4_LEVEL_FP}")
    elseif(src MATCHES "_scalar\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS
        "-fno-tree-vectorize;-fno-tree-slp-vectorize;${BOT4_LEVEL_FP}")
    endif()
  endforeach()
endfunction()
