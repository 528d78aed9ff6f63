#pragma once
// User strategies written in C++ and compiled as shared libraries, loaded by the engine at run
// time (dlopen). A plugin implements bot4::strategy::Strategy against the installed headers
// (find_package(bot4); bot4_add_strategy() in CMake) and exports its factory with
//
//   BOT4_STRATEGY_PLUGIN(MyStrategy)   // MyStrategy(const bot4::strategy::PluginParams&)
//
// which defines the C entry points the loader looks up:
//   uint64_t bot4_plugin_abi();                      // == plugin_abi() of the loading engine
//   bot4::strategy::Strategy* bot4_make_strategy(const char* params_json);  // nullptr on error
//   void bot4_destroy_strategy(bot4::strategy::Strategy*);
//   const char* bot4_plugin_error();                 // why the last make failed
//
// The plugin and the engine exchange C++ objects (the context, intents, virtual calls), so they
// must agree on the layouts: the loader refuses a plugin whose plugin_abi() differs (built
// against other bot4 headers). Build it with a compiler of the same C++ ABI (GCC >= 5 / Clang
// with libstdc++ on Linux) and C++20. Everything in this header is inline: a plugin needs the
// headers only, not the library.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>

#include "common/plugin_library.hpp"
#include "strategy/strategy.hpp"

namespace bot4::strategy {

// Bump when the Strategy or Execution interface (their virtual functions) changes: sizes catch
// layout changes of the structs, not a reordered vtable.
inline constexpr uint64_t kPluginApiVersion = 1;

// Fingerprint of the interface a plugin and the engine share.
constexpr uint64_t plugin_abi() noexcept {
  uint64_t h = 1469598103934665603ull;  // FNV-1a over the numbers below
  const uint64_t parts[] = {kPluginApiVersion,
                            sizeof(DecisionContext),
                            offsetof(DecisionContext, top),
                            offsetof(DecisionContext, features),
                            offsetof(DecisionContext, position),
                            offsetof(DecisionContext, headroom),
                            offsetof(DecisionContext, exec),
                            offsetof(DecisionContext, signal),
                            sizeof(BookTop),
                            sizeof(RiskHeadroom),
                            sizeof(OrderSpec),
                            offsetof(OrderSpec, second),
                            sizeof(TargetSpec),
                            sizeof(Outcome),
                            sizeof(FillInfo),
                            sizeof(RejectInfo),
                            sizeof(orders::Order),
                            offsetof(orders::Order, filled_lots),
                            sizeof(orders::BracketLegs),
                            sizeof(orders::LegSpec)};
  for (uint64_t v : parts)
    for (int i = 0; i < 8; ++i) {
      h ^= (v >> (8 * i)) & 0xffu;
      h *= 1099511628211ull;
    }
  return h;
}

// A plugin's parameters: a flat JSON object of numbers, booleans and strings (what the Python
// side's json.dumps of a flat dict writes). Every parameter given must be read by the strategy's
// constructor: an unknown (misspelt) one is an error, not a silently ignored setting.
class PluginParams {
 public:
  static PluginParams parse(const char* json) {
    PluginParams p;
    if (json == nullptr) return p;
    Parser{json, 0}.object(p.values_);
    return p;
  }

  bool has(const std::string& key) const { return values_.count(key) != 0; }
  double number(const std::string& key, double fallback) const {
    const Value* v = find(key, Kind::Number, "a number");
    return v ? std::strtod(v->text.c_str(), nullptr) : fallback;
  }
  int64_t integer(const std::string& key, int64_t fallback) const {
    const Value* v = find(key, Kind::Number, "an integer");
    if (v == nullptr) return fallback;
    char* end = nullptr;
    const long long x = std::strtoll(v->text.c_str(), &end, 10);
    if (end == v->text.c_str() || *end != '\0')
      throw std::invalid_argument("parameter '" + key + "': expected an integer, got " + v->text);
    return static_cast<int64_t>(x);
  }
  bool boolean(const std::string& key, bool fallback) const {
    const Value* v = find(key, Kind::Bool, "true or false");
    return v ? v->text == "true" : fallback;
  }
  std::string string(const std::string& key, const std::string& fallback) const {
    const Value* v = find(key, Kind::String, "a string");
    return v ? v->text : fallback;
  }
  // Throws naming the parameters given but never read.
  void check_all_used() const {
    std::string unknown;
    for (const auto& [k, v] : values_)
      if (!used_.count(k)) unknown += (unknown.empty() ? "" : ", ") + k;
    if (!unknown.empty()) throw std::invalid_argument("unknown parameter(s): " + unknown);
  }

 private:
  enum class Kind { Number, Bool, String };
  struct Value {
    Kind kind;
    std::string text;
  };

  const Value* find(const std::string& key, Kind kind, const char* what) const {
    auto it = values_.find(key);
    if (it == values_.end()) return nullptr;
    used_.insert(key);
    if (it->second.kind != kind) throw std::invalid_argument("parameter '" + key + "': expected " + what);
    return &it->second;
  }

  struct Parser {
    const char* s;
    size_t i;
    [[noreturn]] void fail(const std::string& what) const {
      throw std::invalid_argument("strategy parameters: " + what + " at offset " + std::to_string(i));
    }
    void ws() {
      while (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r') ++i;
    }
    void expect(char c) {
      ws();
      if (s[i] != c) fail(std::string("expected '") + c + "'");
      ++i;
    }
    std::string str() {
      expect('"');
      std::string out;
      while (s[i] != '"') {
        if (s[i] == '\0') fail("unterminated string");
        if (s[i] == '\\') {
          ++i;
          switch (s[i]) {
            case '"': case '\\': case '/': out += s[i]; break;
            case 'n': out += '\n'; break;
            case 't': out += '\t'; break;
            case 'r': out += '\r'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            default: fail("unsupported escape (only ASCII strings)");
          }
          ++i;
        } else {
          out += s[i++];
        }
      }
      ++i;
      return out;
    }
    Value value() {
      ws();
      if (s[i] == '"') return {Kind::String, str()};
      if (s[i] == '{' || s[i] == '[') fail("nested values are not supported (a flat object of scalars)");
      size_t j = i;
      while (s[j] != '\0' && s[j] != ',' && s[j] != '}' && s[j] != ' ' && s[j] != '\n' && s[j] != '\t' && s[j] != '\r')
        ++j;
      std::string tok(s + i, j - i);
      if (tok.empty()) fail("expected a value");
      i = j;
      if (tok == "true" || tok == "false") return {Kind::Bool, tok};
      if (tok == "null") fail("null is not a parameter value");
      char* end = nullptr;
      std::strtod(tok.c_str(), &end);
      if (end == tok.c_str() || *end != '\0') fail("not a number: " + tok);
      return {Kind::Number, tok};
    }
    void object(std::map<std::string, Value>& out) {
      ws();
      if (s[i] == '\0') return;  // "" = no parameters
      expect('{');
      ws();
      if (s[i] == '}') {
        ++i;
      } else {
        for (;;) {
          std::string key = str();
          expect(':');
          if (out.count(key)) fail("duplicate key " + key);
          out.emplace(std::move(key), value());
          ws();
          if (s[i] == ',') {
            ++i;
            continue;
          }
          expect('}');
          break;
        }
      }
      ws();
      if (s[i] != '\0') fail("trailing characters");
    }
  };

  std::map<std::string, Value> values_;
  mutable std::set<std::string> used_;
};

namespace detail {
inline std::string& plugin_error() {
  static thread_local std::string e;
  return e;
}
}  // namespace detail

// A loaded strategy plugin library (the loader shared with agent plugins, common/plugin_library.hpp).
// Strategies made from it keep it loaded (their deleter holds it).
struct StrategyPluginTraits {
  using Interface = Strategy;
  static constexpr PluginKind kind{"strategy",          "bot4_plugin_abi",   "bot4_make_strategy",
                                   "bot4_destroy_strategy", "bot4_plugin_error", "BOT4_STRATEGY_PLUGIN(Class)",
                                   "interface fingerprint"};
  static constexpr uint64_t abi() noexcept { return plugin_abi(); }
};
using StrategyLibrary = PluginLibrary<StrategyPluginTraits>;

}  // namespace bot4::strategy

#define BOT4_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

// Exports the factory of `Class` (constructible from const bot4::strategy::PluginParams&).
#define BOT4_STRATEGY_PLUGIN(Class)                                                              \
  BOT4_PLUGIN_EXPORT uint64_t bot4_plugin_abi() { return ::bot4::strategy::plugin_abi(); }        \
  BOT4_PLUGIN_EXPORT ::bot4::strategy::Strategy* bot4_make_strategy(const char* params_json) {   \
    try {                                                                                        \
      const auto params = ::bot4::strategy::PluginParams::parse(params_json);                    \
      auto s = std::make_unique<Class>(params);                                                  \
      params.check_all_used();                                                                   \
      return s.release();                                                                        \
    } catch (const std::exception& e) {                                                          \
      ::bot4::strategy::detail::plugin_error() = e.what();                                       \
    } catch (...) {                                                                              \
      ::bot4::strategy::detail::plugin_error() = "unknown exception";                            \
    }                                                                                            \
    return nullptr;                                                                              \
  }                                                                                              \
  BOT4_PLUGIN_EXPORT void bot4_destroy_strategy(::bot4::strategy::Strategy* s) { delete s; }     \
  BOT4_PLUGIN_EXPORT const char* bot4_plugin_error() { return ::bot4::strategy::detail::plugin_error().c_str(); }
