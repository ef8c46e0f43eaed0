#include "layer/layer_stream.hpp"

#include <archive.h>
#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <unistd.h>
#include <zstd.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "base/threads.hpp"

namespace imgbuild {

namespace {

constexpr size_t kIn = 256 << 10;
/// As large as the tar reader's own reads of a file's bytes are useful:
/// fewer calls, and the unpacker writes whole megabytes.
constexpr size_t kOut = 1 << 20;

bool starts_gzip(const char* p) { return p[0] == '\x1f' && p[1] == '\x8b'; }

/// A zstd frame, or a skippable frame (which a zstd stream may start with).
bool starts_zstd(const char* p) {
  uint32_t magic = uint32_t(uint8_t(p[0])) | uint32_t(uint8_t(p[1])) << 8 | uint32_t(uint8_t(p[2])) << 16 |
                   uint32_t(uint8_t(p[3])) << 24;
  return magic == ZSTD_MAGICNUMBER || (magic & ZSTD_MAGIC_SKIPPABLE_MASK) == ZSTD_MAGIC_SKIPPABLE_START;
}

std::string gzip_error(int rc) {
  switch (rc) {
    case ISAL_INVALID_WRAPPER:
      return "damaged gzip header";
    case ISAL_UNSUPPORTED_METHOD:
      return "gzip data compressed with a method other than deflate";
    case ISAL_INCORRECT_CHECKSUM:
      return "gzip data does not match its checksum (the blob is damaged)";
    default:
      return "damaged gzip data";
  }
}

}  // namespace

struct LayerStream::Inflater {
  Inflater() { start(); }
  void start() {
    isal_inflate_init(&state);
    state.crc_flag = ISAL_GZIP;
  }
  inflate_state state;
};

struct LayerStream::ZstdReader {
  ZstdReader() : stream(ZSTD_createDStream()) {
    if (!stream) throw std::bad_alloc();
  }
  ~ZstdReader() { ZSTD_freeDStream(stream); }
  ZSTD_DStream* stream;
  size_t last = 0;  ///< what the last call that moved anything returned: 0 when a frame just ended
};

namespace {

Fd open_blob(const std::filesystem::path& blob, const std::string& label) {
  Fd fd(::open(blob.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw std::runtime_error(label + ": cannot open " + blob.string() + ": " + std::strerror(errno));
  return fd;
}

uint64_t size_of(const Fd& fd) {
  struct stat st {};
  return ::fstat(fd.get(), &st) == 0 ? uint64_t(st.st_size) : 0;
}

}  // namespace

LayerStream::LayerStream(const std::filesystem::path& blob, std::string label)
    : LayerStream(open_blob(blob, label), nullptr, label) {}  // a copy: the arguments' order is unspecified

LayerStream::LayerStream(std::shared_ptr<GrowingFile> incoming, std::string label)
    : LayerStream(incoming->open_reader(), incoming, std::move(label)) {}

LayerStream::LayerStream(Fd fd, std::shared_ptr<GrowingFile> incoming, std::string label)
    : label_(std::move(label)),
      fd_(std::move(fd)),
      incoming_(std::move(incoming)),
      in_(std::make_unique_for_overwrite<char[]>(kIn)) {
  ::posix_fadvise(fd_.get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  while (in_end_ < 4 && fill()) {
  }
  if (in_end_ >= 2 && starts_gzip(in_.get())) {
    kind_ = Kind::Gzip;
    inflater_ = std::make_unique<Inflater>();
  } else if (in_end_ >= 4 && starts_zstd(in_.get())) {
    kind_ = Kind::Zstd;
    zstd_ = std::make_unique<ZstdReader>();
  }
  if (kind_ == Kind::Plain) return;
  decode_ahead_ = (incoming_ ? incoming_->expected_size() : size_of(fd_)) >= kDecodeAheadFrom;
  if (!decode_ahead_) out_ = std::make_unique_for_overwrite<char[]>(kOut);
}

/// Decodes a compressed blob on a thread of its own, up to kDepth chunks of
/// kOut bytes ahead of next(). The stream's decoder state (fd_, in_, the
/// inflater) is the thread's alone from the first next() on. The reader
/// hashes what it gets (next()): unpacking golang's 468 MB layer, the
/// decoder spent 0.6 CPU-s inflating and 0.3 hashing, and the unpacker
/// writing its files 0.5, so the hash waits least beside the files.
class LayerStream::DecodeAhead {
public:
  explicit DecodeAhead(LayerStream& stream) : stream_(stream), thread_([this] { run(); }) {}
  ~DecodeAhead() { stop_threads(mutex_, stopping_, wake_, {&thread_, 1}); }
  DecodeAhead(const DecodeAhead&) = delete;
  DecodeAhead& operator=(const DecodeAhead&) = delete;

  /// The next chunk, valid until the next call; empty at the end of the
  /// stream. Rethrows what stopped the decoder, at the point it stopped.
  std::span<const char> next() {
    std::unique_lock lock(mutex_);
    if (held_.bytes) {
      spare_.push_back(std::move(held_));
      wake_.notify_all();
    }
    wake_.wait(lock, [&] { return !ready_.empty() || ended_; });
    if (ready_.empty()) {
      if (error_) std::rethrow_exception(error_);
      return {};
    }
    held_ = std::move(ready_.front());
    ready_.pop_front();
    wake_.notify_all();
    return {held_.bytes.get(), held_.size};
  }

private:
  static constexpr size_t kDepth = 3;
  struct Chunk {
    std::unique_ptr<char[]> bytes;
    size_t size = 0;
  };

  void run() {
    try {
      for (;;) {
        Chunk chunk;
        {
          std::unique_lock lock(mutex_);
          wake_.wait(lock, [&] { return stopping_ || ready_.size() < kDepth; });
          if (stopping_) return;
          if (!spare_.empty()) {
            chunk = std::move(spare_.back());
            spare_.pop_back();
          }
        }
        if (!chunk.bytes) chunk.bytes = std::make_unique_for_overwrite<char[]>(kOut);
        chunk.size = 0;
        while (chunk.size < kOut) {
          size_t n = stream_.decode(chunk.bytes.get() + chunk.size, kOut - chunk.size);
          if (n == 0) break;
          chunk.size += n;
        }
        std::lock_guard lock(mutex_);
        if (chunk.size == 0)
          ended_ = true;
        else
          ready_.push_back(std::move(chunk));
        wake_.notify_all();
        if (ended_) return;
      }
    } catch (...) {
      std::lock_guard lock(mutex_);
      error_ = std::current_exception();
      ended_ = true;
      wake_.notify_all();
    }
  }

  LayerStream& stream_;
  std::mutex mutex_;
  std::condition_variable wake_;  ///< both sides wait on it: one reader, one decoder
  std::deque<Chunk> ready_;       ///< decoded, oldest first
  std::vector<Chunk> spare_;      ///< handed out and given back, to fill again
  Chunk held_;                    ///< what next() last handed out
  bool ended_ = false, stopping_ = false;
  std::exception_ptr error_;
  std::thread thread_;  ///< last: it starts once the rest is made
};

LayerStream::~LayerStream() = default;

void LayerStream::fail(const std::string& what) {
  failure_ = what;
  throw std::runtime_error(label_ + ": " + what);
}

bool LayerStream::fill() {
  if (eof_) return false;
  if (in_start_ > 0) {
    std::memmove(in_.get(), in_.get() + in_start_, in_end_ - in_start_);
    in_end_ -= in_start_;
    in_start_ = 0;
  }
  for (;;) {
    size_t room = kIn - in_end_;
    // A blob still arriving is read as far as it is written: pread, at the
    // stream's own offset, since the descriptor shares the writer's.
    if (incoming_) room = std::min<uint64_t>(room, incoming_->wait_beyond(read_) - read_);
    ssize_t n = room == 0 ? 0 : ::pread(fd_.get(), in_.get() + in_end_, room, off_t(read_));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail(std::string("cannot read: ") + std::strerror(errno));
    if (n == 0) eof_ = true;
    in_end_ += size_t(n);
    read_ += uint64_t(n);
    return n > 0;
  }
}

std::span<const char> LayerStream::next() {
  if (done_) return {};
  std::span<const char> bytes;
  if (decode_ahead_) {
    if (!ahead_) ahead_ = std::make_unique<DecodeAhead>(*this);
    bytes = ahead_->next();
  } else if (kind_ != Kind::Plain) {
    bytes = {out_.get(), decode(out_.get(), kOut)};
  } else {
    if (in_start_ == in_end_) fill();
    bytes = {in_.get() + in_start_, in_end_ - in_start_};
    in_start_ = in_end_;
  }
  if (hash_) hash_->update(bytes.data(), bytes.size());
  if (bytes.empty()) done_ = true;
  size_ += bytes.size();
  return bytes;
}

size_t LayerStream::decode(char* out, size_t room) {
  return kind_ == Kind::Gzip ? inflate_some(out, room) : unzstd_some(out, room);
}

size_t LayerStream::inflate_some(char* out, size_t room) {
  inflate_state& s = inflater_->state;
  for (;;) {
    if (s.block_state == ISAL_BLOCK_FINISH) {
      // A member ended: the next one starts here, or the stream is over.
      while (in_end_ - in_start_ < 2 && fill()) {
      }
      if (in_end_ - in_start_ < 2 || !starts_gzip(in_.get() + in_start_)) return 0;
      inflater_->start();
    }
    if (in_start_ == in_end_) fill();
    s.next_in = reinterpret_cast<uint8_t*>(in_.get() + in_start_);
    s.avail_in = uint32_t(in_end_ - in_start_);
    s.next_out = reinterpret_cast<uint8_t*>(out);
    s.avail_out = uint32_t(room);
    int rc = isal_inflate(&s);
    in_start_ = in_end_ - s.avail_in;
    if (rc < 0) fail(gzip_error(rc) + " at byte " + std::to_string(read_ - (in_end_ - in_start_)) + " of the blob");
    if (size_t n = room - s.avail_out) return n;
    if (s.block_state != ISAL_BLOCK_FINISH && in_start_ == in_end_ && eof_) fail("truncated gzip input");
  }
}

size_t LayerStream::unzstd_some(char* out_bytes, size_t room) {
  for (;;) {
    if (in_start_ == in_end_) fill();
    ZSTD_inBuffer in{in_.get() + in_start_, in_end_ - in_start_, 0};
    ZSTD_outBuffer out{out_bytes, room, 0};
    size_t rc = ZSTD_decompressStream(zstd_->stream, &out, &in);
    in_start_ += in.pos;
    if (ZSTD_isError(rc)) fail(std::string("damaged zstd data: ") + ZSTD_getErrorName(rc));
    if (in.pos > 0 || out.pos > 0) zstd_->last = rc;
    if (out.pos > 0) return out.pos;
    if (in_start_ == in_end_ && eof_) {
      // A frame cut short leaves the decoder waiting for more.
      if (zstd_->last != 0) fail("truncated zstd input");
      return 0;
    }
  }
}

LayerStream::TarReader LayerStream::tar_reader() {
  TarReader tar(archive_read_new(), archive_read_free);
  if (!tar) throw std::runtime_error(label_ + ": libarchive: out of memory");
  auto read = [](archive* a, void* self, const void** data) -> la_ssize_t {
    try {
      std::span<const char> bytes = static_cast<LayerStream*>(self)->next();
      *data = bytes.data();
      return la_ssize_t(bytes.size());
    } catch (const std::runtime_error& e) {
      // The reader's caller names the blob: the message alone (fail()'s).
      const std::string& failure = static_cast<LayerStream*>(self)->failure_;
      archive_set_error(a, EIO, "%s", failure.empty() ? e.what() : failure.c_str());
      return -1;
    }
  };
  if (archive_read_support_format_tar(tar.get()) != ARCHIVE_OK ||
      archive_read_open(tar.get(), this, nullptr, read, nullptr) != ARCHIVE_OK) {
    const char* message = archive_error_string(tar.get());
    throw std::runtime_error(label_ + ": " + (message ? message : "unreadable tar"));
  }
  return tar;
}

}  // namespace imgbuild
