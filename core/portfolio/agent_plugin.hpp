#pragma once
// User signal agents written in C++ (issue 13: "user agents can be written as the engine's
// strategies are"), compiled as shared libraries and loaded at run time the way user strategies
// are (core/strategy/plugin.hpp): the same PluginParams (a flat JSON object, every parameter
// read), the same export macro and C entry points, an interface fingerprint the loader checks.
// A plugin implements UserSignalAgent and exports its factory with
//
//   BOT4_AGENT_PLUGIN(MyAgent)   // MyAgent(const bot4::strategy::PluginParams&)
//
// which defines
//   uint64_t bot4_agent_plugin_abi();                         // == agent_plugin_abi() of the loader
//   bot4::portfolio::UserSignalAgent* bot4_make_agent(const char* params_json);  // nullptr on error
//   void bot4_destroy_agent(bot4::portfolio::UserSignalAgent*);
//   const char* bot4_agent_plugin_error();                    // why the last make failed
//
// Everything a plugin needs is inline in this header and the two it includes.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "portfolio/signal_agent.hpp"
#include "strategy/plugin.hpp"

namespace bot4::portfolio {

class UserSignalAgent {
 public:
  virtual ~UserSignalAgent() = default;
  // The rows' feature names in column order, once before any evaluate: look the columns up here
  // (throw std::invalid_argument for a missing one).
  virtual void bind(const std::vector<std::string>& feature_names) = 0;
  // One feature row of `width` values -> the agent's view, in the built-in agents' units (mu,
  // sigma, q in bp; NaN mu and sigma together: no view, confidence 0; regime -1: undefined).
  virtual AgentView evaluate(const double* row, size_t width) const = 0;
};

// Bump when UserSignalAgent's virtual functions change.
inline constexpr uint64_t kAgentPluginApiVersion = 1;

constexpr uint64_t agent_plugin_abi() noexcept {
  uint64_t h = 1469598103934665603ull;  // FNV-1a, as strategy::plugin_abi
  const uint64_t parts[] = {kAgentPluginApiVersion, sizeof(AgentView), offsetof(AgentView, q),
                            offsetof(AgentView, confidence), offsetof(AgentView, regime),
                            sizeof(std::vector<std::string>), sizeof(std::string)};
  for (uint64_t v : parts)
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xffu;
      h *= 1099511628211ull;
    }
  return h;
}

// A loaded agent plugin library (the loader shared with strategy plugins,
// common/plugin_library.hpp); agents made from it keep it loaded.
struct AgentPluginTraits {
  using Interface = UserSignalAgent;
  static constexpr PluginKind kind{"agent",          "bot4_agent_plugin_abi",   "bot4_make_agent",
                                   "bot4_destroy_agent", "bot4_agent_plugin_error", "BOT4_AGENT_PLUGIN(Class)",
                                   "agent interface fingerprint"};
  static constexpr uint64_t abi() noexcept { return agent_plugin_abi(); }
};
using AgentLibrary = PluginLibrary<AgentPluginTraits>;

// A plugin agent bound to the rows it reads, evaluated as SignalAgent is: one row at a time, a
// matrix as a loop over that path. Outputs are checked (StepInputError naming the plugin): mu and
// sigma NaN together, sigma >= 0, no infinities, confidence in [0, 1] (0 without a view),
// quantiles ascending where there is a view, regime >= -1.
class PluginAgent {
 public:
  // StepInputError("plugin") when the library or its factory refuses, or bind throws.
  PluginAgent(const std::string& path, const std::string& params_json, const std::vector<std::string>& feature_names);
  size_t row_width() const { return width_; }
  AgentView evaluate(const double* row) const;
  void evaluate_rows(const double* matrix, size_t rows, AgentView* out) const;

 private:
  AgentLibrary::Ptr agent_;
  std::string path_;
  size_t width_ = 0;
};

}  // namespace bot4::portfolio

// Exports the factory of `Class` (constructible from const bot4::strategy::PluginParams&).
#define BOT4_AGENT_PLUGIN(Class)                                                                          \
  BOT4_PLUGIN_EXPORT uint64_t bot4_agent_plugin_abi() { return ::bot4::portfolio::agent_plugin_abi(); }   \
  BOT4_PLUGIN_EXPORT ::bot4::portfolio::UserSignalAgent* bot4_make_agent(const char* params_json) {       \
    try {                                                                                                 \
      const auto params = ::bot4::strategy::PluginParams::parse(params_json);                             \
      auto a = std::make_unique<Class>(params);                                                           \
      params.check_all_used();                                                                            \
      return a.release();                                                                                 \
    } catch (const std::exception& e) {                                                                   \
      ::bot4::strategy::detail::plugin_error() = e.what();                                                \
    } catch (...) {                                                                                       \
      ::bot4::strategy::detail::plugin_error() = "unknown exception";                                     \
    }                                                                                                     \
    return nullptr;                                                                                       \
  }                                                                                                       \
  BOT4_PLUGIN_EXPORT void bot4_destroy_agent(::bot4::portfolio::UserSignalAgent* a) { delete a; }         \
  BOT4_PLUGIN_EXPORT const char* bot4_agent_plugin_error() {                                              \
    return ::bot4::strategy::detail::plugin_error().c_str();                                              \
  }
