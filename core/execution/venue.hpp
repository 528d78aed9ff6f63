#pragma once
// The venue as the engine sees it: requests go out, responses come back, each stamped with the
// local time it is received. The simulator (sim::SimVenue) implements it for backtests; a venue
// outside the process (paper or live, over the bus) implements the same interface, so the engine
// never knows which one it talks to.
#include <cstdint>
#include <vector>

#include "common/types.hpp"

namespace bot4::execution {

enum class VenueOrderType : uint8_t { Limit = 0, Market = 1, Stop = 2 };
enum class VenueRequestKind : uint8_t { New = 0, Cancel = 1, Replace = 2 };
enum class VenueResponseKind : uint8_t { Ack = 0, Fill = 1, Expire = 2, Reject = 3, Cancelled = 4 };

struct VenueRequest {
  VenueRequestKind kind = VenueRequestKind::New;
  uint64_t id = 0;
  Side side = Side::Bid;
  VenueOrderType type = VenueOrderType::Limit;
  int64_t price = 0;    // limit or stop trigger, ticks
  int64_t qty = 0;      // total qty, lots (Replace: new total qty)
  int64_t arrival = 0;  // venue (exchange) time, set by the venue
  bool reduce_only = false;  // fills never take the venue position past flat (expired instead)
};

struct VenueResponse {
  VenueResponseKind kind = VenueResponseKind::Ack;
  uint64_t id = 0;
  Side side = Side::Bid;
  int64_t price = 0;  // fill price, ticks
  int64_t qty = 0;    // fill qty, lots
  double fee = 0.0;   // quote units
  bool maker = false;
  int64_t venue_ts = 0;
  int64_t local_ts = 0;  // when the engine receives it
};

// The request and response as they travel to a venue outside the process (fixed layout: numpy
// twins in python/bot4/events.py, checked at import). clock_offset is the least local - exchange
// time the engine had seen in its market data when it sent the request, so a simulated venue
// there maps the request to its exchange time exactly as one inside the process would.
struct VenueRequestRecord {
  int64_t sent_local;
  int64_t clock_offset;
  uint64_t id;
  int64_t price;
  int64_t qty;
  uint32_t instrument;
  uint8_t kind;         // VenueRequestKind
  uint8_t side;         // Side
  uint8_t type;         // VenueOrderType
  uint8_t reduce_only;  // 0 or 1
};

struct VenueResponseRecord {
  int64_t venue_ts;
  int64_t local_ts;
  uint64_t id;
  int64_t price;
  int64_t qty;
  double fee;
  uint32_t instrument;
  uint8_t kind;  // VenueResponseKind
  uint8_t side;  // Side
  uint8_t maker;
  uint8_t reserved;
};

inline VenueRequestRecord to_record(const VenueRequest& r, uint32_t instrument, int64_t sent_local,
                                    int64_t clock_offset) {
  return VenueRequestRecord{sent_local, clock_offset, r.id, r.price, r.qty, instrument,
                            static_cast<uint8_t>(r.kind), static_cast<uint8_t>(r.side),
                            static_cast<uint8_t>(r.type), static_cast<uint8_t>(r.reduce_only)};
}

inline VenueRequest from_record(const VenueRequestRecord& r) {
  VenueRequest q;
  q.kind = static_cast<VenueRequestKind>(r.kind);
  q.id = r.id;
  q.side = static_cast<Side>(r.side);
  q.type = static_cast<VenueOrderType>(r.type);
  q.price = r.price;
  q.qty = r.qty;
  q.reduce_only = r.reduce_only != 0;
  return q;
}

inline VenueResponseRecord to_record(const VenueResponse& r, uint32_t instrument) {
  return VenueResponseRecord{r.venue_ts, r.local_ts, r.id, r.price, r.qty, r.fee, instrument,
                             static_cast<uint8_t>(r.kind), static_cast<uint8_t>(r.side),
                             static_cast<uint8_t>(r.maker), 0};
}

inline VenueResponse from_record(const VenueResponseRecord& r) {
  VenueResponse s;
  s.kind = static_cast<VenueResponseKind>(r.kind);
  s.id = r.id;
  s.side = static_cast<Side>(r.side);
  s.price = r.price;
  s.qty = r.qty;
  s.fee = r.fee;
  s.maker = r.maker != 0;
  s.venue_ts = r.venue_ts;
  s.local_ts = r.local_ts;
  return s;
}

class Venue {
 public:
  virtual ~Venue() = default;
  // A request leaves us at local time `sent_local`.
  virtual void send(const VenueRequest& request, int64_t sent_local) = 0;
  // Responses received by local time `now` (out is cleared first). now == INT64_MAX: everything
  // still due (end of a run).
  virtual void poll(int64_t now, std::vector<VenueResponse>& out) = 0;
  // The engine received a market event stamped (ts_exchange, ts_local): a simulated venue learns
  // the clock offset from it; a real one ignores it.
  virtual void observe(int64_t /*ts_exchange*/, int64_t /*ts_local*/) {}
  // True while a poll can answer nothing and change nothing but how far the venue has yet to
  // replay (nothing in flight, working or unanswered, until the next send). Polls at t1 <= t2 <= ...
  // with observe()s between them then leave the venue as the last one alone does, so the engine
  // may make only that one (Engine::run does, within a book message). False: poll at every event.
  virtual bool idle() const { return false; }
  // The engine's decision is over and has been timed: a venue that holds the requests it was sent
  // during the decision hands them on now (the simulator does, see sim/sim_venue.hpp). Every other
  // call into a venue must behave as if flush() had been called just before it.
  virtual void flush() {}
};

}  // namespace bot4::execution
