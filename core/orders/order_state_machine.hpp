#pragma once
// The order lifecycle. Only legal transitions are applied; anything else comes back as a Reason
// and is counted, so a stray venue message can never corrupt an order. Every applied transition
// emits one OrderEvent with a strictly increasing sequence number.
//
//   New --ack--> Acknowledged --fill--> PartiallyFilled --fill (complete)--> Filled
//   New --reject--> Rejected            (a venue rejects a request, never an accepted order)
//   Acknowledged / PartiallyFilled --expire--> Expired
//   any working state --cancel (venue confirmation or unsolicited venue cancel)--> Cancelled
//   New / Acknowledged / PartiallyFilled --request_cancel--> PendingCancel   (emits Cancel once)
//   PendingCancel --fill--> PendingCancel (partial) | Filled (complete: the fill won the race)
//   PendingCancel --cancel (confirmation)--> Cancelled
//   PendingCancel --ack--> PendingCancel     (only if never acked: the ack was in flight)
//   PendingCancel --reject--> Rejected       (only if never acked and nothing filled)
//   PendingCancel --expire--> Expired        (only if acked or partly filled)
//   PendingCancel --request_cancel--> counted CancelPending, no event (nothing is re-sent)
//   PendingCancel --replace--> IllegalTransition (a cancelling order is never amended)
// A Cancel event with state PendingCancel is a request to forward to the venue; a Cancel event
// with state Cancelled reports that the order is gone (confirmed, unsolicited, or an order that
// was never sent) and must not be forwarded.
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "orders/order.hpp"

namespace bot4::orders {

// Flat POD so the binding can hand it out as a numpy structured array; enums stored as uint8.
struct OrderEvent {
  uint64_t seq;
  int64_t ts_ns;
  uint64_t order_id;
  uint64_t client_id;
  int64_t price_ticks;  // fill price for Fill, order price otherwise
  int64_t qty_lots;     // fill qty for Fill, order total qty otherwise
  int64_t filled_lots;  // order's cumulative filled qty after the event
  uint8_t kind;         // OrderEventKind
  uint8_t state;        // OrderState after the event
  uint8_t side;         // Side
  uint8_t role;         // OrderRole
  uint8_t reason;       // Reason (why a Reject/Cancel happened: SelfTrade, ...)
  uint8_t pad[3];
};

class OrderStateMachine {
 public:
  // Pure transition rule: the state after `kind`, or a Reason if the transition is illegal.
  // Fill needs the quantities to tell Filled from PartiallyFilled.
  static Reason check(const Order& o, OrderEventKind kind, int64_t fill_qty = 0);

  // Apply an event to `o` (validating first), emit it, or count the rejection. `reason` is
  // recorded on the emitted event (e.g. SelfTrade on an STP cancel).
  Reason ack(Order& o, Timestamp ts);
  Reason fill(Order& o, int64_t qty, int64_t price, Timestamp ts);
  // Terminal cancel (venue confirmation, unsolicited venue cancel, or an order never sent).
  Reason cancel(Order& o, Timestamp ts, Reason why = Reason::Ok);
  // Cancel request: -> PendingCancel and one Cancel event; a repeat is counted (CancelPending).
  Reason request_cancel(Order& o, Timestamp ts, Reason why = Reason::Ok);
  Reason reject(Order& o, Timestamp ts, Reason why = Reason::Ok);
  Reason expire(Order& o, Timestamp ts);
  // Resize/reprice a working order; new qty must stay >= filled.
  Reason replace(Order& o, int64_t new_qty, int64_t new_price, Timestamp ts);
  void emit_new(const Order& o, Timestamp ts);

  Reason count(Reason r) {
    if (r != Reason::Ok) ++counters_[static_cast<std::size_t>(r)];
    return r;
  }
  const std::array<uint64_t, static_cast<std::size_t>(Reason::Count)>& counters() const { return counters_; }
  std::vector<OrderEvent>& events() { return events_; }
  uint64_t last_seq() const { return seq_; }

 private:
  void emit(const Order& o, OrderEventKind kind, int64_t price, int64_t qty, Timestamp ts, Reason why);

  uint64_t seq_ = 0;
  std::vector<OrderEvent> events_;
  std::array<uint64_t, static_cast<std::size_t>(Reason::Count)> counters_{};
};

const char* reason_name(Reason r);

}  // namespace bot4::orders
