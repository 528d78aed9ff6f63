#pragma once
// TradingEngine: the whole hot path of a backtest, one instrument (L2 or L3), no Python per event.
//   market event -> venue simulator (exchange clock) -> FeatureEngine (row at every book
//   message end by default) -> Model::predict_one -> strategy rule (threshold on p) -> sizer +
//   pre-trade checks (+ kill switch) -> OrderManager (bracket entries) -> venue requests (after
//   the entry latency); venue responses (acks, fills) come back after the response latency and
//   are fed to the OrderManager and the pre-trade checks.
// Strategy: p >= long_threshold -> target long, p <= 1 - long_threshold -> short, else flat. The
// sizer's current volatility is the row's ewma_vol (bp per return sample) scaled to the sizer's
// period (one calendar year / periods_per_year): sigma_period = sigma_sample * sqrt(samples per
// period), samples per period from the sample grid (or the observed sample rate without one); the
// regime flag is VPIN >= crisis_vpin. An entry is sent only when flat with no working order; exits are the bracket legs (stop, target)
// or, on a kill-switch trip, cancel all + a reduce-only market close. An unfilled entry older
// than order_ttl_ns (or facing a flat/opposite target) is cancelled.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/events.hpp"
#include "features/feature_config.hpp"
#include "inference/model.hpp"
#include "orders/order_manager.hpp"
#include "risk/risk_config.hpp"
#include "sim/venue_simulator.hpp"

namespace bot4::engine {

struct StrategyConfig {
  double long_threshold = 0.55;      // p >= this -> long; p <= 1 - this -> short (probability)
  bool market_entry = false;         // entries by market order (else limit at the touch)
  int64_t stop_ticks = 20;           // protective stop distance from entry fill VWAP, ticks
  int64_t target_ticks = 30;         // take-profit distance from entry fill VWAP, ticks
  int64_t order_ttl_ns = 5'000'000'000;  // cancel an unfilled entry after this (0 = GTC), ns
  double equity = 100'000.0;         // starting equity, quote units
  bool vol_from_features = true;     // sizer's current vol from the row's ewma_vol (else current_vol)
  double current_vol = 0.02;         // per-period return stdev fed to the sizer when not from features
  double crisis_vpin = 0.0;          // regime flag: crisis when the row's VPIN >= this (0 = off), ratio
  int64_t fixed_qty_lots = 0;        // > 0: fixed entry size, lots (bypasses the sizer)
  int64_t max_qty_lots = 0;          // > 0: cap on the sized entry, lots (else max_position_lots)
  int64_t min_gap_ns = 0;            // minimum time between entries, ns
  bool exit_on_flip = true;          // flatten an open position when the target turns against it
  double exit_threshold = 0.0;       // flatten when P(position's side) < this (0 = off), probability
};

struct EngineConfig {
  StrategyConfig strategy;
  risk::SizingConfig sizing;
  risk::PreTradeConfig pre_trade;
  risk::KillSwitchConfig kill_switch;
  sim::SimConfig sim;
  features::FeatureConfig features;
  orders::StpPolicy stp = orders::StpPolicy::CancelNew;
  InstrumentId instrument = 0;
  double tick_size = 1.0;
  double lot_size = 1.0;
};

struct DecisionRec {
  int64_t ts;
  double p;
  int8_t target;
  int8_t action;   // 0 none, 1 entry sent, 2 entry cancelled, 3 kill-switch close, 4 rejected
  int16_t pad0;
  int32_t pad1;
  int64_t position;  // lots after the decision
};
struct OrderRec {
  int64_t ts;
  uint64_t id;
  int64_t price;
  int64_t qty;
  int64_t filled;
  uint8_t side;
  uint8_t type;    // orders::OrderType
  uint8_t status;  // orders::OrderState after the event
  uint8_t kind;    // orders::OrderEventKind
  uint8_t role;    // orders::OrderRole
  uint8_t reason;  // orders::Reason
  uint16_t flags;  // kOrderRiskExempt: a protective leg sent although the pre-trade checks refused it
};
inline constexpr uint16_t kOrderRiskExempt = 1;
struct FillRec {
  int64_t ts;       // local receipt time
  uint64_t id;
  int64_t price;    // ticks
  int64_t qty;      // lots
  double fee;       // quote units
  uint8_t side;
  uint8_t maker;
  uint8_t role;     // orders::OrderRole
  uint8_t accepted; // 1 when the order manager accepted the fill
  uint32_t pad;
};
struct EquityRec {
  int64_t ts;
  int64_t position;  // lots
  double realised;   // quote units
  double unrealised;
  double fees;
  double equity;     // realised + unrealised - fees
};

enum Stage : int { kFeatures = 0, kModel, kStrategyRisk, kOrders, kSim, kTickToDecision, kStageCount };
const char* stage_name(int s);

struct EngineCounters {
  uint64_t book_events = 0;
  uint64_t order_events = 0;
  uint64_t trade_events = 0;
  uint64_t decisions = 0;
  uint64_t nan_predictions = 0;
  uint64_t entries = 0;
  uint64_t entry_cancels = 0;
  uint64_t size_zero = 0;          // sizer gave no size
  uint64_t om_rejected = 0;        // order manager refused a submission
  uint64_t om_event_rejections = 0;  // venue responses the order manager refused (counted reasons)
  uint64_t kill_switch_trips = 0;
  uint64_t kill_switch_closes = 0;  // closes sent while the kill switch is tripped
  uint64_t exits = 0;              // exit signals (flip or exit_threshold) that started a flatten
  uint64_t orphan_closes = 0;      // flattens of a position no working order protected
  uint64_t closes = 0;             // reduce-only market closes sent (any reason)
  uint64_t leg_risk_bypass = 0;    // protective legs the pre-trade checks would have refused
  uint64_t no_book = 0;            // decisions without a two-sided book
  uint64_t vol_unknown = 0;        // entry skipped: the features' volatility is not defined yet
  uint64_t crisis_entries = 0;     // entries sized under the crisis regime flag
};

struct EngineResult {
  std::vector<DecisionRec> decisions;
  std::vector<OrderRec> orders;
  std::vector<FillRec> fills;
  std::vector<EquityRec> equity;
  std::array<std::vector<int64_t>, kStageCount> latency_ns;  // one value per decision, ns
  std::vector<int64_t> timer_ns;  // one value per timer firing (grid samples + window kernels), ns
  std::array<uint64_t, 16> rejections{};  // risk::RejectReason counts
  std::array<uint64_t, 16> order_reasons{};  // orders::Reason counts
  EngineCounters counters;
  sim::SimCounters sim;
  double max_drawdown = 0.0;  // quote units, peak-to-trough of equity
  int kill_reason = 0;
};

class TradingEngine {
 public:
  TradingEngine(const EngineConfig& cfg, inference::Model* model);
  ~TradingEngine();
  // Runs the streams (each in receive order) to the end. One run per engine. L2 (book events)
  // or L3 (order events: exact queue positions at the venue), never both; trades in both.
  bool run(const BookEvent* book, size_t n_book, const TradeEvent* trades, size_t n_trades,
           EngineResult& out, std::string& error);
  bool run(const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
           const TradeEvent* trades, size_t n_trades, EngineResult& out, std::string& error);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bot4::engine
