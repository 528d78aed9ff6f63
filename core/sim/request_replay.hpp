#pragma once
// Replays recorded market data and a list of our requests through one VenueSimulator (not in
// feed mode): the streams merged by ts_exchange (ties: book, then order events, then trades; or
// trades first), each request sent at its local send time. For tests and studies of the
// simulator on its own; the engine uses the simulator through SimVenue.
#include <cstdint>
#include <vector>

#include "sim/venue_simulator.hpp"

namespace bot4::sim {

struct TimedRequest {
  int64_t sent_local = 0;
  SimRequest request;
};

struct QueueTrace {
  uint64_t order_id = 0;
  std::vector<uint8_t> stream;  // 0 book, 1 order event, 2 trade
  std::vector<int64_t> index;   // index in its stream
  std::vector<double> ahead;    // lots ahead of the traced order after the event (-1: not resting)
};

// Requests are sent in send-time order (stable); every response is returned.
std::vector<SimResponse> replay_requests(VenueSimulator& venue, const BookEvent* book, size_t n_book,
                                         const OrderEvent* orders, size_t n_orders, const TradeEvent* trades,
                                         size_t n_trades, std::vector<TimedRequest> requests, bool trades_first,
                                         QueueTrace* trace = nullptr);

}  // namespace bot4::sim
