#pragma once
// The uncompressed tar stream of a layer blob. Decoded here, not by
// libarchive's filters: libarchive inflates gzip with zlib, and a pulled
// builder image's layers are hundreds of megabytes (golang's largest is 468
// MB of tar): ISA-L inflates them with about a quarter of zlib's CPU time.
// libarchive then reads the tar from this stream. A large compressed blob is
// decoded on a thread of its own, a few megabytes ahead of its reader: the
// unpacker's file writes and the decoding then take two cores, not one after
// the other on one.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "base/fs.hpp"
#include "base/growing_file.hpp"
#include "oci/digest.hpp"

struct archive;

namespace imgbuild {

/// Reads the uncompressed bytes of a layer blob, told by its first bytes:
/// gzip (one member or many, as pigz and imgbuild write them), zstd (one
/// frame or many), or a plain tar. Every gzip member's CRC and length are
/// checked; bytes after the last member that do not start another one end
/// the stream, as gzip(1) and libarchive take them. Memory stays bounded
/// whatever the blob's size.
class LayerStream {
public:
  /// A compressed blob from this size on is decoded ahead of its reader, on
  /// a thread of its own; a smaller one is not worth a thread.
  static constexpr uint64_t kDecodeAheadFrom = 1 << 20;

  /// Opens `blob`; `label` starts every error message. Throws
  /// std::runtime_error when it cannot be opened.
  LayerStream(const std::filesystem::path& blob, std::string label);
  /// Reads a blob as it arrives (`incoming`, a download in progress): waits
  /// for bytes not written yet, and ends only where the writer finished the
  /// blob, checked. Throws GrowingFileError when the writer failed first.
  LayerStream(std::shared_ptr<GrowingFile> incoming, std::string label);
  ~LayerStream();
  LayerStream(const LayerStream&) = delete;
  LayerStream& operator=(const LayerStream&) = delete;

  /// The next bytes of the stream, valid until the next call; empty at its
  /// end. Throws std::runtime_error ("LABEL: truncated gzip input", ...) for
  /// a damaged or cut blob, or one that cannot be read.
  std::span<const char> next();

  /// A libarchive reader of the tar on this stream: tar formats only, no
  /// filters (the stream is already decoded). next()'s errors reach its calls
  /// as ARCHIVE_FATAL with the message, without the label. It must go before
  /// this stream does. Throws std::runtime_error ("LABEL: ...") when it
  /// cannot be opened.
  using TarReader = std::unique_ptr<archive, int (*)(archive*)>;
  TarReader tar_reader();

  /// Also hashes every byte next() hands out into `hash` (a layer's diff_id
  /// comes from the same read that unpacks it). Before the first next().
  void hash_into(Hasher& hash) { hash_ = &hash; }

  /// How many uncompressed bytes next() has handed out.
  uint64_t size() const { return size_; }

private:
  enum class Kind { Plain, Gzip, Zstd };
  struct Inflater;
  struct ZstdReader;
  class DecodeAhead;

  LayerStream(Fd fd, std::shared_ptr<GrowingFile> incoming, std::string label);

  /// Refills `in_` when everything in it was used; false at the end of the blob.
  bool fill();
  /// Decodes the next bytes of a compressed blob into `out` (at most `room`
  /// bytes); 0 at the end of the stream.
  size_t decode(char* out, size_t room);
  size_t inflate_some(char* out, size_t room);
  size_t unzstd_some(char* out, size_t room);
  /// Throws "LABEL: what", keeping `what` for tar_reader()'s reader.
  [[noreturn]] void fail(const std::string& what);

  std::string label_;
  std::string failure_;  ///< what fail() last said, without the label
  Fd fd_;
  std::shared_ptr<GrowingFile> incoming_;  ///< the writer of a blob still arriving, or none
  Kind kind_ = Kind::Plain;
  /// Not zero-filled (make_unique_for_overwrite): a stream per blob read.
  /// out_ (kOut bytes) only for a compressed blob decoded on the reader's thread.
  std::unique_ptr<char[]> in_, out_;
  size_t in_start_ = 0, in_end_ = 0;  ///< the bytes of in_ not decoded yet
  bool eof_ = false, done_ = false;
  uint64_t read_ = 0, size_ = 0;  ///< bytes read from the blob; handed out
  std::unique_ptr<Inflater> inflater_;
  std::unique_ptr<ZstdReader> zstd_;
  Hasher* hash_ = nullptr;
  bool decode_ahead_ = false;  ///< a large compressed blob: ahead_ starts at the first next()
  std::unique_ptr<DecodeAhead> ahead_;
};

}  // namespace imgbuild
