#pragma once
// Engine: the stages wired per instrument and fed one event at a time.
//   market event -> venue interface (clock) -> book + features -> models -> ensemble -> strategy ->
//   execution router (sizing, pre-trade checks, order manager) -> venue; venue responses ->
//   router -> ledger, strategy.
// on_book / on_trade / on_order_event / on_timer / on_venue_response each take one event (or a
// small batch, in receive order); run(arrays) is a loop over exactly these calls. Several
// instruments share one engine: one book, feature state, model slots, strategy, router and venue
// per instrument, one ledger and one kill switch across them.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/config_fields.hpp"
#include "common/events.hpp"
#include "engine/records.hpp"
#include "execution/venue.hpp"
#include "features/feature_config.hpp"
#include "inference/ensemble.hpp"
#include "inference/model.hpp"
#include "risk/risk_config.hpp"
#include "strategy/strategy.hpp"

namespace bot4::engine {

#define BOT4_ENGINE_FIELDS(X)                                                                                   \
  X(double, equity, 100'000.0, gt(0), any, "quote units", "starting equity")                                     \
  X(bool, vol_from_features, true, any, any, "",                                                                 \
    "sizer's volatility from the row's ewma_vol scaled to the sizer's period (else current_vol)")                \
  X(double, current_vol, 0.02, gt(0), any, "per period", "return stdev per sizer period when not from the features") \
  X(double, crisis_vpin, 0.0, ge(0), le(1), "ratio", "crisis regime for the sizer when the row's VPIN >= this (0 = off)") \
  X(int64_t, stp, 0, ge(0), le(3), "", "self-trade prevention: 0 cancel new, 1 cancel resting, 2 cancel both, 3 decrement both")

BOT4_CONFIG_STRUCT(EngineParams, BOT4_ENGINE_FIELDS)

struct EngineConfig {
  EngineParams engine;
  risk::SizingConfig sizing;
  risk::PreTradeConfig pre_trade;
  risk::KillSwitchConfig kill_switch;
  features::FeatureConfig features;
  // Combination of each instrument's model slots (mode "none": the strategy reads slot 0).
  inference::EnsembleConfig ensemble;
};

struct InstrumentSpec {
  InstrumentId id = 0;
  double tick_size = 1.0;
  double lot_size = 1.0;
  bool l3 = false;  // book from L3 order events
  // Inverse (coin-margined): a contract is worth contract_size quote units (face value) and
  // settles in the base coin; P&L, fees and notionals follow (portfolio/ledger.hpp). Linear: the
  // multiplier, quote units per price unit per quantity unit (CME ES: 50 USD per index point per
  // contract; 1 for crypto quoted in the base asset), applied to P&L, fees and sizing.
  bool inverse = false;
  double contract_size = 1.0;
};

class Engine {
 public:
  explicit Engine(const EngineConfig& cfg);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // The strategy, the models (slot 0 first; may be empty) and the venue stay the caller's and
  // must outlive the engine. Before start().
  bool add_instrument(const InstrumentSpec& spec, strategy::Strategy* strategy,
                      std::vector<inference::Model*> models, execution::Venue* venue, std::string& error);
  bool start(std::string& error);

  // Market data, each stream in receive order (ts_local), the streams merged by receive time.
  void on_book(const BookEvent& ev);
  void on_order_event(const OrderEvent& ev);
  void on_trade(const TradeEvent& ev);
  void on_book(const BookEvent* ev, size_t n) { for (size_t i = 0; i < n; ++i) on_book(ev[i]); }
  void on_order_event(const OrderEvent* ev, size_t n) { for (size_t i = 0; i < n; ++i) on_order_event(ev[i]); }
  void on_trade(const TradeEvent* ev, size_t n) { for (size_t i = 0; i < n; ++i) on_trade(ev[i]); }
  // Timer work due by local time `now` (sample grid, time-grid decisions) and venue responses due.
  void on_timer(int64_t now);
  // A response pushed by a venue outside the process (a simulated venue is polled instead).
  void on_venue_response(InstrumentId instrument, const execution::VenueResponse& r, int64_t now);
  // End of input: responses still due are applied; fills after the last decision are booked.
  void finish();

  // start() + the merged streams through on_book / on_order_event / on_trade + finish().
  bool run(const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
           const TradeEvent* trades, size_t n_trades, std::string& error);

  // Control commands, applied at once between events (a control plane's kill switch, flatten,
  // pause/resume). kill(): trips the kill switch (reason manual): every instrument cancels its
  // orders and closes, and stays flat. flatten(): every instrument cancels and closes; the
  // strategies trade again afterwards. pause(true): strategies are not called (decisions are
  // still recorded, with action none); working orders stay and venue responses still arrive.
  void kill();
  void flatten();
  void pause(bool on);
  bool paused() const;
  // The same for one instrument (false: not an instrument of this engine). halt(): that
  // instrument cancels and closes and its strategy is not called again (the kill switch stays
  // untouched: the other instruments trade on). pause(id, on) pauses its strategy only.
  bool halt(InstrumentId instrument);
  bool flatten(InstrumentId instrument);
  bool pause(InstrumentId instrument, bool on);
  // Whether one instrument's strategy is paused / halted (false for an unknown instrument).
  bool paused(InstrumentId instrument) const;
  bool halted(InstrumentId instrument) const;
  // A live config change between events (control plane): the engine, sizing, pre-trade and
  // kill-switch sections of `next` replace the running ones as a whole, from the next event on
  // (see PositionSizer / PreTradeChecks / KillSwitch::set_config for what each keeps). The
  // features section is not read: the feature state and the models depend on it. Refused (false,
  // `error`, nothing changed) when engine.stp differs: the order managers are built with it.
  bool set_config(const EngineConfig& next, std::string& error);
  // Replaces model slot `slot` of every instrument that reads features (slot == the lane's model
  // count appends one), from the next decision on; the caller keeps `model` alive. Refused
  // (false, `error`, nothing changed) for a null model, an input width other than the feature
  // engine's, a slot beyond the next free one, or when no instrument reads features.
  // With an ensemble configured a slot may be replaced but not appended (its weights are per slot).
  bool swap_model(size_t slot, inference::Model* model, std::string& error);
  // Adaptive ensemble (inference/ensemble.hpp): every instrument's weights recomputed now from the
  // losses so far, between events (a control-plane command); the number of instruments refreshed
  // (0 when no instrument runs an adaptive ensemble).
  size_t refresh_ensemble_weights();

  // Moves the records so far (decisions, orders, fills, equity, latency in ns) into `into` and
  // forgets them, so a long run's memory stays bounded; totals, counters and per-instrument
  // summaries still cover the whole run. After finish(), result() holds only what came since.
  void take_records(EngineRecords& into);

  EngineResult& result();
  const EngineConfig& config() const;
  int64_t now() const;
  size_t instruments() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace bot4::engine
