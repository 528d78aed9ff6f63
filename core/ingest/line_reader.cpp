#include "ingest/line_reader.hpp"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>

#ifdef BOT4_HAVE_ZLIB
#include <zlib.h>
#endif

namespace bot4::ingest {

namespace {
constexpr size_t kPiece = 4096;
constexpr size_t kBlock = 256 * 1024;  // inflated bytes handed to the splitter at once
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
  out_.size = 0;
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

void LineReader::Buf::reserve_more(size_t extra) {
  if (cap - size >= extra) return;
  size_t want = cap < 65536 ? 65536 : cap * 2;
  while (want - size < extra) want *= 2;
  std::unique_ptr<char[]> grown(new char[want]);
  if (size > 0) std::memcpy(grown.get(), data.get(), size);
  data = std::move(grown);
  cap = want;
}

void LineReader::feed(const uint8_t* data, size_t n, LineSink& sink) {
  if (damaged_) return;
  if (!gzip_) {
    split(reinterpret_cast<const char*>(data), n, sink);
    return;
  }
  if (threads_ && n >= kBlock) {
    feed_threaded(data, n, sink);
  } else {
    feed_serial(data, n, sink);
  }
}

void LineReader::feed_serial(const uint8_t* data, size_t n, LineSink& sink) {
  while (n > 0) {
    const size_t room = kPiece - static_cast<size_t>(offset_ % kPiece);
    const size_t take = n < room ? n : room;
    const char* failure = inflate_piece(data, take, out_);
    data += take;
    n -= take;
    offset_ += take;
    if (failure != nullptr || out_.size >= kBlock || n == 0) {
      const size_t len = out_.size;
      out_.size = 0;
      if (len > 0) split(out_.data.get(), len, sink);
      if (failure != nullptr) {
        damage(failure, sink);
        return;
      }
    }
  }
}

// Producer (second thread): inflates pieces into blocks. Consumer (this thread): splits lines and
// runs the sink. Blocks are recycled; at most kMaxQueued wait, so memory stays bounded.
void LineReader::feed_threaded(const uint8_t* data, size_t n, LineSink& sink) {
  struct Block {
    Buf buf;
    const char* failure = nullptr;
  };
  constexpr size_t kMaxQueued = 8;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<Block>> full, spare;
  bool done = false, cancel = false;
  std::exception_ptr producer_error;

  std::thread producer([&] {
    try {
      const uint8_t* p = data;
      size_t left = n;
      uint64_t offset = offset_;
      std::unique_ptr<Block> block;
      auto next_block = [&]() -> bool {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return cancel || full.size() < kMaxQueued; });
        if (cancel) return false;
        if (!spare.empty()) {
          block = std::move(spare.front());
          spare.pop_front();
        } else {
          block = std::make_unique<Block>();
        }
        block->buf.size = 0;
        block->failure = nullptr;
        return true;
      };
      auto push = [&] {
        std::lock_guard<std::mutex> lock(mu);
        full.push_back(std::move(block));
        cv.notify_all();
      };
      if (next_block()) {
        bool open = true;
        while (left > 0) {
          const size_t room = kPiece - static_cast<size_t>(offset % kPiece);
          const size_t take = left < room ? left : room;
          const char* failure = inflate_piece(p, take, block->buf);
          p += take;
          left -= take;
          offset += take;
          if (failure != nullptr) {
            block->failure = failure;
            break;
          }
          if (block->buf.size >= kBlock && left > 0) {
            push();
            if (!next_block()) {
              open = false;
              break;
            }
          }
        }
        if (open) push();
      }
    } catch (...) {
      producer_error = std::current_exception();
    }
    std::lock_guard<std::mutex> lock(mu);
    done = true;
    cv.notify_all();
  });

  std::exception_ptr consumer_error;
  try {
    while (true) {
      std::unique_ptr<Block> block;
      {
        std::unique_lock<std::mutex> lock(mu);
        cv.wait(lock, [&] { return !full.empty() || done; });
        if (full.empty()) break;
        block = std::move(full.front());
        full.pop_front();
      }
      if (block->buf.size > 0) split(block->buf.data.get(), block->buf.size, sink);
      const char* failure = block->failure;
      {
        std::lock_guard<std::mutex> lock(mu);
        spare.push_back(std::move(block));
        cv.notify_all();
      }
      if (failure != nullptr) {
        damage(failure, sink);
        break;
      }
    }
  } catch (...) {
    consumer_error = std::current_exception();
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    cancel = true;
    cv.notify_all();
  }
  producer.join();
  offset_ += n;
  if (consumer_error) std::rethrow_exception(consumer_error);
  if (producer_error) std::rethrow_exception(producer_error);
}

const char* LineReader::inflate_piece(const uint8_t* p, size_t n, Buf& out) {
#ifdef BOT4_HAVE_ZLIB
  Z& z = *z_;
  size_t keep = out.size;  // what survives if zlib fails in this piece (earlier members' output)
  const char* failure = nullptr;
  auto inflate_some = [&](const Bytef* in, size_t in_n) -> int {
    z.s.next_in = const_cast<Bytef*>(in);
    z.s.avail_in = static_cast<uInt>(in_n);
    while (true) {
      out.reserve_more(65536);
      const size_t room = out.cap - out.size;
      z.s.next_out = reinterpret_cast<Bytef*>(out.data.get() + out.size);
      z.s.avail_out = static_cast<uInt>(room);
      const int rc = inflate(&z.s, Z_NO_FLUSH);
      out.size += room - z.s.avail_out;
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
          keep = out.size;
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
        keep = out.size;
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
        keep = out.size;
        break;
      }
      // A new member starts: its output in this piece is what a failure would drop.
      inflateReset(&z.s);
      z.state = Z::kIn;
      keep = out.size;
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
  if (failure != nullptr) out.size = keep;
  return failure;
#else
  (void)p;
  (void)n;
  (void)out;
  return "corrupt_file";
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
