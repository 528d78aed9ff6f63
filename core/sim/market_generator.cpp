#include "sim/market_generator.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace bot4::sim {

namespace {

bool finite_nonneg(const std::vector<double>& v) {
  for (double x : v)
    if (!std::isfinite(x) || x < 0.0) return false;
  return true;
}

std::string check_table(const std::vector<double>& t, size_t n_probs, const std::string& name,
                        bool nonneg) {
  if (t.size() != n_probs) return name + ": expected one value per quantile probability";
  for (size_t i = 0; i < t.size(); ++i) {
    if (!std::isfinite(t[i])) return name + ": non-finite value";
    if (nonneg && t[i] < 0.0) return name + ": negative value";
    if (i > 0 && t[i] < t[i - 1]) return name + ": quantiles must be non-decreasing";
  }
  return {};
}

int64_t round_ns(double seconds) {
  const double ns = seconds * 1e9;
  if (ns > 9.0e15) return static_cast<int64_t>(9.0e15);  // ~104 days: a horizon, not a gap
  return static_cast<int64_t>(std::floor(ns + 0.5));
}

}  // namespace

std::string validate(const MarketModelConfig& c) {
  const size_t K = c.n_levels;
  if (K < 2 || K > 4096) return "n_levels must be in [2, 4096]";
  if (c.initial_bid <= 0) return "initial_bid must be > 0 ticks";
  for (size_t i = 0; i < c.size_bin_edges.size(); ++i) {
    if (!std::isfinite(c.size_bin_edges[i]) || c.size_bin_edges[i] <= 0.0)
      return "size_bin_edges must be positive";
    if (i > 0 && c.size_bin_edges[i] <= c.size_bin_edges[i - 1])
      return "size_bin_edges must be increasing";
  }
  const size_t nb = c.n_bins();
  if (nb > 255) return "too many size bins";
  if (c.typical_size.size() != K) return "typical_size must have n_levels entries";
  for (double x : c.typical_size)
    if (!std::isfinite(x) || x <= 0.0) return "typical_size must be positive";
  if (c.add_rate.size() != K * nb) return "add_rate must have n_levels x n_bins entries";
  if (c.cancel_rate.size() != K * nb) return "cancel_rate must have n_levels x n_bins entries";
  if (c.clear_prob.size() != K * nb) return "clear_prob must have n_levels x n_bins entries";
  for (double p : c.clear_prob)
    if (!(p >= 0.0 && p <= 1.0)) return "clear_prob entries must be probabilities";
  if (c.market_rate.size() != nb) return "market_rate must have n_bins entries";
  if (c.mo_withdraw_prob.size() != nb) return "mo_withdraw_prob must have n_bins entries";
  for (double p : c.mo_withdraw_prob)
    if (!(p >= 0.0 && p <= 1.0)) return "mo_withdraw_prob entries must be probabilities";
  if (!finite_nonneg(c.add_rate) || !finite_nonneg(c.cancel_rate) || !finite_nonneg(c.market_rate))
    return "rates must be finite and >= 0";
  double market_total = 0.0;
  for (size_t b = 1; b < nb; ++b) market_total += c.market_rate[b];
  if (!(market_total > 0.0)) return "market_rate must be positive for some non-empty bin";
  double add_total = 0.0;
  for (size_t k = 0; k < K; ++k)
    for (size_t b = 0; b < nb; ++b) add_total += c.add_rate[k * nb + b];
  if (!(add_total > 0.0)) return "add_rate must be positive somewhere";
  if (!std::isfinite(c.inside_add_rate) || c.inside_add_rate < 0.0)
    return "inside_add_rate must be finite and >= 0";
  if (c.inside_gap_weights.empty() || !finite_nonneg(c.inside_gap_weights) ||
      !(c.inside_gap_weights[0] > 0.0))
    return "inside_gap_weights must be non-negative with a positive first entry";
  if (!(c.inside_follow_prob >= 0.0 && c.inside_follow_prob <= 1.0))
    return "inside_follow_prob must be a probability";
  if (c.level_occupancy.size() != K) return "level_occupancy must have n_levels entries";
  for (double p : c.level_occupancy)
    if (!(p >= 0.0 && p <= 1.0)) return "level_occupancy entries must be probabilities";
  const auto& q = c.quantile_probs;
  if (q.size() < 2 || q.front() != 0.0 || q.back() != 1.0) return "quantile_probs must run from 0 to 1";
  for (size_t i = 1; i < q.size(); ++i)
    if (!(q[i] > q[i - 1])) return "quantile_probs must be increasing";
  if (c.level_size.size() != K) return "level_size must have n_levels tables";
  if (c.add_size.size() != K * nb || c.cancel_size.size() != K * nb)
    return "add_size and cancel_size must have n_levels x n_bins tables";
  for (size_t k = 0; k < K; ++k) {
    std::string e = check_table(c.level_size[k], q.size(), "level_size[" + std::to_string(k) + "]", true);
    if (!e.empty()) return e;
  }
  for (size_t i = 0; i < K * nb; ++i) {
    const std::string at = "[" + std::to_string(i / nb) + "][" + std::to_string(i % nb) + "]";
    for (const auto& [t, name] : {std::pair{&c.add_size[i], "add_size"},
                                  std::pair{&c.cancel_size[i], "cancel_size"}}) {
      std::string e = check_table(*t, q.size(), name + at, true);
      if (!e.empty()) return e;
    }
  }
  for (const auto& [t, name] : {std::pair{&c.inside_add_size, "inside_add_size"},
                                std::pair{&c.market_order_size, "market_order_size"},
                                std::pair{&c.order_size, "order_size"},
                                std::pair{&c.touch_jump, "touch_jump"},
                                std::pair{&c.new_touch_size, "new_touch_size"}}) {
    std::string e = check_table(*t, q.size(), name, true);
    if (!e.empty()) return e;
  }
  {
    std::string e = check_table(c.latency_dispersion, q.size(), "latency_dispersion", false);
    if (!e.empty()) return e;
  }
  if (!(c.cancel_newest_prob >= 0.0 && c.cancel_newest_prob <= 1.0))
    return "cancel_newest_prob must be a probability";
  if (c.max_orders_per_split < 1) return "max_orders_per_split must be >= 1";
  if (!c.limit_clock.valid())
    return "limit_clock: need mu > 0, alphas >= 0, betas > 0, branching ratio < 1";
  if (!c.market_clock.valid())
    return "market_clock: need mu > 0, alphas >= 0, betas > 0, branching ratio < 1";
  if (!std::isfinite(c.latency_memory_ns) || c.latency_memory_ns < 0.0)
    return "latency_memory_ns must be finite and >= 0";
  if (c.latency_min_ns < 0 || c.latency_median_ns < c.latency_min_ns)
    return "need 0 <= latency_min_ns <= latency_median_ns";
  return {};
}

void MarketStream::reserve_events(size_t n) {
  // Mix of the BTCUSDT calibration: ~1.6 book records, ~11 order records (levels hold tens of
  // orders; a price jump withdraws and refills whole levels) and ~1.4 trades per atomic event.
  // Reserving address space is free until written; it saves the copies of repeated growth.
  book.reserve(book.size() + 2 * n + 4096);
  orders.reserve(orders.size() + 12 * n + 4096);
  trades.reserve(trades.size() + 2 * n + 1024);
}

MarketGenerator::MarketGenerator(MarketModelConfig config, uint64_t seed)
    : cfg_(std::move(config)), rng_(seed) {
  const std::string error = validate(cfg_);
  if (!error.empty()) throw std::invalid_argument(error);
  K_ = cfg_.n_levels;
  uint64_t cap = 1;
  while (cap < 2ull * K_ + 2) cap <<= 1;
  mask_ = cap - 1;
  n_bins_ = cfg_.n_bins();
  const size_t ne = cfg_.size_bin_edges.size();
  bin_threshold_.resize(K_ * ne);
  for (uint32_t k = 0; k < K_; ++k)
    for (size_t i = 0; i < ne; ++i) bin_threshold_[k * ne + i] = cfg_.size_bin_edges[i] * cfg_.typical_size[k];
  const std::vector<double>* probs = &cfg_.quantile_probs;
  for (uint32_t k = 0; k < K_; ++k) level_size_.emplace_back(probs, cfg_.level_size[k]);
  for (size_t i = 0; i < cfg_.add_size.size(); ++i) {
    add_size_.emplace_back(probs, cfg_.add_size[i]);
    cancel_size_.emplace_back(probs, cfg_.cancel_size[i]);
  }
  inside_add_size_ = QuantileSampler(probs, cfg_.inside_add_size);
  market_order_size_ = QuantileSampler(probs, cfg_.market_order_size);
  order_size_ = QuantileSampler(probs, cfg_.order_size);
  touch_jump_ = QuantileSampler(probs, cfg_.touch_jump);
  new_touch_size_ = QuantileSampler(probs, cfg_.new_touch_size);
  latency_dispersion_ = QuantileSampler(probs, cfg_.latency_dispersion);
  limit_clock_ = HawkesClock(cfg_.limit_clock);
  market_clock_ = HawkesClock(cfg_.market_clock);
  for (int s = 0; s < 2; ++s) {
    SideBook& sb = sides_[s];
    sb.side = s == 0 ? Side::Bid : Side::Ask;
    sb.slots.resize(cap);
    sb.bin.assign(K_, 0);
    sb.add_w.assign(K_, 0.0);
    sb.cancel_w.assign(K_, 0.0);
  }
  sides_[0].touch = cfg_.initial_bid;
  sides_[1].touch = cfg_.initial_bid + 1;
  now_ = cfg_.epoch_ns;
}

int64_t MarketGenerator::level_qty(Side side, int64_t price) const {
  const SideBook& s = sides_[side == Side::Bid ? 0 : 1];
  const int64_t dist = side == Side::Bid ? s.touch - price : price - s.touch;
  if (dist < 0 || dist >= static_cast<int64_t>(K_)) return 0;
  return level(s, price).qty;
}

size_t MarketGenerator::order_count(Side side) const {
  const SideBook& s = sides_[side == Side::Bid ? 0 : 1];
  size_t n = 0;
  for (uint32_t k = 0; k < K_; ++k) n += level(s, price_at(s, k)).live();
  return n;
}

uint8_t MarketGenerator::bin_of(uint32_t k, int64_t qty) const {
  if (qty <= 0) return 0;
  const size_t ne = cfg_.size_bin_edges.size();
  const double q = static_cast<double>(qty);
  const double* thr = bin_threshold_.data() + k * ne;
  size_t b = 1;
  while (b - 1 < ne && q > thr[b - 1]) ++b;
  return static_cast<uint8_t>(b);
}

void MarketGenerator::refresh_weights(SideBook& s, uint32_t k) {
  const int64_t price = price_at(s, k);
  const int64_t qty = level(s, price).qty;
  const uint8_t b = bin_of(k, qty);
  s.bin[k] = b;
  const bool valid_price = price > 0;
  s.add_w[k] = valid_price ? cfg_.add_rate[k * n_bins_ + b] : 0.0;
  s.cancel_w[k] = qty > 0 ? cfg_.cancel_rate[k * n_bins_ + b] : 0.0;
}

void MarketGenerator::refresh_all_weights(SideBook& s) {
  for (uint32_t k = 0; k < K_; ++k) refresh_weights(s, k);
}

void MarketGenerator::refresh_totals(SideBook& s) {
  double a = 0.0, c = 0.0;
  for (uint32_t k = 0; k < K_; ++k) {
    a += s.add_w[k];
    c += s.cancel_w[k];
  }
  s.add_total = a;
  s.cancel_total = c;
}

// --- emission -------------------------------------------------------------------------------

void MarketGenerator::begin_event() {
  book_mark_ = out_->book.size();
  order_mark_ = out_->orders.size();
  trade_mark_ = out_->trades.size();
  const double fresh = rng_.uniform();
  const double keep = rng_.uniform();
  if (last_event_ == INT64_MIN || cfg_.latency_memory_ns <= 0.0 ||
      keep >= det_exp(-static_cast<double>(now_ - last_event_) / cfg_.latency_memory_ns)) {
    latency_u_ = fresh;
  }
  last_event_ = now_;
  int64_t latency = cfg_.latency_median_ns +
                    static_cast<int64_t>(std::floor(latency_dispersion_.at(latency_u_) + 0.5));
  if (latency < cfg_.latency_min_ns) latency = cfg_.latency_min_ns;
  ts_local_ = now_ + latency;
  if (ts_local_ < last_local_) ts_local_ = last_local_;
  last_local_ = ts_local_;
}

void MarketGenerator::end_event() {
  if (out_->book.size() > book_mark_) out_->book.back().flags |= event_flag::kLast;
  if (out_->orders.size() > order_mark_) out_->orders.back().flags |= event_flag::kLast;
  if (out_->trades.size() > trade_mark_) out_->trades.back().flags |= event_flag::kLast;
}

void MarketGenerator::emit_level(const SideBook& s, int64_t price) {
  BookEvent ev{};
  ev.ts_exchange = now_;
  ev.ts_local = ts_local_;
  ev.seq = seq_;
  ev.price = price;
  ev.qty = level(s, price).qty;
  ev.instrument = cfg_.instrument;
  ev.side = static_cast<uint8_t>(s.side);
  ev.flags = event_flags_;
  out_->book.push_back(ev);
}

void MarketGenerator::emit_order(OrderAction action, Side side, OrderId id, int64_t price, int64_t qty) {
  OrderEvent ev{};
  ev.ts_exchange = now_;
  ev.ts_local = ts_local_;
  ev.seq = seq_;
  ev.order_id = id;
  ev.price = price;
  ev.qty = qty;
  ev.instrument = cfg_.instrument;
  ev.side = static_cast<uint8_t>(side);
  ev.action = static_cast<uint8_t>(action);
  ev.flags = event_flags_;
  out_->orders.push_back(ev);
}

void MarketGenerator::emit_trade(int64_t price, int64_t qty, Side aggressor) {
  TradeEvent ev{};
  ev.ts_exchange = now_;
  ev.ts_local = ts_local_;
  ev.seq = ++trade_id_;
  ev.price = price;
  ev.qty = qty;
  ev.instrument = cfg_.instrument;
  ev.aggressor = static_cast<uint8_t>(aggressor);
  out_->trades.push_back(ev);
  ++counters_.trades;
}

// --- book mechanics -------------------------------------------------------------------------

void MarketGenerator::compact(Level& lv) {
  if (lv.head > 32 && lv.head * 2 > lv.orders.size()) {
    lv.orders.erase(lv.orders.begin(), lv.orders.begin() + static_cast<std::ptrdiff_t>(lv.head));
    lv.head = 0;
  }
}

OrderId MarketGenerator::add_order(SideBook& s, int64_t price, int64_t qty) {
  Level& lv = level(s, price);
  const OrderId id = next_order_id_++;
  lv.orders.push_back(Order{id, qty});
  lv.qty += qty;
  emit_order(OrderAction::Add, s.side, id, price, qty);
  return id;
}

void MarketGenerator::add_lots(SideBook& s, int64_t price, int64_t total) {
  int64_t remaining = total;
  for (uint32_t n = 1; remaining > 0; ++n) {
    int64_t q = n >= cfg_.max_orders_per_split ? remaining : order_size_.sample_lots(rng_);
    if (q > remaining) q = remaining;
    add_order(s, price, q);
    remaining -= q;
  }
}

void MarketGenerator::fill_level(SideBook& s, uint32_t k, int64_t total) {
  const int64_t price = price_at(s, k);
  if (price <= 0 || total <= 0) return;
  add_lots(s, price, total);
  emit_level(s, price);
}

void MarketGenerator::drop_level(SideBook& s, int64_t price) {
  Level& lv = level(s, price);
  if (lv.qty == 0) return;
  for (size_t i = lv.head; i < lv.orders.size(); ++i) {
    emit_order(OrderAction::Cancel, s.side, lv.orders[i].id, price, lv.orders[i].qty);
    ++counters_.order_cancels;
  }
  lv.orders.clear();
  lv.head = 0;
  lv.qty = 0;
  emit_level(s, price);
  ++counters_.dropped_levels;
}

void MarketGenerator::refill(SideBook& s, uint32_t from_k, uint32_t to_k) {
  for (uint32_t k = from_k; k < to_k; ++k) {
    if (rng_.bernoulli(cfg_.level_occupancy[k])) {
      fill_level(s, k, level_size_[k].sample_lots(rng_));
      ++counters_.refilled_levels;
    }
  }
}

void MarketGenerator::shift_out(SideBook& s) {
  // The touch level is empty: the touch jumps `jump` ticks outward. Levels it passes are
  // withdrawn; the level it lands on keeps its queue or gets a new-touch size.
  int64_t jump = touch_jump_.sample_lots(rng_);
  if (s.side == Side::Bid && s.touch - jump < 1) jump = s.touch - 1;  // prices stay > 0
  if (jump < 1) {  // a bid touch at 1 tick cannot move down: refill it in place
    fill_level(s, 0, new_touch_size_.sample_lots(rng_));
    refresh_all_weights(s);
    return;
  }
  const uint32_t passed = static_cast<uint32_t>(std::min<int64_t>(jump, K_));
  for (uint32_t k = 1; k < passed; ++k) drop_level(s, price_at(s, k));
  const bool beyond = jump >= static_cast<int64_t>(K_);
  if (beyond) ++counters_.reseeds;
  s.touch = s.side == Side::Bid ? s.touch - jump : s.touch + jump;
  ++counters_.touch_moves;
  ++counters_.touch_jumps;
  last_out_side_ = s.side == Side::Bid ? 0 : 1;
  if (level(s, s.touch).qty == 0) fill_level(s, 0, new_touch_size_.sample_lots(rng_));
  // Distances that entered the window at its far end.
  refill(s, beyond ? 1 : K_ - passed, K_);
  refresh_all_weights(s);
}

void MarketGenerator::shift_in(SideBook& s, int64_t j) {
  // Levels at distance >= K - j leave the window.
  const uint32_t keep = j >= static_cast<int64_t>(K_) ? 0 : K_ - static_cast<uint32_t>(j);
  for (uint32_t k = keep; k < K_; ++k) drop_level(s, price_at(s, k));
  s.touch = s.side == Side::Bid ? s.touch + j : s.touch - j;
  ++counters_.touch_moves;
}

// --- events ---------------------------------------------------------------------------------

void MarketGenerator::snapshot() {
  seq_ = 0;
  begin_event();
  event_flags_ = event_flag::kSnapshot;
  for (SideBook& s : sides_) {
    fill_level(s, 0, level_size_[0].sample_lots(rng_));
    for (uint32_t k = 1; k < K_; ++k)
      if (rng_.bernoulli(cfg_.level_occupancy[k])) fill_level(s, k, level_size_[k].sample_lots(rng_));
    refresh_all_weights(s);
    refresh_totals(s);
  }
  // The first record of each stream clears the consumer's book before the snapshot.
  if (out_->book.size() > book_mark_) out_->book[book_mark_].flags |= event_flag::kClear;
  if (out_->orders.size() > order_mark_) out_->orders[order_mark_].flags |= event_flag::kClear;
  end_event();
  event_flags_ = 0;
}

void MarketGenerator::do_add(SideBook& s, uint32_t k) {
  const int64_t price = price_at(s, k);
  add_lots(s, price, add_size_[k * n_bins_ + s.bin[k]].sample_lots(rng_));
  emit_level(s, price);
  refresh_weights(s, k);
  ++counters_.limit_adds;
}

void MarketGenerator::do_cancel(SideBook& s, uint32_t k) {
  const int64_t price = price_at(s, k);
  Level& lv = level(s, price);
  int64_t remaining = lv.qty;  // the whole level goes (quote withdrawn) ...
  if (lv.qty > 1 && !rng_.bernoulli(cfg_.clear_prob[k * n_bins_ + s.bin[k]])) {
    // ... or a partial cancel of calibrated size, capped below the level size (emptying a
    // level is what clear_prob stands for; a one-lot level can only be cleared)
    remaining = std::min(cancel_size_[k * n_bins_ + s.bin[k]].sample_lots(rng_), lv.qty - 1);
  } else {
    ++counters_.level_clears;
  }
  while (remaining > 0) {
    const size_t live = lv.live();
    size_t idx = lv.orders.size() - 1;
    if (live > 1 && !rng_.bernoulli(cfg_.cancel_newest_prob))
      idx = lv.head + static_cast<size_t>(rng_.below(live));
    Order& o = lv.orders[idx];
    const int64_t r = std::min(remaining, o.qty);
    emit_order(OrderAction::Cancel, s.side, o.id, price, r);
    ++counters_.order_cancels;
    o.qty -= r;
    lv.qty -= r;
    remaining -= r;
    if (o.qty == 0) {
      if (idx == lv.head) {
        ++lv.head;
      } else {
        lv.orders.erase(lv.orders.begin() + static_cast<std::ptrdiff_t>(idx));
      }
    }
  }
  if (lv.qty == 0) {
    lv.orders.clear();
    lv.head = 0;
  } else {
    compact(lv);
  }
  emit_level(s, price);
  ++counters_.cancels;
  if (k == 0 && lv.qty == 0) {
    shift_out(s);
  } else {
    refresh_weights(s, k);
  }
}

void MarketGenerator::do_inside_add(SideBook& s) {
  // New touch inside the spread, leaving r ticks (r from the gap weights, r <= spread - 2).
  const SideBook& other = sides_[s.side == Side::Bid ? 1 : 0];
  const int64_t spread = sides_[1].touch - sides_[0].touch;
  const int64_t max_r = std::min<int64_t>(spread - 2, static_cast<int64_t>(cfg_.inside_gap_weights.size()) - 1);
  double total = 0.0;
  for (int64_t r = 0; r <= max_r; ++r) total += cfg_.inside_gap_weights[static_cast<size_t>(r)];
  int64_t r = 0;
  double u = rng_.uniform() * total;
  for (; r < max_r; ++r) {
    u -= cfg_.inside_gap_weights[static_cast<size_t>(r)];
    if (u < 0.0) break;
  }
  const int64_t price = s.side == Side::Bid ? other.touch - 1 - r : other.touch + 1 + r;
  const int64_t j = s.side == Side::Bid ? price - s.touch : s.touch - price;  // >= 1
  shift_in(s, j);
  add_lots(s, price, inside_add_size_.sample_lots(rng_));
  emit_level(s, price);
  // The book re-centres: the levels between the new and the old touch are redrawn.
  refill(s, 1, static_cast<uint32_t>(std::min<int64_t>(j, K_)));
  refresh_all_weights(s);
  ++counters_.inside_adds;
}

void MarketGenerator::do_market(Side aggressor) {
  SideBook& s = sides_[aggressor == Side::Bid ? 1 : 0];
  int64_t remaining = market_order_size_.sample_lots(rng_);
  ++counters_.market_orders;
  // Walk the K levels; what is left of an order larger than all of them is dropped (counted).
  // (Sweeping on through refilled windows was tried: it doubles the 1 s volatility of the
  // calibrated stream, the real book beyond K ticks being deeper than refills make it.)
  for (uint32_t k = 0; k < K_ && remaining > 0; ++k) {
    const int64_t price = price_at(s, k);
    Level& lv = level(s, price);
    if (lv.qty == 0) continue;
    while (remaining > 0 && lv.head < lv.orders.size()) {
      Order& o = lv.orders[lv.head];
      const int64_t f = std::min(remaining, o.qty);
      emit_order(OrderAction::Execute, s.side, o.id, price, f);
      emit_trade(price, f, aggressor);
      o.qty -= f;
      lv.qty -= f;
      remaining -= f;
      if (o.qty == 0) ++lv.head;
    }
    if (lv.qty == 0) {
      lv.orders.clear();
      lv.head = 0;
    } else {
      compact(lv);
    }
    emit_level(s, price);
  }
  if (remaining > 0) ++counters_.truncated_market_orders;
  // The rest of a touch the order hit may be withdrawn at once (quotes pulled after a trade).
  Level& touch = level(s, s.touch);
  if (touch.qty > 0 && rng_.bernoulli(cfg_.mo_withdraw_prob[bin_of(0, touch.qty)])) {
    drop_level(s, s.touch);
    --counters_.dropped_levels;
    ++counters_.withdrawals;
  }
  if (level(s, s.touch).qty == 0) {
    shift_out(s);
  } else {
    refresh_all_weights(s);
  }
}

void MarketGenerator::on_limit_event() {
  SideBook& bid = sides_[0];
  SideBook& ask = sides_[1];
  refresh_totals(bid);
  refresh_totals(ask);
  const double weights[4] = {bid.add_total, bid.cancel_total, ask.add_total, ask.cancel_total};
  double total = 0.0;
  for (double w : weights) total += w;
  double u = rng_.uniform() * total;
  int group = 0;
  for (; group < 3; ++group) {
    if (u < weights[group]) break;
    u -= weights[group];
  }
  while (weights[group] <= 0.0 && group > 0) --group;  // rounding guard
  SideBook& s = group < 2 ? bid : ask;
  const int kind = group % 2;
  const std::vector<double>& w = kind == 0 ? s.add_w : s.cancel_w;
  uint32_t k = 0;
  uint32_t last_positive = 0;
  for (; k < K_; ++k) {
    if (w[k] > 0.0) last_positive = k;
    if (u < w[k]) break;
    u -= w[k];
  }
  if (k == K_ || w[k] <= 0.0) k = last_positive;
  if (kind == 0) {
    do_add(s, k);
  } else {
    do_cancel(s, k);
  }
}

void MarketGenerator::on_market_event() {
  const double buy = cfg_.market_rate[sides_[1].bin[0]];
  const double sell = cfg_.market_rate[sides_[0].bin[0]];
  const bool is_buy = buy + sell > 0.0 ? rng_.uniform() * (buy + sell) < buy : rng_.bernoulli(0.5);
  do_market(is_buy ? Side::Bid : Side::Ask);
}

size_t MarketGenerator::generate(size_t n_events, Timestamp until_ns, MarketStream& out) {
  out_ = &out;
  // Reserve for the expected number of events (bounded: beyond it the vectors grow).
  double expected = static_cast<double>(n_events);
  if (until_ns > 0) {
    const double horizon_s = static_cast<double>(until_ns - now_) * 1e-9;
    const double rate = cfg_.limit_clock.mean_rate() + cfg_.market_clock.mean_rate() + 4.0;
    expected = std::min(expected, std::max(horizon_s, 0.0) * rate * 1.2 + 1024.0);
  }
  out.reserve_events(static_cast<size_t>(std::min(expected, double(1 << 20))));
  if (!started_) {
    started_ = true;
    snapshot();
    next_limit_ = now_ + round_ns(limit_clock_.next_gap(rng_));
    next_market_ = now_ + round_ns(market_clock_.next_gap(rng_));
  }
  size_t done = 0;
  while (done < n_events) {
    // Three clocks: limit flow (Hawkes), market orders (Hawkes), inside-spread adds (Poisson at
    // 2 x inside_add_rate, armed only while the spread is wide; memoryless, so re-arming after
    // any event is exact).
    int which = 0;
    Timestamp t = next_limit_;
    if (next_market_ < t) {
      which = 1;
      t = next_market_;
    }
    if (next_inside_ < t) {
      which = 2;
      t = next_inside_;
    }
    if (until_ns > 0 && t > until_ns) break;
    now_ = t;
    ++seq_;
    begin_event();
    if (which == 0) {
      on_limit_event();
      next_limit_ = now_ + round_ns(limit_clock_.next_gap(rng_));
    } else if (which == 1) {
      on_market_event();
      next_market_ = now_ + round_ns(market_clock_.next_gap(rng_));
    } else {
      const int follower = rng_.bernoulli(cfg_.inside_follow_prob) ? 1 - last_out_side_ : last_out_side_;
      do_inside_add(sides_[follower]);
      next_inside_ = INT64_MAX;
    }
    const bool wide = sides_[1].touch - sides_[0].touch > 1;
    if (!wide) {
      next_inside_ = INT64_MAX;
    } else if (next_inside_ == INT64_MAX && cfg_.inside_add_rate > 0.0) {
      next_inside_ = now_ + round_ns(rng_.exponential() / (2.0 * cfg_.inside_add_rate));
    }
    end_event();
    ++counters_.events;
    ++done;
  }
  out_ = nullptr;
  return done;
}

}  // namespace bot4::sim
