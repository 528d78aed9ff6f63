#include "sim/queue_model.hpp"

#include <algorithm>
#include <cmath>

namespace bot4::sim {

void QueueModel::on_entry(QueuePosition& q, int64_t level_qty) const {
  q.front = static_cast<double>(std::max<int64_t>(level_qty, 0));
  q.cum_trade = 0.0;
}

void QueueModel::on_trade(QueuePosition& q, int64_t qty, int64_t own_ahead) const {
  q.front -= static_cast<double>(qty - std::min(std::max<int64_t>(own_ahead, 0), qty));
  q.cum_trade += static_cast<double>(qty);
}

double QueueModel::prob(double front, double back) const {
  auto f = [&](double x) {
    x = std::max(x, 0.0);
    return cfg_.kind == QueueModelKind::LogProb ? std::log1p(x) : std::pow(x, cfg_.power);
  };
  const double fb = f(back), ff = f(front);
  const double den = fb + ff;
  return den > 0.0 ? fb / den : 0.5;
}

void QueueModel::on_level_change(QueuePosition& q, int64_t prev, int64_t next) const {
  const double p = static_cast<double>(prev), n = static_cast<double>(next);
  const double chg = (p - n) - q.cum_trade;
  q.cum_trade = 0.0;
  if (cfg_.kind == QueueModelKind::RiskAverse || chg < 0.0) {
    q.front = std::min(q.front, n);
    return;
  }
  const double back = p - q.front;
  const double pr = prob(q.front, back);
  q.front = std::min(q.front - (1.0 - pr) * chg + std::min(back - pr * chg, 0.0), n);
}

void QueueModel::on_level_change_at(QueuePosition& q, int64_t prev, int64_t next, int64_t ts) const {
  if (next < prev) {
    q.change_ts = ts;
    q.change_prev = prev;
    q.change_next = next;
    q.front_before = q.front;
    q.cum_before = q.cum_trade;
  } else {
    q.change_ts = INT64_MIN;
  }
  on_level_change(q, prev, next);
}

bool QueueModel::on_trade_at(QueuePosition& q, int64_t qty, int64_t own_ahead, int64_t ts) const {
  if (q.change_ts != ts) {
    on_trade(q, qty, own_ahead);
    return false;
  }
  // Undo the decrease, take the print, redo the decrease: the print explains part of it.
  QueuePosition before = q;
  before.front = q.front_before;
  before.cum_trade = q.cum_before;
  on_trade(before, qty, own_ahead);
  q.front_before = before.front;  // a further print of this millisecond starts from here
  q.cum_before = before.cum_trade;
  on_level_change(before, q.change_prev, q.change_next);
  q.front = before.front;
  q.cum_trade = before.cum_trade;
  return true;
}

int64_t QueueModel::take_fill(QueuePosition& q) const {
  if (std::round(q.front) >= 0.0) return 0;
  const auto filled = static_cast<int64_t>(std::floor(-q.front));
  q.front = 0.0;
  return filled;
}

}  // namespace bot4::sim
