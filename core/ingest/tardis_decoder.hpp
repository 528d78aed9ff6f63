#pragma once
// Native decoder of Tardis.dev "downloadable CSV" files (incremental_book_L2, trades, quotes,
// book_snapshot_N) into the shared event records.
//
// A port of bot4.data.tardis (the Python reference, whose docstring states the format and the
// rejection reasons): the same rows are accepted, the same records are emitted in the same order
// with the same seq and flags, and every rejection is counted under the same reason with the same
// first sample. Python reads each file's header (the kind) and the specs; this class reads the
// rows, streaming: begin_file(), feed() chunks (gzip or plain, ingest/line_reader.hpp) or
// feed_plain() (bytes Python decompressed, e.g. zstd), end_file().
//
// Several files read together (expect(n) first, then the files fed in any interleaving, each
// call naming its file) are decoded in one merged row order: by each file's running maximum of
// local_timestamp (its rows' 4th field; a row without one keeps the running maximum so far),
// ties to the lower file index, each file's rows in their order. That is the order of a stable
// sort of the files' rows concatenated, so it does not depend on how the files were cut into
// chunks; merge() decodes every row that order already allows and says which files it waits
// for. A file's lines wait in its queue (bounded by what was fed) until their turn; while a
// single file remains they are decoded as they are split, as in the one-file case.
//
// Infer mode (constructed with infer=true) is the reference's infer_specs pass instead: per
// symbol, in order of first appearance, the exchange and the largest number of decimals written
// in its prices and amounts. Texts with an exponent or non-ASCII bytes are handed back in
// `exotic` for Python's Decimal to measure (rare; exactness over speed there).
//
// Known difference: the reference's int() also reads non-ASCII digits and whitespace in
// timestamps and ids; here those rows are bad_timestamp / bad_id / malformed.
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/events.hpp"
#include "common/types.hpp"
#include "ingest/csv_fields.hpp"
#include "ingest/decimal_units.hpp"
#include "ingest/line_reader.hpp"
#include "ingest/rejection_table.hpp"

namespace bot4::ingest {

enum class TardisKind : uint8_t { kIncrementalBookL2 = 0, kTrades = 1, kQuotes = 2, kBookSnapshot = 3 };

enum class TardisReason : uint8_t {
  kTruncatedFile,
  kCorruptFile,
  kMalformedRow,
  kUnknownSymbol,
  kBadTimestamp,
  kImplausibleTimestamp,
  kBadSide,
  kBadNumber,
  kOffGrid,
  kNegativeQty,
  kNonpositivePrice,
  kBadId,
  kCount
};
inline constexpr size_t kTardisReasonCount = static_cast<size_t>(TardisReason::kCount);
const char* tardis_reason_name(size_t reason);

// One (side, price column, amount column) of a book_snapshot_N file, bids then asks.
struct SnapshotColumns {
  uint8_t side;
  int price_col, amount_col;
};

struct TardisFile {
  TardisKind kind = TardisKind::kIncrementalBookL2;
  int ncols = 8;
  std::vector<int> price_cols, amount_cols;  // infer mode
  std::vector<SnapshotColumns> pairs;        // book_snapshot
};

class TardisDecoder {
 public:
  explicit TardisDecoder(bool infer) : infer_(infer) {}

  // A known instrument, by its symbol as written in the files (utf-8 bytes).
  void add_spec(const std::string& symbol, uint32_t instrument, Grid price, Grid qty);

  // Files 0..n-1 are read together (see the header comment); without it each file is read to
  // its end before the next begins.
  void expect(uint32_t n_files);
  void begin_file(uint32_t file_index, bool gzip, TardisFile file);
  void set_threads(bool on) { threads_ = on; }
  // file: the file the bytes belong to; -1: the one begun last.
  void feed(const uint8_t* data, size_t n, int64_t file = -1) { at(file).reader.feed(data, n, at(file)); }
  void feed_plain(const uint8_t* data, size_t n, int64_t file = -1) { at(file).reader.feed_plain(data, n, at(file)); }
  void damage(const char* kind, int64_t file = -1) { at(file).reader.damage(kind, at(file)); }
  void end_file(int64_t file = -1);
  // Decodes the queued rows the merged order allows; returns the files it waits for (begun or
  // expected, not ended, nothing queued). Empty once every file is ended and decoded.
  std::vector<uint32_t> merge();
  // Book records of the messages no later row can extend (all of them once every file ended):
  // moved out, the open message's levels stay (a continuing row moves kLast off its last level).
  std::vector<BookEvent> take_closed_book();

  std::vector<BookEvent> book;
  std::vector<TradeEvent> trades;
  std::vector<BboEvent> bbo;
  RejectionTable<kTardisReasonCount> rejections;
  std::string venue;  // the exchange column of the first accepted row

  // infer mode
  struct Found {
    std::string symbol, exchange;
    int price_decimals = 0, amount_decimals = 0;
  };
  struct Exotic {
    uint32_t symbol;  // index in found
    bool amount;
    std::string text;
  };
  std::vector<Found> found;
  std::vector<Exotic> exotic;

 private:
  // One file's reading state: its line splitter, layout, message key and queue of lines that
  // wait for their turn in the merged order.
  struct Pending {
    size_t off, len;  // text (the line, or a damage tail) in `text`
    int64_t line_no;
    int64_t key;
    const char* damage;  // nullptr: a line
  };
  struct File final : LineSink {
    TardisDecoder* owner = nullptr;
    uint32_t index = 0;
    bool begun = false, ended = false, done = false;  // done: ended and nothing queued
    LineReader reader;
    TardisFile spec;
    bool has_key = false;
    const void* key_sym = nullptr;
    int64_t key_tsx = 0, key_tsl = 0;
    bool key_snap = false;
    int numeric_ids = -1;  // -1 unknown, 0 row ordinals, 1 numeric ids
    int64_t run_max = INT64_MIN;  // running maximum of local_timestamp (µs) of the lines split
    std::string text;
    std::vector<Pending> queue;
    size_t head = 0;
    bool queued() const { return head < queue.size(); }
    void on_line(const char* p, size_t n, int64_t line_no) override { owner->file_line(*this, p, n, line_no); }
    void on_damage(const char* kind, int64_t line_no, const std::string& tail) override {
      owner->file_damage(*this, kind, line_no, tail);
    }
  };
  File& at(int64_t file);
  void file_line(File& f, const char* p, size_t n, int64_t line_no);
  void file_damage(File& f, const char* kind, int64_t line_no, const std::string& tail);
  // The only file left to read, with nothing queued: its rows need no merging.
  bool direct(const File& f) const { return live_ == 1 && !f.queued(); }
  int64_t line_key(File& f, const char* p, size_t n);
  void row(File& f, const char* p, size_t n, int64_t line_no);
  void damage_row(File& f, const char* kind, int64_t line_no, const char* tail, size_t n);
  void retire(File& f);

  struct Sym {
    uint32_t iid = 0;
    Grid price, qty;
    bool in_snapshot = false;
  };
  // (symbol, ts_exchange ns, ts_local ns) of a row that passed the common checks, or nullptr.
  Sym* common(size_t ncols, const char* line, size_t n, int64_t& tsx, int64_t& tsl);
  void reject(TardisReason r, const char* line, size_t n) {
    rejections.reject(static_cast<size_t>(r), file_, line_no_, line, n);
  }
  // Units of a price (> 0) or amount (>= 0), or false with the reason.
  static bool price_units(const Sym& s, const Field& f, int64_t& out, TardisReason& why);
  static bool qty_units(const Sym& s, const Field& f, int64_t& out, TardisReason& why);

  void book_row(const char* line, size_t n);
  void trade_row(const char* line, size_t n);
  void quote_row(const char* line, size_t n);
  void snapshot_row(const char* line, size_t n);
  void infer_row();

  void open_message(int64_t tsx, int64_t tsl, uint32_t iid, uint8_t flags, bool clear);
  void add_level(uint8_t side, int64_t price, int64_t qty);

  bool infer_;
  bool threads_ = true;
  std::vector<std::unique_ptr<File>> files_;
  int64_t current_ = -1;  // the file begun last
  uint32_t live_ = 0;     // files expected or begun and not done
  File* cur_ = nullptr;   // the file of the row being decoded
  uint32_t file_ = 0;
  int64_t line_no_ = 0;
  CsvFields csv_;
  CsvFields key_csv_;
  std::unordered_map<std::string, Sym> syms_;  // node-based: Sym addresses are stable
  std::string key_buf_;                         // the symbol of last_sym_ / last_found_
  Sym* last_sym_ = nullptr;
  int64_t last_found_ = -1;

  // message plumbing (book kinds)
  int64_t msg_seq_ = 0;
  int64_t row_seq_ = 0;
  int64_t m_tsx_ = 0, m_tsl_ = 0, m_seq_ = 0;
  uint32_t m_iid_ = 0;
  uint8_t m_flags_ = 0;
  bool m_clear_ = false;
  size_t m_levels_ = 0;
  // the file whose row opened the last message, and whether a later row may extend it (an
  // incremental_book_L2 message; a row of another file always opens its own)
  int64_t m_file_ = -1;
  bool m_open_ = false;

  std::unordered_map<std::string, uint32_t> found_index_;
};

}  // namespace bot4::ingest
