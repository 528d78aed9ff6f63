#pragma once
// Order-flow family: L1 and multi-level OFI, trade flow, order-to-trade ratio and the
// cancel-burst detector.
#include <cstdint>

#include "features/book_snapshot.hpp"
#include "features/feature_config.hpp"
#include "features/rolling.hpp"

namespace bot4::features {

// Cont-Kukanov-Stoikov e_n for one level between two snapshots; a missing level is size 0 at a
// sentinel price (kNoBidPrice / kNoAskPrice), consistently on both snapshots.
int64_t ofi_contribution(int64_t bid_prev, int64_t bid_qty_prev, int64_t ask_prev,
                         int64_t ask_qty_prev, int64_t bid, int64_t bid_qty, int64_t ask,
                         int64_t ask_qty);

class OrderFlowFeatures {
 public:
  explicit OrderFlowFeatures(const FeatureConfig& config);
  void start(int64_t t);  // first event of the instrument: the baseline windows start here
  // Both snapshots two-sided (the engine skips crossed, locked and one-sided states).
  void on_message(const BookSnapshot& prev, const BookSnapshot& cur);
  void on_trade(int64_t t, uint8_t aggressor, int64_t qty);
  void on_order_message(int64_t t);  // one L2 level update or one L3 add/modify/cancel
  void on_cancel(int64_t t);
  // Writes the family's columns for a row at time t and resets the since-last-row OFI.
  void write(int64_t t, double* row);

 private:
  void expire_cancels(int64_t t);

  const FeatureConfig& config_;
  int64_t start_t_ = INT64_MIN;
  int64_t ofi_since_row_ = 0;
  bool ofi_seen_ = false;
  TimeWindowSum<kMaxDepthLevels + 2> ofi_;  // e^1..e^10, Qb+Qa at L1, message count
  TimeWindowSum<3> trades_;                 // signed qty, qty, count
  TimeWindowSum<1> orders_;                 // order messages
  Fifo<int64_t> cancels_;                   // cancel times within baseline + W
  uint64_t cancels_popped_ = 0;
  uint64_t cancels_pushed_ = 0;
  uint64_t recent_begin_ = 0;  // absolute index of the first cancel inside (t - W, t]
};

}  // namespace bot4::features
