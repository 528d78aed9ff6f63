#include "sim/fee_model.hpp"

namespace bot4::sim {

double FeeModel::fee(int64_t price_ticks, int64_t qty_lots, bool maker, double tick_size,
                     double lot_size, bool inverse, double contract_size) const {
  if (inverse) {
    const double coin = static_cast<double>(qty_lots) * lot_size * contract_size /
                        (static_cast<double>(price_ticks) * tick_size);
    return coin * (maker ? cfg_.maker_bps : cfg_.taker_bps) * 1e-4;
  }
  const double notional =
      static_cast<double>(price_ticks) * tick_size * static_cast<double>(qty_lots) * lot_size * contract_size;
  return notional * (maker ? cfg_.maker_bps : cfg_.taker_bps) * 1e-4;
}

}  // namespace bot4::sim
