#include "ingest/binance_decoder.hpp"

#include <cstring>
#include <string_view>
#include <utility>

namespace bot4::ingest {

namespace {

constexpr size_t kBufferCap = 20000;  // diffs held while waiting for a snapshot (as the reference)
constexpr size_t kSampleBytes = 200;
constexpr int64_t kMs = 1000000;

bool is_bytes_space(unsigned char c) {  // bytes.strip() / bytes.isspace()
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == 0x0b || c == 0x0c;
}

std::string i128_str(__int128 v) {
  if (v == 0) return "0";
  const bool neg = v < 0;
  unsigned __int128 u = neg ? static_cast<unsigned __int128>(-(v + 1)) + 1 : static_cast<unsigned __int128>(v);
  char buf[48];
  int i = 47;
  buf[i] = 0;
  while (u > 0) {
    buf[--i] = static_cast<char>('0' + static_cast<int>(u % 10));
    u /= 10;
  }
  if (neg) buf[--i] = '-';
  return std::string(buf + i);
}

}  // namespace

const char* reason_name(Reason r) {
  static const char* const names[kReasonCount] = {
      "truncated_file", "corrupt_file",   "malformed_line",     "malformed_json",     "bad_schema",
      "unknown_message", "ambiguous_snapshot", "bad_number",    "off_grid",           "negative_qty",
      "nonpositive_price", "duplicate_trade", "stale_trade",    "covered_by_snapshot", "duplicate_diff",
      "stale_diff",     "sequence_gap",   "awaiting_snapshot",  "empty_snapshot",
      "implausible_timestamp"};
  return names[static_cast<size_t>(r)];
}

BinanceDecoder::BinanceDecoder(bool futures, bool gap_continue)
    : futures_(futures), gap_continue_(gap_continue) {}

void BinanceDecoder::add_spec(const std::string& upper_symbol, uint32_t instrument, Grid price, Grid qty) {
  if (price.unit <= 0 || qty.unit <= 0 || price.digits < 0 || qty.digits < 0) {
    throw std::invalid_argument("grid units must be positive");
  }
  specs_[upper_symbol] = Spec{instrument, price, qty};
}

void BinanceDecoder::begin_file(uint32_t file_index, bool gzip) {
  file_ = file_index;
  line_no_ = 0;
  reader_.begin(gzip);
}

// --- rejections -------------------------------------------------------------------------------

void BinanceDecoder::reject_line(Reason r, const char* line, size_t n) {
  if (Sample* s = rejections.reject(r, file_, line_no_)) {
    s->kind = Sample::kText;
    s->raw.assign(line, n < kSampleBytes ? n : kSampleBytes);
  }
}

void BinanceDecoder::reject_text(Reason r, uint32_t file, int64_t line_no, const std::string& raw) {
  if (Sample* s = rejections.reject(r, file, line_no)) {
    s->kind = Sample::kText;
    s->raw = raw;
  }
}

void BinanceDecoder::on_damage(const char* kind, int64_t line_no, const std::string& tail) {
  const Reason r = std::strcmp(kind, "truncated_file") == 0 ? Reason::kTruncatedFile : Reason::kCorruptFile;
  reject_text(r, file_, line_no, tail);
}

// --- scanning ---------------------------------------------------------------------------------

const std::string& BinanceDecoder::text_of(const json::Str& s, std::string& buf) {
  if (s.escaped) {
    json::unescape(s, buf);
  } else {
    buf.assign(s.p, s.n);
  }
  return buf;
}

namespace {
// The reference's msgspec bounds: update and trade ids in [0, 2^63), venue times in ms in
// [0, 2^63 / 1e6) so that they scale to int64 ns. Outside: bad_schema.
constexpr int64_t kMaxMs = INT64_MAX / kMs;
inline bool read_ms(json::Scanner& sc, int64_t& v) {
  if (!sc.read_int(v)) return false;
  if (v > kMaxMs || v < 0) return sc.fail(json::Err::kSchema), false;
  return true;
}
inline bool read_ms_or_null(json::Scanner& sc, int64_t& v, bool& null) {
  if (!sc.read_int_or_null(v, null)) return false;
  if (!null && (v > kMaxMs || v < 0)) return sc.fail(json::Err::kSchema), false;
  return true;
}
inline bool read_id(json::Scanner& sc, int64_t& v) {
  if (!sc.read_int(v)) return false;
  if (v < 0) return sc.fail(json::Err::kSchema), false;
  return true;
}
inline bool read_id_or_null(json::Scanner& sc, int64_t& v, bool& null) {
  if (!sc.read_int_or_null(v, null)) return false;
  if (!null && v < 0) return sc.fail(json::Err::kSchema), false;
  return true;
}

inline std::string_view key_view(const json::Str& k, std::string& buf) {
  if (!k.escaped) return std::string_view(k.p, k.n);
  json::unescape(k, buf);
  return std::string_view(buf);
}

// Reads one JSON object, handing each key to `field`, which reads the value and returns whether
// it knew the key (an unknown key's value is skipped). False once the scanner has failed.
template <class Field>
bool read_object(json::Scanner& sc, std::string& key_buf, Field&& field) {
  if (!sc.begin_object()) return false;
  for (bool more = sc.object_first(); more; more = sc.object_next()) {
    json::Str k;
    if (!sc.key(k)) return false;
    if (!field(key_view(k, key_buf))) sc.skip();
    if (!sc.ok()) return false;
  }
  return sc.ok();
}

// A value that may be null: true when it was read and is not null.
template <class Read>
bool read_present(json::Scanner& sc, int64_t& v, Read read) {
  bool null = false;
  return read(sc, v, null) && !null;
}

// The fields every stream message may carry: transaction time "T" (may be null) and symbol "s".
inline bool read_time_or_symbol(json::Scanner& sc, std::string_view key, int64_t& T, bool& hT, json::Str& s,
                                bool& hs) {
  if (key == "T") hT = read_present(sc, T, read_ms_or_null);
  else if (key == "s") hs = sc.read_str(s);
  else return false;
  return true;
}

// The message had every field it needs (a missing one is a schema error).
inline bool required(json::Scanner& sc, bool all_present) {
  if (!all_present) sc.fail(json::Err::kSchema);
  return all_present;
}
}  // namespace

BinanceDecoder::Kind BinanceDecoder::stream_kind(const char* p, size_t n) {
  const char* at = static_cast<const char*>(std::memchr(p, '@', n));
  if (at == nullptr) return Kind::kNone;
  const char* rest = at + 1;
  size_t rn = n - static_cast<size_t>(rest - p);
  const char* at2 = static_cast<const char*>(std::memchr(rest, '@', rn));
  if (at2 != nullptr) rn = static_cast<size_t>(at2 - rest);
  const std::string_view kind(rest, rn);
  if (kind == "depth") return Kind::kDepth;
  if (kind == "trade") return Kind::kTrade;
  if (kind == "bookTicker") return Kind::kTicker;
  return Kind::kNone;
}

bool BinanceDecoder::parse_levels(json::Scanner& sc, std::vector<Level>& out) {
  out.clear();
  if (!sc.begin_array()) return false;
  bool first = true;
  while (sc.array_next(first)) {
    first = false;
    Level lv;
    if (!sc.read_pair(lv.p, lv.q)) return false;
    out.push_back(lv);
  }
  return sc.ok();
}

bool BinanceDecoder::parse_depth(json::Scanner& sc) {
  DepthMsg& m = depth_;
  m.hE = m.hT = m.hU = m.hu = m.hpu = m.hs = m.hb = m.ha = false;
  const bool ok = read_object(sc, key_buf_, [&](std::string_view key) {
    if (key == "b") m.hb = parse_levels(sc, bids_);
    else if (key == "a") m.ha = parse_levels(sc, asks_);
    else if (key == "U") m.hU = read_id(sc, m.U);
    else if (key == "u") m.hu = read_id(sc, m.u);
    else if (key == "pu") m.hpu = read_present(sc, m.pu, read_id_or_null);
    else if (key == "E") m.hE = read_ms(sc, m.E);
    else return read_time_or_symbol(sc, key, m.T, m.hT, m.s, m.hs);
    return true;
  });
  return ok && required(sc, m.hE && m.hs && m.hU && m.hu && m.hb && m.ha);
}

bool BinanceDecoder::parse_trade(json::Scanner& sc) {
  TradeMsg& m = trade_;
  m.hE = m.hT = m.ht = m.hs = m.hp = m.hq = m.hm = false;
  const bool ok = read_object(sc, key_buf_, [&](std::string_view key) {
    if (key == "p") m.hp = sc.read_str(m.p);
    else if (key == "q") m.hq = sc.read_str(m.q);
    else if (key == "t") m.ht = read_id(sc, m.t);
    else if (key == "m") m.hm = sc.read_bool(m.m);
    else if (key == "E") m.hE = read_ms(sc, m.E);
    else return read_time_or_symbol(sc, key, m.T, m.hT, m.s, m.hs);
    return true;
  });
  return ok && required(sc, m.hE && m.hs && m.ht && m.hp && m.hq && m.hm);
}

bool BinanceDecoder::parse_ticker(json::Scanner& sc) {
  TickerMsg& m = ticker_;
  m.hu = m.hE = m.hT = m.hs = m.hb = m.hB = m.ha = m.hA = false;
  const bool ok = read_object(sc, key_buf_, [&](std::string_view key) {
    if (key == "b") m.hb = sc.read_str(m.b);
    else if (key == "B") m.hB = sc.read_str(m.B);
    else if (key == "a") m.ha = sc.read_str(m.a);
    else if (key == "A") m.hA = sc.read_str(m.A);
    else if (key == "u") m.hu = read_id(sc, m.u);
    else if (key == "E") m.hE = read_present(sc, m.E, read_ms_or_null);
    else return read_time_or_symbol(sc, key, m.T, m.hT, m.s, m.hs);
    return true;
  });
  return ok && required(sc, m.hu && m.hs && m.hb && m.hB && m.ha && m.hA);
}

bool BinanceDecoder::parse_snapshot(json::Scanner& sc) {
  SnapshotMsg& m = snap_;
  m.hid = m.hE = m.hT = m.hb = m.ha = m.hsym = false;
  const bool ok = read_object(sc, key_buf_, [&](std::string_view key) {
    bool null = false;
    if (key == "bids") m.hb = parse_levels(sc, bids_);
    else if (key == "asks") m.ha = parse_levels(sc, asks_);
    else if (key == "lastUpdateId") m.hid = read_id(sc, m.id);
    else if (key == "E") m.hE = read_present(sc, m.E, read_ms_or_null);
    else if (key == "T") m.hT = read_present(sc, m.T, read_ms_or_null);
    else if (key == "symbol") m.hsym = sc.read_str_or_null(m.symbol, null) && !null;
    else return false;
    return true;
  });
  return ok && required(sc, m.hid && m.hb && m.ha);
}

bool BinanceDecoder::parse_kind(Kind kind, json::Scanner& sc) {
  switch (kind) {
    case Kind::kDepth: return parse_depth(sc);
    case Kind::kTrade: return parse_trade(sc);
    case Kind::kTicker: return parse_ticker(sc);
    default: return false;
  }
}

// --- lines ------------------------------------------------------------------------------------

void BinanceDecoder::on_line(const char* line, size_t n, int64_t line_no) {
  ++stats.lines;
  line_no_ = line_no;
  const char* sp = static_cast<const char*>(std::memchr(line, ' ', n));
  bool ts_ok = sp != nullptr && sp != line;
  int64_t tsl = 0;
  if (ts_ok) {
    uint64_t v = 0;
    for (const char* q = line; q < sp; ++q) {
      const unsigned char c = static_cast<unsigned char>(*q);
      if (c < '0' || c > '9') {
        ts_ok = false;
        break;
      }
      v = v * 10 + (c - '0');  // (wraps harmlessly past 19 digits; checked below)
    }
    tsl = static_cast<int64_t>(v);
    if (ts_ok && sp - line > 18) {
      const char* q = line;
      while (q < sp - 1 && *q == '0') ++q;  // leading zeros do not count
      const std::string_view digits(q, static_cast<size_t>(sp - q));
      // Beyond int64 it is far past 2100: the plausibility check rejects it after parsing, as
      // the reference does.
      if (!(digits.size() < 19 || (digits.size() == 19 && digits <= "9223372036854775807"))) {
        tsl = INT64_MAX;
      }
    }
  }
  if (!ts_ok) {
    for (size_t i = 0; i < n; ++i) {
      if (!is_bytes_space(static_cast<unsigned char>(line[i]))) {
        reject_line(Reason::kMalformedLine, line, n);
        return;
      }
    }
    ++stats.empty_lines;
    return;
  }
  const char* payload = sp + 1;
  const char* end = line + n;
  const size_t pn = static_cast<size_t>(end - payload);
  static constexpr char kPrefix[] = "{\"stream\":\"";
  constexpr size_t kPrefixLen = sizeof(kPrefix) - 1;
  Kind kind = Kind::kNone;
  json::Err err = json::Err::kOk;
  bool snapshot = false;
  if (pn >= kPrefixLen && std::memcmp(payload, kPrefix, kPrefixLen) == 0) {
    const char* q = static_cast<const char*>(std::memchr(payload + kPrefixLen, '"', pn - kPrefixLen));
    // (the reference slices up to find()'s -1 when there is no closing quote: all but the last byte)
    const size_t sn = q != nullptr ? static_cast<size_t>(q - payload) - kPrefixLen
                                   : (pn - 1 > kPrefixLen ? pn - 1 - kPrefixLen : 0);
    kind = stream_kind(payload + kPrefixLen, sn);
    if (kind == Kind::kNone) {
      reject_line(Reason::kUnknownMessage, line, n);
      return;
    }
    json::Scanner sc(payload, end);
    bool has_stream = false, has_data = false;
    read_object(sc, key_buf_, [&](std::string_view key) {
      json::Str s;
      if (key == "stream") has_stream = sc.read_str(s);
      else if (key == "data") has_data = parse_kind(kind, sc);
      else return false;
      return true;
    });
    if (sc.ok() && !(has_stream && has_data)) sc.fail(json::Err::kSchema);
    if (sc.ok() && !sc.at_end()) sc.fail(json::Err::kMalformed);
    err = sc.err();
  } else {
    json::Scanner sc(payload, end);
    bool has_stream = false, has_id = false;
    json::Str stream;
    const char* data_begin = nullptr;
    const char* data_end = nullptr;
    read_object(sc, key_buf_, [&](std::string_view key) {
      bool null = false;
      if (key == "stream") has_stream = sc.read_str_or_null(stream, null) && !null;
      else if (key == "data") sc.skip(&data_begin, &data_end);
      // any integer here (`int | None` in the reference); the snapshot parse bounds it
      else if (key == "lastUpdateId") has_id = sc.read_any_int_or_null(null) && !null;
      else return false;
      return true;
    });
    if (sc.ok() && !sc.at_end()) sc.fail(json::Err::kMalformed);
    err = sc.err();
    if (err == json::Err::kOk) {
      if (has_id) {
        snapshot = true;
        json::Scanner ss(payload, end);
        if (parse_snapshot(ss) && !ss.at_end()) ss.fail(json::Err::kMalformed);
        err = ss.err();
      } else {
        if (has_stream) {
          const std::string& text = text_of(stream, buf_a_);
          kind = stream_kind(text.data(), text.size());
        }
        if (kind == Kind::kNone || data_begin == nullptr || data_end == data_begin) {
          reject_line(Reason::kUnknownMessage, line, n);
          return;
        }
        json::Scanner ds(data_begin, data_end);
        if (parse_kind(kind, ds) && !ds.at_end()) ds.fail(json::Err::kMalformed);
        err = ds.err();
      }
    }
  }
  if (err != json::Err::kOk) {
    reject_line(err == json::Err::kSchema ? Reason::kBadSchema : Reason::kMalformedJson, line, n);
    return;
  }
  if (snapshot) {
    if (!plausible(tsl, snap_.hT, snap_.T, snap_.hE, snap_.E)) {
      reject_line(Reason::kImplausibleTimestamp, line, n);
      return;
    }
    ++stats.snapshots;
    on_snapshot(line, n, tsl);
    return;
  }
  bool ok_ts = true;
  switch (kind) {
    case Kind::kDepth: ok_ts = plausible(tsl, depth_.hT, depth_.T, true, depth_.E); break;
    case Kind::kTrade: ok_ts = plausible(tsl, trade_.hT, trade_.T, true, trade_.E); break;
    case Kind::kTicker: ok_ts = plausible(tsl, ticker_.hT, ticker_.T, ticker_.hE, ticker_.E); break;
    default: break;
  }
  if (!ok_ts) {
    reject_line(Reason::kImplausibleTimestamp, line, n);
    return;
  }
  switch (kind) {
    case Kind::kDepth:
      ++stats.depth_messages;
      stats.depth_levels += static_cast<int64_t>(bids_.size() + asks_.size());
      on_depth(line, n, tsl);
      break;
    case Kind::kTrade:
      ++stats.trades;
      on_trade(line, n, tsl);
      break;
    case Kind::kTicker:
      ++stats.book_tickers;
      on_ticker(line, n, tsl);
      break;
    default: break;
  }
}

// --- symbols and values -----------------------------------------------------------------------

BinanceDecoder::Symbol& BinanceDecoder::symbol(const json::Str& s) {
  if (last_symbol_ != nullptr && !s.escaped && s.n == last_symbol_name_.size() &&
      std::memcmp(s.p, last_symbol_name_.data(), s.n) == 0) {
    return *last_symbol_;
  }
  const std::string& name = text_of(s, buf_b_);
  return symbol_named(std::string(name));
}

BinanceDecoder::Symbol& BinanceDecoder::symbol_named(const std::string& name) {
  auto it = symbol_index_.find(name);
  Symbol* st;
  if (it != symbol_index_.end()) {
    st = &symbols_[it->second];
  } else {
    std::string upper = name;
    for (char& c : upper) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    }
    auto spec = specs_.find(upper);
    if (spec == specs_.end()) throw UnknownSymbol(name);
    symbols_.emplace_back();
    st = &symbols_.back();
    st->iid = spec->second.iid;
    st->price = spec->second.price;
    st->qty = spec->second.qty;
    symbol_index_.emplace(name, symbols_.size() - 1);
    symbol_order.push_back(name);
    if (!pending_.empty() && symbols_.size() == 1) {
      // Snapshots seen before any message named the symbol belong to this first one.
      std::vector<PendingSnapshot> pending;
      pending.swap(pending_);
      for (const PendingSnapshot& p : pending) sync(*st, p);
    }
  }
  last_symbol_ = st;
  last_symbol_name_ = name;
  return *st;
}

bool BinanceDecoder::value(const Symbol& st, const char* p, size_t n, bool is_price, int64_t& out,
                           Reason& why) const {
  const NumStatus status = to_units(p, n, is_price ? st.price : st.qty, out);
  if (status == NumStatus::kBadNumber) {
    why = Reason::kBadNumber;
    return false;
  }
  if (status == NumStatus::kOffGrid) {
    why = Reason::kOffGrid;
    return false;
  }
  if (is_price ? out <= 0 : out < 0) {
    why = is_price ? Reason::kNonpositivePrice : Reason::kNegativeQty;
    return false;
  }
  return true;
}

uint32_t BinanceDecoder::convert_levels(const Symbol& st, const std::vector<Level>& levels,
                                        const char* side, std::vector<int64_t>& prices,
                                        std::vector<int64_t>& qtys, uint32_t file, int64_t line_no) {
  uint32_t count = 0;
  for (const Level& lv : levels) {
    int64_t pt = 0, qt = 0;
    Reason pw = Reason::kCount, qw = Reason::kCount;
    bool pok, qok;
    if (lv.p.escaped) {
      json::unescape(lv.p, buf_a_);
      pok = value(st, buf_a_.data(), buf_a_.size(), true, pt, pw);
    } else {
      pok = value(st, lv.p.p, lv.p.n, true, pt, pw);
    }
    if (lv.q.escaped) {
      json::unescape(lv.q, buf_a_);
      qok = value(st, buf_a_.data(), buf_a_.size(), false, qt, qw);
    } else {
      qok = value(st, lv.q.p, lv.q.n, false, qt, qw);
    }
    if (!(pok && qok)) {
      if (Sample* s = rejections.reject(pok ? qw : pw, file, line_no)) {
        s->kind = Sample::kLevel;
        s->side = side;
        text_of(lv.p, s->p);
        text_of(lv.q, s->q);
      }
      continue;
    }
    prices.push_back(pt);
    qtys.push_back(qt);
    ++count;
  }
  return count;
}

uint32_t BinanceDecoder::convert_text_levels(const Symbol& st, const std::vector<TextLevel>& levels,
                                             const char* side, std::vector<int64_t>& prices,
                                             std::vector<int64_t>& qtys, uint32_t file, int64_t line_no) {
  uint32_t count = 0;
  for (const TextLevel& lv : levels) {
    int64_t pt = 0, qt = 0;
    Reason pw = Reason::kCount, qw = Reason::kCount;
    const bool pok = value(st, lv.p.data(), lv.p.size(), true, pt, pw);
    const bool qok = value(st, lv.q.data(), lv.q.size(), false, qt, qw);
    if (!(pok && qok)) {
      if (Sample* s = rejections.reject(pok ? qw : pw, file, line_no)) {
        s->kind = Sample::kLevel;
        s->side = side;
        s->p = lv.p;
        s->q = lv.q;
      }
      continue;
    }
    prices.push_back(pt);
    qtys.push_back(qt);
    ++count;
  }
  return count;
}

int64_t BinanceDecoder::exchange_ns(bool has_T, int64_t T, bool has_E, int64_t E, int64_t tsl) {
  if (!has_T && !has_E) return last_exchange_ns_ != 0 ? last_exchange_ns_ : tsl;
  const int64_t ms = has_T ? T : E;
  // (wrapping multiply: a hostile ms value must not be undefined behaviour)
  const int64_t ns = static_cast<int64_t>(static_cast<uint64_t>(ms) * static_cast<uint64_t>(kMs));
  if (ns > last_exchange_ns_) last_exchange_ns_ = ns;
  return ns;
}

bool BinanceDecoder::plausible(int64_t tsl, bool has_T, int64_t T, bool has_E, int64_t E) const {
  constexpr int64_t kLo = INT64_C(946684800) * 1000000000;   // 2000-01-01
  constexpr int64_t kHi = INT64_C(4102444800) * 1000000000;  // 2100-01-01
  constexpr int64_t kSkew = INT64_C(86400) * 1000000000;     // a day
  if (tsl < kLo || tsl >= kHi) return false;
  int64_t venue;
  if (has_T || has_E) {
    venue = (has_T ? T : E) * kMs;  // (ms bounded at parse time: no overflow)
  } else if (last_exchange_ns_ != 0) {
    venue = last_exchange_ns_;
  } else {
    return true;
  }
  const __int128 d = static_cast<__int128>(tsl) - venue;
  return (d < 0 ? -d : d) <= kSkew;
}

// --- messages ---------------------------------------------------------------------------------

void BinanceDecoder::add_message(int64_t tsx, int64_t tsl, int64_t seq, uint32_t iid, uint8_t flags,
                                 bool clear, const std::vector<int64_t>& prices,
                                 const std::vector<int64_t>& qtys, uint32_t nb) {
  const size_t n = prices.size();
  if (n == 0) return;
  const size_t base = book.size();
  book.resize(base + n);
  BookEvent* out = book.data() + base;
  for (size_t i = 0; i < n; ++i) {
    BookEvent& e = out[i];
    e.ts_exchange = tsx;
    e.ts_local = tsl;
    e.seq = seq;
    e.price = prices[i];
    e.qty = qtys[i];
    e.instrument = iid;
    e.side = i < nb ? 0 : 1;
    e.flags = flags;
    e.reserved = 0;
  }
  if (clear) out[0].flags |= event_flag::kClear;
  out[n - 1].flags |= event_flag::kLast;
}

void BinanceDecoder::on_depth(const char* line, size_t n, int64_t tsl) {
  const DepthMsg& m = depth_;
  Symbol& st = symbol(m.s);
  if (futures_ && !m.hpu) {
    reject_line(Reason::kBadSchema, line, n);
    return;
  }
  Diff& d = diff_;
  d.prices.clear();
  d.qtys.clear();
  d.nb = convert_levels(st, bids_, "bid", d.prices, d.qtys, file_, line_no_);
  convert_levels(st, asks_, "ask", d.prices, d.qtys, file_, line_no_);
  d.tsx = exchange_ns(m.hT, m.T, true, m.E, tsl);
  d.tsl = tsl;
  d.U = m.U;
  d.u = m.u;
  d.pu = m.pu;
  d.has_pu = m.hpu;
  d.file = file_;
  d.line = line_no_;
  d.has_text = false;
  if (!st.live) {
    d.has_text = true;
    d.text.assign(line, n < kSampleBytes ? n : kSampleBytes);
    buffer_diff(st, std::move(d));
    diff_ = Diff{};
  } else {
    on_diff(st, d, line, n, false);
  }
}

void BinanceDecoder::buffer_diff(Symbol& st, Diff&& diff) {
  st.buffer.push_back(std::move(diff));
  if (st.buffer.size() > kBufferCap) {
    const Diff& old = st.buffer.front();
    reject_text(Reason::kAwaitingSnapshot, old.file, old.line, old.text);
    st.buffer.pop_front();
  }
}

void BinanceDecoder::on_diff(Symbol& st, Diff& diff, const char* line, size_t n, bool buffered) {
  const int64_t last = st.last_u;
  auto reject_diff = [&](Reason r) {
    if (Sample* s = rejections.reject(r, diff.file, diff.line)) {
      s->kind = Sample::kText;
      if (diff.has_text) {
        s->raw = diff.text;
      } else {
        s->raw.assign(line, n < kSampleBytes ? n : kSampleBytes);
      }
    }
  };
  if (st.need_first) {
    bool covered, bridges;
    if (futures_) {
      covered = diff.u < last;
      bridges = diff.U <= last && last <= diff.u;
    } else {
      const __int128 next = static_cast<__int128>(last) + 1;
      covered = diff.u <= last;
      bridges = diff.U <= next && next <= diff.u;
    }
    if (covered) {
      reject_diff(Reason::kCoveredBySnapshot);
      return;
    }
    if (!bridges) {
      gap(st, diff, line, n, buffered);
      return;
    }
    st.need_first = false;
  } else {
    if (diff.u <= last) {
      reject_diff(diff.u == last ? Reason::kDuplicateDiff : Reason::kStaleDiff);
      return;
    }
    const bool broken = futures_ ? (!diff.has_pu || diff.pu != last)
                                 : (static_cast<__int128>(diff.U) != static_cast<__int128>(last) + 1);
    if (broken) {
      gap(st, diff, line, n, buffered);
      return;
    }
  }
  emit_diff(st, diff, 0);
}

void BinanceDecoder::gap(Symbol& st, Diff& diff, const char* line, size_t n, bool buffered) {
  (void)buffered;
  ++sequence_gaps;
  std::string prefix = "expected ";
  prefix += futures_ ? "pu=" + i128_str(st.last_u) : "U=" + i128_str(static_cast<__int128>(st.last_u) + 1);
  prefix += ", got U=" + i128_str(diff.U) + " u=" + i128_str(diff.u) +
            " pu=" + (diff.has_pu ? i128_str(diff.pu) : std::string("None")) + ": ";
  std::string text;
  if (diff.has_text) {
    text = diff.text;
  } else if (line != nullptr) {
    text.assign(line, n < 160 ? n : 160);
  }
  if (Sample* s = rejections.reject(Reason::kSequenceGap, diff.file, diff.line)) {
    s->kind = Sample::kGap;
    s->prefix = prefix;
    s->raw = text;
  }
  if (gap_continue_) {
    st.need_first = false;
    emit_diff(st, diff, event_flag::kResync);
    return;
  }
  st.live = false;
  st.need_first = false;
  st.after_gap = true;
  if (!diff.has_text) {
    diff.has_text = true;
    diff.text = std::move(text);
  }
  Diff moved = std::move(diff);
  diff = Diff{};
  buffer_diff(st, std::move(moved));
}

void BinanceDecoder::emit_diff(Symbol& st, const Diff& diff, uint8_t flags) {
  st.last_u = diff.u;
  add_message(diff.tsx, diff.tsl, diff.u, st.iid, flags, false, diff.prices, diff.qtys, diff.nb);
}

void BinanceDecoder::on_snapshot(const char* line, size_t n, int64_t tsl) {
  const SnapshotMsg& m = snap_;
  Symbol* st = nullptr;
  if (m.hsym) {
    st = &symbol(m.symbol);
  } else if (symbols_.size() == 1) {
    st = &symbols_.front();
  }
  PendingSnapshot ps;
  ps.last_update_id = m.id;
  ps.E = m.E;
  ps.T = m.T;
  ps.has_E = m.hE;
  ps.has_T = m.hT;
  ps.tsl = tsl;
  ps.file = file_;
  ps.line = line_no_;
  ps.raw.assign(line, n < kSampleBytes ? n : kSampleBytes);
  if (st == nullptr && !symbols_.empty()) {
    reject_line(Reason::kAmbiguousSnapshot, line, n);
    return;
  }
  ps.bids.reserve(bids_.size());
  for (const Level& lv : bids_) {
    TextLevel t;
    text_of(lv.p, t.p);
    text_of(lv.q, t.q);
    ps.bids.push_back(std::move(t));
  }
  ps.asks.reserve(asks_.size());
  for (const Level& lv : asks_) {
    TextLevel t;
    text_of(lv.p, t.p);
    text_of(lv.q, t.q);
    ps.asks.push_back(std::move(t));
  }
  if (st == nullptr) {  // nothing recorded yet names the symbol: hold it for the first that does
    pending_.push_back(std::move(ps));
    return;
  }
  sync(*st, ps);
}

void BinanceDecoder::sync(Symbol& st, const PendingSnapshot& snap) {
  stats.snapshot_levels += static_cast<int64_t>(snap.bids.size() + snap.asks.size());
  snap_prices_.clear();
  snap_qtys_.clear();
  const uint32_t nb = convert_text_levels(st, snap.bids, "bid", snap_prices_, snap_qtys_, snap.file, snap.line);
  convert_text_levels(st, snap.asks, "ask", snap_prices_, snap_qtys_, snap.file, snap.line);
  if (!snap_prices_.empty()) {
    const int64_t tsx = exchange_ns(snap.has_T, snap.T, snap.has_E, snap.E, snap.tsl);
    add_message(tsx, snap.tsl, snap.last_update_id, st.iid,
                static_cast<uint8_t>(event_flag::kSnapshot | (st.after_gap ? event_flag::kResync : 0)),
                true, snap_prices_, snap_qtys_, nb);
  } else {
    reject_text(Reason::kEmptySnapshot, snap.file, snap.line, snap.raw);
  }
  st.live = true;
  st.need_first = true;
  st.after_gap = false;
  st.last_u = snap.last_update_id;
  std::deque<Diff> buffered;
  buffered.swap(st.buffer);
  for (Diff& d : buffered) {
    if (st.live) {
      on_diff(st, d, nullptr, 0, true);
    } else {  // a gap inside the buffer: back to waiting
      buffer_diff(st, std::move(d));
    }
  }
}

void BinanceDecoder::on_trade(const char* line, size_t n, int64_t tsl) {
  const TradeMsg& m = trade_;
  Symbol& st = symbol(m.s);
  int64_t price = 0, qty = 0;
  Reason pw = Reason::kCount, qw = Reason::kCount;
  bool pok, qok;
  if (m.p.escaped) {
    json::unescape(m.p, buf_a_);
    pok = value(st, buf_a_.data(), buf_a_.size(), true, price, pw);
  } else {
    pok = value(st, m.p.p, m.p.n, true, price, pw);
  }
  if (m.q.escaped) {
    json::unescape(m.q, buf_a_);
    qok = value(st, buf_a_.data(), buf_a_.size(), false, qty, qw);
  } else {
    qok = value(st, m.q.p, m.q.n, false, qty, qw);
  }
  if (!(pok && qok)) {
    reject_line(pok ? qw : pw, line, n);
    return;
  }
  if (m.t <= st.last_trade) {
    reject_line(m.t == st.last_trade ? Reason::kDuplicateTrade : Reason::kStaleTrade, line, n);
    return;
  }
  st.last_trade = m.t;
  TradeEvent e{};
  e.ts_exchange = exchange_ns(m.hT, m.T, true, m.E, tsl);
  e.ts_local = tsl;
  e.seq = m.t;
  e.price = price;
  e.qty = qty;
  e.instrument = st.iid;
  e.aggressor = m.m ? 1 : 0;  // buyer is maker: the seller aggressed
  e.flags = event_flag::kLast;
  e.reserved = 0;
  trades.push_back(e);
}

void BinanceDecoder::on_ticker(const char* line, size_t n, int64_t tsl) {
  const TickerMsg& m = ticker_;
  Symbol& st = symbol(m.s);
  const json::Str* fields[4] = {&m.b, &m.B, &m.a, &m.A};
  int64_t values[4];
  for (int i = 0; i < 4; ++i) {
    const json::Str& f = *fields[i];
    const bool is_price = (i % 2) == 0;
    Reason why = Reason::kCount;
    bool ok;
    if (f.escaped) {
      json::unescape(f, buf_a_);
      ok = value(st, buf_a_.data(), buf_a_.size(), is_price, values[i], why);
    } else {
      ok = value(st, f.p, f.n, is_price, values[i], why);
    }
    if (!ok) {
      reject_line(why, line, n);
      return;
    }
  }
  BboEvent e{};
  e.ts_exchange = exchange_ns(m.hT, m.T, m.hE, m.E, tsl);
  e.ts_local = tsl;
  e.seq = m.u;
  e.bid_price = values[0];
  e.bid_qty = values[1];
  e.ask_price = values[2];
  e.ask_qty = values[3];
  e.instrument = st.iid;
  e.flags = event_flag::kLast;
  bbo.push_back(e);
}

void BinanceDecoder::finish() {
  for (const PendingSnapshot& p : pending_) reject_text(Reason::kAmbiguousSnapshot, p.file, p.line, p.raw);
  pending_.clear();
  for (Symbol& st : symbols_) {
    for (const Diff& d : st.buffer) reject_text(Reason::kAwaitingSnapshot, d.file, d.line, d.text);
    st.buffer.clear();
  }
}

}  // namespace bot4::ingest
