#pragma once
// Best-price lives (top-of-book survival), spread-state run lengths and the queue position of a
// virtual order joined at the back of each best level when its life begins. On L3 data the
// position is exact (the orders ahead are tracked by id); on L2 data it follows the queue model
// of METHODS.md 4.13: risk-averse by default (only trades advance the order), or the power-law
// probabilistic model.
#include <cstdint>
#include <unordered_map>

#include "book/l3_book.hpp"
#include "features/book_snapshot.hpp"
#include "features/feature_config.hpp"

namespace bot4::features {

// L2 queue-ahead update for a level size change prev -> now with `traded` volume at the level
// since the previous change (METHODS.md 4.13). Returns the new front.
double queue_front_after_change(double front, int64_t prev, int64_t now, int64_t traded,
                                bool probabilistic, double power);

class QueueFeatures {
 public:
  QueueFeatures(const FeatureConfig& config, bool exact_l3);
  // Message end, any book state (an empty side ends its life).
  void on_message(const BookSnapshot& snap, const book::L3Book* l3);
  void on_trade(int64_t price, uint8_t aggressor, int64_t qty);
  // An L3 event the book accepted (called before the message end that may start a new life).
  void on_order_event(const OrderEvent& ev);
  void write(int64_t t, double* row) const;

 private:
  struct Life {
    int64_t price;
    int64_t start = 0;
    bool active = false;
    bool censored = true;    // began before the data did: its age is unknown
    double last = -1.0;      // last completed life in seconds (< 0: none yet)
  };
  struct VirtualOrder {
    bool active = false;
    int64_t price = 0;
    int64_t joined = 0;
    double front = 0;
    int64_t level_qty = 0;  // L2: level size at the previous message
    int64_t traded = 0;     // L2: volume traded at the level since the previous message
    std::unordered_map<uint64_t, int64_t> ahead;  // L3: orders ahead -> their resting qty
  };
  void update_side(int side, bool present, int64_t price, int64_t qty, int64_t t,
                   const book::L3Book* l3);

  const FeatureConfig& config_;
  bool exact_l3_;
  Life life_[2];
  bool seen_any_[2] = {false, false};
  VirtualOrder queue_[2];
  // spread state
  int64_t spread_ = -1;
  int64_t spread_start_ = 0;
  bool spread_censored_ = true;
  bool spread_seen_ = false;
  double spread_last_ = -1.0;
};

}  // namespace bot4::features
