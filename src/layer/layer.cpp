#include "layer/layer.hpp"

#include <algorithm>
#include <stdexcept>

#include "base/fs.hpp"
#include "layer/blob_output.hpp"
#include "layer/chunk_pipe.hpp"
#include "layer/compression.hpp"
#include "oci/image.hpp"

namespace imgbuild {

void sort_layer_entries(std::vector<LayerEntry>& entries) {
  std::sort(entries.begin(), entries.end(), [](const LayerEntry& a, const LayerEntry& b) { return a.path < b.path; });
  for (size_t i = 1; i < entries.size(); ++i)
    if (entries[i].path == entries[i - 1].path) throw std::logic_error("layer: duplicate entry " + entries[i].path);
}

FileStamp FileStamp::of(const struct ::stat& st) {
  return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size),
          nanoseconds(st.st_mtim), nanoseconds(st.st_ctim)};
}

LayerBlob write_layer(std::vector<LayerEntry> entries, const std::filesystem::path& blob_dir,
                      const LayerOptions& options) {
  sort_layer_entries(entries);
  return write_sorted_layer(entries, blob_dir, options);
}

LayerBlob write_sorted_layer(const std::vector<LayerEntry>& entries, const std::filesystem::path& blob_dir,
                             const LayerOptions& options, FileDigests* file_digests) {
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
  file.commit_as(blob_dir / std::string(blob.digest.hex()));
  return blob;
}

}  // namespace imgbuild
