#include "book/book_set.hpp"

#include <chrono>

namespace bot4::book {

L2Book& BookSet::add(InstrumentId id, L2BookConfig config) {
  cached_ = nullptr;
  for (size_t i = 0; i < ids_.size(); ++i) {
    if (ids_[i] == id) {
      books_[i] = std::make_unique<L2Book>(config);
      return *books_[i];
    }
  }
  ids_.push_back(id);
  books_.push_back(std::make_unique<L2Book>(config));
  return *books_.back();
}

L2Book* BookSet::find(InstrumentId id) {
  for (size_t i = 0; i < ids_.size(); ++i)
    if (ids_[i] == id) return books_[i].get();
  return nullptr;
}

const L2Book* BookSet::find(InstrumentId id) const {
  for (size_t i = 0; i < ids_.size(); ++i)
    if (ids_[i] == id) return books_[i].get();
  return nullptr;
}

std::vector<InstrumentId> BookSet::instruments() const { return ids_; }

BookStatus BookSet::apply(const BookEvent& ev) {
  L2Book* book = lookup(ev.instrument);
  if (book == nullptr) [[unlikely]] {
    ++orphan_counters_.events;
    orphan_counters_.count(BookStatus::UnknownInstrument);
    if (ev.flags & event_flag::kLast) ++orphan_counters_.messages;
    return BookStatus::UnknownInstrument;
  }
  return book->apply(ev);
}

void BookSet::apply_batch(const BookEvent* events, size_t n, const int64_t* record_at,
                          size_t n_record, TopOfBook* tops) {
  constexpr TopOfBook kEmpty{kNoBidPrice, 0, kNoAskPrice, 0};
  size_t i = 0;
  for (size_t r = 0; r < n_record; ++r) {
    const int64_t target = record_at[r];
    if (target < 0 || n == 0) {
      tops[r] = kEmpty;
      continue;
    }
    const size_t last = static_cast<size_t>(target) < n ? static_cast<size_t>(target) : n - 1;
    for (; i <= last; ++i) apply(events[i]);
    const L2Book* book = lookup(events[last].instrument);
    tops[r] = book != nullptr ? book->top() : kEmpty;
  }
  for (; i < n; ++i) apply(events[i]);
}

size_t BookSet::apply_batch_timed(const BookEvent* events, size_t n, int64_t* latency_ns) {
  using Clock = std::chrono::steady_clock;
  size_t messages = 0;
  size_t i = 0;
  while (i < n) {
    const auto start = Clock::now();
    size_t j = i;
    while (j < n && !(events[j].flags & event_flag::kLast)) apply(events[j++]);
    if (j == n) {
      break;  // trailing events without a message end are applied but not timed
    }
    apply(events[j]);
    const auto stop = Clock::now();
    latency_ns[messages++] =
        std::chrono::duration_cast<std::chrono::nanoseconds>(stop - start).count();
    i = j + 1;
  }
  return messages;
}

BookCounters BookSet::counters() const {
  BookCounters total = orphan_counters_;
  for (const auto& book : books_) total.merge(book->counters());
  return total;
}

void BookSet::reset_counters() {
  orphan_counters_ = {};
  for (auto& book : books_) book->reset_counters();
}

}  // namespace bot4::book
