#pragma once
// The event records shared with Python. Each is a standard-layout POD whose numpy twin is
// declared in python/bot4/events.py; ext/ exports the offsets below so that the two are checked
// against each other at import.
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "common/types.hpp"

namespace bot4 {

// Event flags (bit set).
namespace event_flag {
inline constexpr uint8_t kLast = 1;       // last record of an atomic venue message
inline constexpr uint8_t kSnapshot = 2;   // part of a full-book snapshot
inline constexpr uint8_t kClear = 4;      // clear the instrument's book before applying this record
inline constexpr uint8_t kResync = 8;     // first record after a detected sequence gap
}  // namespace event_flag

// L2 level change: `qty` is the new absolute size of the level at `price`; 0 deletes it.
struct BookEvent {
  int64_t ts_exchange;
  int64_t ts_local;
  int64_t seq;        // venue update id (all records of one message share it)
  int64_t price;      // ticks
  int64_t qty;        // lots
  uint32_t instrument;
  uint8_t side;       // Side
  uint8_t flags;      // event_flag bits
  uint16_t reserved;
};

enum class OrderAction : uint8_t {
  Add = 0,      // new order at price/qty
  Modify = 1,   // new price and/or qty for order_id (priority lost on price change or size up)
  Cancel = 2,   // remove qty (partial) from order_id; qty >= resting removes the order
  Execute = 3,  // resting order executed for qty
  Clear = 4,    // clear the instrument's book
};

// L3 order event (market-by-order).
struct OrderEvent {
  int64_t ts_exchange;
  int64_t ts_local;
  int64_t seq;
  uint64_t order_id;
  int64_t price;      // ticks
  int64_t qty;        // lots
  uint32_t instrument;
  uint8_t side;       // Side
  uint8_t action;     // OrderAction
  uint8_t flags;
  uint8_t reserved;
};

// Public trade print.
struct TradeEvent {
  int64_t ts_exchange;
  int64_t ts_local;
  int64_t seq;        // venue trade id
  int64_t price;      // ticks
  int64_t qty;        // lots
  uint32_t instrument;
  uint8_t aggressor;  // Side of the aggressor (Bid = buyer-initiated), None if unknown
  uint8_t flags;
  uint16_t reserved;
};

// Venue top-of-book check record (e.g. Binance bookTicker), kept to verify the rebuilt book.
struct BboEvent {
  int64_t ts_exchange;
  int64_t ts_local;
  int64_t seq;
  int64_t bid_price;
  int64_t bid_qty;
  int64_t ask_price;
  int64_t ask_qty;
  uint32_t instrument;
  uint8_t flags;
  uint8_t reserved0;
  uint16_t reserved1;
};

// Top of book after an event, written by the batch APIs at requested positions.
struct TopOfBook {
  int64_t bid_price;  // kNoBidPrice when the side is empty
  int64_t bid_qty;
  int64_t ask_price;  // kNoAskPrice when the side is empty
  int64_t ask_qty;
};

static_assert(std::is_standard_layout_v<BookEvent> && std::is_trivially_copyable_v<BookEvent>);
static_assert(std::is_standard_layout_v<OrderEvent> && std::is_trivially_copyable_v<OrderEvent>);
static_assert(std::is_standard_layout_v<TradeEvent> && std::is_trivially_copyable_v<TradeEvent>);
static_assert(std::is_standard_layout_v<BboEvent> && std::is_trivially_copyable_v<BboEvent>);
static_assert(sizeof(BookEvent) == 48);
static_assert(sizeof(OrderEvent) == 56);
static_assert(sizeof(TradeEvent) == 48);
static_assert(sizeof(BboEvent) == 64);
static_assert(sizeof(TopOfBook) == 32);

}  // namespace bot4
