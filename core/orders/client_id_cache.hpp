#pragma once
// Idempotent submission: a bounded LRU of client order ids with a TTL.
// Semantics (tested in tests/orders/test_properties.py):
//  - an id seen less than `ttl_ns` ago (measured from its FIRST submission; hits do not extend
//    it) returns the stored original result; a hit refreshes its LRU recency only;
//  - an id older than the TTL, or evicted because the cache is full (least recently used goes
//    first), is forgotten: the next submission with it creates a new order.
// The clock is passed in (ns), so backtests are deterministic.
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <unordered_map>

#include "common/types.hpp"
#include "orders/order.hpp"

namespace bot4::orders {

struct SubmitResult {
  Reason status = Reason::Ok;  // Ok, or why the order was refused (still recorded as an order)
  OrderId order_id = 0;        // 0 if no order was created (e.g. bad quantity)
  bool duplicate = false;      // true when this is a replay of an earlier submission
};

class ClientIdCache {
 public:
  ClientIdCache(std::size_t capacity, int64_t ttl_ns) : capacity_(capacity == 0 ? 1 : capacity), ttl_ns_(ttl_ns) {}

  // The stored result if `client_id` is live at `now`; expired entries are dropped here.
  std::optional<SubmitResult> lookup(uint64_t client_id, Timestamp now);
  void insert(uint64_t client_id, const SubmitResult& r, Timestamp now);
  std::size_t size() const { return map_.size(); }
  uint64_t evictions() const { return evictions_; }
  uint64_t expirations() const { return expirations_; }

 private:
  struct Entry {
    SubmitResult result;
    Timestamp inserted;
    std::list<uint64_t>::iterator lru_pos;
  };
  std::size_t capacity_;
  int64_t ttl_ns_;
  std::list<uint64_t> lru_;  // front = most recently used
  std::unordered_map<uint64_t, Entry> map_;
  uint64_t evictions_ = 0;
  uint64_t expirations_ = 0;
};

}  // namespace bot4::orders
