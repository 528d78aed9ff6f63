#include "features/book_state_features.hpp"

#include <algorithm>
#include <cmath>

#include "features/feature_catalog.hpp"

namespace bot4::features {

BookStateFeatures::BookStateFeatures(const FeatureConfig& config, double tick_size)
    : config_(config), tick_size_(tick_size), micro_(11) {}

double BookStateFeatures::microprice_adjustment(const BookSnapshot& snap) const {
  const MicropriceTable& table = config_.microprice;
  if (table.n_spreads <= 0 || table.n_imbalance <= 0 || !snap.two_sided()) return kNaN;
  const int64_t spread = snap.spread();
  if (spread < 1 || spread > table.n_spreads) return kNaN;
  const double qb = static_cast<double>(snap.bid_qty[0]);
  const double qa = static_cast<double>(snap.ask_qty[0]);
  const double imbalance = qb / (qb + qa);
  const int bucket = std::min(static_cast<int>(imbalance * table.n_imbalance), table.n_imbalance - 1);
  return table.g[static_cast<size_t>((spread - 1) * table.n_imbalance + bucket)];
}

double BookStateFeatures::microprice(const BookSnapshot& snap) const {
  return snap.mid() + microprice_adjustment(snap);
}

void BookStateFeatures::on_sample(const BookSnapshot& snap) { micro_.push(microprice(snap)); }

namespace {
// OLS slope of cumulative size on distance from the mid over the occupied levels.
double depth_slope(const int64_t* px, const int64_t* qty, int n, double mid) {
  if (n < 3) return kNaN;
  double sx = 0, sy = 0, sxx = 0, sxy = 0, cum = 0;
  for (int i = 0; i < n; ++i) {
    const double x = std::fabs(static_cast<double>(px[i]) - mid);
    cum += static_cast<double>(qty[i]);
    sx += x;
    sy += cum;
    sxx += x * x;
    sxy += x * cum;
  }
  const double dn = n;
  const double var = sxx - sx * sx / dn;
  if (!(var > 0)) return kNaN;
  return (sxy - sx * sy / dn) / var;
}
}  // namespace

void BookStateFeatures::write(const BookSnapshot& snap, double* row) const {
  const bool two = snap.two_sided();
  if (!two) {
    for (int id = f_spread_ticks; id <= f_depth_imbalance_10; ++id) row[id] = kNaN;
  } else {
    const double mid = snap.mid();
    const double qb = static_cast<double>(snap.bid_qty[0]);
    const double qa = static_cast<double>(snap.ask_qty[0]);
    const double bid = static_cast<double>(snap.bid_px[0]);
    const double ask = static_cast<double>(snap.ask_px[0]);
    const double imbalance = qb / (qb + qa);
    row[f_spread_ticks] = static_cast<double>(snap.spread());
    row[f_mid_ticks] = mid;
    row[f_mid_price] = mid * tick_size_;
    row[f_weighted_mid_offset] = imbalance * ask + (1.0 - imbalance) * bid - mid;
    // g itself, not (mid + g) - mid, which would round g to the ulp of the mid (~1e-10 ticks).
    row[f_microprice_offset] = microprice_adjustment(snap);
    const size_t have = micro_.size();
    row[f_microprice_momentum_1] = have >= 2 ? micro_.ago(0) - micro_.ago(1) : kNaN;
    row[f_microprice_momentum_10] = have >= 11 ? micro_.ago(0) - micro_.ago(10) : kNaN;
    row[f_queue_imbalance_l1] = (qb - qa) / (qb + qa);
    int64_t sum_b = snap.bid_qty[0], sum_a = snap.ask_qty[0];
    for (int k = 2; k <= kMaxDepthLevels; ++k) {
      const int id = f_depth_imbalance_2 + (k - 2);
      if (k > config_.depth_levels || k > snap.nb || k > snap.na) {
        row[id] = kNaN;
        continue;
      }
      sum_b += snap.bid_qty[k - 1];
      sum_a += snap.ask_qty[k - 1];
      row[id] = static_cast<double>(sum_b - sum_a) / static_cast<double>(sum_b + sum_a);
    }
  }
  const double mid = two ? snap.mid() : kNaN;
  row[f_book_slope_bid] = two ? depth_slope(snap.bid_px, snap.bid_qty, snap.nb, mid) : kNaN;
  row[f_book_slope_ask] = two ? depth_slope(snap.ask_px, snap.ask_qty, snap.na, mid) : kNaN;
  int64_t depth_b = 0, depth_a = 0;
  for (int i = 0; i < snap.nb; ++i) depth_b += snap.bid_qty[i];
  for (int i = 0; i < snap.na; ++i) depth_a += snap.ask_qty[i];
  row[f_depth_bid] = snap.nb > 0 ? static_cast<double>(depth_b) : kNaN;
  row[f_depth_ask] = snap.na > 0 ? static_cast<double>(depth_a) : kNaN;
}

}  // namespace bot4::features
