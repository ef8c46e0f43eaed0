#pragma once
// Layer assembly: a deterministic PAX tar, gzip-compressed, streamed straight
// into a content-addressed blob while both of its digests are computed.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/digest.hpp"

namespace imgbuild {

/// One entry of a layer. Paths are relative to the image root, '/'-separated,
/// without a leading "/" or "./" and without a trailing "/".
struct LayerEntry {
  enum class Type { File, Directory, Symlink };
  std::string path;
  Type type = Type::File;
  uint32_t mode = 0644;  ///< permission bits, including setuid/setgid/sticky
  uint32_t uid = 0, gid = 0;
  std::filesystem::path source;  ///< File: where its bytes are read from
  uint64_t size = 0;             ///< File: expected size; a file that changes while read is an error
  std::string link_target;       ///< Symlink: stored exactly as given
};

/// What a finished layer is, as the manifest and config need it.
struct LayerBlob {
  Digest digest;        ///< sha256 of the compressed blob
  uint64_t size = 0;    ///< compressed size
  Digest diff_id;       ///< sha256 of the uncompressed tar
  uint64_t uncompressed_size = 0;  ///< 0 when unknown (layers of pulled images)
  std::string media_type = "application/vnd.oci.image.layer.v1.tar+gzip";
};

/// Settings that decide the bytes of a layer; fixed, so equal inputs give equal digests.
struct LayerOptions {
  int64_t mtime = 0;        ///< every entry's mtime (SOURCE_DATE_EPOCH): no build-time clock leaks in
  int gzip_level = 6;
};

/// Receives the bytes of a tar stream as it is written.
using ByteSink = std::function<void(const void* data, size_t size)>;

/// Writes `entries` as a deterministic PAX tar into `sink`, in the given order
/// (callers sort them). Every entry gets `mtime`.
void write_tar(const std::vector<LayerEntry>& entries, const ByteSink& sink, int64_t mtime);

/// Writes `entries` (sorted here by path, parents first) as a gzip tar layer into
/// `blob_dir` (an OCI layout's blobs/sha256), named by its digest. File data is
/// read once, in chunks; nothing is held whole in memory.
LayerBlob write_layer(std::vector<LayerEntry> entries, const std::filesystem::path& blob_dir,
                      const LayerOptions& options);

}  // namespace imgbuild
