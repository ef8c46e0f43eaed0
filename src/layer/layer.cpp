#include "layer/layer.hpp"

#include <sys/xattr.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include "base/errors.hpp"
#include "base/fs.hpp"
#include "layer/blob_output.hpp"
#include "layer/chunk_pipe.hpp"
#include "layer/compression.hpp"
#include "layer/image_tree.hpp"
#include "oci/image.hpp"

namespace imgbuild {

void sort_layer_entries(std::vector<LayerEntry>& entries) {
  std::sort(entries.begin(), entries.end(), [](const LayerEntry& a, const LayerEntry& b) { return a.path < b.path; });
  for (size_t i = 1; i < entries.size(); ++i)
    if (entries[i].path == entries[i - 1].path) throw std::logic_error("layer: duplicate entry " + entries[i].path);
}

namespace {

/// The bytes a call like llistxattr or lgetxattr gives for `path`, asked for
/// again while they grow between the size query and the read; nullopt when
/// the file system has none (ENOTSUP) or the attribute is gone (ENODATA).
template <class Call>
std::optional<std::string> xattr_bytes(const std::string& path, Call call) {
  for (;;) {
    ssize_t size = call(nullptr, 0);
    std::string bytes(size > 0 ? static_cast<size_t>(size) : 0, '\0');
    if (size > 0) size = call(bytes.data(), bytes.size());
    if (size >= 0) {
      bytes.resize(static_cast<size_t>(size));
      return bytes;
    }
    if (errno == ENOTSUP || errno == ENODATA) return std::nullopt;
    if (errno != ERANGE) throw_errno(path + ": extended attributes");
  }
}

}  // namespace

std::vector<Xattr> kept_xattrs(const std::string& path) {
  auto names = xattr_bytes(path, [&](char* buf, size_t size) { return ::llistxattr(path.c_str(), buf, size); });
  std::vector<Xattr> kept;
  if (!names) return kept;
  for (size_t at = 0; at < names->size();) {
    std::string name = names->c_str() + at;
    at += name.size() + 1;
    if (!layer_keeps_xattr(name)) continue;
    auto value =
        xattr_bytes(path, [&](char* buf, size_t size) { return ::lgetxattr(path.c_str(), name.c_str(), buf, size); });
    if (value) kept.emplace_back(std::move(name), std::move(*value));
  }
  std::sort(kept.begin(), kept.end());
  for (auto& [name, value] : kept) {
    // struct vfs_ns_cap_data (24 bytes, revision 3 in the top byte of its
    // little-endian magic) less its trailing rootid is vfs_cap_data, revision 2.
    constexpr size_t kRevisionByte = 3, kRevision2Size = 20, kRevision3Size = 24;
    if (name == "security.capability" && value.size() == kRevision3Size && value[kRevisionByte] == 3) {
      value[kRevisionByte] = 2;
      value.resize(kRevision2Size);
    }
  }
  return kept;
}

FileStamp FileStamp::of(const struct ::stat& st) {
  return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size),
          nanoseconds(st.st_mtim), nanoseconds(st.st_ctim)};
}

LayerBlob write_layer(std::vector<LayerEntry> entries, const std::filesystem::path& blob_dir,
                      const LayerOptions& options, LayerListings* listings) {
  sort_layer_entries(entries);
  return write_sorted_layer(entries, blob_dir, options, nullptr, listings);
}

LayerBlob write_sorted_layer(const std::vector<LayerEntry>& entries, const std::filesystem::path& blob_dir,
                             const LayerOptions& options, FileDigests* file_digests, LayerListings* listings) {
  if (std::adjacent_find(entries.begin(), entries.end(), [](auto& a, auto& b) { return !(a.path < b.path); }) !=
      entries.end())
    throw std::logic_error("layer: entries are not in layer order (sorted, each path once)");

  std::filesystem::create_directories(blob_dir);
  AtomicFile file(blob_dir / "layer");
  BlobOutput out(file.fd(), file.temp_path());
  Sha256 tar_hash;
  uint64_t tar_size = 0;
  auto compress = [&](auto& sink) {
    ChunkPipe pipe([&](std::vector<char>& chunk) {
      tar_hash.update(chunk.data(), chunk.size());
      tar_size += chunk.size();
      sink.add(std::move(chunk));
    });
    write_tar(
        entries, [&](const void* data, size_t size) { pipe.write(data, size); }, options.mtime, file_digests);
    pipe.finish();
    sink.finish();
  };
  MediaType type = media_type::kLayerGzip;
  if (options.compression == Compression::Zstd) {
    ZstdSink sink(out, options.threads);
    compress(sink);
    type = media_type::kLayerZstd;
  } else {
    ParallelGzipSink sink(out, options.threads);
    compress(sink);
  }
  LayerBlob blob{out.finish(), out.size(), tar_hash.finish(), tar_size, type};
  const std::filesystem::path blob_path = blob_dir / std::string(blob.digest.hex());
  file.commit_as(blob_path);
  if (listings) listings->put(blob_path, entries);
  return blob;
}

}  // namespace imgbuild
