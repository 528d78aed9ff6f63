#include "features/queue_features.hpp"
#include "common/saturating.hpp"

#include <algorithm>
#include <cmath>

#include "features/feature_catalog.hpp"

namespace bot4::features {

double queue_front_after_change(double front, int64_t prev, int64_t now, int64_t traded,
                                bool probabilistic, double power) {
  const double chg = static_cast<double>(prev - now) - static_cast<double>(traded);
  const double level = static_cast<double>(now);
  if (chg < 0 || !probabilistic) return std::min(front, level);
  const double back = static_cast<double>(prev) - front;
  const double fb = std::pow(std::max(back, 0.0), power);
  const double ff = std::pow(std::max(front, 0.0), power);
  const double prob = fb + ff > 0 ? fb / (fb + ff) : 0.5;
  const double moved = front - (1.0 - prob) * chg + std::min(back - prob * chg, 0.0);
  return std::min(moved, level);
}

QueueFeatures::QueueFeatures(const FeatureConfig& config, bool exact_l3)
    : config_(config), exact_l3_(exact_l3) {}

void QueueFeatures::update_side(int side, bool present, int64_t price, int64_t qty, int64_t t,
                                const book::L3Book* l3) {
  Life& life = life_[side];
  VirtualOrder& q = queue_[side];
  if (life.active && (!present || price != life.price)) {
    if (!life.censored) life.last = static_cast<double>(sat_sub(t, life.start)) * 1e-9;
    life.active = false;
  }
  if (!present) {
    q.active = false;
    q.ahead.clear();
    return;
  }
  if (!life.active) {
    // A new life: the first one seen is censored (it began before the data).
    life.censored = !seen_any_[side];
    seen_any_[side] = true;
    life.active = true;
    life.price = price;
    life.start = t;
    q.active = true;
    q.price = price;
    q.joined = t;
    q.level_qty = qty;
    q.traded = 0;
    q.front = static_cast<double>(qty);
    q.ahead.clear();
    if (exact_l3_ && l3 != nullptr) {
      const auto orders = l3->level_orders(side == 0 ? Side::Bid : Side::Ask, price);
      int64_t total = 0;
      for (const auto& o : orders) {
        q.ahead.emplace(o.id, o.qty);
        total += o.qty;
      }
      q.front = static_cast<double>(total);
    }
    return;
  }
  if (!exact_l3_) {
    q.front = queue_front_after_change(q.front, q.level_qty, qty, q.traded,
                                       config_.queue_probabilistic, config_.queue_power);
    q.level_qty = qty;
    q.traded = 0;
  }
}

void QueueFeatures::on_message(const BookSnapshot& snap, const book::L3Book* l3) {
  const int64_t t = snap.t;
  update_side(0, snap.nb > 0, snap.nb > 0 ? snap.bid_px[0] : 0, snap.nb > 0 ? snap.bid_qty[0] : 0, t, l3);
  update_side(1, snap.na > 0, snap.na > 0 ? snap.ask_px[0] : 0, snap.na > 0 ? snap.ask_qty[0] : 0, t, l3);
  const int64_t spread = snap.two_sided() ? snap.spread() : -1;
  if (spread != spread_) {
    if (spread_ >= 0 && !spread_censored_) spread_last_ = static_cast<double>(sat_sub(t, spread_start_)) * 1e-9;
    spread_censored_ = spread >= 0 && !spread_seen_;
    spread_seen_ = spread_seen_ || spread >= 0;
    spread_ = spread;
    spread_start_ = t;
  }
}

void QueueFeatures::on_trade(int64_t price, uint8_t aggressor, int64_t qty) {
  // A sell aggressor trades against bids, a buy aggressor against asks.
  const int side = aggressor == static_cast<uint8_t>(Side::Ask) ? 0
                   : aggressor == static_cast<uint8_t>(Side::Bid) ? 1
                                                                   : -1;
  if (side < 0 || exact_l3_) return;
  VirtualOrder& q = queue_[side];
  if (!q.active || q.price != price) return;
  q.front -= static_cast<double>(qty);
  q.traded += qty;
}

void QueueFeatures::on_order_event(const OrderEvent& ev) {
  const auto action = static_cast<OrderAction>(ev.action);
  if (action == OrderAction::Clear) {
    for (auto& q : queue_) {
      q.ahead.clear();
      q.front = 0;
    }
    return;
  }
  if (action == OrderAction::Add) return;  // a new order joins behind the virtual one
  for (auto& q : queue_) {
    if (!q.active || q.ahead.empty()) continue;
    auto it = q.ahead.find(ev.order_id);
    if (it == q.ahead.end()) continue;
    int64_t& resting = it->second;
    int64_t removed = 0;
    if (action == OrderAction::Modify) {
      // A price change, a size increase or size 0 sends the order behind us; a decrease keeps
      // its place.
      if (ev.price != q.price || ev.qty > resting || ev.qty == 0) {
        removed = resting;
      } else {
        removed = resting - ev.qty;
      }
    } else {  // Cancel or Execute
      removed = std::min(ev.qty, resting);
    }
    resting -= removed;
    q.front -= static_cast<double>(removed);
    if (resting <= 0) q.ahead.erase(it);
    break;
  }
}

void QueueFeatures::write(int64_t t, double* row) const {
  for (int side = 0; side < 2; ++side) {
    const Life& life = life_[side];
    const VirtualOrder& q = queue_[side];
    row[f_bid_life_age + side] = life.active && !life.censored ? static_cast<double>(sat_sub(t, life.start)) * 1e-9 : kNaN;
    row[f_bid_last_life + side] = life.last >= 0 ? life.last : kNaN;
    row[f_queue_ahead_bid + side] = q.active ? std::max(q.front, 0.0) : kNaN;
    row[f_queue_age_bid + side] = q.active ? static_cast<double>(sat_sub(t, q.joined)) * 1e-9 : kNaN;
  }
  row[f_spread_state_age] =
      spread_ >= 0 && !spread_censored_ ? static_cast<double>(sat_sub(t, spread_start_)) * 1e-9 : kNaN;
  row[f_spread_state_last] = spread_last_ >= 0 ? spread_last_ : kNaN;
}

}  // namespace bot4::features
