#pragma once
// Latency model: constant order-entry latency (our send -> venue) and response latency (venue ->
// us, for acks, fills, rejects). Feed latency is not a parameter: it is the data's own
// ts_local - ts_exchange of each market event.
//
// Two clocks: we send on the local clock, the venue matches on the exchange clock, and a
// recording's clocks need not agree (Binance BTCUSDT 2024-08-08: ts_local - ts_exchange is about
// -1.27 s). With align_clocks the offset local - exchange is learned from the market data as the
// running minimum of ts_local - ts_exchange (the fastest message seen is taken as zero feed
// latency), and converts between the clocks: an order sent at local t reaches the venue at
// exchange time t - offset + entry_ns; a venue event at exchange time v is received at local time
// v + offset + response_ns. The minimum only falls, so the mapping is causal; its bias is the true
// minimum feed latency (orders arrive that much early), stated rather than guessed. Without
// align_clocks the two clocks are taken as one (offset 0).
#include <algorithm>
#include <cstdint>

namespace bot4::sim {

struct LatencyConfig {
  int64_t entry_ns = 100'000;     // order entry: local send -> venue arrival, ns
  int64_t response_ns = 100'000;  // venue event -> local receipt (ack, fill, reject), ns
  bool align_clocks = true;       // learn the local - exchange clock offset from the data
};

class LatencyModel {
 public:
  explicit LatencyModel(const LatencyConfig& cfg = {}) : cfg_(cfg) {}
  // A market event seen: updates the clock offset (align_clocks).
  void observe(int64_t ts_exchange, int64_t ts_local) {
    if (cfg_.align_clocks) offset_ = std::min(offset_, ts_local - ts_exchange);
  }
  // Learned local - exchange offset, ns (0 before any market event or without align_clocks).
  int64_t offset() const { return offset_ == kUnset ? 0 : offset_; }
  // Exchange time at which an order sent at local time `sent_local` reaches the venue.
  int64_t venue_arrival(int64_t sent_local) const { return sent_local - offset() + cfg_.entry_ns; }
  // Local time at which a venue event at exchange time `venue_ts` is received.
  int64_t local_receipt(int64_t venue_ts) const { return venue_ts + offset() + cfg_.response_ns; }
  static int64_t feed_latency(int64_t ts_exchange, int64_t ts_local) { return ts_local - ts_exchange; }
  const LatencyConfig& config() const { return cfg_; }

 private:
  static constexpr int64_t kUnset = INT64_MAX;
  LatencyConfig cfg_;
  int64_t offset_ = kUnset;
};

}  // namespace bot4::sim
