#include "ingest/line_reader.hpp"

#include <cstring>
#include <stdexcept>

#ifdef BOT4_HAVE_ZLIB
#include <zlib.h>
#endif

namespace bot4::ingest {

namespace {
constexpr size_t kPiece = 4096;
constexpr unsigned char kMagic0 = 0x1f;
constexpr unsigned char kMagic1 = 0x8b;
}  // namespace

#ifdef BOT4_HAVE_ZLIB
struct LineReader::Z {
  z_stream s{};
  bool init = false;
  // Member state: kIn = inside a member; kAfter = a member ended, nothing seen since;
  // kMagic = one byte (0x1f) of the next member seen; kPadding = zero padding after the last member.
  enum State { kIn, kAfter, kMagic, kPadding } state = kIn;
  ~Z() {
    if (init) inflateEnd(&s);
  }
  void reset() {
    if (!init) {
      std::memset(&s, 0, sizeof(s));
      if (inflateInit2(&s, 31) != Z_OK) throw std::runtime_error("zlib inflateInit2 failed");
      init = true;
    } else {
      inflateReset(&s);
    }
    state = kIn;
  }
};
bool zlib_available() { return true; }
#else
struct LineReader::Z {};
bool zlib_available() { return false; }
#endif

LineReader::LineReader() : z_(std::make_unique<Z>()) {}
LineReader::~LineReader() = default;

void LineReader::begin(bool gzip) {
  gzip_ = gzip;
  damaged_ = false;
  line_no_ = 0;
  offset_ = 0;
  tail_.clear();
  out_.clear();
#ifdef BOT4_HAVE_ZLIB
  if (gzip_) z_->reset();
#else
  if (gzip_) throw std::runtime_error("bot4 was built without zlib: inflate in Python and use feed_plain");
#endif
}

void LineReader::emit(const char* p, size_t n, LineSink& sink) {
  if (n > 0 && p[n - 1] == '\r') --n;
  sink.on_line(p, n, ++line_no_);
}

void LineReader::split(const char* p, size_t n, LineSink& sink) {
  const char* end = p + n;
  if (!tail_.empty()) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', n));
    if (nl == nullptr) {
      tail_.append(p, n);
      return;
    }
    tail_.append(p, static_cast<size_t>(nl - p));
    std::string line;
    line.swap(tail_);
    emit(line.data(), line.size(), sink);
    p = nl + 1;
  }
  while (p < end) {
    const char* nl = static_cast<const char*>(std::memchr(p, '\n', static_cast<size_t>(end - p)));
    if (nl == nullptr) break;
    emit(p, static_cast<size_t>(nl - p), sink);
    p = nl + 1;
  }
  tail_.assign(p, static_cast<size_t>(end - p));
}

void LineReader::damage(const char* kind, LineSink& sink) {
  if (damaged_) return;
  damaged_ = true;
  sink.on_damage(kind, line_no_ + 1, tail_.substr(0, 200));
}

void LineReader::feed(const uint8_t* data, size_t n, LineSink& sink) {
  if (damaged_) return;
  if (!gzip_) {
    split(reinterpret_cast<const char*>(data), n, sink);
    return;
  }
  while (n > 0 && !damaged_) {
    const size_t room = kPiece - static_cast<size_t>(offset_ % kPiece);
    const size_t take = n < room ? n : room;
    inflate_piece(data, take, sink);
    data += take;
    n -= take;
    offset_ += take;
  }
}

void LineReader::inflate_piece(const uint8_t* p, size_t n, LineSink& sink) {
#ifdef BOT4_HAVE_ZLIB
  Z& z = *z_;
  size_t len = 0;   // inflated bytes of this piece in out_
  size_t keep = 0;  // what survives if zlib fails in this piece (earlier members' output)
  const char* failure = nullptr;
  auto inflate_some = [&](const Bytef* in, size_t in_n) -> int {
    z.s.next_in = const_cast<Bytef*>(in);
    z.s.avail_in = static_cast<uInt>(in_n);
    while (true) {
      if (out_.size() - len < 65536) out_.resize(out_.size() < 262144 ? 262144 : out_.size() * 2);
      const size_t room = out_.size() - len;
      z.s.next_out = reinterpret_cast<Bytef*>(out_.data() + len);
      z.s.avail_out = static_cast<uInt>(room);
      const int rc = inflate(&z.s, Z_NO_FLUSH);
      len += room - z.s.avail_out;
      if (rc == Z_STREAM_END) return rc;
      if (rc != Z_OK && rc != Z_BUF_ERROR) return rc;
      if (z.s.avail_out != 0) return Z_OK;  // input used up (or more input needed)
    }
  };
  while (n > 0 && failure == nullptr) {
    if (z.state == Z::kPadding) {
      for (size_t i = 0; i < n; ++i) {
        if (p[i] != 0) {  // data after zero padding (the reference treats it as garbage too)
          failure = "corrupt_file";
          keep = len;
          break;
        }
      }
      break;
    }
    if (z.state == Z::kAfter) {
      if (p[0] == 0) {
        z.state = Z::kPadding;
        continue;
      }
      if (p[0] != kMagic0) {  // trailing garbage after a member: output so far is kept
        failure = "corrupt_file";
        keep = len;
        break;
      }
      z.state = Z::kMagic;
      ++p;
      --n;
      continue;
    }
    if (z.state == Z::kMagic) {
      if (p[0] != kMagic1) {
        failure = "corrupt_file";
        keep = len;
        break;
      }
      // A new member starts: its output in this piece is what a failure would drop.
      inflateReset(&z.s);
      z.state = Z::kIn;
      keep = len;
      static const Bytef magic[2] = {kMagic0, kMagic1};
      const int rc = inflate_some(magic, 2);
      if (rc != Z_OK) {
        failure = "corrupt_file";
        break;
      }
      ++p;
      --n;
      continue;
    }
    const int rc = inflate_some(p, n);
    if (rc == Z_STREAM_END) {
      const size_t used = n - z.s.avail_in;
      p += used;
      n -= used;
      z.state = Z::kAfter;
      continue;
    }
    if (rc != Z_OK) {
      failure = "corrupt_file";  // this member's output of this piece is dropped
      break;
    }
    n = 0;
  }
  if (failure != nullptr) {
    if (keep > 0) split(out_.data(), keep, sink);
    damage(failure, sink);
    return;
  }
  if (len > 0) split(out_.data(), len, sink);
#else
  (void)p;
  (void)n;
  (void)sink;
#endif
}

void LineReader::end(LineSink& sink) {
  if (damaged_) return;
#ifdef BOT4_HAVE_ZLIB
  if (gzip_) {
    if (z_->state == Z::kIn) {
      damage("truncated_file", sink);
      return;
    }
    if (z_->state == Z::kMagic) {
      damage("truncated_file", sink);
      return;
    }
  }
#endif
  if (!tail_.empty()) {
    std::string line;
    line.swap(tail_);
    emit(line.data(), line.size(), sink);
  }
}

}  // namespace bot4::ingest
