// The strategy as a plugin bot4 loads at run time:
//   bot4 backtest --strategy build/libimbalance.so ...
//   bot4.strategies.make("build/libimbalance.so", {"threshold": 0.75})
#include "imbalance.hpp"

BOT4_STRATEGY_PLUGIN(Imbalance)
