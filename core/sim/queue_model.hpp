#pragma once
// L2 queue-ahead models (METHODS.md §4.13). `front` is the quantity (lots) ahead of our resting
// order at its level. Risk-averse (default): front moves only on trades at the level and is
// capped by the level size. Probabilistic: a size decrease not explained by trades is split
// between the queue ahead and behind with prob = f(back) / (f(back) + f(front)), f(x) = x^n
// (power) or log(1 + x).
#include <cstdint>

namespace bot4::sim {

enum class QueueModelKind : uint8_t { RiskAverse = 0, PowerProb = 1, LogProb = 2 };

struct QueueModelConfig {
  QueueModelKind kind = QueueModelKind::RiskAverse;
  double power = 2.0;  // n of f(x) = x^n (PowerProb)
};

struct QueuePosition {
  double front = 0.0;      // lots ahead of us
  double cum_trade = 0.0;  // traded at the level since the last level change, lots
  // The last decrease of our level (prev -> next at exchange time change_ts) and the queue before
  // it: a print of the same exchange millisecond that arrives after the feed already lowered the
  // level is replayed as if it had come first, so its volume is counted once.
  int64_t change_ts = INT64_MIN;
  int64_t change_prev = 0;
  int64_t change_next = 0;
  double front_before = 0.0;
  double cum_before = 0.0;
};

class QueueModel {
 public:
  explicit QueueModel(const QueueModelConfig& cfg = {}) : cfg_(cfg) {}
  const QueueModelConfig& config() const { return cfg_; }
  // Our order joins the back of a level of `level_qty` lots.
  void on_entry(QueuePosition& q, int64_t level_qty) const;
  // A trade of `qty` lots at our level, of which `own_ahead` lots filled our own orders ahead of
  // this one at the level (they are not in `front`, which counts replayed lots only): front moves
  // by qty - own_ahead; the whole print counts for the level-change accounting (the replayed level
  // drops by qty).
  void on_trade(QueuePosition& q, int64_t qty, int64_t own_ahead = 0) const;
  // The level's size changed prev -> next (lots).
  void on_level_change(QueuePosition& q, int64_t prev, int64_t next) const;
  // A level change at exchange time ts: as on_level_change, remembering a decrease (see
  // QueuePosition::change_ts).
  void on_level_change_at(QueuePosition& q, int64_t prev, int64_t next, int64_t ts) const;
  // A print at our level at exchange time ts; returns true when it was replayed before a decrease
  // of the same millisecond that the feed had already applied.
  bool on_trade_at(QueuePosition& q, int64_t qty, int64_t own_ahead, int64_t ts) const;
  // Lots of ours that executed (floor(-front)); 0 while front >= 0. Resets front to 0 after.
  int64_t take_fill(QueuePosition& q) const;
  double prob(double front, double back) const;

 private:
  QueueModelConfig cfg_;
};

}  // namespace bot4::sim
