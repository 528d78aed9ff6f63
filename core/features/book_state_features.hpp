#pragma once
// Book-state family: spread, mid, weighted mid, micro-price and its momentum, queue and depth
// imbalance, book slope and depth, all read from the last complete message's snapshot.
#include "features/book_snapshot.hpp"
#include "features/feature_config.hpp"
#include "features/rolling.hpp"

namespace bot4::features {

class BookStateFeatures {
 public:
  BookStateFeatures(const FeatureConfig& config, double tick_size);
  // Micro-price of a two-sided snapshot (NaN without a table or outside it).
  double microprice(const BookSnapshot& snap) const;
  // g(I, spread) of the table, i.e. micro-price - mid (NaN where microprice() is NaN).
  double microprice_adjustment(const BookSnapshot& snap) const;
  // Called at each return sample (two-sided book) to feed the momentum features.
  void on_sample(const BookSnapshot& snap);
  void write(const BookSnapshot& snap, double* row) const;

 private:
  const FeatureConfig& config_;
  double tick_size_;
  SampleWindow micro_;  // micro-price at the last 11 samples
};

}  // namespace bot4::features
