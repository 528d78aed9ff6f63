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
// Infer mode (constructed with infer=true) is the reference's infer_specs pass instead: per
// symbol, in order of first appearance, the exchange and the largest number of decimals written
// in its prices and amounts. Texts with an exponent or non-ASCII bytes are handed back in
// `exotic` for Python's Decimal to measure (rare; exactness over speed there).
//
// Known difference: the reference's int() also reads non-ASCII digits and whitespace in
// timestamps and ids; here those rows are bad_timestamp / bad_id / malformed.
#include <array>
#include <cstdint>
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

class TardisDecoder final : public LineSink {
 public:
  explicit TardisDecoder(bool infer) : infer_(infer) {}

  // A known instrument, by its symbol as written in the files (utf-8 bytes).
  void add_spec(const std::string& symbol, uint32_t instrument, Grid price, Grid qty);

  void begin_file(uint32_t file_index, bool gzip, TardisFile file);
  void set_threads(bool on) { reader_.set_threads(on); }
  void feed(const uint8_t* data, size_t n) { reader_.feed(data, n, *this); }
  void feed_plain(const uint8_t* data, size_t n) { reader_.feed_plain(data, n, *this); }
  void damage(const char* kind) { reader_.damage(kind, *this); }
  void end_file() { reader_.end(*this); }

  void on_line(const char* p, size_t n, int64_t line_no) override;
  void on_damage(const char* kind, int64_t line_no, const std::string& tail) override;

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
  LineReader reader_;
  TardisFile file_spec_;
  uint32_t file_ = 0;
  int64_t line_no_ = 0;
  CsvFields csv_;
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
  // per file: the incremental_book_L2 message key and the trades' id kind
  bool has_key_ = false;
  const Sym* key_sym_ = nullptr;
  int64_t key_tsx_ = 0, key_tsl_ = 0;
  bool key_snap_ = false;
  int numeric_ids_ = -1;  // -1 unknown, 0 row ordinals, 1 numeric ids

  std::unordered_map<std::string, uint32_t> found_index_;
};

}  // namespace bot4::ingest
