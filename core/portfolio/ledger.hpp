#pragma once
// Portfolio ledger: positions, average entry, realised and unrealised P&L and fees per instrument
// and in total. Positions and cost basis are exact integers (ticks x lots, 128-bit); quote-unit
// figures are derived with the instrument's tick and lot sizes. Average-cost accounting: a fill
// that reduces the position realises (fill price - average entry) x closed lots; one that flips
// it opens the remainder at the fill price.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/types.hpp"

namespace bot4::portfolio {

struct InstrumentBook {
  InstrumentId instrument = 0;
  double tick_size = 1.0;
  double lot_size = 1.0;
  int64_t position = 0;    // lots, signed
  __int128 cost = 0;       // signed cost basis of the open position, ticks x lots
  __int128 realised = 0;   // ticks x lots
  double fees = 0.0;       // quote units
  int64_t mark = 0;        // last mid used for unrealised P&L, ticks (0 = none yet)
  uint64_t fills = 0;

  double quote(__int128 v) const { return static_cast<double>(v) * tick_size * lot_size; }
  double realised_quote() const { return quote(realised); }
  // Unrealised P&L at `mid` ticks (0 when flat or without a mid).
  double unrealised_at(int64_t mid) const {
    return position != 0 && mid > 0 ? quote(static_cast<__int128>(mid) * position - cost) : 0.0;
  }
  double equity_at(int64_t mid) const { return realised_quote() + unrealised_at(mid) - fees; }
  // Average entry price of the open position, ticks (0 when flat).
  double average_entry() const {
    return position != 0 ? static_cast<double>(cost) / static_cast<double>(position) : 0.0;
  }
};

class Ledger {
 public:
  // Returns the slot of the instrument (one per instrument, in the order added).
  size_t add_instrument(InstrumentId id, double tick_size, double lot_size);
  void fill(size_t slot, Side side, int64_t price_ticks, int64_t qty_lots, double fee);
  // The mid an instrument's unrealised P&L is marked at from now on (0 = no two-sided book).
  void mark(size_t slot, int64_t mid_ticks) { books_[slot].mark = mid_ticks; }

  const InstrumentBook& book(size_t slot) const { return books_[slot]; }
  size_t size() const { return books_.size(); }
  // Total equity change (realised + unrealised - fees, quote units) with each instrument marked
  // at its last mark, except `slot` marked at `mid`.
  double total_equity(size_t slot, int64_t mid) const;
  double total_equity() const;
  double total_fees() const;
  double total_realised() const;

 private:
  std::vector<InstrumentBook> books_;
};

}  // namespace bot4::portfolio
