#include "sim/sim_venue.hpp"

#include <cstdint>

namespace bot4::sim {

void SimVenue::poll(int64_t now, std::vector<execution::VenueResponse>& out) {
  // The venue has seen everything up to the exchange time of our local `now` (the end of a run:
  // everything).
  sim_.advance_feed(now == INT64_MAX ? INT64_MAX : sim_.exchange_time(now));
  sim_.poll(now, out);
}

}  // namespace bot4::sim
