# BOT4_SANITIZE=ON: AddressSanitizer + UndefinedBehaviorSanitizer on the core and the extension.
# A line-tables build (-g1) at -O1 (stack traces keep file:line, runs stay a few times slower, not
# 20x, and it compiles faster than full -g);
# no LTO, because GCC's LTO drops some instrumentation. Every UB report aborts
# (-fno-sanitize-recover), so a signed overflow fails the test that caused it instead of
# scrolling past in the log. The extension is loaded by a plain Python, so libasan must be
# preloaded: see README "Sanitizers and fuzzing" and .ci/run.
option(BOT4_SANITIZE "Build with -fsanitize=address,undefined" OFF)
if(BOT4_SANITIZE)
  set(BOT4_SAN_FLAGS -fsanitize=address,undefined -fno-sanitize-recover=all
      -fno-omit-frame-pointer -g1)
  add_compile_options(${BOT4_SAN_FLAGS} -O1)
  add_link_options(-fsanitize=address,undefined)
  set(CMAKE_INTERPROCEDURAL_OPTIMIZATION OFF)
  message(STATUS "bot4: AddressSanitizer + UndefinedBehaviorSanitizer build")
endif()
