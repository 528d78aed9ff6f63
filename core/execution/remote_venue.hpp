#pragma once
// A venue outside the process (a venue service over the bus, later a real venue's adapter),
// reached through a transport that exchanges the requests sent since the last exchange for the
// responses received by a local time.
//
// Exact against an in-process simulator: the engine polls its venue at every event; a remote
// poll is one round trip, so it is made only while the venue is live (requests in flight, orders
// working, responses not yet received, as the venue reports after each exchange). An idle venue
// answers nothing until a new request reaches it, so the polls skipped then cannot miss a
// response, and a simulated venue's state does not depend on how finely its clock is advanced.
#include <cstdint>
#include <vector>

#include "execution/venue.hpp"

namespace bot4::execution {

class VenueTransport {
 public:
  virtual ~VenueTransport() = default;
  // Sends `requests` (in order, possibly none), then asks for every response received by local
  // time `now` (INT64_MAX: all still due) given the engine's clock offset `clock_offset`.
  // Responses go to `out` (appended); returns whether the venue is still live. A transport that
  // fails returns false with no responses and reports its error to its owner.
  virtual bool exchange(InstrumentId instrument, const std::vector<VenueRequestRecord>& requests, int64_t clock_offset,
                        int64_t now, std::vector<VenueResponseRecord>& out) = 0;
};

struct RemoteVenueCounters {
  uint64_t requests = 0;   // requests sent
  uint64_t exchanges = 0;  // round trips made
  uint64_t skipped = 0;    // polls answered locally (venue idle, nothing to send)
  uint64_t responses = 0;  // responses received
};

class RemoteVenue final : public Venue {
 public:
  RemoteVenue(InstrumentId instrument, VenueTransport* transport) : instrument_(instrument), transport_(transport) {}
  void send(const VenueRequest& request, int64_t sent_local) override;
  void poll(int64_t now, std::vector<VenueResponse>& out) override;
  void observe(int64_t ts_exchange, int64_t ts_local) override;
  const RemoteVenueCounters& counters() const { return counters_; }

 private:
  static constexpr int64_t kUnset = INT64_MAX;
  InstrumentId instrument_;
  VenueTransport* transport_;  // not owned
  int64_t clock_offset_ = kUnset;
  bool live_ = false;
  std::vector<VenueRequestRecord> outbox_;
  std::vector<VenueResponseRecord> inbox_;
  RemoteVenueCounters counters_;
};

}  // namespace bot4::execution
