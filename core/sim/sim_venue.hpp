#pragma once
// The venue simulator behind the engine's venue interface, in feed mode: it reads the recording
// itself in exchange-time order, ahead of the strategy (see VenueSimulator::attach_feed), and
// learns the local/exchange clock offset only from the events the engine has received.
//
// While the simulator is idle (no request in flight, no order working, no response unanswered),
// a poll cannot return anything and replaying the feed cannot create anything to return: such a
// poll only records how far the venue has to have replayed (the exchange time of its `now`), and
// the replay is done in one run when it matters: before the next request is sent, before more of
// a streamed feed is appended, before the simulator is read, and at the first poll that is not
// idle. The replay of an idle venue does not depend on where it is cut (every step between orders
// is the quiet path of VenueSimulator::advance_feed, with nothing due), so this changes nothing
// the simulator does or counts; it saves a call per market event into the feed loop.
//
// A request is handed to the simulator when the engine's decision is over (flush(), which the
// engine calls after it has timed the decision), or before any other call into the venue,
// whichever comes first. The simulator so sees the same calls in the same order, while its work
// for the request (the replay an idle venue deferred, which after a quiet spell is the whole spell,
// and the request's own matching) is the venue's time, not the engine's tick-to-decision: a
// venue outside the process does that work after the request has left.
#include <cstdint>
#include <utility>
#include <vector>

#include "execution/venue.hpp"
#include "sim/venue_simulator.hpp"

namespace bot4::sim {

class SimVenue final : public execution::Venue {
 public:
  explicit SimVenue(const SimConfig& cfg) : sim_(cfg) {}
  // The recording of this venue's instrument (each stream in receive order).
  void attach_feed(const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
                   const TradeEvent* trades, size_t n_trades) {
    sim_.attach_feed(book, n_book, orders, n_orders, trades, n_trades);
  }
  // The recording streamed in pieces (see VenueSimulator::append_feed).
  void append_feed(const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
                   const TradeEvent* trades, size_t n_trades) {
    flush();
    catch_up();
    sim_.append_feed(book, n_book, orders, n_orders, trades, n_trades);
  }
  void send(const execution::VenueRequest& request, int64_t sent_local) override {
    sent_.emplace_back(request, sent_local);
  }
  // The check is inline: observe() runs at every market event, and a call there cost top_of_book
  // 16% (11.2 -> 13.0 ms).
  void flush() override {
    if (!sent_.empty()) hand_over();
  }
  void poll(int64_t now, std::vector<execution::VenueResponse>& out) override;
  void observe(int64_t ts_exchange, int64_t ts_local) override {
    flush();
    sim_.observe(ts_exchange, ts_local);
  }
  // An idle simulator's poll only defers its replay (see the top of this file): max(deferred,
  // exchange_time(now)), where the learned offset only falls once set, so the last poll covers
  // the earlier ones. A request not yet handed over makes it busy.
  bool idle() const override { return sent_.empty() && sim_.idle(); }
  // Serves an engine in another process (execution::RemoteVenue): takes its requests, each at the
  // clock offset the engine had when it sent it, then answers its poll at `now`. Returns whether
  // the venue is still live (see VenueSimulator::idle).
  bool exchange(InstrumentId instrument, const execution::VenueRequestRecord* requests, size_t n, int64_t clock_offset,
                int64_t now, std::vector<execution::VenueResponseRecord>& out);
  // The simulator's counters as of every poll so far. The replay an idle venue deferred is not
  // done for them when it could only count book rejections and ignored events
  // (VenueSimulator::counters_after): a venue never sent a request never builds its book.
  SimCounters counters() {
    flush();
    SimCounters c;
    if (deferred_ == INT64_MIN) return sim_.counters();
    if (sim_.counters_after(deferred_, c)) return c;
    catch_up();
    return sim_.counters();
  }
  // The simulator, its replay caught up with every poll so far.
  const VenueSimulator& simulator() {
    flush();
    catch_up();
    return sim_;
  }

 private:
  // The requests sent since the last flush, in order (each after the replay catch_up() owes).
  void hand_over();
  // The replay every poll so far asked for (see the top of this file).
  void catch_up() {
    if (deferred_ == INT64_MIN) return;
    sim_.advance_feed(deferred_);
    deferred_ = INT64_MIN;
  }

  VenueSimulator sim_;
  int64_t deferred_ = INT64_MIN;  // exchange time the venue has yet to replay to (INT64_MIN: none)
  static constexpr uint64_t kTallyPolls = 16;
  uint64_t idle_polls_ = 0;
  std::vector<execution::VenueResponse> polled_;
  std::vector<std::pair<execution::VenueRequest, int64_t>> sent_;  // requests not yet handed over, in order
};

}  // namespace bot4::sim
