// Sanitizer fuzz driver for the native Tardis and LOBSTER decoders (core/ingest): no crash, no
// undefined behaviour on damaged or hostile rows. Not part of the extension build (the Python
// targets fuzz/fuzz_tardis.py and fuzz/fuzz_lobster.py check output against the references).
//
// Standalone (gcc):   g++ -std=c++20 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all \
//                       -DBOT4_HAVE_ZLIB -Icore tests/data/fuzz/csv_decoders_fuzz.cpp \
//                       core/ingest/*.cpp -lz -pthread -o /tmp/fuzz_csv
//                     /tmp/fuzz_csv TARDIS.csv LOBSTER_MESSAGES.csv LOBSTER_ORDERBOOK.csv ITERATIONS
// It mutates real lines (cut, splice junk, flip bits, duplicate, swap, drop) and feeds them in
// uneven chunks, plain and as gzip (damaged too), to every Tardis kind and to LOBSTER with and
// without its orderbook file at several tick units.
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "ingest/lobster_decoder.hpp"
#include "ingest/tardis_decoder.hpp"

namespace {

using bot4::ingest::Grid;
using bot4::ingest::LobsterDecoder;
using bot4::ingest::TardisDecoder;
using bot4::ingest::TardisFile;
using bot4::ingest::TardisKind;

template <typename D>
void feed(D& d, const std::string& s) {
  size_t at = 0, step = 1 + s.size() / 7;
  while (at < s.size()) {
    const size_t take = s.size() - at < step ? s.size() - at : step;
    d.feed(reinterpret_cast<const uint8_t*>(s.data()) + at, take);
    at += take;
    step = step * 3 / 2 + 1;
  }
  d.end_file();
}

void run_tardis(const std::string& bytes, bool gzip, unsigned mode) {
  for (bool infer : {true, false}) {
    TardisDecoder d(infer);
    d.add_spec("BTC-PERPETUAL", 1, Grid{1, 5}, Grid{0, 10});
    d.add_spec("XBTUSD", 2, Grid{1, 5}, Grid{0, 1});
    d.set_threads(mode & 8);
    TardisFile f;
    f.kind = static_cast<TardisKind>(mode % 4);
    f.ncols = f.kind == TardisKind::kBookSnapshot ? 12 : 8;
    f.price_cols = {6};
    f.amount_cols = {7};
    if (f.kind == TardisKind::kBookSnapshot) f.pairs = {{0, 6, 7}, {0, 10, 11}, {1, 4, 5}, {1, 8, 9}};
    d.begin_file(0, gzip, f);
    feed(d, bytes);
    volatile int64_t sink = 0;
    for (const auto& e : d.book) sink = sink + e.price;
    for (const auto& e : d.trades) sink = sink + e.qty;
    for (const auto& e : d.bbo) sink = sink + e.bid_qty;
    (void)sink;
  }
}

void run_lobster(const std::string& messages, const std::string* book, unsigned mode) {
  LobsterDecoder d;
  d.begin_file(0, false);
  feed(d, messages);
  if (book != nullptr) {
    d.begin_file(1, false);
    feed(d, *book);
  }
  d.finish_parse();
  const int64_t units[] = {1, 100, 500};
  d.build(units[mode % 3], book != nullptr, 1'340'251'200'000'000'000, 1);
  volatile int64_t sink = 0;
  for (const auto& e : d.orders) sink = sink + e.qty;
  for (const auto& e : d.trades) sink = sink + e.qty;
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

std::vector<std::string> read_lines(const char* path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string mutate(std::vector<std::string> cur, std::mt19937_64& rng) {
  static const std::string junk[] = {"", " ", ",", "\"", "\"\"", "-", ".", "e", "1e3", "0", "-1", "true", "bid",
                                     "sell", "\xff", "\xc3\xa9", std::string(1, '\0'), "\t", "\r", "\x1c", "_",
                                     "99999999999999999999999", "9999999999", "-9999999999", "7", "6"};
  const int ops = 1 + static_cast<int>(rng() % 8);
  for (int k = 0; k < ops && !cur.empty(); ++k) {
    const size_t i = rng() % cur.size();
    std::string& l = cur[i];
    switch (rng() % 6) {
      case 0: l.resize(l.empty() ? 0 : rng() % (l.size() + 1)); break;
      case 1: {
        const size_t at = l.empty() ? 0 : rng() % (l.size() + 1);
        const size_t w = std::min<size_t>(rng() % 5, l.size() - at);
        l.replace(at, w, junk[rng() % (sizeof(junk) / sizeof(junk[0]))]);
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
  for (const auto& l : cur) text += l + '\n';
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 5) {
    std::fprintf(stderr, "usage: %s TARDIS.csv LOBSTER_MESSAGES.csv LOBSTER_ORDERBOOK.csv ITERATIONS\n", argv[0]);
    return 2;
  }
  const auto tardis = read_lines(argv[1]), messages = read_lines(argv[2]), book = read_lines(argv[3]);
  if (tardis.empty() || messages.empty() || book.empty()) return 2;
  const long iterations = std::stol(argv[4]);
  std::mt19937_64 rng(20240808);
  for (long it = 0; it < iterations; ++it) {
    const unsigned mode = static_cast<unsigned>(rng());
    const std::string text = mutate(tardis, rng);
    if (mode & 16) {
      std::string gz = gzip_bytes(text);
      if ((mode & 32) && gz.size() > 20) gz[10 + rng() % (gz.size() - 10)] ^= static_cast<char>(1u << (rng() % 8));
      if (mode & 64) gz.resize(rng() % (gz.size() + 1));
      run_tardis(gz, true, mode);
    } else {
      run_tardis(text, false, mode);
    }
    const std::string m = mutate(messages, rng), b = mutate(book, rng);
    run_lobster(m, (mode & 128) ? nullptr : &b, mode);
  }
  std::printf("ok: %ld iterations\n", iterations);
  return 0;
}
