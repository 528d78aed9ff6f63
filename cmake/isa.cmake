# One source per instruction set: files named *_avx2.cpp / *_avx512.cpp get that ISA's flags,
# everything else is compiled for the baseline. Never a global -march=native.
function(bot4_isa_flags)
  foreach(src IN LISTS ARGN)
    if(src MATCHES "_avx512\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS
        "-mavx512f;-mavx512bw;-mavx512dq;-mavx512vl;-mavx2;-mfma;-mbmi;-mbmi2;-mlzcnt;-mpopcnt")
    elseif(src MATCHES "_avx2\\.cpp$")
      set_source_files_properties(${src} PROPERTIES COMPILE_OPTIONS
        "-mavx2;-mfma;-mbmi;-mbmi2;-mlzcnt;-mpopcnt")
    endif()
  endforeach()
endfunction()
