#pragma once
// The feature catalogue: one entry per column of the feature matrix, in column order. The
// families write their columns at the offsets given by FeatureId.
#include <cstddef>
#include <string_view>

namespace bot4::features {

struct FeatureInfo {
  std::string_view name;
  std::string_view family;
  std::string_view unit;
  std::string_view window;
  std::string_view definition;
};

#define BOT4_FEATURE_LIST(X)                                                                      \
  /* book state: at the last complete book message */                                            \
  X(spread_ticks, "book", "ticks", "instant", "best ask - best bid")                              \
  X(mid_ticks, "book", "ticks", "instant", "(best bid + best ask) / 2")                           \
  X(mid_price, "book", "price", "instant", "mid in price units (ticks x tick size)")              \
  X(weighted_mid_offset, "book", "ticks", "instant",                                              \
    "W - mid with W = I*ask + (1-I)*bid, I = Qb/(Qb+Qa) (Stoikov's weighted mid)")                 \
  X(microprice_offset, "book", "ticks", "instant",                                                \
    "Stoikov micro-price minus mid: g(I, spread) from the configured table (NaN without one)")     \
  X(microprice_momentum_1, "book", "ticks", "1 sample", "micro-price now - micro-price 1 sample ago") \
  X(microprice_momentum_10, "book", "ticks", "10 samples",                                        \
    "micro-price now - micro-price 10 samples ago")                                               \
  X(queue_imbalance_l1, "book", "ratio", "instant", "(Qb - Qa) / (Qb + Qa) at level 1 (Gould-Bonart)") \
  X(depth_imbalance_2, "book", "ratio", "instant", "(sum bid - sum ask) / sum over levels 1..2")  \
  X(depth_imbalance_3, "book", "ratio", "instant", "(sum bid - sum ask) / sum over levels 1..3")  \
  X(depth_imbalance_4, "book", "ratio", "instant", "(sum bid - sum ask) / sum over levels 1..4")  \
  X(depth_imbalance_5, "book", "ratio", "instant", "(sum bid - sum ask) / sum over levels 1..5")  \
  X(depth_imbalance_6, "book", "ratio", "instant", "(sum bid - sum ask) / sum over levels 1..6")  \
  X(depth_imbalance_7, "book", "ratio", "instant", "(sum bid - sum ask) / sum over levels 1..7")  \
  X(depth_imbalance_8, "book", "ratio", "instant", "(sum bid - sum ask) / sum over levels 1..8")  \
  X(depth_imbalance_9, "book", "ratio", "instant", "(sum bid - sum ask) / sum over levels 1..9")  \
  X(depth_imbalance_10, "book", "ratio", "instant", "(sum bid - sum ask) / sum over levels 1..10") \
  X(book_slope_bid, "book", "lots/tick", "levels 1..depth_levels",                                \
    "OLS slope of cumulative bid size on distance from mid, occupied levels (>= 3 needed)")       \
  X(book_slope_ask, "book", "lots/tick", "levels 1..depth_levels",                                \
    "OLS slope of cumulative ask size on distance from mid, occupied levels (>= 3 needed)")       \
  X(depth_bid, "book", "lots", "levels 1..depth_levels", "total bid size over the top levels")    \
  X(depth_ask, "book", "lots", "levels 1..depth_levels", "total ask size over the top levels")    \
  /* order flow */                                                                                \
  X(ofi_l1, "flow", "lots", "since previous row",                                                 \
    "Cont-Kukanov-Stoikov OFI: sum of e_n over book messages since the previous feature row")     \
  X(ofi_l1_window, "flow", "lots", "flow_window_ns", "sum of L1 e_n over the trailing window")    \
  X(ofi_l1_norm, "flow", "ratio", "flow_window_ns",                                               \
    "ofi_l1_window / mean L1 depth (Qb+Qa)/2 over the messages of the window")                    \
  X(mlofi_1, "flow", "lots", "flow_window_ns", "multi-level OFI (Xu-Gould-Howison), level 1")     \
  X(mlofi_2, "flow", "lots", "flow_window_ns", "multi-level OFI, level 2")                        \
  X(mlofi_3, "flow", "lots", "flow_window_ns", "multi-level OFI, level 3")                        \
  X(mlofi_4, "flow", "lots", "flow_window_ns", "multi-level OFI, level 4")                        \
  X(mlofi_5, "flow", "lots", "flow_window_ns", "multi-level OFI, level 5")                        \
  X(mlofi_6, "flow", "lots", "flow_window_ns", "multi-level OFI, level 6")                        \
  X(mlofi_7, "flow", "lots", "flow_window_ns", "multi-level OFI, level 7")                        \
  X(mlofi_8, "flow", "lots", "flow_window_ns", "multi-level OFI, level 8")                        \
  X(mlofi_9, "flow", "lots", "flow_window_ns", "multi-level OFI, level 9")                        \
  X(mlofi_10, "flow", "lots", "flow_window_ns", "multi-level OFI, level 10")                      \
  X(signed_volume, "flow", "lots", "flow_window_ns", "sum of aggressor sign x size of trades")    \
  X(trade_imbalance, "flow", "ratio", "flow_window_ns", "signed volume / total traded volume")    \
  X(trade_count, "flow", "trades", "flow_window_ns", "number of trades")                          \
  X(order_to_trade, "flow", "ratio", "flow_window_ns",                                            \
    "order messages (L3: adds+modifies+cancels; L2: level updates) / max(trades, 1)")             \
  X(cancel_count, "flow", "cancels", "cancel_window_ns",                                          \
    "cancels in (t-W, t] (L3 exact; L2: size decreases not explained by trades at that price)")   \
  X(cancel_rate_baseline, "flow", "cancels/s", "cancel_baseline_ns",                              \
    "cancel rate over the baseline window ending where W starts")                                 \
  X(cancel_burst_z, "flow", "z", "cancel_window_ns",                                              \
    "(C_W - lambda*W) / sqrt(lambda*W) against the baseline rate")                                \
  X(cancel_burst, "flow", "flag", "cancel_window_ns",                                             \
    "1 if C_W >= cancel_burst_min and z >= cancel_burst_z, else 0")                               \
  X(bid_life_age, "flow", "s", "instant", "time since the best bid moved to its current price")   \
  X(ask_life_age, "flow", "s", "instant", "time since the best ask moved to its current price")   \
  X(bid_last_life, "flow", "s", "last completed", "duration of the last completed best-bid life") \
  X(ask_last_life, "flow", "s", "last completed", "duration of the last completed best-ask life") \
  X(spread_state_age, "flow", "s", "instant", "time since the spread (ticks) took its current value") \
  X(spread_state_last, "flow", "s", "last completed", "duration of the last completed spread state") \
  X(queue_ahead_bid, "flow", "lots", "current bid life",                                          \
    "size ahead of a virtual order joined at the back of the best bid when its life began "       \
    "(L3 exact; L2 queue model)")                                                                 \
  X(queue_ahead_ask, "flow", "lots", "current ask life", "as queue_ahead_bid for the best ask")   \
  X(queue_age_bid, "flow", "s", "current bid life", "time since the virtual bid order joined")    \
  X(queue_age_ask, "flow", "s", "current ask life", "time since the virtual ask order joined")    \
  /* liquidity and impact */                                                                      \
  X(kyle_lambda, "liquidity", "bp/lot", "liquidity_samples",                                      \
    "OLS slope of sample mid return (bp) on signed traded volume in that sample interval")        \
  X(amihud, "liquidity", "bp per 1e6 notional", "liquidity_samples",                              \
    "mean over intervals with volume of |return| (bp) / notional traded x 1e6")                   \
  X(roll_spread, "liquidity", "ticks", "roll_trades",                                             \
    "2 sqrt(-cov(dp_t, dp_t-1)) of trade price changes (ddof=1); NaN when cov >= 0")              \
  X(effective_spread, "liquidity", "bp", "last trade", "2 q (p - m) / m for the last trade")      \
  X(effective_spread_ewm, "liquidity", "bp", "spread_halflife_trades",                            \
    "EWMA of the effective spread over trades")                                                   \
  X(realised_spread_ewm, "liquidity", "bp", "realised_horizon_ns",                                \
    "EWMA of 2 q (p - m_{t+D}) / m_t over trades at least D old (matured only)")                  \
  X(price_impact_ewm, "liquidity", "bp", "realised_horizon_ns",                                   \
    "EWMA of 2 q (m_{t+D} - m_t) / m_t over matured trades")                                      \
  X(vpin, "liquidity", "ratio", "vpin_buckets",                                                   \
    "sum |V_sell - V_buy| / (n V) over the last n completed buckets, BVC on vpin_bar_ns bars")    \
  /* volatility */                                                                                \
  X(log_return, "volatility", "bp", "1 sample", "last sampled log mid return")                    \
  X(ewma_vol, "volatility", "bp", "ewma_lambda", "sqrt of the EWMA of squared sample returns")    \
  X(realized_vol, "volatility", "bp", "window", "sqrt of the sum of squared returns in the window") \
  X(parkinson_vol, "volatility", "bp", "range_samples",                                           \
    "ln(high/low) of sampled mid / sqrt(4 ln 2) over the trailing samples")                       \
  X(garch_variance, "volatility", "bp^2", "garch_backcast",                                       \
    "GARCH(1,1) one-step variance forecast filtered with the configured parameters")              \
  /* windowed kernels on the trailing window of sampled returns */                                \
  X(acf_1, "window", "ratio", "window", "autocorrelation lag 1 (statsmodels acf, biased)")         \
  X(acf_2, "window", "ratio", "window", "autocorrelation lag 2")                                  \
  X(acf_5, "window", "ratio", "window", "autocorrelation lag 5")                                  \
  X(acf_10, "window", "ratio", "window", "autocorrelation lag 10")                                \
  X(c3_1, "window", "bp^3", "window", "C3 statistic lag 1 (Schreiber-Schmitz)")                   \
  X(c3_2, "window", "bp^3", "window", "C3 statistic lag 2")                                       \
  X(cid_ce, "window", "ratio", "window", "complexity estimate of the z-scored window")            \
  X(hurst_rs, "window", "exponent", "window", "Hurst exponent by rescaled range (uncorrected)")    \
  X(dfa_alpha, "window", "exponent", "window", "detrended fluctuation analysis exponent")         \
  X(sample_entropy, "window", "nats", "window", "sample entropy m=2, r=0.2 std")                  \
  X(perm_entropy_3, "window", "ratio", "window", "normalised permutation entropy, order 3")       \
  X(perm_entropy_4, "window", "ratio", "window", "normalised permutation entropy, order 4")       \
  X(spectral_entropy, "window", "ratio", "window", "normalised spectral entropy of the periodogram") \
  X(wavelet_d1, "window", "ratio", "window", "relative energy of D4 (db2) detail level 1")        \
  X(wavelet_d2, "window", "ratio", "window", "relative energy of D4 detail level 2")              \
  X(wavelet_d3, "window", "ratio", "window", "relative energy of D4 detail level 3")              \
  X(wavelet_d4, "window", "ratio", "window", "relative energy of D4 detail level 4")              \
  X(wavelet_a4, "window", "ratio", "window", "relative energy of D4 approximation at level 4")    \
  /* technical indicators on the sampled mid */                                                   \
  X(ema_cross_5_20, "technical", "bp", "20 samples", "(EMA5 - EMA20) / EMA20 of the sampled mid") \
  X(ema_cross_20_100, "technical", "bp", "100 samples", "(EMA20 - EMA100) / EMA100")              \
  X(rsi, "technical", "0..100", "rsi_period", "Wilder RSI of sampled mid changes")                \
  X(bollinger_z, "technical", "z", "bollinger_period",                                            \
    "(mid - SMA) / std (ddof=0) over the trailing samples")                                       \
  X(vwap_deviation, "technical", "bp", "vwap_window_ns", "(mid - VWAP of trades) / VWAP")

enum FeatureId : int {
#define BOT4_FEATURE_ENUM(name, family, unit, window, definition) f_##name,
  BOT4_FEATURE_LIST(BOT4_FEATURE_ENUM)
#undef BOT4_FEATURE_ENUM
      kFeatureCount
};

const FeatureInfo& feature_info(int id);

}  // namespace bot4::features
