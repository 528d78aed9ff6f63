#include "simd/simd_level.hpp"

#include <cstdlib>
#include <mutex>

namespace bot4::simd {
namespace {

bool cpu_has(SimdLevel level) {
  switch (level) {
    case SimdLevel::Scalar:
      return true;
    case SimdLevel::Avx2:
      return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
             __builtin_cpu_supports("bmi2");
    case SimdLevel::Avx512:
      return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  }
  return false;
}

ActiveLevel resolve_from_env() {
  ActiveLevel result{best_available(), true, false, {}};
  const char* env = std::getenv("BOT4_SIMD");
  if (env != nullptr && *env != '\0') {
    SimdLevel forced{};
    std::string error;
    result.overridden = true;
    if (parse_level(env, forced, error)) {
      result.level = forced;
    } else {
      result.ok = false;
      result.error = "BOT4_SIMD: " + error;
    }
  }
  return result;
}

ActiveLevel& mutable_active() {
  static ActiveLevel active = resolve_from_env();
  return active;
}

}  // namespace

std::string_view level_name(SimdLevel level) {
  switch (level) {
    case SimdLevel::Scalar: return "scalar";
    case SimdLevel::Avx2: return "avx2";
    case SimdLevel::Avx512: return "avx512";
  }
  return "unknown";
}

std::vector<SimdLevel> available_levels() {
  std::vector<SimdLevel> levels;
  for (SimdLevel level : {SimdLevel::Scalar, SimdLevel::Avx2, SimdLevel::Avx512}) {
    if (cpu_has(level)) levels.push_back(level);
  }
  return levels;
}

SimdLevel best_available() { return available_levels().back(); }

bool parse_level(std::string_view text, SimdLevel& out, std::string& error) {
  SimdLevel level;
  if (text == "scalar") {
    level = SimdLevel::Scalar;
  } else if (text == "avx2") {
    level = SimdLevel::Avx2;
  } else if (text == "avx512") {
    level = SimdLevel::Avx512;
  } else {
    error = "unknown SIMD level '" + std::string(text) + "' (expected scalar, avx2 or avx512)";
    return false;
  }
  if (!cpu_has(level)) {
    error = "SIMD level '" + std::string(text) + "' is not supported by this CPU";
    return false;
  }
  out = level;
  return true;
}

const ActiveLevel& active_level() { return mutable_active(); }

bool force_level(SimdLevel level, std::string& error) {
  if (!cpu_has(level)) {
    error = "SIMD level '" + std::string(level_name(level)) + "' is not supported by this CPU";
    return false;
  }
  ActiveLevel& active = mutable_active();
  active = ActiveLevel{level, true, true, {}};
  return true;
}

}  // namespace bot4::simd
