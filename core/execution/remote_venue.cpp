#include "execution/remote_venue.hpp"

#include <algorithm>

namespace bot4::execution {

void RemoteVenue::send(const VenueRequest& request, int64_t sent_local) {
  ++counters_.requests;
  outbox_.push_back(to_record(request, instrument_, sent_local, clock_offset_));
}

void RemoteVenue::observe(int64_t ts_exchange, int64_t ts_local) {
  clock_offset_ = std::min(clock_offset_, ts_local - ts_exchange);
}

void RemoteVenue::poll(int64_t now, std::vector<VenueResponse>& out) {
  out.clear();
  if (!live_ && outbox_.empty()) {
    ++counters_.skipped;
    return;
  }
  ++counters_.exchanges;
  inbox_.clear();
  live_ = transport_->exchange(instrument_, outbox_, clock_offset_, now, inbox_);
  outbox_.clear();
  counters_.responses += inbox_.size();
  for (const auto& r : inbox_) out.push_back(from_record(r));
}

}  // namespace bot4::execution
