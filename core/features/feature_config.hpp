#pragma once
// Configuration of the feature engine. Every window and parameter is named here once; the
// catalogue (feature_catalog.cpp) refers to these names. Times are ns on the engine clock (the
// running maximum of ts_local, i.e. when the event was available to us), counts are events or
// samples, prices are ticks, quantities lots.
#include <cstdint>
#include <vector>

namespace bot4::features {

enum class DecisionMode : uint8_t {
  EveryBookMessage = 0,  // a row after every complete book message (kLast) or L3 message
  EveryNEvents = 1,      // a row at the first message end after each further N input events
  TimeGrid = 2,          // a row at every multiple of decision_interval_ns, from state as of then
  None = 3,              // no rows (streaming state only; used to measure update cost)
};

// Stoikov micro-price adjustment g(I, S) in ticks: rows = spread in ticks 1..n_spreads,
// columns = imbalance buckets of equal width over [0, 1]. Empty: micro-price features are NaN.
struct MicropriceTable {
  int n_spreads = 0;
  int n_imbalance = 0;
  std::vector<double> g;  // n_spreads * n_imbalance, row-major
};

struct FeatureConfig {
  DecisionMode decision_mode = DecisionMode::EveryBookMessage;
  int64_t decision_every_n = 100;           // EveryNEvents
  int64_t decision_interval_ns = 100'000'000;  // TimeGrid (100 ms)

  // Mid-return sampling for the volatility, window and technical families: 0 = a sample at
  // every book message end; > 0 = a sample on this time grid (state as of each grid time).
  int64_t sample_interval_ns = 0;
  int window = 128;                 // trailing samples for the windowed kernels (power of two)
  double return_scale = 1e4;        // log returns are kept in basis points

  int depth_levels = 10;            // levels for depth imbalance, slope, MLOFI (1..10)
  int64_t flow_window_ns = 1'000'000'000;  // OFI/MLOFI/trade-flow/OTR trailing window (1 s)

  int64_t cancel_window_ns = 100'000'000;       // cancel-burst window W (100 ms)
  int64_t cancel_baseline_ns = 10'000'000'000;  // baseline rate window before W (10 s)
  double cancel_burst_z = 3.0;                  // z threshold
  int64_t cancel_burst_min = 5;                 // c_min

  bool queue_probabilistic = false;  // L2 queue-ahead: risk-averse (default) or power-law model
  double queue_power = 2.0;          // n of f(x) = x^n for the probabilistic model

  int liquidity_samples = 50;       // Kyle lambda / Amihud / Roll trailing samples
  int roll_trades = 100;            // Roll: trailing trade price changes
  double spread_halflife_trades = 50.0;      // EWMA half-life of effective/realised spreads
  int64_t realised_horizon_ns = 1'000'000'000;  // Δ for realised spread and price impact (1 s)

  int64_t vpin_bar_ns = 1'000'000'000;  // BVC time bar (1 s)
  int64_t vpin_bucket_lots = 0;         // V; 0 = auto: volume of the first vpin_auto_ns / 10
  int64_t vpin_auto_ns = 60'000'000'000;
  int vpin_buckets = 50;                // n
  int vpin_sigma_bars = 50;             // trailing bars for sigma of bar price changes

  double ewma_lambda = 0.94;        // EWMA volatility decay per sample
  int range_samples = 50;           // Parkinson range window (samples)
  double garch_omega = 0.05;        // GARCH(1,1) on returns in return_scale units
  double garch_alpha = 0.08;
  double garch_beta = 0.90;
  int garch_backcast = 75;          // samples before the filter starts (arch's backcast)

  int rsi_period = 14;
  int bollinger_period = 20;
  int64_t vwap_window_ns = 60'000'000'000;  // VWAP deviation trailing trade window (60 s)

  MicropriceTable microprice;
};

}  // namespace bot4::features
