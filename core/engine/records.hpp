#pragma once
// What a run records: one DecisionRec and EquityRec per decision, one OrderRec per order event,
// one FillRec per venue fill, per-stage latencies and the counters. The record layouts are the
// result arrays' dtypes (ext builds them from the field lists in bind_engine.cpp; tests check the
// sizes); the counter set is declared once below.
#include <array>
#include <cstdint>
#include <vector>

#include "sim/venue_simulator.hpp"

namespace bot4::engine {

struct DecisionRec {
  int64_t ts;
  double p;          // the probability the strategy was given: the ensemble's when one is configured
                     // (inference/ensemble.hpp), else model slot 0's output (NaN without a model)
  int8_t target;     // the strategy's signal (+1 / -1 / 0)
  int8_t action;     // strategy::DecisionAction
  int16_t pad0;
  uint32_t instrument;
  int64_t position;  // lots after the decision
};
// A model scored at a decision but not the one the strategy's p comes from (slots >= 1: a
// shadow/challenger), so its outputs can be compared with the champion's on the same events.
// With an ensemble configured every slot (0 included) is recorded: the inputs of the combination.
struct ScoreRec {
  int64_t ts;
  double p;
  uint32_t instrument;
  uint32_t slot;
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
  uint32_t instrument;
  uint32_t pad;
};
inline constexpr uint16_t kOrderRiskExempt = 1;
struct FillRec {
  int64_t ts;       // local time the engine applied it
  uint64_t id;
  int64_t price;    // ticks
  int64_t qty;      // lots
  double fee;       // quote units
  uint8_t side;
  uint8_t maker;
  uint8_t role;     // orders::OrderRole
  uint8_t accepted; // 1 when the order manager accepted the fill
  uint32_t instrument;
};
struct EquityRec {
  int64_t ts;
  int64_t position;  // lots, of the decision's instrument
  double realised;   // quote units, of the decision's instrument
  double unrealised;
  double fees;
  double equity;     // realised + unrealised - fees, of the decision's instrument
  double total_equity;  // all instruments, each marked at its last mid
  uint32_t instrument;
  uint32_t pad;
};

// ensemble: the ensemble stage (combination, breaker, adaptive weights; 0 without an ensemble).
enum Stage : int { kFeatures = 0, kModel, kEnsemble, kStrategyRisk, kOrders, kSim, kTickToDecision, kStageCount };
const char* stage_name(int s);

// X(name, doc)
#define BOT4_ENGINE_COUNTERS(X)                                                                \
  X(book_events, "book events received")                                                      \
  X(order_events, "L3 order events received")                                                 \
  X(trade_events, "trades received")                                                          \
  X(decisions, "decision points (strategy calls)")                                            \
  X(nan_predictions, "decisions whose model output was not finite")                           \
  X(no_book, "decisions without a two-sided book")                                            \
  X(orders_sent, "orders (or groups) the strategy sent that passed the checks")              \
  X(cancels_sent, "cancels the strategy requested")                                           \
  X(size_zero, "sized orders the sizer gave no size")                                         \
  X(vol_unknown, "sized orders skipped: no volatility estimate yet")                          \
  X(crisis_entries, "sized orders sized under the crisis regime flag")                        \
  X(risk_rejected, "intents the pre-trade checks refused")                                    \
  X(om_rejected, "intents the order manager refused")                                         \
  X(om_event_rejections, "venue responses the order manager refused (reasons counted)")      \
  X(flattening_ignored, "intents ignored while flattening")                                   \
  X(kill_switch_trips, "kill switch trips")                                                   \
  X(kill_switch_closes, "closes sent while the kill switch is tripped")                       \
  X(exits, "flatten intents from the strategy")                                               \
  X(orphan_closes, "flattens of a position no working order protected")                       \
  X(closes, "reduce-only market closes sent (any reason)")                                    \
  X(leg_risk_bypass, "protective legs the pre-trade checks would have refused")               \
  X(end_of_run_fills, "fills received after the last decision (booked at the end)")            \
  X(late_events, "streamed backtest: records pushed below an earlier watermark (processed out of their order)") \
  X(commands, "control commands applied (kill, flatten, pause, resume, config changes, model swaps, weight refreshes)") \
  X(ensemble_calm, "ensemble decisions with the model dispersion <= ensemble.scale_dispersion")  \
  X(ensemble_scaled, "ensemble decisions above scale_dispersion: size scaled by ensemble.size_scale") \
  X(ensemble_fallback, "ensemble decisions above fallback_dispersion: the fallback slot alone, size scaled") \
  X(ensemble_undefined, "ensemble decisions with a non-finite model output (no probability)")    \
  X(ensemble_refreshes, "adaptive ensemble weight refreshes at the normal cadence (refresh_every)") \
  X(ensemble_fast_refreshes, "adaptive ensemble weight refreshes at the volatile cadence (refresh_every_fast)") \
  X(ensemble_flag_refreshes, "adaptive ensemble weight refreshes on request (Engine::refresh_ensemble_weights)")

#define BOT4_COUNTER_MEMBER(name, doc) uint64_t name = 0;
struct EngineCounters {
  BOT4_ENGINE_COUNTERS(BOT4_COUNTER_MEMBER)
  template <typename C, typename V>
  static void visit(C& c, V&& v) {
#define BOT4_COUNTER_VISIT(name, doc) v(#name, doc, c.name);
    BOT4_ENGINE_COUNTERS(BOT4_COUNTER_VISIT)
#undef BOT4_COUNTER_VISIT
  }
};
#undef BOT4_COUNTER_MEMBER

// Per-instrument summary at the end of a run.
struct InstrumentSummary {
  uint32_t instrument = 0;
  uint64_t events = 0;
  uint64_t decisions = 0;
  uint64_t orders = 0;   // orders created (New events)
  uint64_t fills = 0;
  int64_t position = 0;
  double realised = 0.0;
  double unrealised = 0.0;
  double fees = 0.0;
  double pnl = 0.0;      // realised + unrealised - fees
  sim::SimCounters sim;
};

// The per-event records of a run (or of the part of it taken so far).
struct EngineRecords {
  std::vector<DecisionRec> decisions;
  std::vector<ScoreRec> scores;
  std::vector<OrderRec> orders;
  std::vector<FillRec> fills;
  std::vector<EquityRec> equity;
  std::array<std::vector<int64_t>, kStageCount> latency_ns;
  std::vector<int64_t> timer_ns;
};

struct EngineResult {
  std::vector<DecisionRec> decisions;
  std::vector<ScoreRec> scores;  // slots >= 1 at every decision
  std::vector<OrderRec> orders;
  std::vector<FillRec> fills;
  std::vector<EquityRec> equity;
  std::array<std::vector<int64_t>, kStageCount> latency_ns;  // one value per decision, ns
  std::vector<int64_t> timer_ns;  // one value per timer firing (grid samples + window kernels), ns
  std::array<uint64_t, 16> rejections{};     // risk::RejectReason counts (all instruments)
  std::array<uint64_t, 16> order_reasons{};  // orders::Reason counts (all instruments)
  EngineCounters counters;
  sim::SimCounters sim;                      // summed over the instruments' simulated venues
  std::vector<InstrumentSummary> instruments;
  double max_drawdown = 0.0;  // quote units, peak-to-trough of total equity
  int kill_reason = 0;
};

}  // namespace bot4::engine
