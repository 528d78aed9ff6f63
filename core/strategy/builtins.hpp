#pragma once
// The built-in strategies, configured from TOML ([strategy] table: name + the strategy's own
// fields). for_each_builtin / visit_builtin hand a type tag to a callback, so bindings and tools
// build configs, instances and descriptions from each strategy's one field list.
#include <string>
#include <type_traits>

#include "strategy/market_maker.hpp"
#include "strategy/threshold_bracket.hpp"
#include "strategy/top_of_book.hpp"

namespace bot4::strategy {

template <typename F>
void for_each_builtin(F&& f) {
  f(std::type_identity<ThresholdBracket>{});
  f(std::type_identity<MarketMaker>{});
  f(std::type_identity<TopOfBook>{});
}

// Calls f(tag) for the built-in named `name`; false when there is none.
template <typename F>
bool visit_builtin(const std::string& name, F&& f) {
  bool found = false;
  for_each_builtin([&](auto tag) {
    using S = typename decltype(tag)::type;
    if (!found && name == S::kName) {
      found = true;
      f(tag);
    }
  });
  return found;
}

}  // namespace bot4::strategy
