#pragma once
// market_maker: two-sided quotes around the micro-price with an inventory skew.
//   fair   = micro-price (bid * ask_qty + ask * bid_qty) / (bid_qty + ask_qty), ticks
//   bid    = floor(fair - half_spread_ticks - skew_ticks_per_lot * position), never above the best bid
//   ask    = ceil (fair + half_spread_ticks - skew_ticks_per_lot * position), never below the best ask
// (so quotes rest and never cross). A side stops quoting when its fill would take |position|
// beyond max_inventory_lots. Queue-aware requoting: a resting quote keeps its place (and its queue
// priority) until the wanted price is requote_ticks or more away from it or it has been resting
// for max_quote_age_ns; then it is cancelled and, once the cancel is confirmed, placed anew.
// Toxic flow pulls both quotes: VPIN >= pull_vpin, or a cancel burst (the cancel_burst feature),
// when enabled; quoting resumes when the flag clears.
#include <cstdint>

#include "common/config_fields.hpp"
#include "strategy/strategy.hpp"

namespace bot4::strategy {

#define BOT4_MARKET_MAKER_FIELDS(X)                                                                            \
  X(double, half_spread_ticks, 1.0, ge(0), any, "ticks", "quote distance from the micro-price")                  \
  X(int64_t, quote_lots, 1, gt(0), any, "lots", "size of each quote")                                           \
  X(int64_t, max_inventory_lots, 10, gt(0), any, "lots", "no quote on a side whose fill would exceed this |position|") \
  X(double, skew_ticks_per_lot, 0.5, ge(0), any, "ticks/lot", "both quotes move against the inventory by this per lot") \
  X(int64_t, requote_ticks, 1, gt(0), any, "ticks", "requote when the wanted price is this far from the resting one") \
  X(int64_t, max_quote_age_ns, 0, ge(0), any, "ns", "requote a quote older than this (0 = never by age)")     \
  X(double, pull_vpin, 0.0, ge(0), le(1), "ratio", "pull quotes while VPIN >= this (0 = off)")                   \
  X(bool, pull_on_cancel_burst, true, any, any, "", "pull quotes while the cancel_burst feature is set")

BOT4_CONFIG_STRUCT(MarketMakerConfig, BOT4_MARKET_MAKER_FIELDS)

class MarketMaker final : public Strategy {
 public:
  using Config = MarketMakerConfig;
  static constexpr const char* kName = "market_maker";
  static constexpr const char* kDoc =
      "two-sided quotes around the micro-price, inventory skew, queue-aware requoting, pulled on toxic flow";
  explicit MarketMaker(const Config& cfg) : cfg_(cfg) {}
  const char* name() const override { return kName; }
  void on_decision(DecisionContext& ctx) override;
  bool holds_inventory() const override { return true; }
  const Config& config() const { return cfg_; }
  // A live parameter change (control plane), read from the next decision; working quotes stay.
  void set_config(const Config& cfg) { cfg_ = cfg; }
  uint64_t pulls() const { return pulls_; }
  uint64_t requotes() const { return requotes_; }

 private:
  struct Quote {
    OrderId id = 0;
    int64_t price = 0;
    int64_t placed = 0;
  };
  // Keeps, cancels or places the quote of one side; want = 0: no quote on that side.
  void manage(DecisionContext& ctx, Quote& q, Side side, int64_t want);
  bool live(const Execution& ex, const Quote& q) const;

  Config cfg_;
  Quote bid_, ask_;
  uint64_t pulls_ = 0;
  uint64_t requotes_ = 0;
};

}  // namespace bot4::strategy
