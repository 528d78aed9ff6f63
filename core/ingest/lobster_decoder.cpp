#include "ingest/lobster_decoder.hpp"

#include <algorithm>
#include <cstring>

#include "common/types.hpp"
#include "ingest/py_int.hpp"

namespace bot4::ingest {

namespace {

constexpr __int128 kDayNs = static_cast<__int128>(86'400) * 1'000'000'000;
constexpr __int128 kLimit = static_cast<__int128>(1) << 62;  // ids, sizes, prices: int64 headroom
constexpr int64_t kDummyBid = -9999999999;
constexpr int64_t kDummyAsk = 9999999999;
constexpr uint64_t kSeedBase = uint64_t{1} << 63;
constexpr uint8_t kBid = static_cast<uint8_t>(Side::Bid);
constexpr uint8_t kAsk = static_cast<uint8_t>(Side::Ask);
constexpr uint8_t kAdd = static_cast<uint8_t>(OrderAction::Add);
constexpr uint8_t kCancel = static_cast<uint8_t>(OrderAction::Cancel);
constexpr uint8_t kExecute = static_cast<uint8_t>(OrderAction::Execute);

const char* const kReasonNames[kLobsterReasonCount] = {
    "truncated_file", "corrupt_file", "bad_column_count", "non_numeric", "implausible_timestamp",
    "out_of_range", "unknown_type", "negative_size", "zero_size", "bad_direction",
    "nonpositive_price", "orderbook_bad_row", "orderbook_row_count_mismatch", "off_grid_price",
    "orderbook_off_grid_price", "duplicate_add", "book_row_unexplained_change",
};

struct Span {
  const char* p;
  size_t n;
};

void split_commas(const char* p, size_t n, std::vector<Span>& out) {
  out.clear();
  const char* end = p + n;
  for (;;) {
    const char* c = static_cast<const char*>(std::memchr(p, ',', static_cast<size_t>(end - p)));
    if (c == nullptr) break;
    out.push_back({p, static_cast<size_t>(c - p)});
    p = c + 1;
  }
  out.push_back({p, static_cast<size_t>(end - p)});
}

bool blank(const Span& s) {
  for (size_t i = 0; i < s.n; ++i) {
    if (!detail::is_strip_space(static_cast<unsigned char>(s.p[i]))) return false;
  }
  return true;
}

bool all_digits(const char* p, size_t n) {
  if (n == 0) return false;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] < '0' || p[i] > '9') return false;
  }
  return true;
}

// The reference's _parse_time_ns: "<digits>[.<up to 9 digits>]" after strip(), saturating.
bool parse_time(const Span& f, __int128& out) {
  const char* s = f.p;
  size_t n = f.n;
  while (n > 0 && detail::is_strip_space(static_cast<unsigned char>(s[0]))) { ++s; --n; }
  while (n > 0 && detail::is_strip_space(static_cast<unsigned char>(s[n - 1]))) --n;
  const char* dot = static_cast<const char*>(std::memchr(s, '.', n));
  const size_t whole_n = dot ? static_cast<size_t>(dot - s) : n;
  const char* frac = dot ? dot + 1 : s + n;
  const size_t frac_n = dot ? static_cast<size_t>(s + n - frac) : 0;
  if (!all_digits(s, whole_n)) return false;
  if (frac_n > 0 && !all_digits(frac, frac_n)) return false;
  if (frac_n > 9) return false;
  __int128 whole = 0;
  for (size_t i = 0; i < whole_n; ++i) {
    if (whole < (static_cast<__int128>(1) << 90)) whole = whole * 10 + (s[i] - '0');
  }
  int64_t ns = 0;
  for (size_t i = 0; i < 9; ++i) ns = ns * 10 + (i < frac_n ? frac[i] - '0' : 0);
  out = whole * 1'000'000'000 + ns;
  return true;
}

bool has_price(const std::vector<std::pair<int64_t, int64_t>>& side, int64_t p) {
  for (const auto& [price, q] : side) {
    if (price == p) return true;
  }
  return false;
}

}  // namespace

const char* lobster_reason_name(size_t reason) { return kReasonNames[reason]; }

void LobsterDecoder::begin_file(uint32_t file, bool gzip) {
  file_ = file & 1u;
  if (file_ == 1) have_book_ = true;
  reader_[file_].begin(gzip);
}

void LobsterDecoder::end_file(int file) {
  const uint32_t f = pick(file);
  reader_[f].end(ports_[f]);
  ended_[f] = true;
}

void LobsterDecoder::on_damage(uint32_t file, const char* kind, int64_t line_no, const std::string& tail) {
  if (streaming_) {
    // Counted at the end, each file's after its own rows (the whole-file phases' order).
    if (!scan_) damage_.push_back({file, Damage{kind, tail, line_no}});
    return;
  }
  const LobsterReason r =
      std::strcmp(kind, "truncated_file") == 0 ? LobsterReason::kTruncatedFile : LobsterReason::kCorruptFile;
  phase_ = static_cast<int>(file);
  reject(r, file, line_no, tail.data(), tail.size());
}

void LobsterDecoder::on_line(uint32_t file, const char* p, size_t n, int64_t) {
  while (n > 0 && p[n - 1] == '\r') --n;  // the reference strips every trailing CR
  file_ = file;
  if (file == 0) {
    message_line(p, n);
  } else {
    book_line(p, n);
  }
}

void LobsterDecoder::stream_begin(int64_t unit, bool with_book, int64_t base_ns, uint32_t instrument, bool scan) {
  streaming_ = true;
  scan_ = scan;
  unit_ = unit;
  reconcile_ = with_book;
  have_book_ = with_book;
  base_ns_ = base_ns;
  instrument_ = instrument;
}

std::vector<uint32_t> LobsterDecoder::pump() {
  std::vector<uint32_t> waiting;
  if (scan_) {
    for (uint32_t f = 0; f < (have_book_ ? 2u : 1u); ++f) {
      if (!ended_[f]) waiting.push_back(f);
    }
    return waiting;
  }
  phase_ = 5;
  while (!pending_rows_.empty()) {
    // a row is built once its orderbook row is read (or the orderbook file has ended)
    if (reconcile_ && pending_truths_.empty() && !ended_[1]) break;
    PendingRow pr = std::move(pending_rows_.front());
    pending_rows_.pop_front();
    const size_t t = next_t_++;
    Truth truth;
    bool has = false;
    if (reconcile_ && !pending_truths_.empty()) {
      truth = std::move(pending_truths_.front().first);
      has = pending_truths_.front().second;
      pending_truths_.pop_front();
    }
    if (!pr.row.valid) {
      have_prev_ = false;
      continue;
    }
    build_row(t, pr.row, pr.text.data(), pr.text.size(), has ? &truth : nullptr, have_prev_ ? &prev_truth_ : nullptr);
    if (has) prev_truth_ = std::move(truth);
    have_prev_ = has;
  }
  // orderbook rows past the last message row only count (orderbook_row_count_mismatch)
  if (ended_[0] && pending_rows_.empty()) pending_truths_.clear();
  if (!ended_[0] && pending_rows_.empty()) waiting.push_back(0);
  if (have_book_ && !ended_[1] && (pending_truths_.empty() || ended_[0])) waiting.push_back(1);
  if (waiting.empty() && !stream_done_) finish_stream();
  return waiting;
}

void LobsterDecoder::finish_stream() {
  stream_done_ = true;
  std::stable_sort(damage_.begin(), damage_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (const auto& [file, d] : damage_) {
    phase_ = static_cast<int>(file);
    const LobsterReason r =
        d.kind == "truncated_file" ? LobsterReason::kTruncatedFile : LobsterReason::kCorruptFile;
    reject(r, file, d.line, d.tail.data(), d.tail.size());
  }
  phase_ = 2;
  if (have_book_ && lines_[1] != lines_[0]) {
    const std::string text = std::to_string(lines_[1]) + " orderbook rows for " + std::to_string(lines_[0]) + " messages";
    reject(LobsterReason::kOrderbookRowCountMismatch, 1, lines_[1], text.data(), text.size());
  }
  // the whole-file phases' order of first occurrence (stable within a phase)
  std::stable_sort(rejections.order.begin(), rejections.order.end(),
                   [this](uint8_t a, uint8_t b) { return first_phase_[a] < first_phase_[b]; });
}

void LobsterDecoder::count(const char* name, int64_t by) {
  auto it = stat_values_.find(name);
  if (it == stat_values_.end()) {
    stat_names_.emplace_back(name);
    stat_values_.emplace(name, by);
  } else {
    it->second += by;
  }
}

std::vector<std::pair<std::string, int64_t>> LobsterDecoder::stats() const {
  std::vector<std::pair<std::string, int64_t>> out;
  for (const auto& name : stat_names_) out.emplace_back(name, stat_values_.at(name));
  int64_t messages = valid_messages_;
  for (const Row& r : rows_) messages += r.valid ? 1 : 0;
  out.emplace_back("messages", messages);
  out.emplace_back("book_levels", levels_ != 0 ? levels_ : 10);
  return out;
}

const char* LobsterDecoder::line_text(size_t row, size_t& n) const {
  const size_t begin = row == 0 ? 0 : text_end_[row - 1];
  n = text_end_[row] - begin;
  return text_.data() + begin;
}

void LobsterDecoder::message_line(const char* p, size_t n) {
  phase_ = 0;
  Row row{0, 0, 0, 0, 0, 0, false};
  const int64_t line_no = ++lines_[0];
  message_fields(p, n, line_no, row);
  if (!streaming_) {
    text_.append(p, n);
    text_end_.push_back(text_.size());
    rows_.push_back(row);
    return;
  }
  if (scan_) return;
  if (row.valid && row.price % unit_ != 0) {
    phase_ = 3;
    reject(LobsterReason::kOffGridPrice, 0, line_no, p, n);
    row.valid = false;
  }
  valid_messages_ += row.valid ? 1 : 0;
  pending_rows_.push_back(PendingRow{row, std::string(p, n)});
}

void LobsterDecoder::message_fields(const char* p, size_t n, int64_t line_no, Row& row) {
  std::vector<Span> parts;
  parts.reserve(8);
  split_commas(p, n, parts);
  if (parts.size() < 6 || parts.size() > 7 || (parts.size() == 7 && !blank(parts[6]))) {
    reject(LobsterReason::kBadColumnCount, 0, line_no, p, n);
    return;
  }
  __int128 ts = 0, v[5] = {0, 0, 0, 0, 0};
  bool ok = parse_time(parts[0], ts);
  for (int i = 0; ok && i < 5; ++i) ok = py_int(parts[static_cast<size_t>(i) + 1].p, parts[static_cast<size_t>(i) + 1].n, v[i]);
  if (!ok) {
    reject(LobsterReason::kNonNumeric, 0, line_no, p, n);
    return;
  }
  const __int128 typ = v[0], oid = v[1], size = v[2], price = v[3], direction = v[4];
  auto abs128 = [](__int128 x) { return x < 0 ? -x : x; };
  if (ts < 0 || ts > kDayNs) {
    reject(LobsterReason::kImplausibleTimestamp, 0, line_no, p, n);
  } else if (!(oid >= 0 && oid < kLimit && abs128(size) < kLimit && abs128(price) < kLimit)) {
    reject(LobsterReason::kOutOfRange, 0, line_no, p, n);
  } else if (typ < 1 || typ > 7) {
    reject(LobsterReason::kUnknownType, 0, line_no, p, n);
  } else if (typ == 7) {
    count("halt_messages");
  } else if (size < 0) {
    reject(LobsterReason::kNegativeSize, 0, line_no, p, n);
  } else if (size == 0 && typ != 6) {
    reject(LobsterReason::kZeroSize, 0, line_no, p, n);
  } else if (direction != 1 && direction != -1 && typ != 6) {
    reject(LobsterReason::kBadDirection, 0, line_no, p, n);
  } else if (price <= 0) {
    reject(LobsterReason::kNonpositivePrice, 0, line_no, p, n);
  } else {
    // direction only matters as == 1 (a cross trade's may be anything): clamp keeps it exact
    const int64_t dir = direction == 1 ? 1 : (direction == -1 ? -1 : 0);
    row = Row{static_cast<int64_t>(ts), static_cast<int64_t>(oid), static_cast<int64_t>(size),
              static_cast<int64_t>(price), dir, static_cast<int>(typ), true};
    if (static_cast<int64_t>(price) % 100 != 0) all_cents_ = false;
  }
}

void LobsterDecoder::book_line(const char* p, size_t n) {
  phase_ = 1;
  const int64_t line_no = ++lines_[1];
  Truth t;
  const bool ok = book_fields(p, n, line_no, t);
  if (!streaming_) {
    book_.push_back(std::move(t));
    book_ok_.push_back(ok);
    return;
  }
  if (scan_) return;
  bool on_grid = ok;
  if (ok) {
    for (const LevelList& s : t.sides) {
      for (const auto& [price, q] : s) on_grid = on_grid && price % unit_ == 0;
    }
    if (!on_grid) {
      phase_ = 4;
      reject(LobsterReason::kOrderbookOffGridPrice, 1, line_no, "", 0);
    }
  }
  // rows past the last message row are not kept: they only count
  if (!(ended_[0] && pending_rows_.empty())) pending_truths_.emplace_back(std::move(t), on_grid);
}

bool LobsterDecoder::book_fields(const char* p, size_t n, int64_t line_no, Truth& t) {
  std::vector<Span> parts;
  split_commas(p, n, parts);
  if (parts.size() % 4 != 0 || (levels_ != 0 && parts.size() != static_cast<size_t>(4 * levels_))) {
    reject(LobsterReason::kOrderbookBadRow, 1, line_no, p, n);
    return false;
  }
  std::vector<int64_t> values(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    __int128 v = 0;
    if (!py_int(parts[i].p, parts[i].n, v) || v >= kLimit || v <= -kLimit) {
      reject(LobsterReason::kOrderbookBadRow, 1, line_no, p, n);
      return false;
    }
    values[i] = static_cast<int64_t>(v);
  }
  if (levels_ == 0) levels_ = static_cast<int>(values.size() / 4);
  auto put = [](LevelList& side, int64_t price, int64_t qty) {
    for (auto& [p0, q0] : side) {
      if (p0 == price) {
        q0 = qty;
        return;
      }
    }
    side.emplace_back(price, qty);
  };
  for (int k = 0; k < levels_; ++k) {
    const int64_t ap = values[4 * k], asz = values[4 * k + 1], bp = values[4 * k + 2], bsz = values[4 * k + 3];
    if (asz > 0 && ap != kDummyAsk && ap != kDummyBid) put(t.sides[kAsk], ap, asz);
    if (bsz > 0 && bp != kDummyAsk && bp != kDummyBid) put(t.sides[kBid], bp, bsz);
  }
  for (const LevelList& s : t.sides) {
    for (const auto& [price, q] : s) {
      if (price % 100 != 0) all_cents_ = false;
    }
  }
  return true;
}

void LobsterDecoder::finish_parse() {
  if (have_book_ && book_.size() != rows_.size()) {
    const std::string text = std::to_string(book_.size()) + " orderbook rows for " + std::to_string(rows_.size()) +
                             " messages";
    reject(LobsterReason::kOrderbookRowCountMismatch, 1, static_cast<int64_t>(book_.size()), text.data(), text.size());
  }
}

// --- model ------------------------------------------------------------------------------------

void LobsterDecoder::model_add(uint64_t oid, uint8_t side, int64_t price, int64_t qty) {
  model_orders_[oid] = Order{side, price, qty};
  Level& level = model_levels_[side][price];
  level.ids.push_back(oid);
  level.qty += qty;
}

void LobsterDecoder::model_reduce(uint64_t oid, int64_t qty) {
  auto it = model_orders_.find(oid);
  Order& order = it->second;
  const uint8_t side = order.side;
  const int64_t price = order.price, rest = order.qty;
  const int64_t take = std::min(qty, rest);
  auto lit = model_levels_[side].find(price);
  lit->second.qty -= take;
  if (take >= rest) {
    model_orders_.erase(it);
    auto& ids = lit->second.ids;
    ids.erase(std::find(ids.begin(), ids.end(), oid));
    if (oid >= kSeedBase) {
      auto& seeds = model_seeds_[side][price];
      seeds.erase(std::find(seeds.begin(), seeds.end(), oid));
    }
    if (ids.empty()) model_levels_[side].erase(lit);
  } else {
    order.qty = rest - take;
  }
}

void LobsterDecoder::emit(int64_t ts, int64_t seq, uint64_t oid, int64_t price, int64_t qty, uint8_t side,
                          uint8_t action, uint8_t flags) {
  OrderEvent e{};
  e.ts_exchange = ts;
  e.ts_local = ts;
  e.seq = seq;
  e.order_id = oid;
  // on the grid by now (off-grid rows were dropped), so truncation is the reference's floor
  e.price = price / unit_;
  e.qty = qty;
  e.instrument = instrument_;
  e.side = side;
  e.action = action;
  e.flags = flags;
  orders.push_back(e);
}

uint64_t LobsterDecoder::new_seed(int64_t ts, int64_t seq, uint8_t side, int64_t price, int64_t qty, uint8_t flags) {
  const uint64_t oid = next_seed_++;
  model_add(oid, side, price, qty);
  model_seeds_[side][price].push_back(oid);
  emit(ts, seq, oid, price, qty, side, kAdd, flags);
  return oid;
}

void LobsterDecoder::reduce(int64_t ts, int64_t seq, uint64_t oid, int64_t qty, uint8_t action, uint8_t flags) {
  const Order order = model_orders_.at(oid);
  model_reduce(oid, qty);
  emit(ts, seq, oid, order.price, qty, order.side, action, flags);
}

void LobsterDecoder::reduce_unknown(int64_t ts, int64_t seq, uint64_t oid, uint8_t side, int64_t price, int64_t qty,
                                    uint8_t action) {
  int64_t available = 0;
  auto sit = model_seeds_[side].find(price);
  if (sit != model_seeds_[side].end()) {
    for (uint64_t s : sit->second) available += model_orders_.at(s).qty;
  }
  if (available < qty) {
    if (!reconcile_) {
      // Left to the core, which counts it as unknown_order.
      emit(ts, seq, oid, price, qty, side, action, 0);
      return;
    }
    new_seed(ts, seq, side, price, qty - available, event_flag::kResync);
    count("unknown_id_new_seed");
  }
  count("unknown_id_mapped_to_seed");
  int64_t left = qty;
  while (left > 0) {
    const uint64_t sid = model_seeds_[side][price].front();
    const int64_t take = std::min(left, model_orders_.at(sid).qty);
    reduce(ts, seq, sid, take, action, 0);
    left -= take;
  }
}

void LobsterDecoder::correct(int64_t ts, int64_t seq, const Truth& truth, const Truth* prev, uint8_t flags) {
  for (uint8_t side : {kBid, kAsk}) {
    const LevelList& want = truth.sides[side];
    const auto& levels = model_levels_[side];
    std::vector<int64_t> visible;
    if (want.size() >= static_cast<size_t>(n_levels_)) {
      // Levels better than the published N-th one must be exactly the published ones.
      if (side == kBid) {
        int64_t lo = want.front().first;
        for (const auto& [p, q] : want) lo = std::min(lo, p);
        for (auto it = levels.upper_bound(lo); it != levels.end(); ++it) visible.push_back(it->first);
      } else {
        int64_t hi = want.front().first;
        for (const auto& [p, q] : want) hi = std::max(hi, p);
        for (auto it = levels.begin(); it != levels.end() && it->first < hi; ++it) visible.push_back(it->first);
      }
    } else {
      for (const auto& [p, level] : levels) visible.push_back(p);
    }
    for (int64_t p : visible) {
      if (!has_price(want, p)) fix(ts, seq, side, p, 0, prev, flags);
    }
    for (const auto& [p, q] : want) {
      auto it = levels.find(p);
      const int64_t have = it == levels.end() ? 0 : it->second.qty;
      if (have != q) fix(ts, seq, side, p, q, prev, flags);
    }
  }
}

void LobsterDecoder::fix(int64_t ts, int64_t seq, uint8_t side, int64_t price, int64_t target, const Truth* prev,
                         uint8_t flags) {
  auto& levels = model_levels_[side];
  auto lit = levels.find(price);
  const int64_t have = lit == levels.end() ? 0 : lit->second.qty;
  const int64_t delta = target - have;
  if (delta == 0) return;
  bool inside = false;
  if (prev != nullptr) {
    const LevelList& pv = prev->sides[side];
    if (pv.size() < static_cast<size_t>(n_levels_)) {
      inside = true;
    } else if (side == kBid) {
      int64_t lo = pv.front().first;
      for (const auto& [p, q] : pv) lo = std::min(lo, p);
      inside = price >= lo;
    } else {
      int64_t hi = pv.front().first;
      for (const auto& [p, q] : pv) hi = std::max(hi, p);
      inside = price <= hi;
    }
  }
  count(inside ? "resync_inside_window" : "resync_surfaced");
  if (inside) {
    const std::string text = "side " + std::to_string(side) + " price " + std::to_string(price) + ": " +
                             std::to_string(have) + " -> " + std::to_string(target);
    reject(LobsterReason::kBookRowUnexplainedChange, 1, seq + 1, text.data(), text.size());
  }
  if (delta > 0) {
    new_seed(ts, seq, side, price, delta, flags);
    count("resync_seed_orders");
    return;
  }
  count("resync_cancel_qty", -delta);
  int64_t left = -delta;
  std::vector<uint64_t> candidates;
  auto sit = model_seeds_[side].find(price);
  if (sit != model_seeds_[side].end()) candidates = sit->second;
  const auto& ids = lit->second.ids;
  for (auto it = ids.rbegin(); it != ids.rend(); ++it) {
    if (*it < kSeedBase) candidates.push_back(*it);
  }
  for (uint64_t oid : candidates) {
    if (left == 0) break;
    const int64_t rest = model_orders_.at(oid).qty;
    const int64_t take = std::min(left, rest);
    if (oid < kSeedBase && take >= rest) resync_removed_.insert(oid);
    reduce(ts, seq, oid, take, kCancel, flags);
    count("resync_cancels");
    left -= take;
  }
}

// --- build -------------------------------------------------------------------------------------

void LobsterDecoder::build(int64_t unit, bool reconcile, int64_t base_ns, uint32_t instrument) {
  unit_ = unit;
  reconcile_ = reconcile;
  instrument_ = instrument;
  n_levels_ = levels_ != 0 ? levels_ : 10;
  for (size_t i = 0; i < rows_.size(); ++i) {
    Row& r = rows_[i];
    if (r.valid && r.price % unit != 0) {
      size_t n;
      const char* t = line_text(i, n);
      reject(LobsterReason::kOffGridPrice, 0, static_cast<int64_t>(i) + 1, t, n);
      r.valid = false;
    }
  }
  for (size_t i = 0; i < book_.size(); ++i) {
    if (!book_ok_[i]) continue;
    bool off = false;
    for (const LevelList& s : book_[i].sides) {
      for (const auto& [p, q] : s) off = off || p % unit != 0;
    }
    if (off) {
      reject(LobsterReason::kOrderbookOffGridPrice, 1, static_cast<int64_t>(i) + 1, "", 0);
      book_ok_[i] = false;
    }
  }
  base_ns_ = base_ns;
  const Truth* prev = nullptr;
  for (size_t t = 0; t < rows_.size(); ++t) {
    const Truth* truth = t < book_.size() && book_ok_[t] ? &book_[t] : nullptr;
    const Row& r = rows_[t];
    if (!r.valid) {
      prev = nullptr;
      continue;
    }
    size_t n;
    const char* text = line_text(t, n);
    build_row(t, r, text, n, truth, prev);
    prev = truth;
  }
}

void LobsterDecoder::build_row(size_t t, const Row& r, const char* text, size_t text_n, const Truth* truth,
                               const Truth* prev) {
  n_levels_ = levels_ != 0 ? levels_ : 10;
  const size_t start = orders.size();
  const int64_t base_ns = base_ns_;
  {
    const int64_t ts = r.ts + base_ns;
    const int64_t seq = static_cast<int64_t>(t);
    const uint8_t side = r.direction == 1 ? kBid : kAsk;
    if (t == 0 && reconcile_ && truth != nullptr) {
      // Seed: row 0 minus the effect of message 0 (on the aggregate level).
      int64_t effect = 0;
      if (r.type == 1) effect = r.size;
      else if (r.type >= 2 && r.type <= 4) effect = -r.size;
      bool first = true;
      for (uint8_t s : {kBid, kAsk}) {
        for (const auto& [p, q] : truth->sides[s]) {
          const int64_t seed = q - (s == side && p == r.price ? effect : 0);
          if (seed > 0) {
            new_seed(ts, seq, s, p, seed,
                     static_cast<uint8_t>(event_flag::kSnapshot | (first ? event_flag::kClear : 0)));
            first = false;
            count("initial_seed_orders");
          }
        }
      }
    }
    if (r.type == 1) {
      const uint64_t oid = static_cast<uint64_t>(r.oid);
      if (model_orders_.count(oid) != 0) {
        reject(LobsterReason::kDuplicateAdd, 0, seq + 1, text, text_n);
      } else {
        model_add(oid, side, r.price, r.size);
        emit(ts, seq, oid, r.price, r.size, side, kAdd, 0);
      }
    } else if (r.type >= 2 && r.type <= 4) {
      const uint8_t action = r.type == 4 ? kExecute : kCancel;
      const uint64_t oid = static_cast<uint64_t>(r.oid);
      auto it = model_orders_.find(oid);
      if (it != model_orders_.end()) {
        const Order& order = it->second;
        if (order.side != side || order.price != r.price) count("price_or_side_mismatch");
        int64_t qty = r.size;
        if (r.type == 3 && r.size != order.qty) {
          count("delete_size_mismatch");
          qty = order.qty;
        } else if (r.size > order.qty) {
          count("reduce_exceeds_order");
        }
        reduce(ts, seq, oid, qty, action, 0);
      } else {
        if (resync_removed_.count(oid) != 0) count("message_for_resync_cancelled_order");
        count("unknown_id_events");
        reduce_unknown(ts, seq, oid, side, r.price, r.size, action);
      }
    }
    if (r.type == 4 || r.type == 5 || r.type == 6) {
      TradeEvent e{};
      e.ts_exchange = ts;
      e.ts_local = ts;
      e.seq = seq;
      e.price = r.price / unit_;
      e.qty = r.size;
      e.instrument = instrument_;
      e.aggressor = r.type == 6 ? static_cast<uint8_t>(Side::None) : (r.direction == 1 ? kAsk : kBid);
      e.flags = event_flag::kLast;
      trades.push_back(e);
    }
    if (reconcile_ && truth != nullptr) {
      correct(ts, seq, *truth, prev, t != 0 ? event_flag::kResync : event_flag::kSnapshot);
    }
    if (orders.size() > start) orders.back().flags |= event_flag::kLast;
  }
}

}  // namespace bot4::ingest
