#pragma once
// Books of several instruments fed from one event batch: a book per instrument id. One template
// serves the L2 books (BookEvent) and the L3 books (OrderEvent).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "book/batch_apply.hpp"
#include "book/l2_book.hpp"
#include "book/l3_book.hpp"

namespace bot4::book {

template <typename Book, typename Event, typename Config>
class InstrumentBooks {
 public:
  // Registers an instrument; re-registering an id replaces its book.
  Book& add(InstrumentId id, Config config = {}) {
    cached_ = nullptr;
    for (size_t i = 0; i < ids_.size(); ++i) {
      if (ids_[i] == id) {
        books_[i] = std::make_unique<Book>(config);
        return *books_[i];
      }
    }
    ids_.push_back(id);
    books_.push_back(std::make_unique<Book>(config));
    return *books_.back();
  }

  Book* find(InstrumentId id) const {
    for (size_t i = 0; i < ids_.size(); ++i)
      if (ids_[i] == id) return books_[i].get();
    return nullptr;
  }

  std::vector<InstrumentId> instruments() const { return ids_; }

  BookStatus apply(const Event& ev) {
    Book* book = lookup(ev.instrument);
    if (book == nullptr) [[unlikely]] {
      ++orphan_counters_.events;
      orphan_counters_.count(BookStatus::UnknownInstrument);
      if (ev.flags & event_flag::kLast) ++orphan_counters_.messages;
      return BookStatus::UnknownInstrument;
    }
    return book->apply(ev);
  }

  // Applies the batch; when `record_at` is given (sorted, ascending event indices), writes the
  // top of book of the recorded event's instrument after each of those events to `tops`.
  void apply_batch(const Event* events, size_t n, const int64_t* record_at = nullptr,
                   size_t n_record = 0, TopOfBook* tops = nullptr) {
    constexpr TopOfBook kEmpty{kNoBidPrice, 0, kNoAskPrice, 0};
    apply_recording_tops(
        n, record_at, n_record, tops, [&](size_t i) { apply(events[i]); },
        [&](int64_t target) {
          if (target < 0 || n == 0) return kEmpty;
          const size_t last = static_cast<size_t>(target) < n ? static_cast<size_t>(target) : n - 1;
          const Book* book = lookup(events[last].instrument);
          return book != nullptr ? book->top() : kEmpty;
        });
  }

  void apply_batch_statuses(const Event* events, size_t n, uint8_t* statuses) {
    for (size_t i = 0; i < n; ++i) statuses[i] = static_cast<uint8_t>(apply(events[i]));
  }

  // Applies the batch and writes the latency in ns of each message (events up to and including
  // one flagged kLast) to `latency_ns`, which must hold one entry per kLast event. Trailing
  // events without a message end are applied but not timed. Returns the messages timed.
  size_t apply_batch_timed(const Event* events, size_t n, int64_t* latency_ns) {
    using Clock = std::chrono::steady_clock;
    size_t messages = 0;
    size_t i = 0;
    while (i < n) {
      const auto start = Clock::now();
      size_t j = i;
      while (j < n && !(events[j].flags & event_flag::kLast)) apply(events[j++]);
      if (j == n) break;
      apply(events[j]);
      const auto stop = Clock::now();
      latency_ns[messages++] =
          std::chrono::duration_cast<std::chrono::nanoseconds>(stop - start).count();
      i = j + 1;
    }
    return messages;
  }

  // Counters summed over every book, plus events for unregistered instruments.
  BookCounters counters() const {
    BookCounters total = orphan_counters_;
    for (const auto& book : books_) total.merge(book->counters());
    return total;
  }

  void reset_counters() {
    orphan_counters_ = {};
    for (auto& book : books_) book->reset_counters();
  }

 private:
  Book* lookup(InstrumentId id) {
    if (id == cached_id_ && cached_ != nullptr) return cached_;
    Book* book = find(id);
    if (book != nullptr) {
      cached_id_ = id;
      cached_ = book;
    }
    return book;
  }

  std::vector<InstrumentId> ids_;
  std::vector<std::unique_ptr<Book>> books_;
  InstrumentId cached_id_ = 0;
  Book* cached_ = nullptr;
  BookCounters orphan_counters_;  // events whose instrument has no book
};

using BookSet = InstrumentBooks<L2Book, BookEvent, L2BookConfig>;
using L3BookSet = InstrumentBooks<L3Book, OrderEvent, L3BookConfig>;

}  // namespace bot4::book
