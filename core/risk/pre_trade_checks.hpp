#pragma once
// Pre-trade checks on an order intent. Exposure counts the position, open (acknowledged) orders
// AND in-flight orders (sent, not yet acknowledged): an order racing its ack must not let a
// second one through the same cap. Every rejection returns a RejectReason and bumps its counter;
// nothing throws (DESIGN §3: status codes in the hot path).
//
// Order lifecycle this object tracks, by caller-chosen order id:
//   check() accepted → in-flight → on_ack() → open → on_fill() (partial/full) / on_cancel()
//   a fill may arrive before the ack; on_venue_reject() drops an in-flight/open order.
#include <array>
#include <cstddef>
#include <cstdint>
#include <unordered_map>

#include "common/types.hpp"
#include "risk/kill_switch.hpp"
#include "risk/risk_config.hpp"

namespace bot4::risk {

enum class RejectReason : uint8_t {
  Ok = 0,
  BadOrder,       // qty ≤ 0, price ≤ 0, mid ≤ 0 or side not Bid/Ask
  DuplicateId,    // order id already live
  KillSwitch,     // kill switch tripped and the order does not reduce |position|
  ReduceOnly,     // manual reduce-only mode and the order does not reduce |position|
  PriceCollar,    // |price − mid| beyond collar_ticks or collar_bps
  MaxOpenOrders,  // open + in-flight orders already at max_open_orders
  MaxPosition,    // position + same-side open + in-flight + qty beyond max_position_lots
  MaxNotional,    // same-side exposure notional beyond max_notional (tick·lots; inverse: F/tick per lot)
  RateLimit,      // token bucket empty
  Count
};
inline constexpr std::size_t kRejectReasonCount = static_cast<size_t>(RejectReason::Count);
const char* reject_reason_name(RejectReason r) noexcept;

struct OrderIntent {
  uint64_t order_id = 0;
  Side side = Side::None;  // Bid = buy, Ask = sell
  int64_t qty = 0;         // lots, > 0
  int64_t price = 0;       // limit price, ticks, > 0
  int64_t mid = 0;         // current mid, ticks, > 0 (collar reference and position mark)
  int64_t now_ns = 0;      // monotonic clock, ns (token bucket)
};

// Integer token bucket. Tokens are kept scaled by 1e9 so that refill = elapsed_ns × per_second is
// exact integer arithmetic: no order is ever admitted beyond capacity + per_second × elapsed / 1e9.
class TokenBucket {
 public:
  TokenBucket(int64_t capacity, int64_t per_second) noexcept;
  bool try_take(int64_t now_ns) noexcept;  // refill to now, then take one token if there is one
  bool enabled() const noexcept { return capacity_ > 0; }
  int64_t tokens_scaled() const noexcept { return tokens_; }

 private:
  static constexpr int64_t kScale = 1'000'000'000;
  int64_t capacity_;
  int64_t per_second_;
  int64_t tokens_;     // tokens × 1e9
  int64_t last_ns_ = 0;
  bool started_ = false;
};

struct SideExposure {
  int64_t inflight_qty = 0;       // lots
  int64_t open_qty = 0;           // lots
  int64_t orders = 0;             // live orders on this side (count)
  __extension__ __int128 notional = 0;  // Σ remaining qty × price over live orders, tick·lots
};

class PreTradeChecks {
 public:
  // kill_switch may be null; when set, rejections feed its reject streak and a trip means
  // reduce-only. The kill switch must outlive this object.
  explicit PreTradeChecks(const PreTradeConfig& cfg, KillSwitch* kill_switch = nullptr);
  const PreTradeConfig& config() const noexcept { return cfg_; }
  // A live config change (control plane): limits apply from the next check() on; live orders,
  // exposure and counters are kept (an order already admitted is never revoked). A changed rate
  // limit starts a fresh, full token bucket; an unchanged one keeps its tokens.
  void set_config(const PreTradeConfig& cfg) noexcept;

  RejectReason check(const OrderIntent& o) noexcept;  // accepted → recorded as in-flight

  // Lifecycle. Each returns false (and changes nothing) for an unknown order id.
  bool on_ack(uint64_t order_id) noexcept;
  bool on_fill(uint64_t order_id, int64_t qty) noexcept;  // qty lots, clamped to the remaining qty
  bool on_cancel(uint64_t order_id) noexcept;
  bool on_venue_reject(uint64_t order_id) noexcept;       // also feeds the kill switch streak

  void set_reduce_only(bool on) noexcept { reduce_only_ = on; }
  bool reduce_only() const noexcept { return reduce_only_; }
  void set_position(int64_t lots) noexcept { position_ = lots; }  // e.g. from a venue snapshot
  // Inverse contracts: every lot's notional is `ticks` (contract_size / tick_size) whatever the
  // price, so position, live orders and the new order count at it instead of mid / limit price
  // (0 = linear: price). Before the first check(): live orders keep the notional they were added with.
  void set_notional_price(int64_t ticks) noexcept { notional_price_ = ticks; }

  int64_t position() const noexcept { return position_; }
  const SideExposure& buys() const noexcept { return sides_[0]; }
  const SideExposure& sells() const noexcept { return sides_[1]; }
  int64_t live_orders() const noexcept { return static_cast<int64_t>(orders_.size()); }
  uint64_t count(RejectReason r) const noexcept { return counts_[static_cast<size_t>(r)]; }
  uint64_t accepted() const noexcept { return counts_[0]; }

 private:
  struct Live {
    Side side;
    bool acked;
    int64_t remaining;  // lots
    int64_t price;      // ticks
  };
  RejectReason evaluate(const OrderIntent& o) noexcept;
  bool reduces(Side side, int64_t qty) const noexcept;
  void remove(std::unordered_map<uint64_t, Live>::iterator it) noexcept;

  PreTradeConfig cfg_;
  KillSwitch* kill_switch_;
  TokenBucket bucket_;
  std::unordered_map<uint64_t, Live> orders_;
  std::array<SideExposure, 2> sides_{};
  std::array<uint64_t, kRejectReasonCount> counts_{};
  int64_t position_ = 0;
  int64_t notional_price_ = 0;
  bool reduce_only_ = false;
  int64_t notional_px(int64_t price) const noexcept { return notional_price_ > 0 ? notional_price_ : price; }
};

}  // namespace bot4::risk
