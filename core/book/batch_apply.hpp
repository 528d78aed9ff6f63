#pragma once
// The one loop behind every book's batch call: apply events in order and, at each requested
// position (sorted event indices), record the top of book right after that event.
#include <cstddef>
#include <cstdint>

#include "common/events.hpp"

namespace bot4::book {

// apply_one(i) applies event i; top_after(target) returns the top of book to record for the
// requested index `target` (negative targets are recorded before anything is applied; targets
// past the end are clamped to the last event).
template <typename ApplyOne, typename TopAfter>
inline void apply_recording_tops(size_t n, const int64_t* record_at, size_t n_record,
                                 TopOfBook* tops, ApplyOne&& apply_one, TopAfter&& top_after) {
  size_t i = 0;
  for (size_t r = 0; r < n_record; ++r) {
    const int64_t target = record_at[r];
    if (target >= 0 && n > 0) {
      const size_t last = static_cast<size_t>(target) < n ? static_cast<size_t>(target) : n - 1;
      for (; i <= last; ++i) apply_one(i);
    }
    tops[r] = top_after(target);
  }
  for (; i < n; ++i) apply_one(i);
}

}  // namespace bot4::book
