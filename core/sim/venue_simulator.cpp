#include "sim/venue_simulator.hpp"

#include <algorithm>

namespace bot4::sim {

VenueSimulator::VenueSimulator(const SimConfig& cfg)
    : cfg_(cfg), queue_(cfg.queue), latency_(cfg.latency), fees_(cfg.fees) {
  resolve_mode(cfg.mode);
}

void VenueSimulator::resolve_mode(SimMode m) {
  if (mode_ != SimMode::Auto || m == SimMode::Auto) return;
  mode_ = m;
  if (m != SimMode::L3) return;
  tracker_ = std::make_unique<L3QueueTracker>(cfg_.l3);
  // Orders that rested before any data (empty book) join the L3 queues now.
  for (const auto& w : orders_)
    if (w.type == SimOrderType::Limit) tracker_->join(w.id, w.side, w.price);
}

void VenueSimulator::send(SimRequest r, int64_t sent_local) {
  r.arrival = latency_.venue_arrival(sent_local);
  ++counters_.requests;
  requests_.push_back(r);
}

void VenueSimulator::activate_due(int64_t venue_ts) {
  if (stops_due_ && venue_ts > stops_ts_) flush_stops();
  while (!requests_.empty() && requests_.front().arrival <= venue_ts) {
    const SimRequest r = requests_.front();
    requests_.pop_front();
    apply(r, r.arrival);
  }
  erase_done();
}

SimResponse& VenueSimulator::respond(SimResponseKind kind, const Working& w, int64_t venue_ts) {
  SimResponse s;
  s.kind = kind;
  s.id = w.id;
  s.side = w.side;
  s.price = w.price;
  s.qty = w.qty;
  s.venue_ts = venue_ts;
  s.local_ts = receipt(venue_ts);
  responses_.push_back(s);
  return responses_.back();
}

int64_t VenueSimulator::fill(Working& w, int64_t price, int64_t qty, bool maker, int64_t venue_ts) {
  // Reduce-only (as venues enforce it): never fills past a flat position; an order with no room
  // left is expired (Binance expires such orders rather than letting them open a position).
  int64_t room = INT64_MAX;
  if (w.reduce_only) {
    room = w.side == Side::Bid ? std::max<int64_t>(0, -position_) : std::max<int64_t>(0, position_);
    qty = std::min(qty, room);
  }
  if (qty > 0) {
    w.filled += qty;
    position_ += w.side == Side::Bid ? qty : -qty;
    SimResponse& s = respond(SimResponseKind::Fill, w, venue_ts);
    s.price = price;
    s.qty = qty;
    s.maker = maker;
    s.fee = fees_.fee(price, qty, maker, cfg_.tick_size, cfg_.lot_size, cfg_.inverse, cfg_.contract_size);
    ++counters_.fills;
    ++(maker ? counters_.maker_fills : counters_.taker_fills);
  }
  if (w.reduce_only && w.open() > 0 && room - std::max<int64_t>(qty, 0) <= 0) {
    ++counters_.reduce_only_expired;
    respond(SimResponseKind::Expire, w, venue_ts);
    w.qty = w.filled;  // removed by erase_done
  }
  return std::max<int64_t>(qty, 0);
}

int64_t VenueSimulator::walk(Side side, int64_t qty, int64_t limit,
                             std::vector<std::pair<int64_t, int64_t>>& out) const {
  out.clear();
  const book::L2Book& b = view();
  const Side book_side = side == Side::Bid ? Side::Ask : Side::Bid;
  size_t levels = b.level_count(book_side);
  levels = std::min<size_t>(levels, 1000);
  depth_.resize(2 * std::max<size_t>(levels, 1));
  const size_t n = b.depth(book_side, levels, depth_.data());
  int64_t left = qty;
  for (size_t i = 0; i < n && left > 0; ++i) {
    const int64_t px = depth_[2 * i];
    if (limit > 0 && (side == Side::Bid ? px > limit : px < limit)) break;
    const int64_t q = consumed_.available(book_side, px, depth_[2 * i + 1]);  // 0: all ours already
    const int64_t take = std::min(left, q);
    if (take > 0) out.emplace_back(px, take);
    left -= take;
  }
  return qty - left;
}

int64_t VenueSimulator::effective_best(Side side) const {
  const book::L2Book& b = view();
  const int64_t best = side == Side::Bid ? b.best_bid() : b.best_ask();
  const int64_t none = side == Side::Bid ? kNoBidPrice : kNoAskPrice;
  if (consumed_.empty() || best == none || consumed_.available(side, best, side == Side::Bid ? b.best_bid_qty() : b.best_ask_qty()) > 0)
    return best;
  size_t levels = std::min<size_t>(b.level_count(side), 1000);
  depth_.resize(2 * std::max<size_t>(levels, 1));
  const size_t n = b.depth(side, levels, depth_.data());
  for (size_t i = 0; i < n; ++i)
    if (consumed_.available(side, depth_[2 * i], depth_[2 * i + 1]) > 0) return depth_[2 * i];
  return none;
}

void VenueSimulator::execute_taker(Working& w, int64_t limit, int64_t venue_ts) {
  thread_local std::vector<std::pair<int64_t, int64_t>> legs;
  walk(w.side, w.open(), limit, legs);
  const Side book_side = w.side == Side::Bid ? Side::Ask : Side::Bid;
  // Venue self-trade prevention (expire maker, like Binance's EXPIRE_MAKER): our taker never
  // trades with our own resting order. One it would reach (at or better than the worst price of
  // its walk; at an equal price our queue place is unknown, so it counts) is expired first. The
  // order manager prevents such crossings at submission; a stop triggering into our own resting
  // order (a bracket's entry remainder) is how they still arise.
  if (!legs.empty()) {
    const int64_t worst = legs.back().first;
    for (auto& o : orders_) {
      if (o.id == w.id || o.side == w.side || o.type != SimOrderType::Limit || o.open() <= 0) continue;
      if (w.side == Side::Bid ? o.price > worst : o.price < worst) continue;
      ++counters_.stp_expired;
      respond(SimResponseKind::Expire, o, venue_ts);
      o.qty = o.filled;  // removed by erase_done
    }
  }
  for (const auto& [px, q] : legs) {
    const int64_t got = fill(w, px, q, false, venue_ts);
    consumed_.add(book_side, px, got);
    if (w.open() <= 0) break;
  }
}

void VenueSimulator::join_queue(Working& w) {
  w.priority = ++priority_;
  if (tracker_) tracker_->join(w.id, w.side, w.price);
  else queue_.on_entry(w.queue, view().qty_at(w.side, w.price));
}

double VenueSimulator::queue_ahead(uint64_t id) const {
  for (const auto& w : orders_) {
    if (w.id != id || w.type != SimOrderType::Limit || w.open() <= 0) continue;
    return tracker_ ? static_cast<double>(tracker_->queue_ahead(id)) : w.queue.front;
  }
  return -1.0;
}

void VenueSimulator::apply(const SimRequest& r, int64_t venue_ts) {
  if (r.kind == SimRequestKind::Cancel || r.kind == SimRequestKind::Replace) {
    auto it = std::find_if(orders_.begin(), orders_.end(), [&](const Working& w) { return w.id == r.id; });
    if (it == orders_.end() || it->triggered) {  // gone, or a triggered stop (a market order now)
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
    if (requeue) join_queue(w);
    return;
  }
  Working w{r.id, r.side, r.type, r.price, r.qty, 0, {}, 0, r.reduce_only};
  if (r.qty <= 0) {
    ++counters_.rejects;
    respond(SimResponseKind::Reject, w, venue_ts);
    return;
  }
  respond(SimResponseKind::Ack, w, venue_ts);
  if (r.type == SimOrderType::Market) {
    const bool empty = r.side == Side::Bid ? effective_best(Side::Ask) == kNoAskPrice
                                           : effective_best(Side::Bid) == kNoBidPrice;
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
    const int64_t opp = effective_best(r.side == Side::Bid ? Side::Ask : Side::Bid);
    const bool marketable = r.side == Side::Bid ? (opp != kNoAskPrice && r.price >= opp)
                                                : (opp != kNoBidPrice && r.price <= opp);
    if (marketable) execute_taker(w, r.price, venue_ts);
    if (w.open() <= 0) return;
    join_queue(w);
  }
  orders_.push_back(w);
}

void VenueSimulator::fill_crossed(int64_t venue_ts) {
  if (orders_.empty()) return;
  // The opposite side moved through a resting order: it would have traded (maker, at our price).
  const int64_t ask = effective_best(Side::Ask), bid = effective_best(Side::Bid);
  bool any = false;
  for (auto& w : orders_) {
    if (w.type != SimOrderType::Limit || w.open() <= 0) continue;
    const bool through = w.side == Side::Bid ? (ask != kNoAskPrice && ask <= w.price)
                                             : (bid != kNoBidPrice && bid >= w.price);
    if (through) {
      fill(w, w.price, w.open(), true, venue_ts);
      any = true;
    }
  }
  if (any) erase_done();
}

void VenueSimulator::on_book(const BookEvent& ev) {
  if (!feed_attached_) latency_.observe(ev.ts_exchange, ev.ts_local);
  if (mode_ != SimMode::L2) {
    resolve_mode(SimMode::L2);
    if (mode_ != SimMode::L2) {
      ++counters_.ignored_events;
      return;
    }
  }
  activate(ev.ts_exchange);
  const bool rejected = replay_book(ev);
  if (orders_.empty()) return;
  const auto side = static_cast<Side>(ev.side);
  const bool whole = (ev.flags & (event_flag::kSnapshot | event_flag::kClear)) != 0;
  const bool level = !whole && (side == Side::Bid || side == Side::Ask);
  if (level) {
    const int64_t next = book_.qty_at(side, ev.price);
    // The level's size before this event: the book's own record of it (a rejected event left the
    // level as it was).
    const int64_t prev = rejected ? next : book_.last_prev_qty();
    for (auto& w : orders_)
      if (w.type == SimOrderType::Limit && w.side == side && w.price == ev.price)
        queue_.on_level_change_at(w.queue, prev, next, ev.ts_exchange);
  }
  if (ev.flags & event_flag::kLast) fill_crossed(ev.ts_exchange);
}

inline bool VenueSimulator::replay_book(const BookEvent& ev) {
  const auto side = static_cast<Side>(ev.side);
  const bool whole = (ev.flags & (event_flag::kSnapshot | event_flag::kClear)) != 0;
  const bool level = !whole && (side == Side::Bid || side == Side::Ask);
  const bool rejected = book_.apply(ev) > book::BookStatus::Crossed;
  if (rejected) ++counters_.book_rejected;
  // The feed's new size is authoritative from now on (see consumed_liquidity.hpp).
  if (whole) consumed_.clear();
  else if (level) {
    consumed_.reset(side, ev.price);
    consumed_.settle(side, side == Side::Bid ? book_.best_bid() : book_.best_ask());
  }
  return rejected;
}

void VenueSimulator::on_order(const OrderEvent& ev) {
  if (!feed_attached_) latency_.observe(ev.ts_exchange, ev.ts_local);
  resolve_mode(SimMode::L3);
  if (mode_ != SimMode::L3) {
    ++counters_.ignored_events;
    return;
  }
  activate(ev.ts_exchange);
  ++counters_.order_events;
  if (book::is_rejection(tracker_->apply(ev))) ++counters_.book_rejected;
  if (!consumed_.empty()) {
    if (tracker_->last_cleared()) {
      consumed_.clear();
    } else {
      Side sides[2];
      int64_t prices[2];
      const size_t n = tracker_->touched(sides, prices);
      for (size_t i = 0; i < n; ++i) consumed_.reset(sides[i], prices[i]);
      const book::L2Book& v = view();
      consumed_.settle(Side::Bid, v.best_bid());
      consumed_.settle(Side::Ask, v.best_ask());
    }
  }
  if (ev.flags & event_flag::kLast) fill_crossed(ev.ts_exchange);
}

void VenueSimulator::on_trade(const TradeEvent& ev) {
  if (!feed_attached_) latency_.observe(ev.ts_exchange, ev.ts_local);
  activate(ev.ts_exchange);
  if (ev.qty <= 0) return;
  if (orders_.empty()) {
    consume_print(ev);
    return;
  }
  bool any = false;
  // Resting limits hit by the print: a seller-initiated print hits bids, a buyer-initiated one
  // lifts asks (an unknown aggressor both). The print's qty is shared per level by our orders in
  // their own FIFO order.
  thread_local std::vector<size_t> hit;
  hit.clear();
  for (size_t i = 0; i < orders_.size(); ++i) {
    const Working& w = orders_[i];
    if (w.type != SimOrderType::Limit || w.open() <= 0) continue;
    const bool hits_us = w.side == Side::Bid ? ev.aggressor != static_cast<uint8_t>(Side::Bid) && ev.price <= w.price
                                             : ev.aggressor != static_cast<uint8_t>(Side::Ask) && ev.price >= w.price;
    if (hits_us) hit.push_back(i);
  }
  std::sort(hit.begin(), hit.end(), [&](size_t a, size_t b) {
    const Working &x = orders_[a], &y = orders_[b];
    if (x.side != y.side) return x.side < y.side;
    if (x.price != y.price) return x.price < y.price;
    return x.priority < y.priority;
  });
  int64_t budget = 0;
  for (size_t k = 0; k < hit.size(); ++k) {
    Working& w = orders_[hit[k]];
    if (k == 0 || orders_[hit[k - 1]].side != w.side || orders_[hit[k - 1]].price != w.price) budget = ev.qty;
    int64_t q = 0;
    if (ev.price != w.price) {
      q = std::min(w.open(), budget);  // traded through our level
    } else if (tracker_) {
      q = std::min(w.open(), tracker_->on_trade(w.id, budget, ev.ts_exchange));
    } else {
      if (queue_.on_trade_at(w.queue, ev.qty, ev.qty - budget, ev.ts_exchange)) ++counters_.prints_after_level_drop;
      q = std::min({w.open(), queue_.take_fill(w.queue), budget});
    }
    if (q > 0) {
      budget -= fill(w, w.price, q, true, ev.ts_exchange);
      any = true;
    }
  }
  consume_print(ev);
  // Stops trigger when a print is at or through the stop and then execute as market (taker), but
  // only after the sweep that triggered them: when the venue moves past this exchange time, so
  // they take what the whole millisecond's prints left, never better (see flush_stops).
  for (auto& w : orders_) {
    if (w.type != SimOrderType::Stop || w.open() <= 0 || w.triggered) continue;
    const bool trig = w.side == Side::Bid ? ev.price >= w.price : ev.price <= w.price;
    if (!trig) continue;
    ++counters_.stops_triggered;
    w.triggered = true;
    stops_due_ = true;
    stops_ts_ = ev.ts_exchange;
  }
  if (any) erase_done();
}

void VenueSimulator::flush_stops() {
  stops_due_ = false;
  bool any = false;
  for (auto& w : orders_) {
    if (w.type != SimOrderType::Stop || !w.triggered || w.open() <= 0) continue;
    execute_taker(w, 0, stops_ts_);
    if (w.open() > 0) {
      ++counters_.market_expired;
      respond(SimResponseKind::Expire, w, stops_ts_);
      w.qty = w.filled;
    }
    any = true;
  }
  if (any) erase_done();
}

void VenueSimulator::erase_done() {
  if (tracker_)
    for (const auto& w : orders_)
      if (w.open() <= 0 && w.type == SimOrderType::Limit) tracker_->leave(w.id);
  orders_.erase(std::remove_if(orders_.begin(), orders_.end(), [](const Working& w) { return w.open() <= 0; }),
                orders_.end());
}

void VenueSimulator::attach_feed(const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
                                 const TradeEvent* trades, size_t n_trades) {
  feed_ = StreamMerge(book, n_book, orders, n_orders, trades, n_trades, StreamMerge::Stamp::Exchange);
  feed_attached_ = true;
}

namespace {
// Drops the consumed prefix of a streamed feed buffer and appends the new records, counting those
// whose exchange-time key (the stream's running maximum) the venue has already passed.
template <typename Event>
uint64_t append_stream(std::vector<Event>& buf, size_t consumed, const Event* ev, size_t n, int64_t& key,
                       int64_t advanced_to) {
  buf.erase(buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(consumed));
  uint64_t late = 0;
  for (size_t i = 0; i < n; ++i) {
    key = std::max(key, ev[i].ts_exchange);
    if (key <= advanced_to) ++late;
  }
  buf.insert(buf.end(), ev, ev + n);
  return late;
}
}  // namespace

void VenueSimulator::append_feed(const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
                                 const TradeEvent* trades, size_t n_trades) {
  tally_ = Tally{};  // its positions were into the buffers rebuilt here (the caller replayed first)
  const int64_t kb = feed_.key_book(), ko = feed_.key_orders(), kt = feed_.key_trades();
  counters_.late_feed_events +=
      append_stream(own_book_, feed_.consumed_book(), book, n_book, append_key_[0], advanced_to_) +
      append_stream(own_orders_, feed_.consumed_orders(), orders, n_orders, append_key_[1], advanced_to_) +
      append_stream(own_trades_, feed_.consumed_trades(), trades, n_trades, append_key_[2], advanced_to_);
  feed_ = StreamMerge(own_book_.data(), own_book_.size(), own_orders_.data(), own_orders_.size(), own_trades_.data(),
                      own_trades_.size(), StreamMerge::Stamp::Exchange);
  feed_.set_keys(kb, ko, kt);
  feed_attached_ = true;
}

void VenueSimulator::advance_feed(int64_t t) {
  tally_ = Tally{};  // the replay counts from here
  advanced_to_ = std::max(advanced_to_, t);
  int64_t key;
  for (StreamMerge::Kind kind; (kind = feed_.peek(key)) != StreamMerge::kDone && key <= t;) {
    // Nothing working and no request due by t: no event up to t can fill, trigger or activate
    // anything (requests are queued only by send(), never during a replay), so an L2 venue only
    // keeps its book and overlay up to date, exactly as on_book / on_trade would, without their
    // per-event checks (the common case of a backtest between orders). Checked again after every
    // event of the full path: the first book event resolves an Auto venue to L2.
    const bool quiet = mode_ == SimMode::L2 && feed_attached_ && orders_.empty() && !stops_due_ &&
                       (requests_.empty() || requests_.front().arrival > t);
    if (quiet) {
      replay_quiet(t);
      break;
    }
    if (kind == StreamMerge::kBook) {
      if (!tracker_)
        if (const BookEvent* ahead = feed_.book_ahead(kPrefetchAhead)) book_.prefetch(*ahead);
      on_book(feed_.pop_book(key));
    } else if (kind == StreamMerge::kOrders) on_order(feed_.pop_order(key));
    else on_trade(feed_.pop_trade(key));
  }
  activate(t);
}

bool VenueSimulator::tally(int64_t t) {
  if (!feed_attached_ || !idle() || stops_due_ || mode_ == SimMode::L3 || tally_.failed) return false;
  if (!tally_.valid) {
    tally_ = Tally{};
    tally_.valid = true;
    tally_.key_book = feed_.key_book();
    tally_.key_orders = feed_.key_orders();
    tally_.last_seq = book_.last_seq();
    tally_.mode = mode_;
  }
  // The replay takes from each stream the records whose running exchange-time key is <= t (a
  // stream's key never falls), so the streams are counted apart; order events at a venue still
  // Auto could come before its first book event and resolve it to L3 (then the replay counts).
  size_t nb = 0, no = 0;
  const BookEvent* b = feed_.book_rest(nb);
  const OrderEvent* o = feed_.orders_rest(no);
  size_t j = tally_.orders;
  for (int64_t k; j < no && (k = std::max(tally_.key_orders, o[j].ts_exchange)) <= t; ++j) tally_.key_orders = k;
  if (j > tally_.orders && tally_.mode != SimMode::L2) {
    tally_.valid = false;
    tally_.failed = true;
    return false;
  }
  tally_.ignored += j - tally_.orders;
  tally_.orders = j;
  const bool nonpositive = book_.config().allow_nonpositive_prices;
  size_t i = tally_.book;
  int64_t key = tally_.key_book, last_seq = tally_.last_seq;  // locals: kept in registers
  uint64_t rejected = 0;
  for (int64_t k; i < nb && (k = std::max(key, b[i].ts_exchange)) <= t; ++i) {
    key = k;
    rejected += !book::L2Book::passes(b[i], last_seq, nonpositive);
  }
  if (i > tally_.book) tally_.mode = SimMode::L2;  // on_book resolves an Auto venue
  tally_.book = i;
  tally_.key_book = key;
  tally_.last_seq = last_seq;
  tally_.book_rejected += rejected;
  return true;
}

bool VenueSimulator::counters_after(int64_t t, SimCounters& out) {
  if (!tally(t)) return false;
  out = counters_;
  out.book_rejected += tally_.book_rejected;
  out.ignored_events += tally_.ignored;
  return true;
}

void VenueSimulator::replay_quiet(int64_t t) {
  int64_t key;
  for (StreamMerge::Kind kind; (kind = feed_.peek(key)) != StreamMerge::kDone && key <= t;) {
    if (kind == StreamMerge::kBook) {
      if (const BookEvent* ahead = feed_.book_ahead(kPrefetchAhead)) book_.prefetch(*ahead);
      replay_book(feed_.pop_book(key));
    } else if (kind == StreamMerge::kTrades) {
      const TradeEvent& ev = feed_.pop_trade(key);
      if (ev.qty > 0) consume_print(ev);
    } else {
      on_order(feed_.pop_order(key));
    }
  }
}

void VenueSimulator::consume_print(const TradeEvent& ev) {
  // A print at P by a seller emptied every bid above P and took its qty at P (a buyer: asks
  // below P). The replayed book shows that only with the feed's next updates (on this BTCUSDT
  // recording 38% of prints land beyond 3 levels of the book as the venue holds it), and until
  // then our takers must not trade there. An unknown-side print consumes nothing.
  Side hit;
  if (ev.aggressor == static_cast<uint8_t>(Side::Ask)) hit = Side::Bid;
  else if (ev.aggressor == static_cast<uint8_t>(Side::Bid)) hit = Side::Ask;
  else return;
  consumed_.trade_through(hit, ev.price);
  const int64_t at = view().qty_at(hit, ev.price);
  if (at > 0) consumed_.add(hit, ev.price, std::min(ev.qty, consumed_.available(hit, ev.price, at)));
}

int64_t VenueSimulator::receipt(int64_t venue_ts) {
  // One ordered channel: a response is never received before one the venue sent earlier (the
  // learned clock offset only falls, which could otherwise reorder an ack and its fill).
  last_receipt_ = std::max(last_receipt_, latency_.local_receipt(venue_ts));
  return last_receipt_;
}

void VenueSimulator::poll_due(int64_t now, std::vector<SimResponse>& out) {
  while (!responses_.empty() && responses_.front().local_ts <= now) {
    out.push_back(responses_.front());
    responses_.pop_front();
  }
}

}  // namespace bot4::sim
