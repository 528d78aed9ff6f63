#pragma once
// Maker/taker fees in basis points of the fill notional (quote units; base coin for inverse
// contracts). Negative = rebate.
#include <cstdint>

namespace bot4::sim {

struct FeeConfig {
  double maker_bps = 2.0;  // bps of notional for resting (maker) fills
  double taker_bps = 5.0;  // bps of notional for aggressive (taker) fills
};

class FeeModel {
 public:
  explicit FeeModel(const FeeConfig& cfg = {}) : cfg_(cfg) {}
  // Fee for a fill of qty lots at price ticks, in quote units (bps of price tick_size qty lot_size
  // contract_size, contract_size being a linear contract's multiplier); for an inverse (coin-margined)
  // instrument of contract_size quote units per contract, in the base coin: bps of
  // qty lot_size contract_size / price.
  double fee(int64_t price_ticks, int64_t qty_lots, bool maker, double tick_size, double lot_size,
             bool inverse = false, double contract_size = 1.0) const;
  const FeeConfig& config() const { return cfg_; }

 private:
  FeeConfig cfg_;
};

}  // namespace bot4::sim
