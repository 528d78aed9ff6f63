#pragma once
// Portfolio ledger: positions, average entry, realised and unrealised P&L and fees per instrument
// and in total. Positions and cost basis are exact integers (ticks x lots, 128-bit); quote-unit
// figures are derived with the instrument's tick and lot sizes and, for a linear contract with a
// multiplier (CME ES: 50 USD per index point), its contract_size. Average-cost accounting: a fill
// that reduces the position realises (fill price - average entry) x closed lots; one that flips
// it opens the remainder at the fill price.
//
// Inverse (coin-margined) instruments: a lot is lot_size contracts of contract_size quote units
// (face value F), settled in the base coin. A long of q contracts from P0 to P1 makes
// q F (1/P0 - 1/P1) coin; the average entry is the harmonic mean of the fill prices weighted by
// contracts (cost basis = sum of signed lots / price); fees arrive in coin (the venue charges bps
// of q F / P). Quote-unit figures are the coin amounts times the mark (the last mid, or the first
// fill price before any mid): equity = (realised + unrealised - fees) in coin x mark, so linear
// and inverse instruments add up in one total.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/types.hpp"

namespace bot4::portfolio {

struct InstrumentBook {
  InstrumentId instrument = 0;
  double tick_size = 1.0;
  double lot_size = 1.0;
  bool inverse = false;
  double contract_size = 1.0;  // inverse: quote units per contract (face value); linear: the multiplier
  int64_t position = 0;    // lots, signed
  __int128 cost = 0;       // linear: signed cost basis of the open position, ticks x lots
  __int128 realised = 0;   // linear: ticks x lots
  double inv_cost = 0.0;   // inverse: signed cost basis, sum of lots / price ticks over the open position
  double realised_coin = 0.0;  // inverse: base coin
  double fees = 0.0;       // settlement units: quote (linear), base coin (inverse)
  int64_t mark = 0;        // last mid used for unrealised P&L, ticks (0 = none yet)
  int64_t conv = 0;        // inverse: price coin amounts are converted at, ticks (last mid, else first fill)
  uint64_t fills = 0;

  // Linear: ticks x lots -> quote units, the contract multiplier included.
  double quote(__int128 v) const { return static_cast<double>(v) * tick_size * lot_size * contract_size; }
  // Base coin per (lot / price tick) of an inverse instrument.
  double coin_factor() const { return lot_size * contract_size / tick_size; }
  // Coin amount in quote units at `px` ticks (the conversion price when px is 0).
  double coin_quote(double coin, int64_t px) const {
    const int64_t p = px > 0 ? px : conv;
    return coin * static_cast<double>(p) * tick_size;
  }
  double realised_quote() const { return inverse ? coin_quote(realised_coin, 0) : quote(realised); }
  double fees_quote() const { return inverse ? coin_quote(fees, 0) : fees; }
  // Unrealised P&L of an inverse position at `mid` ticks, base coin (0 when flat or without a mid).
  double unrealised_coin(int64_t mid) const {
    return position != 0 && mid > 0 ? coin_factor() * (inv_cost - static_cast<double>(position) / static_cast<double>(mid))
                                    : 0.0;
  }
  // Unrealised P&L at `mid` ticks (0 when flat or without a mid), quote units.
  double unrealised_at(int64_t mid) const {
    if (inverse) return coin_quote(unrealised_coin(mid), mid);
    return position != 0 && mid > 0 ? quote(static_cast<__int128>(mid) * position - cost) : 0.0;
  }
  // Equity change at `mid` (realised + unrealised - fees), quote units; an inverse instrument's
  // coin total is converted at `mid` (at the conversion price without one).
  double equity_at(int64_t mid) const {
    if (inverse) return coin_quote(realised_coin + unrealised_coin(mid) - fees, mid);
    return realised_quote() + unrealised_at(mid) - fees;
  }
  // Average entry price of the open position, ticks (0 when flat); inverse: the harmonic mean.
  double average_entry() const {
    if (position == 0) return 0.0;
    if (inverse) return static_cast<double>(position) / inv_cost;
    return static_cast<double>(cost) / static_cast<double>(position);
  }
};

class Ledger {
 public:
  // Returns the slot of the instrument (one per instrument, in the order added).
  // inverse: a coin-margined instrument of `contract_size` quote units per contract.
  size_t add_instrument(InstrumentId id, double tick_size, double lot_size, bool inverse = false,
                        double contract_size = 1.0);
  // `fee` in the instrument's settlement units (quote; base coin for an inverse instrument).
  void fill(size_t slot, Side side, int64_t price_ticks, int64_t qty_lots, double fee);
  // The mid an instrument's unrealised P&L is marked at from now on (0 = no two-sided book).
  void mark(size_t slot, int64_t mid_ticks) {
    books_[slot].mark = mid_ticks;
    if (mid_ticks > 0) books_[slot].conv = mid_ticks;
  }

  const InstrumentBook& book(size_t slot) const { return books_[slot]; }
  size_t size() const { return books_.size(); }
  // Total equity change (realised + unrealised - fees, quote units) with each instrument marked
  // at its last mark, except `slot` marked at `mid`.
  double total_equity(size_t slot, int64_t mid) const;
  double total_equity() const;
  double total_fees() const;      // quote units
  double total_realised() const;  // quote units

 private:
  std::vector<InstrumentBook> books_;
};

}  // namespace bot4::portfolio
