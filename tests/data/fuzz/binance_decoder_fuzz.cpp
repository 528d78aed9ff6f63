// Sanitizer fuzz driver for the native Binance decoder (core/ingest): no crash, no undefined
// behaviour, no leak on damaged or hostile input. Not part of the extension build.
//
// libFuzzer (clang):  clang++ -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -Icore \
//                       tests/data/fuzz/binance_decoder_fuzz.cpp core/ingest/*.cpp -DBOT4_HAVE_ZLIB -lz
// Standalone (gcc):   g++ -std=c++20 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
//                       -DBOT4_FUZZ_MAIN -DBOT4_HAVE_ZLIB -Icore tests/data/fuzz/binance_decoder_fuzz.cpp \
//                       core/ingest/*.cpp -lz -pthread -o /tmp/fuzz_binance
//                     /tmp/fuzz_binance SEED_LINES.txt ITERATIONS
// The standalone driver mutates real lines (cut, splice junk, flip bits, duplicate, swap, drop)
// and also feeds random bytes as gzip, with both gap policies, threaded and serial inflate.
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "ingest/binance_decoder.hpp"

namespace {

using bot4::ingest::BinanceDecoder;
using bot4::ingest::Grid;

void run(const uint8_t* data, size_t n, bool futures, bool gap_continue, bool gzip, bool threads) {
  BinanceDecoder d(futures, gap_continue);
  d.add_spec("BTCUSDT", 1, Grid{1, 1}, Grid{3, 1});
  d.add_spec("ETHUSDT", 2, Grid{2, 1}, Grid{3, 1});
  d.set_threads(threads);
  try {
    d.begin_file(0, gzip);
    // uneven chunks exercise the piece alignment and the line tail
    size_t at = 0, step = 1 + n / 7;
    while (at < n) {
      const size_t take = n - at < step ? n - at : step;
      d.feed(data + at, take);
      at += take;
      step = step * 3 / 2 + 1;
    }
    d.end_file();
    d.finish();
  } catch (const bot4::ingest::UnknownSymbol&) {
    // a damaged symbol name: the loader turns this into DataError
  }
  // touch the results so that a bad write would surface
  volatile int64_t sink = 0;
  for (const auto& e : d.book) sink = sink + e.price;
  for (const auto& e : d.trades) sink = sink + e.qty;
  for (const auto& e : d.bbo) sink = sink + e.bid_qty;
  (void)sink;
}

std::string gzip_bytes(const std::string& s) {
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, s.size()) + 32, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(s.data()));
  z.avail_in = static_cast<uInt>(s.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t n) {
  if (n == 0) return 0;
  const uint8_t mode = data[0];
  run(data + 1, n - 1, mode & 1, mode & 2, mode & 4, mode & 8);
  return 0;
}

#ifdef BOT4_FUZZ_MAIN
int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s SEED_LINES.txt ITERATIONS\n", argv[0]);
    return 2;
  }
  std::ifstream in(argv[1], std::ios::binary);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  if (lines.empty()) return 2;
  const long iterations = std::stol(argv[2]);
  std::mt19937_64 rng(20240808);
  const std::string junk[] = {"", " ", "{", "}", "[", "]", "\"", "\\", ",", ":", "0", "-", ".", "e", "null",
                        "true", "\\u0041", "\\ud800", "\xff", "\xc3\xa9", std::string(1, '\0'),
                        "\t", "1e999", "NaN", "\"stream\"", "\"lastUpdateId\"", "@depth", "@trade",
                        "@bookTicker", "99999999999999999999999"};
  const size_t n_junk = sizeof(junk) / sizeof(junk[0]);
  for (long it = 0; it < iterations; ++it) {
    std::vector<std::string> cur(lines);
    const int ops = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < ops && !cur.empty(); ++k) {
      const size_t i = rng() % cur.size();
      std::string& l = cur[i];
      switch (rng() % 6) {
        case 0: l.resize(l.empty() ? 0 : rng() % (l.size() + 1)); break;
        case 1: {
          const size_t at = l.empty() ? 0 : rng() % (l.size() + 1);
          const size_t w = std::min<size_t>(rng() % 5, l.size() - at);
          l.replace(at, w, junk[rng() % n_junk]);
          break;
        }
        case 2:
          if (!l.empty()) l[rng() % l.size()] ^= static_cast<char>(1u << (rng() % 8));
          break;
        case 3: cur.insert(cur.begin() + static_cast<long>(i), l); break;
        case 4:
          if (i + 1 < cur.size()) std::swap(cur[i], cur[i + 1]);
          break;
        default: cur.erase(cur.begin() + static_cast<long>(i)); break;
      }
    }
    std::string text;
    for (const auto& l : cur) {
      text += l;
      text += '\n';
    }
    const unsigned mode = static_cast<unsigned>(rng());
    if (mode & 4) {
      std::string gz = gzip_bytes(text);
      if ((mode & 16) && gz.size() > 20) {  // damage the compressed stream too
        gz[10 + rng() % (gz.size() - 10)] ^= static_cast<char>(1u << (rng() % 8));
      }
      if (mode & 32) gz.resize(rng() % (gz.size() + 1));
      run(reinterpret_cast<const uint8_t*>(gz.data()), gz.size(), mode & 1, mode & 2, true, mode & 8);
    } else {
      run(reinterpret_cast<const uint8_t*>(text.data()), text.size(), mode & 1, mode & 2, false, false);
    }
    if (it % 64 == 0) {  // raw garbage, claimed to be gzip
      std::string junk_bytes(rng() % 4096, '\0');
      for (char& c : junk_bytes) c = static_cast<char>(rng());
      if (junk_bytes.size() >= 2 && (it % 128 == 0)) {
        junk_bytes[0] = '\x1f';
        junk_bytes[1] = '\x8b';
      }
      run(reinterpret_cast<const uint8_t*>(junk_bytes.data()), junk_bytes.size(), true, false, true, true);
    }
  }
  std::printf("ok: %ld iterations over %zu seed lines\n", iterations, lines.size());
  return 0;
}
#endif
