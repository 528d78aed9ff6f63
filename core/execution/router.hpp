#pragma once
// Execution router of one instrument: owns the mapping between the strategy's intents, the order
// manager's orders, the pre-trade checks and the venue. It
//  - turns intents into orders (sizing through the risk sizer when an intent leaves the size
//    open), runs the pre-trade checks, submits to the order manager and sends what the manager
//    emits to the venue;
//  - applies the venue's responses (acks, fills, expiries, rejects, cancel confirmations) to the
//    order manager, the checks and the ledger, records them, and tells the strategy of its fills
//    and rejections;
//  - flattens: cancel every working order (pending until the venue confirms, so no leg can fill
//    behind our back), then, with nothing working, close what is left with a reduce-only market
//    order; repeat until flat. The kill switch flattens for good; a strategy's flatten intent
//    flattens once and trading resumes. A position nothing protects is flattened too.
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "engine/records.hpp"
#include "execution/venue.hpp"
#include "orders/order_manager.hpp"
#include "portfolio/ledger.hpp"
#include "risk/kill_switch.hpp"
#include "risk/position_sizer.hpp"
#include "risk/pre_trade_checks.hpp"
#include "strategy/strategy.hpp"

namespace bot4::book {
class L2Book;
}

namespace bot4::execution {

// What sizing and pricing need at a decision, from the engine.
struct DecisionInputs {
  int64_t now = 0;
  strategy::BookTop top;
  double equity = 0.0;        // starting equity + total P&L, quote units
  double period_vol = 0.0;    // sizer's sigma per period (NaN: unknown yet)
  bool crisis = false;        // regime flag for the sizer
  double size_scale = 1.0;    // (0, 1]: the ensemble breaker's multiplier on entry sizes (not reduce-only)
};

struct RouterSetup {
  InstrumentId instrument = 0;
  size_t ledger_slot = 0;
  double tick_size = 1.0;
  double lot_size = 1.0;
  bool inverse = false;        // coin-margined: a lot's notional is lot_size x contract_size quote units
  double contract_size = 1.0;  // inverse: quote units per contract; linear: the multiplier
  orders::OrderManagerConfig orders;
  risk::PreTradeConfig pre_trade;
};

// An inverse contract's notional per lot in the pre-trade checks' unit (ticks x lots):
// contract_size / tick_size; 0 when that is not a whole number (or contract_size is not > 0).
int64_t inverse_notional_ticks(double contract_size, double tick_size);

class Router final : public strategy::Execution {
 public:
  Router(const RouterSetup& setup, Venue* venue, risk::KillSwitch* kill, const risk::PositionSizer* sizer,
         portfolio::Ledger* ledger, engine::EngineResult* out);

  void set_strategy(strategy::Strategy* s) { strategy_ = s; }
  // A live change of the pre-trade limits (see PreTradeChecks::set_config); also the sizing cap.
  void set_pre_trade(const risk::PreTradeConfig& c) {
    setup_.pre_trade = c;
    checks_.set_config(c);
  }
  // The book as the strategy knows it (marks for the checks outside decisions).
  void set_book(const book::L2Book* b);

  // Around a strategy call: inputs in; the action the decision ended in out (runs the flatten
  // state machine and protects an orphaned position).
  void begin_decision(const DecisionInputs& in);
  strategy::DecisionAction end_decision();
  // Start flattening (kill switch: for good until it resets).
  void start_flatten(int64_t now);

  // Responses the venue has for us by `now` (pull), or one pushed by an outside venue.
  void poll_venue(int64_t now);
  void on_response(const VenueResponse& r, int64_t now);
  // Latest order manager events to the venue and the records (after a batch of responses).
  void forward_events(int64_t now);

  // strategy::Execution
  strategy::Outcome submit(const strategy::OrderSpec& order) override;
  strategy::Outcome target(const strategy::TargetSpec& target) override;
  bool cancel(OrderId id) override;
  strategy::Outcome replace(OrderId id, int64_t price_ticks, int64_t qty_lots) override;
  void flatten() override;
  const orders::Order* order(OrderId id) const override { return om_.find(id); }
  const orders::BracketLegs* group(OrderId first_id) const override { return om_.group(first_id); }
  void open_orders(std::vector<const orders::Order*>& out) const override;
  size_t live_orders() const override { return om_.live_orders(); }

  bool flattening() const { return flattening_; }
  strategy::RiskHeadroom headroom() const;
  const orders::OrderManager& order_manager() const { return om_; }
  const risk::PreTradeChecks& checks() const { return checks_; }
  int64_t position() const { return ledger_->book(setup_.ledger_slot).position; }

 private:
  void note(strategy::DecisionAction a) { action_ = a; }
  void note_latency(int64_t ns);
  void apply(const VenueResponse& r, int64_t now);
  int64_t mid_ticks() const;
  strategy::DecisionAction flatten_step();
  int64_t size_order(const strategy::OrderSpec& o, int64_t price);
  template <typename It>
  void release_checks(It it, bool venue_reject);

  RouterSetup setup_;
  Venue* venue_;
  risk::KillSwitch* kill_;
  const risk::PositionSizer* sizer_;
  portfolio::Ledger* ledger_;
  engine::EngineResult* out_;
  strategy::Strategy* strategy_ = nullptr;
  orders::OrderManager om_;
  risk::PreTradeChecks checks_;

  DecisionInputs in_;
  bool in_decision_ = false;
  strategy::DecisionAction action_ = strategy::DecisionAction::None;
  uint64_t next_client_ = 1;
  uint64_t next_key_ = 1;  // check ids of intents that carry their own client id
  const book::L2Book* book_ = nullptr;
  bool flattening_ = false;
  OrderId close_id_ = 0;  // the reduce-only market close in flight
  std::unordered_map<OrderId, uint64_t> ptc_key_;  // order id -> pre-trade check id
  std::unordered_map<OrderId, int64_t> sent_at_;   // order id -> local send time (until acked)
  std::vector<VenueResponse> responses_;
  std::vector<const orders::Order*> scratch_;
};

}  // namespace bot4::execution
