#pragma once
// Books of several instruments fed from one event batch: a book per instrument id.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "book/l2_book.hpp"

namespace bot4::book {

class BookSet {
 public:
  // Registers an instrument; re-registering an id replaces its book.
  L2Book& add(InstrumentId id, L2BookConfig config = {});
  L2Book* find(InstrumentId id);
  const L2Book* find(InstrumentId id) const;
  std::vector<InstrumentId> instruments() const;

  BookStatus apply(const BookEvent& ev);

  // As L2Book::apply_batch; each recorded top is that of the recorded event's instrument.
  void apply_batch(const BookEvent* events, size_t n, const int64_t* record_at = nullptr,
                   size_t n_record = 0, TopOfBook* tops = nullptr);

  // Applies the batch and writes the latency in ns of each message (events up to and including
  // one flagged kLast) to `latency_ns`, which must hold one entry per kLast event. Returns the
  // number of messages timed.
  size_t apply_batch_timed(const BookEvent* events, size_t n, int64_t* latency_ns);

  // Counters summed over every book, plus events for unregistered instruments.
  BookCounters counters() const;
  void reset_counters();

 private:
  L2Book* lookup(InstrumentId id) {
    if (id == cached_id_ && cached_ != nullptr) return cached_;
    L2Book* book = find(id);
    if (book != nullptr) {
      cached_id_ = id;
      cached_ = book;
    }
    return book;
  }

  std::vector<InstrumentId> ids_;
  std::vector<std::unique_ptr<L2Book>> books_;
  InstrumentId cached_id_ = 0;
  L2Book* cached_ = nullptr;
  BookCounters orphan_counters_;  // events whose instrument has no book
};

}  // namespace bot4::book
