#include "layer/layer_stream.hpp"

#include <archive.h>
#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

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

LayerStream::LayerStream(const std::filesystem::path& blob, std::string label)
    : label_(std::move(label)),
      fd_(::open(blob.c_str(), O_RDONLY | O_CLOEXEC)),
      in_(std::make_unique_for_overwrite<char[]>(kIn)) {
  if (!fd_) throw std::runtime_error(label_ + ": cannot open " + blob.string() + ": " + std::strerror(errno));
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
  if (kind_ != Kind::Plain) out_ = std::make_unique_for_overwrite<char[]>(kOut);
}

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
    ssize_t n = ::read(fd_.get(), in_.get() + in_end_, kIn - in_end_);
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
  switch (kind_) {
    case Kind::Gzip:
      bytes = next_gzip();
      break;
    case Kind::Zstd:
      bytes = next_zstd();
      break;
    case Kind::Plain:
      if (in_start_ == in_end_) fill();
      bytes = {in_.get() + in_start_, in_end_ - in_start_};
      in_start_ = in_end_;
      break;
  }
  if (bytes.empty()) done_ = true;
  if (hash_) hash_->update(bytes.data(), bytes.size());
  size_ += bytes.size();
  return bytes;
}

std::span<const char> LayerStream::next_gzip() {
  inflate_state& s = inflater_->state;
  for (;;) {
    if (s.block_state == ISAL_BLOCK_FINISH) {
      // A member ended: the next one starts here, or the stream is over.
      while (in_end_ - in_start_ < 2 && fill()) {
      }
      if (in_end_ - in_start_ < 2 || !starts_gzip(in_.get() + in_start_)) return {};
      inflater_->start();
    }
    if (in_start_ == in_end_) fill();
    s.next_in = reinterpret_cast<uint8_t*>(in_.get() + in_start_);
    s.avail_in = uint32_t(in_end_ - in_start_);
    s.next_out = reinterpret_cast<uint8_t*>(out_.get());
    s.avail_out = uint32_t(kOut);
    int rc = isal_inflate(&s);
    in_start_ = in_end_ - s.avail_in;
    if (rc < 0) fail(gzip_error(rc) + " at byte " + std::to_string(read_ - (in_end_ - in_start_)) + " of the blob");
    if (size_t n = kOut - s.avail_out) return {out_.get(), n};
    if (s.block_state != ISAL_BLOCK_FINISH && in_start_ == in_end_ && eof_) fail("truncated gzip input");
  }
}

std::span<const char> LayerStream::next_zstd() {
  for (;;) {
    if (in_start_ == in_end_) fill();
    ZSTD_inBuffer in{in_.get() + in_start_, in_end_ - in_start_, 0};
    ZSTD_outBuffer out{out_.get(), kOut, 0};
    size_t rc = ZSTD_decompressStream(zstd_->stream, &out, &in);
    in_start_ += in.pos;
    if (ZSTD_isError(rc)) fail(std::string("damaged zstd data: ") + ZSTD_getErrorName(rc));
    if (in.pos > 0 || out.pos > 0) zstd_->last = rc;
    if (out.pos > 0) return {out_.get(), out.pos};
    if (in_start_ == in_end_ && eof_) {
      // A frame cut short leaves the decoder waiting for more.
      if (zstd_->last != 0) fail("truncated zstd input");
      return {};
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
