#pragma once
// Counted rejections by reason with the first sample of each, for the CSV decoders (Tardis,
// LOBSTER). The Python side owns the text formatting: a sample is the raw bytes of the offending
// line (cut at 200 bytes, decoded there as utf-8 with replacement) or a message the decoder wrote.
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace bot4::ingest {

inline constexpr size_t kRejectionSampleBytes = 200;

struct TextSample {
  uint32_t file = 0;
  int64_t line = 0;
  std::string raw;
};

template <size_t N>
struct RejectionTable {
  std::array<int64_t, N> counts{};
  std::array<TextSample, N> samples{};
  std::vector<uint8_t> order;  // reasons in order of first occurrence

  // Counts one rejection; the first of its reason keeps (file, line, text[:200]) as its sample.
  void reject(size_t reason, uint32_t file, int64_t line, const char* text, size_t n) {
    if (counts[reason]++ != 0) return;
    order.push_back(static_cast<uint8_t>(reason));
    TextSample& s = samples[reason];
    s.file = file;
    s.line = line;
    s.raw.assign(text, n < kRejectionSampleBytes ? n : kRejectionSampleBytes);
  }
};

}  // namespace bot4::ingest
