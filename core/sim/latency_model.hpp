#pragma once
// Latency model: constant order-entry latency (our send -> venue, on the venue clock) and
// response latency (venue -> us, for acks, fills, rejects). Feed latency is not a parameter: it
// is taken from the data as ts_local - ts_exchange of each market event.
#include <cstdint>

namespace bot4::sim {

struct LatencyConfig {
  int64_t entry_ns = 100'000;     // order entry: local send -> venue arrival, ns
  int64_t response_ns = 100'000;  // venue event -> local receipt (ack, fill, reject), ns
};

class LatencyModel {
 public:
  explicit LatencyModel(const LatencyConfig& cfg = {}) : cfg_(cfg) {}
  // Exchange time at which an order sent at local time `sent_local` reaches the venue.
  int64_t venue_arrival(int64_t sent_local) const { return sent_local + cfg_.entry_ns; }
  // Local time at which a venue event at exchange time `venue_ts` is received.
  int64_t local_receipt(int64_t venue_ts) const { return venue_ts + cfg_.response_ns; }
  static int64_t feed_latency(int64_t ts_exchange, int64_t ts_local) { return ts_local - ts_exchange; }
  const LatencyConfig& config() const { return cfg_; }

 private:
  LatencyConfig cfg_;
};

}  // namespace bot4::sim
