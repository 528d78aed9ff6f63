#pragma once
// Plain risk configuration structs: limits and sizing parameters, each with its unit.
// Mirrors python/bot4/config/risk.py (the frozen msgspec Structs loaded from TOML); the
// binding (ext/bind_risk.cpp) fills these from flat dicts and rejects unknown keys.
#include <cstdint>

namespace bot4::risk {

// Position sizing (METHODS §7). Every "fraction" is a fraction of current equity, so the
// sizer's output is a signed position in risk units: notional / equity (0.25 = a quarter of
// equity long; negative = short). Converting to lots is done by to_lots() with the price.
struct SizingConfig {
  double kelly_fraction = 0.25;         // c in f = c·f*, dimensionless, (0, 1]
  double payoff_ratio = 1.0;            // b: net win per unit lost (after fees/slippage), dimensionless, > 0
  double edge_threshold = 0.02;         // minimum |2p−1| to trade, dimensionless probability edge, [0, 1)
  double target_vol = 0.10;             // σ_target, annualized return stdev (0.10 = 10 %/yr)
  double periods_per_year = 252.0;      // periods/yr used to annualize the per-period current_vol input
  double max_vol_scale = 2.0;           // L_max in w = min(L_max, σ_target/σ̂), dimensionless
  double max_symbol_fraction = 0.20;    // per-symbol cap, fraction of equity
  double max_leverage = 1.0;            // gross leverage cap across symbols, fraction of equity
  double var_limit = 0.02;              // max one-period VaR of this position, fraction of equity
  double var_confidence = 0.99;         // β of the parametric-normal VaR, (0.5, 1)
  double max_heat = 0.06;               // H_max: portfolio heat (§7.4) at which sizing reaches 0, fraction of equity
  double crisis_correlation = 0.80;     // correlation input above which the crisis override applies, [-1, 1]
  double crisis_multiplier = 0.5;       // size multiplier in crisis (0.5 = halve), dimensionless, [0, 1]
};

// Pre-trade limits. Prices are integer ticks and quantities integer lots (DESIGN §3).
struct PreTradeConfig {
  int64_t max_position_lots = 100;            // |position + same-side open + in-flight + new| cap, lots
  int64_t max_notional = 10'000'000'000;      // same-side exposure cap, tick·lots (price ticks × lots)
  int64_t max_open_orders = 50;               // open + in-flight orders, count
  int64_t rate_capacity = 20;                 // token-bucket burst capacity, orders
  int64_t rate_per_second = 10;               // token-bucket refill, orders per second
  int64_t collar_ticks = 0;                   // max |price − mid|, ticks (0 = off)
  int64_t collar_bps = 50;                    // max |price − mid| / mid, basis points (0 = off)
};

// Kill switch triggers. Tripping = cancel all, then reduce-only until reset().
struct KillSwitchConfig {
  double max_drawdown = 0.10;                 // (peak − equity) / peak that trips, fraction of peak equity
  int64_t max_consecutive_rejects = 10;       // consecutive pre-trade/venue rejects that trip, count (0 = off)
  int64_t max_latency_ns = 50'000'000;        // a single measured latency above this trips, ns (0 = off)
};

}  // namespace bot4::risk
