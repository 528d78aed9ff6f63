#pragma once
// CPU feature detection and the process-wide SIMD level used by every dispatched kernel.
#include <string>
#include <string_view>
#include <vector>

namespace bot4::simd {

enum class SimdLevel : int { Scalar = 0, Avx2 = 1, Avx512 = 2 };

std::string_view level_name(SimdLevel level);

// Levels this CPU can run, lowest first (Scalar is always present).
std::vector<SimdLevel> available_levels();

// Highest level the CPU offers.
SimdLevel best_available();

// Parses a BOT4_SIMD value ("scalar" | "avx2" | "avx512"). Returns false and fills `error` for an
// unknown name or a level the CPU does not offer.
bool parse_level(std::string_view text, SimdLevel& out, std::string& error);

// The active level: BOT4_SIMD if set (validated), otherwise best_available(). Resolved at first
// use; an invalid BOT4_SIMD makes `ok` false with the reason in `error`.
struct ActiveLevel {
  SimdLevel level;
  bool ok;
  bool overridden;
  std::string error;
};
const ActiveLevel& active_level();

// Forces a level for this process (tests run every available level against scalar).
bool force_level(SimdLevel level, std::string& error);

}  // namespace bot4::simd
