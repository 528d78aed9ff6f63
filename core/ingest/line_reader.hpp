#pragma once
// Streaming line splitter over gzip (multi-member) or plain bytes, fed chunk by chunk.
//
// Damage contract (the same as bot4.data.progress.iter_lines, the Python reference): if the gzip
// stream is corrupt or ends early, every complete line decoded before the damage is delivered,
// the incomplete tail is not, and the sink hears about the damage once with the number of the
// first line that could not be read. Compressed input is inflated in 4 KiB pieces aligned to the
// file offset and the output of the piece in which zlib reports an error is dropped, exactly as
// the Python reference (which retries a failing 1 MiB chunk in 4 KiB pieces) does.
//
// Without zlib at build time (BOT4_HAVE_ZLIB undefined) only plain bytes can be fed; the Python
// side then inflates and reports damage through `damage()`.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace bot4::ingest {

class LineSink {
 public:
  virtual ~LineSink() = default;
  // One line without its '\n' (and without a trailing '\r'); line_no is 1-based within the file.
  virtual void on_line(const char* p, size_t n, int64_t line_no) = 0;
  // "truncated_file" | "corrupt_file"; line_no is the first line not read; tail = the bytes
  // after the last complete line.
  virtual void on_damage(const char* kind, int64_t line_no, const std::string& tail) = 0;
};

bool zlib_available();

class LineReader {
 public:
  LineReader();
  ~LineReader();
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Starts a file; gzip=true when its first two bytes are the gzip magic.
  void begin(bool gzip);
  // Bytes of the file as stored (compressed for gzip). Ignored after damage.
  void feed(const uint8_t* data, size_t n, LineSink& sink);
  // Already decompressed bytes (the Python-side inflate fallback).
  void feed_plain(const uint8_t* data, size_t n, LineSink& sink) { split(reinterpret_cast<const char*>(data), n, sink); }
  // Damage found by the caller's own inflater (fallback path).
  void damage(const char* kind, LineSink& sink);
  // End of the file: reports truncation, delivers a final line without '\n'.
  void end(LineSink& sink);

  // Inflate on a second thread while this one splits and parses (for chunks >= 256 KiB).
  void set_threads(bool on) { threads_ = on; }

  bool damaged() const { return damaged_; }
  int64_t lines() const { return line_no_; }

 private:
  // Growable byte buffer without the zero-fill of std::vector::resize.
  struct Buf {
    std::unique_ptr<char[]> data;
    size_t size = 0, cap = 0;
    void reserve_more(size_t extra);
  };
  void split(const char* p, size_t n, LineSink& sink);
  void emit(const char* p, size_t n, LineSink& sink);
  // Inflates one piece, appending to out; on a zlib failure the piece's dropped output is cut off
  // and the damage kind is returned.
  const char* inflate_piece(const uint8_t* p, size_t n, Buf& out);
  void feed_serial(const uint8_t* data, size_t n, LineSink& sink);
  void feed_threaded(const uint8_t* data, size_t n, LineSink& sink);

  struct Z;
  std::unique_ptr<Z> z_;
  bool gzip_ = false;
  bool damaged_ = false;
  int64_t line_no_ = 0;
  uint64_t offset_ = 0;        // compressed bytes fed so far (piece alignment)
  std::string tail_;           // bytes after the last '\n'
  Buf out_;                    // inflated bytes not yet split (serial path)
  bool threads_ = true;
};

}  // namespace bot4::ingest
