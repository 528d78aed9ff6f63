#pragma once
// Native decoder of Binance raw recordings (`<local ns> <json>` lines: USD-M, COIN-M, spot) into
// the shared event records, with Binance's order-book sync rules.
//
// This is a port of bot4.data.binance.BinanceLoader (the Python reference, whose docstring states
// the rules): the same messages are accepted, the same records are emitted in the same order, and
// every rejection is counted under the same reason with the same first sample. Fixed-schema
// scanning (ingest/json_scan.hpp) replaces a general JSON parser; prices and sizes go from decimal
// text to ticks and lots exactly (ingest/decimal_units.hpp).
//
// Usage: add_spec() for every known symbol, then per file begin_file(), feed() chunks, end_file();
// finish() once at the end. Records accumulate in book/trades/bbo and may be taken (moved out)
// between feeds to bound memory.
#include <array>
#include <cstdint>
#include <deque>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/events.hpp"
#include "ingest/decimal_units.hpp"
#include "ingest/json_scan.hpp"
#include "ingest/line_reader.hpp"

namespace bot4::ingest {

enum class Reason : uint8_t {
  kTruncatedFile,
  kCorruptFile,
  kMalformedLine,
  kMalformedJson,
  kBadSchema,
  kUnknownMessage,
  kAmbiguousSnapshot,
  kBadNumber,
  kOffGrid,
  kNegativeQty,
  kNonpositivePrice,
  kDuplicateTrade,
  kStaleTrade,
  kCoveredBySnapshot,
  kDuplicateDiff,
  kStaleDiff,
  kSequenceGap,
  kAwaitingSnapshot,
  kEmptySnapshot,
  kImplausibleTimestamp,
  kCount
};
inline constexpr size_t kReasonCount = static_cast<size_t>(Reason::kCount);
const char* reason_name(Reason r);

// The first rejection of a reason. Its text is built on the Python side (which owns the exact
// formatting of the reference): kText = utf-8 (replace) of `raw`; kLevel = "<side> level
// [<repr p>, <repr q>]"; kGap = prefix + utf-8 (replace) of `raw`.
struct Sample {
  enum Kind : uint8_t { kText = 0, kLevel = 1, kGap = 2 };
  uint32_t file = 0;
  int64_t line = 0;
  Kind kind = kText;
  std::string raw;
  std::string prefix;
  std::string side, p, q;
};

struct Rejections {
  std::array<int64_t, kReasonCount> counts{};
  std::array<Sample, kReasonCount> samples{};
  std::vector<Reason> order;  // reasons in order of first occurrence
  // Returns the sample slot to fill when this is the reason's first rejection, else nullptr.
  Sample* reject(Reason r, uint32_t file, int64_t line) {
    const size_t i = static_cast<size_t>(r);
    if (counts[i]++ != 0) return nullptr;
    order.push_back(r);
    Sample& s = samples[i];
    s.file = file;
    s.line = line;
    return &s;
  }
};

struct DecoderStats {
  int64_t lines = 0, empty_lines = 0, depth_messages = 0, depth_levels = 0, snapshots = 0,
          snapshot_levels = 0, trades = 0, book_tickers = 0;
};

class UnknownSymbol : public std::runtime_error {
 public:
  explicit UnknownSymbol(const std::string& symbol)
      : std::runtime_error("unknown Binance symbol " + symbol), symbol_(symbol) {}
  const std::string& symbol() const { return symbol_; }

 private:
  std::string symbol_;
};

class BinanceDecoder final : public LineSink {
 public:
  BinanceDecoder(bool futures, bool gap_continue);

  // A known instrument, by upper-case symbol.
  void add_spec(const std::string& upper_symbol, uint32_t instrument, Grid price, Grid qty);

  void begin_file(uint32_t file_index, bool gzip);
  // Inflate on a second thread while parsing (default on).
  void set_threads(bool on) { reader_.set_threads(on); }
  void feed(const uint8_t* data, size_t n) { reader_.feed(data, n, *this); }
  void feed_plain(const uint8_t* data, size_t n) { reader_.feed_plain(data, n, *this); }
  void damage(const char* kind) { reader_.damage(kind, *this); }
  void end_file() { reader_.end(*this); }
  // End of the recording: held snapshots and diffs still waiting for one are counted.
  void finish();

  // LineSink
  void on_line(const char* p, size_t n, int64_t line_no) override;
  void on_damage(const char* kind, int64_t line_no, const std::string& tail) override;

  std::vector<BookEvent> book;
  std::vector<TradeEvent> trades;
  std::vector<BboEvent> bbo;
  Rejections rejections;
  DecoderStats stats;
  int64_t sequence_gaps = 0;
  // Symbols in the order they were first seen (exact spelling of the data).
  std::vector<std::string> symbol_order;

 private:
  struct Level {
    json::Str p, q;
  };
  struct TextLevel {
    std::string p, q;
  };
  struct Diff {
    int64_t tsx = 0, tsl = 0, U = 0, u = 0, pu = 0;
    bool has_pu = false;
    std::vector<int64_t> prices, qtys;
    uint32_t nb = 0;
    uint32_t file = 0;
    int64_t line = 0;
    bool has_text = false;
    std::string text;  // raw bytes of the line, cut at 200 (or 160 after a gap, as the reference)
  };
  struct Symbol {
    uint32_t iid = 0;
    Grid price, qty;
    bool live = false, need_first = false, after_gap = false;
    int64_t last_u = 0;
    std::deque<Diff> buffer;
    int64_t last_trade = -1;
  };
  struct PendingSnapshot {
    int64_t last_update_id = 0, E = 0, T = 0, tsl = 0;
    bool has_E = false, has_T = false;
    std::vector<TextLevel> bids, asks;
    uint32_t file = 0;
    int64_t line = 0;
    std::string raw;
  };
  struct Spec {
    uint32_t iid;
    Grid price, qty;
  };

  // message parsing (scratch members hold the last parsed message)
  struct DepthMsg {
    int64_t E = 0, T = 0, U = 0, u = 0, pu = 0;
    bool hE, hT, hU, hu, hpu, hs, hb, ha;
    json::Str s;
  };
  struct TradeMsg {
    int64_t E = 0, T = 0, t = 0;
    bool hE, hT, ht, hs, hp, hq, hm, m;
    json::Str s, p, q;
  };
  struct TickerMsg {
    int64_t u = 0, E = 0, T = 0;
    bool hu, hE, hT, hs, hb, hB, ha, hA;
    json::Str s, b, B, a, A;
  };
  struct SnapshotMsg {
    int64_t id = 0, E = 0, T = 0;
    bool hid, hE, hT, hb, ha, hsym;
    json::Str symbol;
  };
  enum class Kind : uint8_t { kNone, kDepth, kTrade, kTicker };

  bool parse_levels(json::Scanner& sc, std::vector<Level>& out);
  bool parse_depth(json::Scanner& sc);
  bool parse_trade(json::Scanner& sc);
  bool parse_ticker(json::Scanner& sc);
  bool parse_snapshot(json::Scanner& sc);
  bool parse_kind(Kind kind, json::Scanner& sc);
  static Kind stream_kind(const char* p, size_t n);

  void reject_line(Reason r, const char* line, size_t n);
  void reject_text(Reason r, uint32_t file, int64_t line_no, const std::string& raw);

  const std::string& text_of(const json::Str& s, std::string& buf);
  Symbol& symbol(const json::Str& s);
  Symbol& symbol_named(const std::string& name);
  // ticks/lots of a price or size, or the rejection reason
  bool value(const Symbol& st, const char* p, size_t n, bool is_price, int64_t& out, Reason& why) const;
  uint32_t convert_levels(const Symbol& st, const std::vector<Level>& levels, const char* side,
                          std::vector<int64_t>& prices, std::vector<int64_t>& qtys, uint32_t file,
                          int64_t line_no);
  uint32_t convert_text_levels(const Symbol& st, const std::vector<TextLevel>& levels, const char* side,
                               std::vector<int64_t>& prices, std::vector<int64_t>& qtys,
                               uint32_t file, int64_t line_no);
  int64_t exchange_ns(bool has_T, int64_t T, bool has_E, int64_t E, int64_t tsl);
  // bot4.data.market_data.plausible_ts: receive time in 2000..2100 and within a day of the venue
  // time (T, else E, else the latest venue time seen).
  bool plausible(int64_t tsl, bool has_T, int64_t T, bool has_E, int64_t E) const;

  void on_depth(const char* line, size_t n, int64_t tsl);
  void on_trade(const char* line, size_t n, int64_t tsl);
  void on_ticker(const char* line, size_t n, int64_t tsl);
  void on_snapshot(const char* line, size_t n, int64_t tsl);
  void buffer_diff(Symbol& st, Diff&& diff);
  void on_diff(Symbol& st, Diff& diff, const char* line, size_t n, bool buffered);
  void gap(Symbol& st, Diff& diff, const char* line, size_t n, bool buffered);
  void emit_diff(Symbol& st, const Diff& diff, uint8_t flags);
  void add_message(int64_t tsx, int64_t tsl, int64_t seq, uint32_t iid, uint8_t flags, bool clear,
                   const std::vector<int64_t>& prices, const std::vector<int64_t>& qtys, uint32_t nb);
  void sync(Symbol& st, const PendingSnapshot& snap);

  bool futures_;
  bool gap_continue_;
  LineReader reader_;
  uint32_t file_ = 0;
  int64_t line_no_ = 0;
  int64_t last_exchange_ns_ = 0;
  std::unordered_map<std::string, Spec> specs_;
  std::unordered_map<std::string, size_t> symbol_index_;
  std::deque<Symbol> symbols_;  // stable addresses
  Symbol* last_symbol_ = nullptr;
  std::string last_symbol_name_;
  std::vector<PendingSnapshot> pending_;

  // scratch
  DepthMsg depth_{};
  TradeMsg trade_{};
  TickerMsg ticker_{};
  SnapshotMsg snap_{};
  std::vector<Level> bids_, asks_;
  Diff diff_;
  std::string buf_a_, buf_b_, key_buf_;
  std::vector<int64_t> snap_prices_, snap_qtys_;
};

}  // namespace bot4::ingest
