#include "layer/layer.hpp"

#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <future>
#include <stdexcept>

#include "base/errors.hpp"
#include "base/fs.hpp"
#include "base/interrupt.hpp"
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

namespace {

/// A deferred layer's "compressor": the tar as it is.
class PlainSink {
public:
  explicit PlainSink(BlobOutput& out) : out_(out) {}
  void add(const std::vector<char>& chunk) { out_.write(chunk.data(), chunk.size()); }
  void finish() {}

private:
  BlobOutput& out_;
};

/// Writes the layer blob `options` name into `blob_dir` from a tar stream:
/// `stream(consume)` hands `consume` each ChunkPipe::kChunk piece of it in
/// order (the cuts decide a gzip blob's bytes). With `expect`, the stream
/// must be that tar (a plain layer read back), or nothing is committed.
/// `while_committing(blob)`, when given, runs on another thread while the
/// blob is made durable: work named by the blob's digest that need not wait
/// for the disk (it may run before the blob is in place, and runs whether
/// or not that then succeeds).
template <class Stream>
LayerBlob store_layer(const std::filesystem::path& blob_dir, const LayerOptions& options, Stream stream,
                      const LayerBlob* expect = nullptr,
                      const std::function<void(const LayerBlob&)>& while_committing = {}) {
  std::filesystem::create_directories(blob_dir);
  AtomicFile file(blob_dir / "layer");
  BlobOutput out(file.fd(), file.temp_path());
  Sha256 tar_hash;
  uint64_t tar_size = 0;
  // An uncompressed blob's digest is its diff_id: `out` hashes those bytes already.
  const bool plain = options.deferred;
  auto compress = [&](auto& sink) {
    stream([&](std::vector<char>& chunk) {
      if (!plain) tar_hash.update(chunk.data(), chunk.size());
      tar_size += chunk.size();
      sink.add(chunk);
    });
    sink.finish();
  };
  MediaType type = media_type::kLayerGzip;
  if (plain) {
    PlainSink sink(out);
    compress(sink);
    type = media_type::kLayerTar;
  } else if (options.compression == Compression::Zstd) {
    ZstdSink sink(out, options.threads);
    compress(sink);
    type = media_type::kLayerZstd;
  } else {
    ParallelGzipSink sink(out, options.threads);
    compress(sink);
  }
  const Digest digest = out.finish();
  LayerBlob blob{digest, out.size(), plain ? digest : tar_hash.finish(), tar_size, type};
  if (expect && (blob.diff_id != expect->diff_id || tar_size != expect->size))
    throw std::runtime_error("layer " + expect->digest.str() + " in " + blob_dir.string() +
                             " is damaged: it reads as " + blob.diff_id.str() + " (" + std::to_string(tar_size) +
                             " bytes); nothing was compressed (build again to make it anew)");
  std::future<void> alongside;
  if (while_committing) alongside = std::async(std::launch::async, while_committing, blob);
  file.commit_as(blob_dir / std::string(blob.digest.hex()));
  if (alongside.valid()) alongside.get();
  return blob;
}

}  // namespace

LayerBlob write_sorted_layer(const std::vector<LayerEntry>& entries, const std::filesystem::path& blob_dir,
                             const LayerOptions& options, FileDigests* file_digests, LayerListings* listings,
                             const std::function<void(const LayerBlob&)>& while_committing) {
  if (std::adjacent_find(entries.begin(), entries.end(), [](auto& a, auto& b) { return !(a.path < b.path); }) !=
      entries.end())
    throw std::logic_error("layer: entries are not in layer order (sorted, each path once)");

  // The listing too is made and kept while the blob's fsync waits for the
  // disk, beside the caller's records: for a copy of many small files, each
  // takes about as long as that fsync.
  std::function<void(const LayerBlob&)> alongside;
  if (listings || while_committing)
    alongside = [&](const LayerBlob& blob) {
      std::future<void> records;
      if (while_committing) records = std::async(std::launch::async, while_committing, blob);
      if (listings) listings->put(blob_dir / std::string(blob.digest.hex()), entries);
      if (records.valid()) records.get();
    };
  return store_layer(
      blob_dir, options,
      [&](const ChunkPipe::Consumer& consume) {
        ChunkPipe pipe(consume);
        write_tar(
            entries, [&](const void* data, size_t size) { pipe.write(data, size); }, options.mtime, file_digests);
        pipe.finish();
      },
      nullptr, alongside);
}

LayerBlob compress_layer(const LayerBlob& tar, const std::filesystem::path& blob_dir, const LayerOptions& options,
                         LayerListings* listings) {
  const std::filesystem::path from = blob_dir / std::string(tar.digest.hex());
  Fd fd = open_read(from);
  LayerOptions compressed = options;
  compressed.deferred = false;
  LayerBlob blob = store_layer(
      blob_dir, compressed,
      [&](const ChunkPipe::Consumer& consume) {
        std::vector<char> chunk;  // the sink may swap in one of its own: reused, not zero-filled again
        for (bool more = true; more;) {
          check_interrupt();
          chunk.resize(ChunkPipe::kChunk);
          size_t got = 0;
          while (got < chunk.size()) {
            ssize_t n = ::read(fd.get(), chunk.data() + got, chunk.size() - got);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw_errno("read " + from.string());
            if (n == 0) break;
            got += static_cast<size_t>(n);
          }
          more = got == chunk.size();
          chunk.resize(got);
          if (got > 0) consume(chunk);
        }
      },
      &tar);
  if (listings) listings->same_as(blob_dir / std::string(blob.digest.hex()), from);
  return blob;
}

}  // namespace imgbuild
