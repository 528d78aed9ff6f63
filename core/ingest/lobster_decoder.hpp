#pragma once
// Native decoder of LOBSTER files (message file + optional orderbook file) into ORDER_EVENT and
// TRADE_EVENT records, with the reference's reconciliation of its own book model against the
// published orderbook rows.
//
// A port of bot4.data.lobster.load_lobster (the Python reference, whose docstring states the
// format, the reconciliation and every counter): the same rows are rejected with the same reasons
// and samples, the same events are emitted in the same order, the same stats are counted.
// Phases, as the reference: begin_file(0 = message file) / feed / end_file, then the same for the
// orderbook file (1) when there is one, then finish_parse(); Python picks the tick from
// `all_cents` and calls build(unit, ...) once.
//
// Streaming (stream_begin first): the tick is known before reading (given, or from a scan pass:
// stream_begin(scan=true) only finds all_cents and levels), both files are fed side by side
// (each call naming its file) and pump() builds every message row whose orderbook row (the same
// line number) has been read, keeping only rows not built yet: the same events, rejections,
// samples and stats as the whole-file phases, rejections listed in the phases' order at the end.
#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "common/events.hpp"
#include "ingest/line_reader.hpp"
#include "ingest/rejection_table.hpp"

namespace bot4::ingest {

enum class LobsterReason : uint8_t {
  kTruncatedFile,
  kCorruptFile,
  kBadColumnCount,
  kNonNumeric,
  kImplausibleTimestamp,
  kOutOfRange,
  kUnknownType,
  kNegativeSize,
  kZeroSize,
  kBadDirection,
  kNonpositivePrice,
  kOrderbookBadRow,
  kOrderbookRowCountMismatch,
  kOffGridPrice,
  kOrderbookOffGridPrice,
  kDuplicateAdd,
  kBookRowUnexplainedChange,
  kCount
};
inline constexpr size_t kLobsterReasonCount = static_cast<size_t>(LobsterReason::kCount);
const char* lobster_reason_name(size_t reason);

class LobsterDecoder {
 public:
  LobsterDecoder() {
    ports_[0].d = ports_[1].d = this;
    ports_[1].file = 1;
  }

  // file 0: the message file, 1: the orderbook file.
  void begin_file(uint32_t file, bool gzip);
  void set_threads(bool on) {
    reader_[0].set_threads(on);
    reader_[1].set_threads(on);
  }
  // file -1: the one begun last.
  void feed(const uint8_t* data, size_t n, int file = -1) { reader_[pick(file)].feed(data, n, ports_[pick(file)]); }
  void feed_plain(const uint8_t* data, size_t n, int file = -1) {
    reader_[pick(file)].feed_plain(data, n, ports_[pick(file)]);
  }
  void damage(const char* kind, int file = -1) { reader_[pick(file)].damage(kind, ports_[pick(file)]); }
  void end_file(int file = -1);

  // Streaming mode (see the header comment): build parameters as build()'s; with_book: an
  // orderbook file will be fed; scan: parse only, for all_cents and levels (nothing kept).
  void stream_begin(int64_t unit, bool with_book, int64_t base_ns, uint32_t instrument, bool scan);
  // Builds what can be built; returns the files it waits for (empty: both files ended, done).
  std::vector<uint32_t> pump();
  // After both files: the row-count check.
  void finish_parse();
  // Every price in the files (valid messages and orderbook rows) is a whole cent.
  bool all_cents() const { return all_cents_; }
  // Events with prices in ticks of `unit` (LOBSTER price units per tick); reconcile: an
  // orderbook file was given; base_ns: added to the times (UTC midnight of the trading day).
  void build(int64_t unit, bool reconcile, int64_t base_ns, uint32_t instrument);


  std::vector<OrderEvent> orders;
  std::vector<TradeEvent> trades;
  RejectionTable<kLobsterReasonCount> rejections;
  // counters in order of first increment (the reference's Counter), then messages, book_levels
  std::vector<std::pair<std::string, int64_t>> stats() const;
  int levels() const { return levels_; }

 private:
  struct Row {
    int64_t ts, oid, size, price, direction;
    int type;
    bool valid;
  };
  struct Level {
    int64_t qty = 0;
    std::vector<uint64_t> ids;  // FIFO
  };
  struct Order {
    uint8_t side;
    int64_t price, qty;
  };
  // (price, size) in the order of the row, a later duplicate price overwriting in place
  using LevelList = std::vector<std::pair<int64_t, int64_t>>;
  struct Truth {
    LevelList sides[2];
  };

  struct Port final : LineSink {
    LobsterDecoder* d = nullptr;
    uint32_t file = 0;
    void on_line(const char* p, size_t n, int64_t line_no) override { d->on_line(file, p, n, line_no); }
    void on_damage(const char* kind, int64_t line_no, const std::string& tail) override {
      d->on_damage(file, kind, line_no, tail);
    }
  };
  uint32_t pick(int file) const { return file < 0 ? file_ : static_cast<uint32_t>(file) & 1u; }
  void on_line(uint32_t file, const char* p, size_t n, int64_t line_no);
  void on_damage(uint32_t file, const char* kind, int64_t line_no, const std::string& tail);
  void message_line(const char* p, size_t n);
  void book_line(const char* p, size_t n);
  // The row of a message line (valid or rejected with its reason); an orderbook line's levels.
  void message_fields(const char* p, size_t n, int64_t line_no, Row& row);
  bool book_fields(const char* p, size_t n, int64_t line_no, Truth& t);
  // One message row t of the build (valid), against its orderbook row and the previous one.
  void build_row(size_t t, const Row& r, const char* text, size_t text_n, const Truth* truth, const Truth* prev);
  void finish_stream();
  void reject(LobsterReason r, uint32_t file, int64_t line, const char* text, size_t n) {
    const size_t i = static_cast<size_t>(r);
    if (rejections.counts[i] == 0) first_phase_[i] = phase_;
    rejections.reject(i, file, line, text, n);
  }
  void count(const char* name, int64_t by = 1);
  const char* line_text(size_t row, size_t& n) const;

  // model
  void model_add(uint64_t oid, uint8_t side, int64_t price, int64_t qty);
  void model_reduce(uint64_t oid, int64_t qty);
  void emit(int64_t ts, int64_t seq, uint64_t oid, int64_t price, int64_t qty, uint8_t side, uint8_t action,
            uint8_t flags);
  uint64_t new_seed(int64_t ts, int64_t seq, uint8_t side, int64_t price, int64_t qty, uint8_t flags);
  void reduce(int64_t ts, int64_t seq, uint64_t oid, int64_t qty, uint8_t action, uint8_t flags);
  void reduce_unknown(int64_t ts, int64_t seq, uint64_t oid, uint8_t side, int64_t price, int64_t qty,
                      uint8_t action);
  void correct(int64_t ts, int64_t seq, const Truth& truth, const Truth* prev, uint8_t flags);
  void fix(int64_t ts, int64_t seq, uint8_t side, int64_t price, int64_t target, const Truth* prev,
           uint8_t flags);

  LineReader reader_[2];
  Port ports_[2];
  uint32_t file_ = 0;

  // streaming mode
  struct PendingRow {
    Row row;
    std::string text;
  };
  bool streaming_ = false, scan_ = false, stream_done_ = false;
  bool ended_[2] = {false, false};
  int64_t lines_[2] = {0, 0};  // lines read per file
  std::deque<PendingRow> pending_rows_;
  std::deque<std::pair<Truth, bool>> pending_truths_;  // (row, ok)
  size_t next_t_ = 0;
  Truth prev_truth_;
  bool have_prev_ = false;
  int64_t valid_messages_ = 0;
  int phase_ = 0;  // of the rejections counted now: 0 message parse, 1 orderbook parse, 2 row counts,
                   // 3 message off grid, 4 orderbook off grid, 5 build
  std::array<int, kLobsterReasonCount> first_phase_{};
  struct Damage {
    std::string kind, tail;
    int64_t line = 0;
  };
  std::vector<std::pair<uint32_t, Damage>> damage_;
  std::vector<Row> rows_;
  std::string text_;               // message lines, back to back (samples of later phases)
  std::vector<size_t> text_end_;   // end offset of each message line in text_
  std::vector<Truth> book_;
  std::vector<bool> book_ok_;
  int levels_ = 0;
  bool all_cents_ = true;
  bool have_book_ = false;

  // build state
  int64_t unit_ = 1;
  int64_t base_ns_ = 0;
  bool reconcile_ = false;
  uint32_t instrument_ = 0;
  int n_levels_ = 10;
  std::unordered_map<uint64_t, Order> model_orders_;
  std::array<std::map<int64_t, Level>, 2> model_levels_;
  std::array<std::map<int64_t, std::vector<uint64_t>>, 2> model_seeds_;
  std::unordered_set<uint64_t> resync_removed_;
  uint64_t next_seed_ = uint64_t{1} << 63;
  std::vector<std::string> stat_names_;
  std::unordered_map<std::string, int64_t> stat_values_;
};

}  // namespace bot4::ingest
