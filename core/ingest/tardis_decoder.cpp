#include "ingest/tardis_decoder.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "ingest/py_int.hpp"

namespace bot4::ingest {

namespace {

constexpr int64_t kUs = 1000;
constexpr __int128 kMaxSkewNs = static_cast<__int128>(86'400) * 1'000'000'000;  // MAX_CLOCK_SKEW_NS

const char* const kReasonNames[kTardisReasonCount] = {
    "truncated_file", "corrupt_file", "malformed_row", "unknown_symbol", "bad_timestamp",
    "implausible_timestamp", "bad_side", "bad_number", "off_grid", "negative_qty",
    "nonpositive_price", "bad_id",
};

bool py_int(const Field& f, __int128& out) { return ingest::py_int(f.p, f.n, out); }

bool ascii_digits(const Field& f) {
  if (f.n == 0) return false;
  for (size_t i = 0; i < f.n; ++i) {
    if (f.p[i] < '0' || f.p[i] > '9') return false;
  }
  return true;
}

// Decimals needed to write the text (the reference's _decimals) when it is plain ASCII without
// an exponent: characters after the first '.', trailing zeros ignored. -1: Python must measure it.
int plain_decimals(const Field& f) {
  const char* s = f.p;
  size_t n = f.n;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80 || c == 'e' || c == 'E') return -1;
  }
  while (n > 0 && detail::is_strip_space(static_cast<unsigned char>(s[0]))) { ++s; --n; }
  while (n > 0 && detail::is_strip_space(static_cast<unsigned char>(s[n - 1]))) --n;
  const char* dot = static_cast<const char*>(std::memchr(s, '.', n));
  if (dot == nullptr) return 0;
  const char* frac = dot + 1;
  size_t len = static_cast<size_t>(s + n - frac);
  while (len > 0 && frac[len - 1] == '0') --len;
  return static_cast<int>(len);
}

}  // namespace

const char* tardis_reason_name(size_t reason) { return kReasonNames[reason]; }

void TardisDecoder::add_spec(const std::string& symbol, uint32_t instrument, Grid price, Grid qty) {
  Sym s;
  s.iid = instrument;
  s.price = price;
  s.qty = qty;
  syms_[symbol] = s;
  last_sym_ = nullptr;
  key_buf_.clear();
}

TardisDecoder::File& TardisDecoder::at(int64_t file) {
  const int64_t i = file < 0 ? current_ : file;
  if (i < 0 || static_cast<size_t>(i) >= files_.size() || !files_[static_cast<size_t>(i)]->begun) {
    throw std::out_of_range("tardis decoder: file " + std::to_string(i) + " was not begun");
  }
  return *files_[static_cast<size_t>(i)];
}

void TardisDecoder::expect(uint32_t n_files) {
  while (files_.size() < n_files) {
    auto f = std::make_unique<File>();
    f->owner = this;
    f->index = static_cast<uint32_t>(files_.size());
    files_.push_back(std::move(f));
    ++live_;
  }
}

void TardisDecoder::begin_file(uint32_t file_index, bool gzip, TardisFile file) {
  expect(file_index + 1);
  File& f = *files_[file_index];
  if (f.begun) throw std::logic_error("tardis decoder: file " + std::to_string(file_index) + " was begun twice");
  f.begun = true;
  f.spec = std::move(file);
  f.reader.set_threads(threads_);
  f.reader.begin(gzip);
  current_ = file_index;
}

void TardisDecoder::end_file(int64_t file) {
  File& f = at(file);
  f.reader.end(f);
  f.ended = true;
  if (!f.queued()) retire(f);
}

void TardisDecoder::retire(File& f) {
  if (f.done) return;
  f.done = true;
  --live_;
  f.queue = std::vector<Pending>();
  f.text = std::string();
  f.head = 0;
}

int64_t TardisDecoder::line_key(File& f, const char* p, size_t n) {
  // The 4th field if it is -?[0-9]{1,18} (bot4.data.tardis._row_key, the same rule).
  if (key_csv_.split(p, n) && key_csv_.fields.size() >= 4) {
    const Field& t = key_csv_.fields[3];
    size_t i = t.n > 0 && t.p[0] == '-' ? 1 : 0;
    const size_t digits = t.n - i;
    if (digits >= 1 && digits <= 18) {
      int64_t v = 0;
      for (; i < t.n && t.p[i] >= '0' && t.p[i] <= '9'; ++i) v = v * 10 + (t.p[i] - '0');
      if (i == t.n) {
        if (t.p[0] == '-') v = -v;
        if (v > f.run_max) f.run_max = v;
      }
    }
  }
  return f.run_max;
}

void TardisDecoder::file_line(File& f, const char* p, size_t n, int64_t line_no) {
  if (direct(f)) {
    row(f, p, n, line_no);
    return;
  }
  const int64_t key = line_key(f, p, n);
  f.queue.push_back(Pending{f.text.size(), n, line_no, key, nullptr});
  f.text.append(p, n);
}

void TardisDecoder::file_damage(File& f, const char* kind, int64_t line_no, const std::string& tail) {
  if (direct(f)) {
    damage_row(f, kind, line_no, tail.data(), tail.size());
    return;
  }
  f.queue.push_back(Pending{f.text.size(), tail.size(), line_no, f.run_max, kind});
  f.text.append(tail);
}

std::vector<uint32_t> TardisDecoder::merge() {
  std::vector<uint32_t> waiting;
  while (true) {
    waiting.clear();
    File* best = nullptr;
    for (auto& up : files_) {
      File& f = *up;
      if (f.done) continue;
      if (!f.queued()) {
        if (f.ended) {
          retire(f);
        } else {
          waiting.push_back(f.index);
        }
        continue;
      }
      if (best == nullptr || f.queue[f.head].key < best->queue[best->head].key) best = &f;
    }
    if (best == nullptr) return waiting;
    // What may come before best's rows: every other file's next key (a waiting file's next key
    // is at least its running maximum so far), ties to the lower index.
    int64_t bound_key = INT64_MAX;
    uint32_t bound_index = UINT32_MAX;
    bool bounded = false;
    for (auto& up : files_) {
      File& f = *up;
      if (f.done || &f == best) continue;
      const int64_t k = f.queued() ? f.queue[f.head].key : f.run_max;
      if (!bounded || k < bound_key || (k == bound_key && f.index < bound_index)) {
        bound_key = k;
        bound_index = f.index;
        bounded = true;
      }
    }
    size_t decoded = 0;
    while (best->queued()) {
      const Pending q = best->queue[best->head];
      if (bounded && (q.key > bound_key || (q.key == bound_key && best->index > bound_index))) break;
      ++best->head;
      ++decoded;
      if (q.damage != nullptr) {
        damage_row(*best, q.damage, q.line_no, best->text.data() + q.off, q.len);
      } else {
        row(*best, best->text.data() + q.off, q.len, q.line_no);
      }
    }
    if (!best->queued()) {
      best->queue.clear();
      best->text.clear();
      best->head = 0;
      if (best->ended) retire(*best);
    }
    if (decoded == 0) return waiting;  // best waits for a file that was not fed yet
  }
}

std::vector<BookEvent> TardisDecoder::take_closed_book() {
  const bool open = m_open_ && m_file_ >= 0 && !files_[static_cast<size_t>(m_file_)]->done;
  const size_t keep = open ? std::min(m_levels_, book.size()) : 0;
  std::vector<BookEvent> out;
  if (keep == 0) {
    out.swap(book);
    return out;
  }
  out.assign(book.begin(), book.end() - static_cast<std::ptrdiff_t>(keep));
  book.erase(book.begin(), book.end() - static_cast<std::ptrdiff_t>(keep));
  return out;
}

void TardisDecoder::damage_row(File& f, const char* kind, int64_t line_no, const char* tail, size_t n) {
  if (infer_) return;  // the reference's inference pass ignores damage; the decoding pass counts it
  const TardisReason r =
      std::strcmp(kind, "truncated_file") == 0 ? TardisReason::kTruncatedFile : TardisReason::kCorruptFile;
  rejections.reject(static_cast<size_t>(r), f.index, line_no, tail, n);
}

void TardisDecoder::row(File& f, const char* p, size_t n, int64_t line_no) {
  cur_ = &f;
  file_ = f.index;
  line_no_ = line_no;
  if (line_no == 1) return;  // the header, read by Python
  if (!csv_.split(p, n)) {
    // The reference's csv module raises on these lines (a CR in an unquoted field).
    if (!infer_) reject(TardisReason::kMalformedRow, p, n);
    return;
  }
  if (infer_) {
    infer_row();
    return;
  }
  switch (f.spec.kind) {
    case TardisKind::kIncrementalBookL2: book_row(p, n); break;
    case TardisKind::kTrades: trade_row(p, n); break;
    case TardisKind::kQuotes: quote_row(p, n); break;
    case TardisKind::kBookSnapshot: snapshot_row(p, n); break;
  }
}

TardisDecoder::Sym* TardisDecoder::common(size_t ncols, const char* line, size_t n, int64_t& tsx, int64_t& tsl) {
  const auto& f = csv_.fields;
  if (f.size() != ncols) {
    reject(TardisReason::kMalformedRow, line, n);
    return nullptr;
  }
  // Rows of one symbol come in runs: compare with the last symbol before hashing.
  Sym* sym = nullptr;
  if (last_sym_ != nullptr && f[1].n == key_buf_.size() && std::memcmp(f[1].p, key_buf_.data(), f[1].n) == 0) {
    sym = last_sym_;
  } else {
    key_buf_.assign(f[1].p, f[1].n);
    auto it = syms_.find(key_buf_);
    last_sym_ = it == syms_.end() ? nullptr : &it->second;
    sym = last_sym_;
  }
  if (sym == nullptr) {
    reject(TardisReason::kUnknownSymbol, line, n);
    return nullptr;
  }
  __int128 x = 0, l = 0;
  if (!py_int(f[2], x) || !py_int(f[3], l)) {
    reject(TardisReason::kBadTimestamp, line, n);
    return nullptr;
  }
  // Not the absolute 2000..2100 window: fixtures may use small synthetic clocks; the exchange
  // time in every row still pins the receive time (the reference's rule).
  x *= kUs;
  l *= kUs;
  const __int128 lo = INT64_MIN, hi = INT64_MAX;
  const __int128 skew = l > x ? l - x : x - l;
  if (x < lo || x > hi || l < lo || l > hi || skew > kMaxSkewNs) {
    reject(TardisReason::kImplausibleTimestamp, line, n);
    return nullptr;
  }
  tsx = static_cast<int64_t>(x);
  tsl = static_cast<int64_t>(l);
  if (venue.empty()) venue.assign(f[0].p, f[0].n);
  return sym;
}

namespace {
// A decimal field in units of `grid`; `allow_zero`: 0 passes (a size), else it is `bound` (a price).
bool field_units(const Grid& grid, const Field& f, int64_t& out, TardisReason& why, bool allow_zero,
                 TardisReason bound) {
  const NumStatus st = to_units(f.p, f.n, grid, out);
  if (st != NumStatus::kOk) {
    why = st == NumStatus::kOffGrid ? TardisReason::kOffGrid : TardisReason::kBadNumber;
    return false;
  }
  if (out < 0 || (out == 0 && !allow_zero)) {
    why = bound;
    return false;
  }
  return true;
}
}  // namespace

bool TardisDecoder::price_units(const Sym& s, const Field& f, int64_t& out, TardisReason& why) {
  return field_units(s.price, f, out, why, false, TardisReason::kNonpositivePrice);
}

bool TardisDecoder::qty_units(const Sym& s, const Field& f, int64_t& out, TardisReason& why) {
  return field_units(s.qty, f, out, why, true, TardisReason::kNegativeQty);
}

void TardisDecoder::open_message(int64_t tsx, int64_t tsl, uint32_t iid, uint8_t flags, bool clear) {
  m_tsx_ = tsx;
  m_tsl_ = tsl;
  m_seq_ = msg_seq_++;
  m_iid_ = iid;
  m_flags_ = flags;
  m_clear_ = clear;
  m_levels_ = 0;
  m_file_ = cur_->index;
  m_open_ = false;
}

void TardisDecoder::add_level(uint8_t side, int64_t price, int64_t qty) {
  // kLast goes on the message's last level: set on each new level, taken off its predecessor
  // (a message's levels are contiguous and stay in `book` until the load ends).
  if (m_levels_ > 0 && !book.empty()) book.back().flags &= static_cast<uint8_t>(~event_flag::kLast);
  BookEvent e{};
  e.ts_exchange = m_tsx_;
  e.ts_local = m_tsl_;
  e.seq = m_seq_;
  e.price = price;
  e.qty = qty;
  e.instrument = m_iid_;
  e.side = side;
  e.flags = static_cast<uint8_t>(m_flags_ | event_flag::kLast | (m_levels_ == 0 && m_clear_ ? event_flag::kClear : 0));
  book.push_back(e);
  ++m_levels_;
}

void TardisDecoder::book_row(const char* line, size_t n) {
  int64_t tsx = 0, tsl = 0;
  Sym* sym = common(8, line, n, tsx, tsl);
  if (sym == nullptr) return;
  const auto& f = csv_.fields;
  bool snap;
  if (f[4] == "true") {
    snap = true;
  } else if (f[4] == "false") {
    snap = false;
  } else {
    reject(TardisReason::kMalformedRow, line, n);
    return;
  }
  uint8_t side;
  if (f[5] == "bid") {
    side = static_cast<uint8_t>(Side::Bid);
  } else if (f[5] == "ask") {
    side = static_cast<uint8_t>(Side::Ask);
  } else {
    reject(TardisReason::kBadSide, line, n);
    return;
  }
  File& file = *cur_;
  // A row of another file in between (a book_snapshot row) ended this file's message.
  if (!file.has_key || file.key_sym != sym || file.key_tsx != tsx || file.key_tsl != tsl || file.key_snap != snap ||
      m_file_ != static_cast<int64_t>(file.index)) {
    file.has_key = true;
    file.key_sym = sym;
    file.key_tsx = tsx;
    file.key_tsl = tsl;
    file.key_snap = snap;
    const bool clear = snap && !sym->in_snapshot;
    sym->in_snapshot = snap;
    open_message(tsx, tsl, sym->iid, snap ? event_flag::kSnapshot : 0, clear);
    m_open_ = true;
  }
  int64_t price = 0, qty = 0;
  TardisReason why_p = TardisReason::kBadNumber, why_q = TardisReason::kBadNumber;
  const bool ok_p = price_units(*sym, f[6], price, why_p);
  const bool ok_q = qty_units(*sym, f[7], qty, why_q);
  if (!ok_p || !ok_q) {
    reject(!ok_p ? why_p : why_q, line, n);
    return;
  }
  add_level(side, price, qty);
}

void TardisDecoder::trade_row(const char* line, size_t n) {
  int64_t tsx = 0, tsl = 0;
  Sym* sym = common(8, line, n, tsx, tsl);
  if (sym == nullptr) return;
  const auto& f = csv_.fields;
  const int64_t row_seq = row_seq_++;
  int& numeric_ids = cur_->numeric_ids;
  if (numeric_ids < 0) numeric_ids = ascii_digits(f[4]) ? 1 : 0;
  int64_t seq = row_seq;
  if (numeric_ids == 1) {
    __int128 id = 0;
    if (!ascii_digits(f[4]) || !py_int(f[4], id) || id >= (static_cast<__int128>(1) << 63)) {
      reject(TardisReason::kBadId, line, n);
      return;
    }
    seq = static_cast<int64_t>(id);
  }
  uint8_t aggressor;
  if (f[5] == "buy") {
    aggressor = static_cast<uint8_t>(Side::Bid);
  } else if (f[5] == "sell") {
    aggressor = static_cast<uint8_t>(Side::Ask);
  } else if (f[5] == "unknown" || f[5].empty()) {
    aggressor = static_cast<uint8_t>(Side::None);
  } else {
    reject(TardisReason::kBadSide, line, n);
    return;
  }
  int64_t price = 0, qty = 0;
  TardisReason why_p = TardisReason::kBadNumber, why_q = TardisReason::kBadNumber;
  const bool ok_p = price_units(*sym, f[6], price, why_p);
  const bool ok_q = qty_units(*sym, f[7], qty, why_q);
  if (!ok_p || !ok_q) {
    reject(!ok_p ? why_p : why_q, line, n);
    return;
  }
  TradeEvent t{};
  t.ts_exchange = tsx;
  t.ts_local = tsl;
  t.seq = seq;
  t.price = price;
  t.qty = qty;
  t.instrument = sym->iid;
  t.aggressor = aggressor;
  t.flags = event_flag::kLast;
  trades.push_back(t);
}

void TardisDecoder::quote_row(const char* line, size_t n) {
  int64_t tsx = 0, tsl = 0;
  Sym* sym = common(8, line, n, tsx, tsl);
  if (sym == nullptr) return;
  const auto& f = csv_.fields;
  const int64_t seq = row_seq_++;
  // columns: ask_amount, ask_price, bid_price, bid_amount; bid side first as the reference
  const Field* sides[2][2] = {{&f[6], &f[7]}, {&f[5], &f[4]}};
  const int64_t none[2] = {kNoBidPrice, kNoAskPrice};
  int64_t values[4];
  static const char kZero[] = "0";
  for (int s = 0; s < 2; ++s) {
    const Field& p = *sides[s][0];
    const Field q = sides[s][1]->empty() ? Field{kZero, 1} : *sides[s][1];
    if (p.empty()) {
      values[2 * s] = none[s];
      values[2 * s + 1] = 0;
      continue;
    }
    TardisReason why_p = TardisReason::kBadNumber, why_q = TardisReason::kBadNumber;
    const bool ok_p = price_units(*sym, p, values[2 * s], why_p);
    const bool ok_q = qty_units(*sym, q, values[2 * s + 1], why_q);
    if (!ok_p || !ok_q) {
      reject(!ok_p ? why_p : why_q, line, n);
      return;
    }
  }
  BboEvent b{};
  b.ts_exchange = tsx;
  b.ts_local = tsl;
  b.seq = seq;
  b.bid_price = values[0];
  b.bid_qty = values[1];
  b.ask_price = values[2];
  b.ask_qty = values[3];
  b.instrument = sym->iid;
  b.flags = event_flag::kLast;
  bbo.push_back(b);
}

void TardisDecoder::snapshot_row(const char* line, size_t n) {
  int64_t tsx = 0, tsl = 0;
  Sym* sym = common(static_cast<size_t>(cur_->spec.ncols), line, n, tsx, tsl);
  if (sym == nullptr) return;
  const auto& f = csv_.fields;
  open_message(tsx, tsl, sym->iid, event_flag::kSnapshot, true);
  for (const SnapshotColumns& c : cur_->spec.pairs) {
    const Field& p = f[static_cast<size_t>(c.price_col)];
    if (p.empty()) continue;
    int64_t price = 0, qty = 0;
    TardisReason why_p = TardisReason::kBadNumber, why_q = TardisReason::kBadNumber;
    const bool ok_p = price_units(*sym, p, price, why_p);
    const bool ok_q = qty_units(*sym, f[static_cast<size_t>(c.amount_col)], qty, why_q);
    if (!ok_p || !ok_q) {
      reject(!ok_p ? why_p : why_q, line, n);
      continue;
    }
    add_level(c.side, price, qty);
  }
}

void TardisDecoder::infer_row() {
  const auto& f = csv_.fields;
  if (f.size() != static_cast<size_t>(cur_->spec.ncols)) return;
  uint32_t index;
  if (last_found_ >= 0 && f[1].n == key_buf_.size() && std::memcmp(f[1].p, key_buf_.data(), f[1].n) == 0) {
    index = static_cast<uint32_t>(last_found_);
  } else if (key_buf_.assign(f[1].p, f[1].n), found_index_.count(key_buf_) == 0) {
    index = static_cast<uint32_t>(found.size());
    found_index_.emplace(key_buf_, index);
    Found entry;
    entry.symbol = key_buf_;
    entry.exchange.assign(f[0].p, f[0].n);
    found.push_back(std::move(entry));
  } else {
    index = found_index_.at(key_buf_);
  }
  last_found_ = static_cast<int64_t>(index);
  Found& entry = found[index];
  for (int slot = 0; slot < 2; ++slot) {
    const std::vector<int>& cols = slot == 0 ? cur_->spec.price_cols : cur_->spec.amount_cols;
    int& best = slot == 0 ? entry.price_decimals : entry.amount_decimals;
    for (int c : cols) {
      const Field& v = f[static_cast<size_t>(c)];
      if (v.empty()) continue;
      const int d = plain_decimals(v);
      if (d < 0) {
        exotic.push_back({index, slot == 1, std::string(v.p, v.n)});
      } else if (d > best) {
        best = d;
      }
    }
  }
}

}  // namespace bot4::ingest
