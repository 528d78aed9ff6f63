#include "portfolio/ledger.hpp"

#include <algorithm>
#include <cstdlib>

namespace bot4::portfolio {

size_t Ledger::add_instrument(InstrumentId id, double tick_size, double lot_size, bool inverse,
                              double contract_size) {
  InstrumentBook b;
  b.instrument = id;
  b.tick_size = tick_size;
  b.lot_size = lot_size;
  b.inverse = inverse;
  b.contract_size = contract_size;
  books_.push_back(b);
  return books_.size() - 1;
}

namespace {

// Average cost in 1/price: the open position's basis is sum(lots / price); closing q of |position|
// lots takes the proportional share of it and realises F lot/tick x (share - q dir / price) coin.
void fill_inverse(InstrumentBook& b, int64_t signed_q, int64_t price) {
  if (b.conv == 0) b.conv = price;
  const double px = static_cast<double>(price);
  if (b.position == 0 || (b.position > 0) == (signed_q > 0)) {
    b.inv_cost += static_cast<double>(signed_q) / px;
    b.position += signed_q;
    return;
  }
  const int64_t closing_q = std::min(std::abs(signed_q), std::abs(b.position));
  const double closed = b.inv_cost * static_cast<double>(closing_q) / static_cast<double>(std::abs(b.position));
  const int64_t dir = b.position > 0 ? 1 : -1;
  b.realised_coin += b.coin_factor() * (closed - static_cast<double>(closing_q * dir) / px);
  b.inv_cost -= closed;
  b.position += signed_q;
  if (b.position == 0) b.inv_cost = 0.0;
  if ((b.position > 0) != (dir > 0) && b.position != 0) b.inv_cost = static_cast<double>(b.position) / px;  // flipped
}

}  // namespace

void Ledger::fill(size_t slot, Side side, int64_t price, int64_t qty, double fee) {
  InstrumentBook& b = books_[slot];
  const int64_t signed_q = side == Side::Bid ? qty : -qty;
  b.fees += fee;
  ++b.fills;
  if (b.inverse) {
    fill_inverse(b, signed_q, price);
    return;
  }
  if (b.position == 0 || (b.position > 0) == (signed_q > 0)) {
    b.cost += static_cast<__int128>(price) * signed_q;
    b.position += signed_q;
    return;
  }
  const int64_t closing_q = std::min(std::abs(signed_q), std::abs(b.position));
  // average cost of the closed part: cost * closing / |position|
  const __int128 closed_cost = b.cost * closing_q / std::abs(b.position);
  const int64_t dir = b.position > 0 ? 1 : -1;
  b.realised += static_cast<__int128>(price) * closing_q * dir - closed_cost;
  b.cost -= closed_cost;
  b.position += signed_q;
  if (b.position == 0) b.cost = 0;
  if ((b.position > 0) != (dir > 0) && b.position != 0) b.cost = static_cast<__int128>(price) * b.position;  // flipped
}

double Ledger::total_equity(size_t slot, int64_t mid) const {
  double e = 0.0;
  for (size_t i = 0; i < books_.size(); ++i) e += books_[i].equity_at(i == slot ? mid : books_[i].mark);
  return e;
}

double Ledger::total_equity() const {
  double e = 0.0;
  for (const auto& b : books_) e += b.equity_at(b.mark);
  return e;
}

double Ledger::total_fees() const {
  double f = 0.0;
  for (const auto& b : books_) f += b.fees_quote();
  return f;
}

double Ledger::total_realised() const {
  double r = 0.0;
  for (const auto& b : books_) r += b.realised_quote();
  return r;
}

}  // namespace bot4::portfolio
