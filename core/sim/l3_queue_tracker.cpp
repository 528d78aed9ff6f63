#include "sim/l3_queue_tracker.hpp"

#include <algorithm>

namespace bot4::sim {

L3QueueTracker::L3QueueTracker(book::L3BookConfig cfg) : book_(cfg) {
  stamps_.reserve(cfg.expected_orders);
}

L3QueueTracker::Own* L3QueueTracker::find(uint64_t id) {
  for (auto& o : own_)
    if (o.id == id) return &o;
  return nullptr;
}

const L3QueueTracker::Own* L3QueueTracker::find(uint64_t id) const {
  for (const auto& o : own_)
    if (o.id == id) return &o;
  return nullptr;
}

void L3QueueTracker::join(uint64_t id, Side side, int64_t price) {
  leave(id);
  own_.push_back(Own{id, side, price, ++clock_, book_.qty_at(side, price), 0, INT64_MIN, 0, INT64_MIN});
}

void L3QueueTracker::leave(uint64_t id) {
  own_.erase(std::remove_if(own_.begin(), own_.end(), [&](const Own& o) { return o.id == id; }), own_.end());
}

int64_t L3QueueTracker::queue_ahead(uint64_t id) const {
  const Own* o = find(id);
  return o ? o->ahead : -1;
}

void L3QueueTracker::touch(Side side, int64_t price) {
  for (size_t i = 0; i < touched_n_; ++i)
    if (touched_side_[i] == side && touched_price_[i] == price) return;
  if (touched_n_ < 2) {
    touched_side_[touched_n_] = side;
    touched_price_[touched_n_] = price;
    ++touched_n_;
  }
}

void L3QueueTracker::removed_ahead(Own& o, int64_t lots, int64_t ts) {
  o.ahead = std::max<int64_t>(o.ahead - lots, 0);
  if (o.owed_ts != ts) o.owed = 0;
  const int64_t pay = std::min(lots, o.owed);
  o.owed -= pay;
  lots -= pay;
  if (o.credit_ts != ts) {
    o.credit = 0;
    o.credit_ts = ts;
  }
  o.credit += lots;
}

int64_t L3QueueTracker::on_trade(uint64_t id, int64_t qty, int64_t ts) {
  Own* o = find(id);
  if (!o || qty <= 0) return 0;
  if (o->credit_ts != ts) o->credit = 0;
  const int64_t explained = std::min(qty, o->credit);
  o->credit -= explained;
  qty -= explained;
  if (o->owed_ts != ts) {
    o->owed = 0;
    o->owed_ts = ts;
  }
  const int64_t to_ahead = std::min(qty, std::max<int64_t>(o->ahead - o->owed, 0));
  o->owed += to_ahead;
  return qty - to_ahead;
}

book::BookStatus L3QueueTracker::apply(const OrderEvent& ev) {
  touched_n_ = 0;
  last_cleared_ = false;
  const auto action = static_cast<OrderAction>(ev.action);
  const bool clears =
      action == OrderAction::Clear || (action == OrderAction::Add && (ev.flags & event_flag::kClear));
  std::optional<book::RestingOrder> before;
  uint64_t stamp_before = 0;
  if (action == OrderAction::Modify || action == OrderAction::Cancel || action == OrderAction::Execute) {
    before = book_.order(ev.order_id);
    if (before) {
      const auto it = stamps_.find(ev.order_id);
      stamp_before = it != stamps_.end() ? it->second : 0;
    }
  }
  const book::BookStatus status = book_.apply(ev);
  if (book::is_rejection(status)) return status;
  if (clears) {
    stamps_.clear();
    last_cleared_ = true;
    for (auto& o : own_) o = Own{o.id, o.side, o.price, kRejoin, 0, 0, INT64_MIN, 0, INT64_MIN};
    rejoin_pending_ = !own_.empty();
    before.reset();
    if (action == OrderAction::Clear) return status;
  }
  // The first record after a snapshot closes it: own orders waiting there take their place.
  if (rejoin_pending_ && !(ev.flags & event_flag::kSnapshot)) {
    for (auto& o : own_)
      if (o.stamp == kRejoin) o.stamp = ++clock_;
    rejoin_pending_ = false;
  }
  const std::optional<book::RestingOrder> after =
      action == OrderAction::Cancel || action == OrderAction::Execute
          ? (before && ev.qty < before->qty ? std::optional<book::RestingOrder>(book::RestingOrder{
                                                  before->id, before->price, before->qty - ev.qty, before->side})
                                            : std::nullopt)
          : book_.order(ev.order_id);
  uint64_t stamp_after = 0;
  if (!after) {
    if (before) stamps_.erase(ev.order_id);
  } else if (!before || after->price != before->price || after->qty > before->qty || after->side != before->side) {
    stamp_after = ++clock_;
    stamps_[ev.order_id] = stamp_after;
  } else {
    stamp_after = stamp_before;
  }
  if (before) touch(before->side, before->price);
  if (after) touch(after->side, after->price);
  if (own_.empty()) return status;
  for (auto& o : own_) {
    auto contribution = [&](const std::optional<book::RestingOrder>& r, uint64_t stamp) -> int64_t {
      return r && r->side == o.side && r->price == o.price && stamp < o.stamp ? r->qty : 0;
    };
    const int64_t delta = contribution(after, stamp_after) - contribution(before, stamp_before);
    if (delta < 0) removed_ahead(o, -delta, ev.ts_exchange);
    else o.ahead += delta;
  }
  return status;
}

}  // namespace bot4::sim
