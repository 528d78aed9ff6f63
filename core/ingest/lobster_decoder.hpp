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
#include <array>
#include <cstdint>
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

class LobsterDecoder final : public LineSink {
 public:
  LobsterDecoder() = default;

  // file 0: the message file, 1: the orderbook file.
  void begin_file(uint32_t file, bool gzip);
  void set_threads(bool on) { reader_.set_threads(on); }
  void feed(const uint8_t* data, size_t n) { reader_.feed(data, n, *this); }
  void feed_plain(const uint8_t* data, size_t n) { reader_.feed_plain(data, n, *this); }
  void damage(const char* kind) { reader_.damage(kind, *this); }
  void end_file() { reader_.end(*this); }
  // After both files: the row-count check.
  void finish_parse();
  // Every price in the files (valid messages and orderbook rows) is a whole cent.
  bool all_cents() const { return all_cents_; }
  // Events with prices in ticks of `unit` (LOBSTER price units per tick); reconcile: an
  // orderbook file was given; base_ns: added to the times (UTC midnight of the trading day).
  void build(int64_t unit, bool reconcile, int64_t base_ns, uint32_t instrument);

  void on_line(const char* p, size_t n, int64_t line_no) override;
  void on_damage(const char* kind, int64_t line_no, const std::string& tail) override;

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

  void message_line(const char* p, size_t n);
  void book_line(const char* p, size_t n);
  void reject(LobsterReason r, uint32_t file, int64_t line, const char* text, size_t n) {
    rejections.reject(static_cast<size_t>(r), file, line, text, n);
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

  LineReader reader_;
  uint32_t file_ = 0;
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
