#pragma once
// Layer assembly: a deterministic PAX tar, compressed on every core, streamed straight
// into a content-addressed blob while both of its digests are computed.
// The public face of the layer writer; its parts live beside it: read_ahead
// (the files' bytes, read on reader threads), tar_writer.cpp (write_tar),
// chunk_pipe (the tar stream handed to the compressor), compression (gzip and
// zstd), blob_output (the blob file), and layer.cpp, which joins them.
#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "oci/image.hpp"

namespace imgbuild {

class LayerListings;

/// An extended attribute: its name and its value, as raw bytes.
using Xattr = std::pair<std::string, std::string>;

/// One entry of a layer. Paths are relative to the image root, '/'-separated,
/// without a leading "/" or "./" and without a trailing "/".
struct LayerEntry {
  /// Device nodes and fifos are what a RUN step made (Docker keeps them);
  /// a build context never gives them.
  enum class Type { File, Directory, Symlink, CharDevice, BlockDevice, Fifo };
  std::string path;
  Type type = Type::File;
  uint32_t mode = 0644;  ///< permission bits, including setuid/setgid/sticky
  uint32_t uid = 0, gid = 0;
  /// File: where its bytes are read from. A string, not a std::filesystem::path:
  /// that keeps a list of its components, several times the memory, and a
  /// layer may have a hundred thousand entries.
  std::string source;
  uint64_t size = 0;        ///< File: expected size; a file that changes while read is an error
  std::string link_target;  ///< Symlink: stored exactly as given
  /// The extended attributes a layer keeps (layer_keeps_xattr), sorted by
  /// name: PAX SCHILY.xattr.<name> records, which Docker and containerd read.
  std::vector<Xattr> xattrs = {};
  uint32_t device_major = 0, device_minor = 0;  ///< CharDevice, BlockDevice: the device's numbers
};

/// Whether a layer carries the extended attribute `name`, as Docker and
/// containerd carry it: security.capability (file capabilities) and user.*.
/// Never overlayfs's own state (user.overlay.*, trusted.overlay.*), nor
/// imgbuild's own marks (user.imgbuild.*, on a snapshot copy's folders), nor
/// the host's policy (security.selinux, trusted.*, ACLs, which name host users).
inline bool layer_keeps_xattr(std::string_view name) {
  return name == "security.capability" ||
         (name.starts_with("user.") && !name.starts_with("user.overlay.") && !name.starts_with("user.imgbuild."));
}

/// The extended attributes a layer keeps of the file, folder or symlink at
/// `path` (never followed), sorted by name. File capabilities bound to a user
/// namespace's root (VFS_CAP_REVISION_3, as setcap makes them in a rootless
/// step) are given as plain ones, as Docker stores them: the builder's own
/// uid means nothing where the image runs, and would make the layer differ
/// from one machine to the next.
std::vector<Xattr> kept_xattrs(const std::string& path);

/// How a layer's tar is compressed. Each has one fixed setting (no levels to
/// choose), so a compression names the exact bytes it makes.
enum class Compression {
  /// gzip that every tool reads: libdeflate level 5, and blocks that cannot
  /// shrink stored as they are; about 4x `gzip -6`'s speed per core, and as
  /// small as `gzip -6` makes them on the trees measured (source, binaries,
  /// documentation: within 0.1%).
  Gzip,
  /// zstd level 3 (`application/vnd.oci.image.layer.v1.tar+zstd`): two to
  /// three times faster again and smaller; read by containerd 1.5+ and podman.
  Zstd,
};

/// "gzip" or "zstd", as recipes, the command line and step keys spell it.
const char* compression_name(Compression c);
/// Parses "gzip" or "zstd"; nullopt for anything else.
std::optional<Compression> parse_compression(std::string_view name);

/// Settings that decide the bytes of a layer; fixed, so equal inputs give equal digests.
struct LayerOptions {
  int64_t mtime = 0;  ///< every entry's mtime (SOURCE_DATE_EPOCH): no build-time clock leaks in
  Compression compression = Compression::Gzip;
  /// Compression threads; 0: one per core. Never changes the bytes: chunks and
  /// zstd jobs are cut at fixed offsets whatever the number of threads.
  unsigned threads = 0;
  /// Writes the tar uncompressed (media type tar, digest = diff_id): a layer
  /// only other steps of the build read, whose compression would be wasted
  /// unless an output, a push or a cache export needs it. compress_layer()
  /// then makes the very blob `compression` would have made. Never part of a
  /// key: both forms hold the same tar.
  bool deferred = false;
};

/// A time in nanoseconds since the epoch, as FileStamp keeps mtime and ctime.
inline int64_t nanoseconds(const struct ::timespec& t) { return t.tv_sec * 1'000'000'000LL + t.tv_nsec; }

/// What a file's bytes are known by without reading them. When none of these
/// changed, neither did the bytes: the kernel renews ctime on every write
/// and rename, and no user can set it.
struct FileStamp {
  uint64_t dev = 0, ino = 0, size = 0;
  int64_t mtime_ns = 0, ctime_ns = 0;
  static FileStamp of(const struct ::stat& st);
  friend bool operator==(const FileStamp&, const FileStamp&) = default;
};

/// A file's sha256, with its stamp taken before it was read (so that a write
/// during the read leaves a stamp that no longer matches).
struct FileDigest {
  std::array<unsigned char, 32> sha256;  ///< raw: a context may have a million files
  FileStamp stamp;
  Digest digest() const { return Digest::from_bytes(sha256); }
  friend bool operator==(const FileDigest&, const FileDigest&) = default;
};

/// The digest of each entry's bytes, indexed like the entries; empty for
/// entries that are not regular files.
using FileDigests = std::vector<std::optional<FileDigest>>;

/// Receives the bytes of a tar stream as it is written.
using ByteSink = std::function<void(const void* data, size_t size)>;

/// Writes `entries` as a deterministic PAX tar into `sink`, in the given order
/// (callers sort them). Every entry gets `mtime`. With `file_digests`, fills
/// it with the sha256 of each file's bytes as written.
void write_tar(const std::vector<LayerEntry>& entries, const ByteSink& sink, int64_t mtime,
               FileDigests* file_digests = nullptr);

/// Sorts `entries` into layer order (by path, so parents come first);
/// throws std::logic_error on a path given twice.
void sort_layer_entries(std::vector<LayerEntry>& entries);

/// Writes `entries` (sorted here with sort_layer_entries) as a compressed tar layer into
/// `blob_dir` (an OCI layout's blobs/sha256), named by its digest. File data is
/// read once, in chunks; nothing is held whole in memory. With `listings`,
/// hands them the layer's listing (what an ImageTree needs of it), so that
/// no one reads the blob again to know its paths.
LayerBlob write_layer(std::vector<LayerEntry> entries, const std::filesystem::path& blob_dir,
                      const LayerOptions& options, LayerListings* listings = nullptr);

/// write_layer() for entries already in layer order (sort_layer_entries;
/// std::logic_error otherwise). With `file_digests`, also hashes each file's
/// bytes as they are written, so a caller that needs them (a step key) does
/// not read the files a second time. `listings` as for write_layer().
/// `while_committing(blob)`, when given, runs on another thread while the
/// blob is made durable (its fsync), with `file_digests` complete: the
/// caller's own records of the layer wait for the disk at the same time,
/// not after it. It may run before the blob is in place, and runs whether
/// or not that succeeds; write_sorted_layer returns, or throws (its error
/// too), once it is done.
LayerBlob write_sorted_layer(const std::vector<LayerEntry>& entries, const std::filesystem::path& blob_dir,
                             const LayerOptions& options, FileDigests* file_digests = nullptr,
                             LayerListings* listings = nullptr,
                             const std::function<void(const LayerBlob&)>& while_committing = {});

/// Compresses the plain tar layer `tar` (written `deferred`, in `blob_dir`)
/// as `options` say, into `blob_dir`: byte for byte the blob write_layer()
/// would have made of the same entries, since both cut the same tar stream
/// at the same offsets. The tar is checked against its diff_id as it is
/// read; a damaged one, or an error or interrupt half-way, leaves no new
/// blob. With `listings`, the new blob's listing is the tar's, not read again.
LayerBlob compress_layer(const LayerBlob& tar, const std::filesystem::path& blob_dir, const LayerOptions& options,
                         LayerListings* listings = nullptr);

}  // namespace imgbuild
