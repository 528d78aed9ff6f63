#include "sim/sim_venue.hpp"

#include <algorithm>
#include <cstdint>

namespace bot4::sim {

void SimVenue::hand_over() {
  for (const auto& [request, sent_local] : sent_) {
    catch_up();
    sim_.send(request, sent_local);
  }
  sent_.clear();
}

void SimVenue::poll(int64_t now, std::vector<execution::VenueResponse>& out) {
  // The venue has seen everything up to the exchange time of our local `now` (the end of a run:
  // everything). An idle venue has nothing to answer: its replay waits (see sim_venue.hpp).
  flush();
  const int64_t t = now == INT64_MAX ? INT64_MAX : sim_.exchange_time(now);
  if (sim_.idle()) {
    deferred_ = std::max(deferred_, t);
    // Counts the records the engine has just read while they are in cache, every kTallyPolls polls
    // (a call per event would cost more than the count when a busy spell soon discards it).
    if (++idle_polls_ % kTallyPolls == 0) sim_.tally(deferred_);
    out.clear();
    return;
  }
  catch_up();
  sim_.advance_feed(t);
  sim_.poll(now, out);
}

bool SimVenue::exchange(InstrumentId instrument, const execution::VenueRequestRecord* requests, size_t n,
                        int64_t clock_offset, int64_t now, std::vector<execution::VenueResponseRecord>& out) {
  // The learned offset is a running minimum, so observing each request's offset before it is
  // sent, in order, leaves the simulator exactly where the engine's own observations would have.
  // An offset of INT64_MAX (nothing seen yet) changes nothing.
  flush();
  for (size_t i = 0; i < n; ++i) {
    sim_.observe(0, requests[i].clock_offset);
    catch_up();
    sim_.send(execution::from_record(requests[i]), requests[i].sent_local);
  }
  sim_.observe(0, clock_offset);
  poll(now, polled_);
  for (const auto& r : polled_) out.push_back(execution::to_record(r, instrument));
  return !sim_.idle();
}

}  // namespace bot4::sim
