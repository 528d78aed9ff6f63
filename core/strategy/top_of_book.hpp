#pragma once
// top_of_book: reads the touch on every book message and never trades. The engine's cost on the
// same work other engines' reference loops do (hftbacktest's wait_next_feed + depth read,
// nautilus' on_order_book_deltas), so the engine benchmarks compare equal work.
#include <cstdint>

#include "common/config_fields.hpp"
#include "strategy/strategy.hpp"

namespace bot4::strategy {

#define BOT4_TOP_OF_BOOK_FIELDS(X)

struct TopOfBookConfig {
  template <typename C, typename V>
  static void visit_fields(C&, V&&) {}
};

class TopOfBook final : public Strategy {
 public:
  using Config = TopOfBookConfig;
  static constexpr const char* kName = "top_of_book";
  static constexpr const char* kDoc = "reads the touch on every book message, never trades (engine cost on equal work)";
  explicit TopOfBook(const Config& = {}) {}
  const char* name() const override { return kName; }
  bool book_only() const override { return true; }
  void on_decision(DecisionContext& ctx) override {
    ++reads_;
    if (ctx.top.two_sided()) {
      checksum_ += ctx.top.bid_price + ctx.top.ask_price;
      spread_sum_ += ctx.top.ask_price - ctx.top.bid_price;
    }
  }
  uint64_t reads() const { return reads_; }
  int64_t checksum() const { return checksum_; }  // sum of bid + ask over two-sided reads, ticks
  int64_t spread_sum() const { return spread_sum_; }

 private:
  uint64_t reads_ = 0;
  int64_t checksum_ = 0;
  int64_t spread_sum_ = 0;
};

}  // namespace bot4::strategy
