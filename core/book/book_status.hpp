#pragma once
// Status codes of book updates. The hot path returns these instead of throwing; every code has a
// counter so that no rejected or noteworthy event vanishes.
#include <array>
#include <cstdint>
#include <string_view>

namespace bot4::book {

enum class BookStatus : uint8_t {
  Ok = 0,
  DeleteAbsent,       // applied as a no-op: delete of a level (or order) that is not there
  Crossed,            // applied; the book was crossed at the end of the message (see policy)
  NegativeQty,        // rejected
  BadSide,            // rejected
  BadPrice,           // rejected: price <= 0 where the instrument forbids it
  SeqRegression,      // rejected: sequence number lower than the last applied one
  UnknownInstrument,  // rejected: no book registered for the event's instrument id
  UnknownOrder,       // rejected (L3): cancel/modify/execute of an order id not in the book
  DuplicateOrder,     // rejected (L3): add of an order id already resting
  BadAction,          // rejected (L3): unknown action code
  kCount
};

inline constexpr std::array<std::string_view, static_cast<size_t>(BookStatus::kCount)>
    kBookStatusNames = {"ok",          "delete_absent",      "crossed",
                        "negative_qty", "bad_side",          "bad_price",
                        "seq_regression", "unknown_instrument", "unknown_order",
                        "duplicate_order", "bad_action"};

constexpr std::string_view status_name(BookStatus s) {
  return kBookStatusNames[static_cast<size_t>(s)];
}

// True for statuses whose event was not applied.
constexpr bool is_rejection(BookStatus s) { return s >= BookStatus::NegativeQty; }

struct BookCounters {
  uint64_t events = 0;          // events offered
  uint64_t messages = 0;        // events carrying the kLast flag
  uint64_t crossed_pruned_levels = 0;
  uint64_t recenters = 0;
  std::array<uint64_t, static_cast<size_t>(BookStatus::kCount)> by_status{};

  void count(BookStatus s) { ++by_status[static_cast<size_t>(s)]; }
  uint64_t rejected() const {
    uint64_t total = 0;
    for (size_t i = static_cast<size_t>(BookStatus::NegativeQty); i < by_status.size(); ++i)
      total += by_status[i];
    return total;
  }
  void merge(const BookCounters& other) {
    events += other.events;
    messages += other.messages;
    crossed_pruned_levels += other.crossed_pruned_levels;
    recenters += other.recenters;
    for (size_t i = 0; i < by_status.size(); ++i) by_status[i] += other.by_status[i];
  }
};

}  // namespace bot4::book
