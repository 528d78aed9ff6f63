#pragma once
// Risk configuration, declared once (common/config_fields.hpp): X(type, name, default, min, max, unit, doc).
#include <cstdint>

#include "common/config_fields.hpp"

namespace bot4::risk {

#define BOT4_SIZING_FIELDS(X)                                                                                    \
  X(double, kelly_fraction, 0.25, gt(0), le(1), "", "c in f = c*f*, (0, 1]")                                         \
  X(double, payoff_ratio, 1.0, gt(0), any, "", "b: net win per unit lost (after fees/slippage), > 0")          \
  X(double, edge_threshold, 0.02, ge(0), lt(1), "probability", "minimum |2p-1| to trade, [0, 1)")                    \
  X(double, target_vol, 0.10, gt(0), any, "1/yr", "sigma_target, annualized return stdev (0.10 = 10%/yr)")     \
  X(double, periods_per_year, 252.0, gt(0), any, "periods/yr", "periods per year of the current_vol input")   \
  X(double, max_vol_scale, 2.0, gt(0), any, "", "L_max in w = min(L_max, sigma_target / sigma)")              \
  X(double, max_symbol_fraction, 0.20, ge(0), any, "fraction of equity", "per-symbol cap")                    \
  X(double, max_leverage, 1.0, ge(0), any, "fraction of equity", "gross leverage cap across symbols")         \
  X(double, var_limit, 0.02, gt(0), any, "fraction of equity", "max one-period VaR of this position")         \
  X(double, var_confidence, 0.99, gt(0.5), lt(1), "probability", "beta of the parametric-normal VaR, (0.5, 1)")        \
  X(double, max_heat, 0.06, gt(0), any, "fraction of equity", "portfolio heat at which sizing reaches 0")      \
  X(double, crisis_correlation, 0.80, ge(-1), le(1), "correlation", "correlation above which the crisis override applies") \
  X(double, crisis_multiplier, 0.5, ge(0), le(1), "", "size multiplier in crisis (0.5 = halve)")

#define BOT4_PRE_TRADE_FIELDS(X)                                                                                  \
  X(int64_t, max_position_lots, 100, ge(0), any, "lots", "|position + same-side open + in-flight + new| cap")    \
  X(int64_t, max_notional, 10'000'000'000, ge(0), any, "tick*lots", "same-side exposure cap (price ticks x lots)") \
  X(int64_t, max_open_orders, 50, ge(0), any, "orders", "open + in-flight orders cap")                           \
  X(int64_t, rate_capacity, 20, ge(0), any, "orders", "token-bucket burst capacity")                             \
  X(int64_t, rate_per_second, 10, ge(0), any, "orders/s", "token-bucket refill")                                 \
  X(int64_t, collar_ticks, 0, ge(0), any, "ticks", "max |price - mid| (0 = off)")                                \
  X(int64_t, collar_bps, 50, ge(0), any, "bp", "max |price - mid| / mid (0 = off)")

#define BOT4_KILL_SWITCH_FIELDS(X)                                                                                \
  X(double, max_drawdown, 0.10, gt(0), le(1), "fraction of peak equity", "(peak - equity) / peak that trips")        \
  X(int64_t, max_consecutive_rejects, 10, ge(0), any, "count", "consecutive pre-trade/venue rejects that trip (0 = off)") \
  X(int64_t, max_latency_ns, 50'000'000, ge(0), any, "ns", "a single measured order round trip above this trips (0 = off)")

BOT4_CONFIG_STRUCT(SizingConfig, BOT4_SIZING_FIELDS)
BOT4_CONFIG_STRUCT(PreTradeConfig, BOT4_PRE_TRADE_FIELDS)
BOT4_CONFIG_STRUCT(KillSwitchConfig, BOT4_KILL_SWITCH_FIELDS)

}  // namespace bot4::risk
