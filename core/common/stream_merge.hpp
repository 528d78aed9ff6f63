#pragma once
// The order in which one consumer sees the three event streams of a recording: each stream in its
// own order, merged by the stream's running maximum of one clock (a stream's stamps can step back
// a little; its running maximum never does), ties book < orders < trades. The feature engine and
// the trading engine merge by ts_local (when the event reached us), the venue simulator by
// ts_exchange (when it happened at the venue).
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "common/events.hpp"

namespace bot4 {

class StreamMerge {
 public:
  enum Kind : uint8_t { kBook = 0, kOrders = 1, kTrades = 2, kDone = 3 };
  enum class Stamp : uint8_t { Local, Exchange };

  StreamMerge() = default;
  StreamMerge(const BookEvent* book, size_t n_book, const OrderEvent* orders, size_t n_orders,
              const TradeEvent* trades, size_t n_trades, Stamp stamp)
      : book_(book), orders_(orders), trades_(trades), nb_(n_book), no_(n_orders), nt_(n_trades),
        exchange_(stamp == Stamp::Exchange) {
    head_book();
    head_orders();
    head_trades();
  }

  // Running maxima carried over from an earlier batch of the same streams.
  void set_keys(int64_t book, int64_t orders, int64_t trades) {
    kb_ = book;
    ko_ = orders;
    kt_ = trades;
    head_book();
    head_orders();
    head_trades();
  }
  int64_t key_book() const { return kb_; }
  int64_t key_orders() const { return ko_; }
  int64_t key_trades() const { return kt_; }
  // Events consumed so far, per stream.
  size_t consumed_book() const { return ib_; }
  size_t consumed_orders() const { return io_; }
  size_t consumed_trades() const { return it_; }

  // The next event's stream and merge key, without consuming it (kDone at the end).
  Kind peek(int64_t& key) const {
    if (ib_ < nb_ && cb_ <= co_ && cb_ <= ct_) {
      key = cb_;
      return kBook;
    }
    if (io_ < no_ && co_ <= ct_) {
      key = co_;
      return kOrders;
    }
    if (it_ < nt_) {
      key = ct_;
      return kTrades;
    }
    key = INT64_MAX;
    return kDone;
  }
  // The next event of a stream (valid when peek() named that stream).
  const BookEvent& book() const { return book_[ib_]; }
  const OrderEvent& order() const { return orders_[io_]; }
  const TradeEvent& trade() const { return trades_[it_]; }
  // The book event k places after the next one of its stream (nullptr past the end): lets a
  // consumer prefetch the book levels it will write.
  // The records of each stream not yet popped (n set to their count).
  const BookEvent* book_rest(size_t& n) const {
    n = nb_ - ib_;
    return book_ + ib_;
  }
  const OrderEvent* orders_rest(size_t& n) const {
    n = no_ - io_;
    return orders_ + io_;
  }
  const BookEvent* book_ahead(size_t k) const { return ib_ + k < nb_ ? book_ + ib_ + k : nullptr; }
  // Consumes the event peek() named, with the key it returned.
  const BookEvent& pop_book(int64_t key) {
    kb_ = key;
    const BookEvent& e = book_[ib_++];
    head_book();
    return e;
  }
  const OrderEvent& pop_order(int64_t key) {
    ko_ = key;
    const OrderEvent& e = orders_[io_++];
    head_orders();
    return e;
  }
  const TradeEvent& pop_trade(int64_t key) {
    kt_ = key;
    const TradeEvent& e = trades_[it_++];
    head_trades();
    return e;
  }

 private:
  template <typename Event>
  int64_t stamp(const Event& e) const {
    return exchange_ ? e.ts_exchange : e.ts_local;
  }

  // Each stream's next merge key (INT64_MAX when exhausted), kept current on every pop: peek()
  // runs once per event of every consumer and is cheaper comparing three cached keys.
  void head_book() { cb_ = ib_ < nb_ ? std::max(kb_, stamp(book_[ib_])) : INT64_MAX; }
  void head_orders() { co_ = io_ < no_ ? std::max(ko_, stamp(orders_[io_])) : INT64_MAX; }
  void head_trades() { ct_ = it_ < nt_ ? std::max(kt_, stamp(trades_[it_])) : INT64_MAX; }

  const BookEvent* book_ = nullptr;
  const OrderEvent* orders_ = nullptr;
  const TradeEvent* trades_ = nullptr;
  size_t nb_ = 0, no_ = 0, nt_ = 0;
  size_t ib_ = 0, io_ = 0, it_ = 0;
  int64_t kb_ = INT64_MIN, ko_ = INT64_MIN, kt_ = INT64_MIN;
  int64_t cb_ = INT64_MAX, co_ = INT64_MAX, ct_ = INT64_MAX;
  bool exchange_ = false;
};

}  // namespace bot4
