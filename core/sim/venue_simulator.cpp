#include "sim/venue_simulator.hpp"

#include <algorithm>

namespace bot4::sim {

VenueSimulator::VenueSimulator(const SimConfig& cfg)
    : cfg_(cfg), queue_(cfg.queue), latency_(cfg.latency), fees_(cfg.fees) {}

void VenueSimulator::send(SimRequest r, int64_t sent_local) {
  r.arrival = latency_.venue_arrival(sent_local);
  ++counters_.requests;
  requests_.push_back(r);
}

void VenueSimulator::activate(int64_t venue_ts) {
  while (!requests_.empty() && requests_.front().arrival <= venue_ts) {
    const SimRequest r = requests_.front();
    requests_.pop_front();
    apply(r, r.arrival);
  }
  erase_done();
}

void VenueSimulator::respond(SimResponseKind kind, const Working& w, int64_t venue_ts) {
  SimResponse s;
  s.kind = kind;
  s.id = w.id;
  s.side = w.side;
  s.price = w.price;
  s.qty = w.qty;
  s.venue_ts = venue_ts;
  s.local_ts = latency_.local_receipt(venue_ts);
  responses_.push_back(s);
}

void VenueSimulator::fill(Working& w, int64_t price, int64_t qty, bool maker, int64_t venue_ts) {
  if (qty <= 0) return;
  w.filled += qty;
  SimResponse s;
  s.kind = SimResponseKind::Fill;
  s.id = w.id;
  s.side = w.side;
  s.price = price;
  s.qty = qty;
  s.maker = maker;
  s.fee = fees_.fee(price, qty, maker, cfg_.tick_size, cfg_.lot_size);
  s.venue_ts = venue_ts;
  s.local_ts = latency_.local_receipt(venue_ts);
  responses_.push_back(s);
  ++counters_.fills;
  ++(maker ? counters_.maker_fills : counters_.taker_fills);
}

int64_t VenueSimulator::walk(Side side, int64_t qty, int64_t limit,
                             std::vector<std::pair<int64_t, int64_t>>& out) const {
  out.clear();
  const Side book_side = side == Side::Bid ? Side::Ask : Side::Bid;
  size_t levels = book_.level_count(book_side);
  levels = std::min<size_t>(levels, 1000);
  depth_.resize(2 * std::max<size_t>(levels, 1));
  const size_t n = book_.depth(book_side, levels, depth_.data());
  int64_t left = qty;
  for (size_t i = 0; i < n && left > 0; ++i) {
    const int64_t px = depth_[2 * i], q = depth_[2 * i + 1];
    if (limit > 0 && (side == Side::Bid ? px > limit : px < limit)) break;
    const int64_t take = std::min(left, q);
    if (take > 0) out.emplace_back(px, take);
    left -= take;
  }
  return qty - left;
}

void VenueSimulator::execute_taker(Working& w, int64_t limit, int64_t venue_ts) {
  thread_local std::vector<std::pair<int64_t, int64_t>> legs;
  walk(w.side, w.open(), limit, legs);
  for (const auto& [px, q] : legs) fill(w, px, q, false, venue_ts);
}

void VenueSimulator::apply(const SimRequest& r, int64_t venue_ts) {
  if (r.kind == SimRequestKind::Cancel || r.kind == SimRequestKind::Replace) {
    auto it = std::find_if(orders_.begin(), orders_.end(), [&](const Working& w) { return w.id == r.id; });
    if (it == orders_.end()) {
      ++counters_.unknown_cancel;
      return;
    }
    if (r.kind == SimRequestKind::Cancel) {
      respond(SimResponseKind::Cancelled, *it, venue_ts);
      it->qty = it->filled;  // removed by erase_done
      return;
    }
    Working& w = *it;
    const bool requeue = w.type == SimOrderType::Limit && (r.price != w.price || r.qty > w.qty);
    w.qty = std::max(r.qty, w.filled);
    w.price = r.price;
    if (requeue) queue_.on_entry(w.queue, book_.qty_at(w.side, w.price));
    return;
  }
  Working w{r.id, r.side, r.type, r.price, r.qty, 0, {}};
  if (r.qty <= 0) {
    ++counters_.rejects;
    respond(SimResponseKind::Reject, w, venue_ts);
    return;
  }
  respond(SimResponseKind::Ack, w, venue_ts);
  if (r.type == SimOrderType::Market) {
    const bool empty = r.side == Side::Bid ? book_.best_ask() == kNoAskPrice : book_.best_bid() == kNoBidPrice;
    if (empty) {
      ++counters_.rejects;
      respond(SimResponseKind::Expire, w, venue_ts);
      return;
    }
    execute_taker(w, 0, venue_ts);
    if (w.open() > 0) {
      ++counters_.market_expired;
      respond(SimResponseKind::Expire, w, venue_ts);
    }
    return;
  }
  if (r.type == SimOrderType::Limit) {
    const bool marketable = r.side == Side::Bid ? (book_.best_ask() != kNoAskPrice && r.price >= book_.best_ask())
                                                : (book_.best_bid() != kNoBidPrice && r.price <= book_.best_bid());
    if (marketable) execute_taker(w, r.price, venue_ts);
    if (w.open() <= 0) return;
    queue_.on_entry(w.queue, book_.qty_at(w.side, w.price));
  }
  orders_.push_back(w);
}

void VenueSimulator::on_book(const BookEvent& ev) {
  activate(ev.ts_exchange);
  const auto side = static_cast<Side>(ev.side);
  const bool level = (ev.flags & (event_flag::kSnapshot | event_flag::kClear)) == 0 &&
                     (side == Side::Bid || side == Side::Ask);
  int64_t prev = 0;
  if (level && !orders_.empty()) prev = book_.qty_at(side, ev.price);
  if (book_.apply(ev) > book::BookStatus::Crossed) ++counters_.book_rejected;
  if (orders_.empty()) return;
  if (level) {
    const int64_t next = book_.qty_at(side, ev.price);
    for (auto& w : orders_)
      if (w.type == SimOrderType::Limit && w.side == side && w.price == ev.price)
        queue_.on_level_change(w.queue, prev, next);
  }
  if (ev.flags & event_flag::kLast) {
    // The opposite side moved through a resting order: it would have traded (maker, at our price).
    bool any = false;
    for (auto& w : orders_) {
      if (w.type != SimOrderType::Limit || w.open() <= 0) continue;
      const bool through = w.side == Side::Bid ? (book_.best_ask() != kNoAskPrice && book_.best_ask() <= w.price)
                                               : (book_.best_bid() != kNoBidPrice && book_.best_bid() >= w.price);
      if (through) {
        fill(w, w.price, w.open(), true, ev.ts_exchange);
        any = true;
      }
    }
    if (any) erase_done();
  }
}

void VenueSimulator::on_trade(const TradeEvent& ev) {
  activate(ev.ts_exchange);
  if (orders_.empty() || ev.qty <= 0) return;
  bool any = false;
  for (size_t i = 0; i < orders_.size(); ++i) {
    Working& w = orders_[i];
    if (w.open() <= 0) continue;
    if (w.type == SimOrderType::Stop) {
      const bool hit = w.side == Side::Bid ? ev.price >= w.price : ev.price <= w.price;
      if (!hit) continue;
      ++counters_.stops_triggered;
      execute_taker(w, 0, ev.ts_exchange);
      if (w.open() > 0) {
        ++counters_.market_expired;
        respond(SimResponseKind::Expire, w, ev.ts_exchange);
        w.qty = w.filled;
      }
      any = true;
      continue;
    }
    // Limit: a seller-initiated print hits bids, a buyer-initiated one lifts asks.
    const bool hits_us = w.side == Side::Bid ? ev.aggressor != static_cast<uint8_t>(Side::Bid) && ev.price <= w.price
                                             : ev.aggressor != static_cast<uint8_t>(Side::Ask) && ev.price >= w.price;
    if (!hits_us) continue;
    int64_t q = 0;
    if (ev.price != w.price) {
      q = std::min(w.open(), ev.qty);  // traded through our level
    } else {
      queue_.on_trade(w.queue, ev.qty);
      q = std::min(w.open(), queue_.take_fill(w.queue));
    }
    if (q > 0) {
      fill(w, w.price, q, true, ev.ts_exchange);
      any = true;
    }
  }
  if (any) erase_done();
}

void VenueSimulator::erase_done() {
  orders_.erase(std::remove_if(orders_.begin(), orders_.end(), [](const Working& w) { return w.open() <= 0; }),
                orders_.end());
}

void VenueSimulator::poll(int64_t now, std::vector<SimResponse>& out) {
  out.clear();
  while (!responses_.empty() && responses_.front().local_ts <= now) {
    out.push_back(responses_.front());
    responses_.pop_front();
  }
}

}  // namespace bot4::sim
