#include "orders/client_id_cache.hpp"

namespace bot4::orders {

std::optional<SubmitResult> ClientIdCache::lookup(uint64_t client_id, Timestamp now) {
  auto it = map_.find(client_id);
  if (it == map_.end()) return std::nullopt;
  if (now - it->second.inserted >= ttl_ns_) {
    // Expired: forget it so a later submission with this id is a fresh order.
    lru_.erase(it->second.lru_pos);
    map_.erase(it);
    ++expirations_;
    return std::nullopt;
  }
  lru_.splice(lru_.begin(), lru_, it->second.lru_pos);
  return it->second.result;
}

void ClientIdCache::insert(uint64_t client_id, const SubmitResult& r, Timestamp now) {
  if (auto it = map_.find(client_id); it != map_.end()) {
    lru_.erase(it->second.lru_pos);
    map_.erase(it);
  }
  while (map_.size() >= capacity_) {
    map_.erase(lru_.back());
    lru_.pop_back();
    ++evictions_;
  }
  lru_.push_front(client_id);
  map_.emplace(client_id, Entry{r, now, lru_.begin()});
}

}  // namespace bot4::orders
