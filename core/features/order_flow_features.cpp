#include "features/order_flow_features.hpp"
#include "common/saturating.hpp"

#include <cmath>

#include "features/feature_catalog.hpp"

namespace bot4::features {

int64_t ofi_contribution(int64_t bid_prev, int64_t bid_qty_prev, int64_t ask_prev,
                         int64_t ask_qty_prev, int64_t bid, int64_t bid_qty, int64_t ask,
                         int64_t ask_qty) {
  int64_t e = 0;
  if (bid >= bid_prev) e += bid_qty;
  if (bid <= bid_prev) e -= bid_qty_prev;
  if (ask <= ask_prev) e -= ask_qty;
  if (ask >= ask_prev) e += ask_qty_prev;
  return e;
}

OrderFlowFeatures::OrderFlowFeatures(const FeatureConfig& config)
    : config_(config), ofi_(config.flow_window_ns), trades_(config.flow_window_ns),
      orders_(config.flow_window_ns) {}

void OrderFlowFeatures::start(int64_t t) {
  if (start_t_ == INT64_MIN) start_t_ = t;
}

void OrderFlowFeatures::on_message(const BookSnapshot& prev, const BookSnapshot& cur) {
  int64_t v[kMaxDepthLevels + 2] = {};
  for (int m = 0; m < kMaxDepthLevels; ++m) {
    if (m >= config_.depth_levels) break;
    const int64_t bp = m < prev.nb ? prev.bid_px[m] : kNoBidPrice;
    const int64_t bq = m < prev.nb ? prev.bid_qty[m] : 0;
    const int64_t ap = m < prev.na ? prev.ask_px[m] : kNoAskPrice;
    const int64_t aq = m < prev.na ? prev.ask_qty[m] : 0;
    const int64_t b = m < cur.nb ? cur.bid_px[m] : kNoBidPrice;
    const int64_t bqn = m < cur.nb ? cur.bid_qty[m] : 0;
    const int64_t a = m < cur.na ? cur.ask_px[m] : kNoAskPrice;
    const int64_t aqn = m < cur.na ? cur.ask_qty[m] : 0;
    v[m] = ofi_contribution(bp, bq, ap, aq, b, bqn, a, aqn);
  }
  v[kMaxDepthLevels] = cur.bid_qty[0] + cur.ask_qty[0];
  v[kMaxDepthLevels + 1] = 1;
  ofi_.add(cur.t, v);
  ofi_since_row_ += v[0];
  ofi_seen_ = true;
}

void OrderFlowFeatures::on_trade(int64_t t, uint8_t aggressor, int64_t qty) {
  int64_t sign = 0;
  if (aggressor == static_cast<uint8_t>(Side::Bid)) sign = 1;
  if (aggressor == static_cast<uint8_t>(Side::Ask)) sign = -1;
  const int64_t v[3] = {sign * qty, qty, 1};
  trades_.add_merged(t, v);  // only the sums are read
}

void OrderFlowFeatures::on_order_message(int64_t t) {
  const int64_t one = 1;
  orders_.add_merged(t, &one);  // only the sum is read
}

void OrderFlowFeatures::on_cancel(int64_t t) {
  cancels_.push(t);
  ++cancels_pushed_;
}

void OrderFlowFeatures::expire_cancels(int64_t t) {
  const int64_t recent_cut = sat_sub(t, config_.cancel_window_ns);
  const int64_t base_cut = sat_sub(recent_cut, config_.cancel_baseline_ns);
  while (!cancels_.empty() && cancels_.front() <= base_cut) {
    cancels_.pop();
    ++cancels_popped_;
  }
  if (recent_begin_ < cancels_popped_) recent_begin_ = cancels_popped_;
  while (recent_begin_ < cancels_pushed_ && cancels_[recent_begin_ - cancels_popped_] <= recent_cut)
    ++recent_begin_;
}

void OrderFlowFeatures::write(int64_t t, double* row) {
  row[f_ofi_l1] = ofi_seen_ ? static_cast<double>(ofi_since_row_) : kNaN;
  ofi_since_row_ = 0;
  ofi_seen_ = false;

  ofi_.expire(t);
  trades_.expire(t);
  orders_.expire(t);
  // Windows are only complete once the instrument has been watched for a whole window.
  const bool flow_full = start_t_ != INT64_MIN && sat_sub(t, start_t_) >= config_.flow_window_ns;
  const bool have_ofi = flow_full && ofi_.count() > 0;
  row[f_ofi_l1_window] = have_ofi ? static_cast<double>(ofi_.sum(0)) : kNaN;
  if (have_ofi) {
    const double mean_depth = 0.5 * static_cast<double>(ofi_.sum(kMaxDepthLevels)) /
                              static_cast<double>(ofi_.sum(kMaxDepthLevels + 1));
    row[f_ofi_l1_norm] = mean_depth > 0 ? static_cast<double>(ofi_.sum(0)) / mean_depth : kNaN;
  } else {
    row[f_ofi_l1_norm] = kNaN;
  }
  for (int m = 0; m < kMaxDepthLevels; ++m)
    row[f_mlofi_1 + m] = have_ofi && m < config_.depth_levels ? static_cast<double>(ofi_.sum(m)) : kNaN;

  const double volume = static_cast<double>(trades_.sum(1));
  row[f_signed_volume] = flow_full ? static_cast<double>(trades_.sum(0)) : kNaN;
  row[f_trade_imbalance] = flow_full && volume > 0 ? static_cast<double>(trades_.sum(0)) / volume : kNaN;
  row[f_trade_count] = flow_full ? static_cast<double>(trades_.sum(2)) : kNaN;
  const int64_t n_trades = trades_.sum(2);
  row[f_order_to_trade] =
      flow_full ? static_cast<double>(orders_.sum(0)) / static_cast<double>(n_trades > 0 ? n_trades : 1)
                : kNaN;

  expire_cancels(t);
  const bool cancel_full = start_t_ != INT64_MIN &&
                           sat_sub(t, start_t_) >= sat_add(config_.cancel_window_ns, config_.cancel_baseline_ns);
  if (!cancel_full) {
    row[f_cancel_count] = start_t_ != INT64_MIN && sat_sub(t, start_t_) >= config_.cancel_window_ns
                              ? static_cast<double>(cancels_pushed_ - recent_begin_)
                              : kNaN;
    row[f_cancel_rate_baseline] = kNaN;
    row[f_cancel_burst_z] = kNaN;
    row[f_cancel_burst] = kNaN;
    return;
  }
  const double recent = static_cast<double>(cancels_pushed_ - recent_begin_);
  const double baseline = static_cast<double>(recent_begin_ - cancels_popped_);
  // Integer counts and ns windows: form the products first so each value is rounded once and an
  // expected count that equals C_W gives z = 0 exactly (1e-9 is not a binary fraction).
  const double rate = baseline * 1e9 / static_cast<double>(config_.cancel_baseline_ns);
  const double expected = baseline * static_cast<double>(config_.cancel_window_ns) /
                          static_cast<double>(config_.cancel_baseline_ns);
  row[f_cancel_count] = recent;
  row[f_cancel_rate_baseline] = rate;
  const double z = expected > 0 ? (recent - expected) / std::sqrt(expected) : kNaN;
  row[f_cancel_burst_z] = z;
  const bool enough = recent >= static_cast<double>(config_.cancel_burst_min);
  row[f_cancel_burst] = enough && (expected == 0 || z >= config_.cancel_burst_z) ? 1.0 : 0.0;
}

}  // namespace bot4::features
