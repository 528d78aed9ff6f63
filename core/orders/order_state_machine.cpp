#include "orders/order_state_machine.hpp"

namespace bot4::orders {

Reason OrderStateMachine::check(const Order& o, OrderEventKind kind, int64_t fill_qty) {
  if (is_terminal(o.state)) return Reason::ClosedOrder;
  const bool pending = o.state == OrderState::PendingCancel;
  const bool never_acked_unfilled = !o.acked && o.filled_lots == 0;
  switch (kind) {
    case OrderEventKind::Ack:
      if (o.state == OrderState::New) return Reason::Ok;
      return pending && !o.acked ? Reason::Ok : Reason::IllegalTransition;
    case OrderEventKind::Reject:
      // A venue rejects a request, never an order it already accepted.
      if (o.state == OrderState::New) return Reason::Ok;
      return pending && never_acked_unfilled ? Reason::Ok : Reason::IllegalTransition;
    case OrderEventKind::Expire:
      if (o.state == OrderState::New) return Reason::IllegalTransition;
      return pending && never_acked_unfilled ? Reason::IllegalTransition : Reason::Ok;
    case OrderEventKind::Fill:
      // A fill may arrive before its ack (venues often skip the ack for immediate fills).
      if (fill_qty <= 0) return Reason::BadQuantity;
      if (fill_qty > o.open_lots()) return Reason::Overfill;
      return Reason::Ok;
    case OrderEventKind::Replace:
      return pending ? Reason::IllegalTransition : Reason::Ok;
    case OrderEventKind::Cancel:
    case OrderEventKind::New:
      return Reason::Ok;
  }
  return Reason::IllegalTransition;
}

void OrderStateMachine::emit(const Order& o, OrderEventKind kind, int64_t price, int64_t qty, Timestamp ts,
                             Reason why) {
  OrderEvent e{};
  e.seq = ++seq_;
  e.ts_ns = ts;
  e.order_id = o.order_id;
  e.client_id = o.client_id;
  e.price_ticks = price;
  e.qty_lots = qty;
  e.filled_lots = o.filled_lots;
  e.kind = static_cast<uint8_t>(kind);
  e.state = static_cast<uint8_t>(o.state);
  e.side = static_cast<uint8_t>(o.side);
  e.role = static_cast<uint8_t>(o.role);
  e.reason = static_cast<uint8_t>(why);
  events_.push_back(e);
}

void OrderStateMachine::emit_new(const Order& o, Timestamp ts) {
  emit(o, OrderEventKind::New, o.price_ticks, o.qty_lots, ts, Reason::Ok);
}

Reason OrderStateMachine::ack(Order& o, Timestamp ts) {
  if (Reason r = check(o, OrderEventKind::Ack); r != Reason::Ok) return count(r);
  o.acked = true;
  if (o.state == OrderState::New) o.state = OrderState::Acknowledged;  // PendingCancel stays pending
  emit(o, OrderEventKind::Ack, o.price_ticks, o.qty_lots, ts, Reason::Ok);
  return Reason::Ok;
}

Reason OrderStateMachine::fill(Order& o, int64_t qty, int64_t price, Timestamp ts) {
  if (Reason r = check(o, OrderEventKind::Fill, qty); r != Reason::Ok) return count(r);
  o.filled_lots += qty;
  o.fill_notional += qty * price;
  if (o.filled_lots == o.qty_lots) o.state = OrderState::Filled;
  else if (o.state != OrderState::PendingCancel) o.state = OrderState::PartiallyFilled;
  emit(o, OrderEventKind::Fill, price, qty, ts, Reason::Ok);
  return Reason::Ok;
}

Reason OrderStateMachine::cancel(Order& o, Timestamp ts, Reason why) {
  if (Reason r = check(o, OrderEventKind::Cancel); r != Reason::Ok) return count(r);
  o.state = OrderState::Cancelled;
  emit(o, OrderEventKind::Cancel, o.price_ticks, o.qty_lots, ts, why);
  return Reason::Ok;
}

Reason OrderStateMachine::request_cancel(Order& o, Timestamp ts, Reason why) {
  if (Reason r = check(o, OrderEventKind::Cancel); r != Reason::Ok) return count(r);
  if (o.state == OrderState::PendingCancel) return count(Reason::CancelPending);
  o.state = OrderState::PendingCancel;
  emit(o, OrderEventKind::Cancel, o.price_ticks, o.qty_lots, ts, why);
  return Reason::Ok;
}

Reason OrderStateMachine::reject(Order& o, Timestamp ts, Reason why) {
  if (Reason r = check(o, OrderEventKind::Reject); r != Reason::Ok) return count(r);
  o.state = OrderState::Rejected;
  emit(o, OrderEventKind::Reject, o.price_ticks, o.qty_lots, ts, why);
  return Reason::Ok;
}

Reason OrderStateMachine::expire(Order& o, Timestamp ts) {
  if (Reason r = check(o, OrderEventKind::Expire); r != Reason::Ok) return count(r);
  o.state = OrderState::Expired;
  emit(o, OrderEventKind::Expire, o.price_ticks, o.qty_lots, ts, Reason::Ok);
  return Reason::Ok;
}

Reason OrderStateMachine::replace(Order& o, int64_t new_qty, int64_t new_price, Timestamp ts) {
  if (Reason r = check(o, OrderEventKind::Replace); r != Reason::Ok) return count(r);
  if (new_qty < o.filled_lots || new_qty <= 0) return count(Reason::BadQuantity);
  if (new_qty == o.qty_lots && new_price == o.price_ticks) return Reason::Ok;  // nothing to send
  o.qty_lots = new_qty;
  o.price_ticks = new_price;
  if (o.filled_lots == o.qty_lots) o.state = OrderState::Filled;
  emit(o, OrderEventKind::Replace, new_price, new_qty, ts, Reason::Ok);
  return Reason::Ok;
}

const char* reason_name(Reason r) {
  switch (r) {
    case Reason::Ok: return "ok";
    case Reason::UnknownOrder: return "unknown_order";
    case Reason::ClosedOrder: return "closed_order";
    case Reason::IllegalTransition: return "illegal_transition";
    case Reason::Overfill: return "overfill";
    case Reason::BadQuantity: return "bad_quantity";
    case Reason::BadPrice: return "bad_price";
    case Reason::SelfTrade: return "self_trade";
    case Reason::ReduceOnly: return "reduce_only";
    case Reason::DuplicateClientId: return "duplicate_client_id";
    case Reason::CancelPending: return "cancel_pending";
    case Reason::Count: break;
  }
  return "?";
}

}  // namespace bot4::orders
