#include "store/run_cache.hpp"

#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "base/errors.hpp"
#include "base/fs.hpp"
#include "base/text.hpp"
#include "layer/layer.hpp"
#include "layer/unpack.hpp"

namespace imgbuild {
namespace {

fs::path secret_mark(const fs::path& folder) {
  // Beside the folder, where the steps that mount it cannot remove it; the
  // leading dot keeps it out of the cache's trees (`cache ls`, prune).
  return folder.parent_path() / ("." + folder.filename().string() + ".secret");
}

/// Decompresses the zstd blob without keeping anything, to refuse one whose
/// stream exceeds `limit` before a byte of it is unpacked: a few kilobytes
/// of zstd can stand for terabytes.
void check_stream_size(const fs::path& blob, const std::string& label, uint64_t limit) {
  Fd fd = open_read(blob);
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> dctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  std::vector<char> in(ZSTD_DStreamInSize()), out(ZSTD_DStreamOutSize());
  uint64_t total = 0;
  bool first = true;
  for (;;) {
    ssize_t n = ::read(fd.get(), in.data(), in.size());
    if (n < 0) throw_errno("read " + blob.string());
    if (n == 0) break;
    static constexpr unsigned char kMagic[] = {0x28, 0xb5, 0x2f, 0xfd};
    if (first && (n < 4 || std::memcmp(in.data(), kMagic, 4) != 0)) throw UnpackError(label + ": not a zstd archive");
    first = false;
    ZSTD_inBuffer input{in.data(), static_cast<size_t>(n), 0};
    while (input.pos < input.size) {
      ZSTD_outBuffer output{out.data(), out.size(), 0};
      size_t r = ZSTD_decompressStream(dctx.get(), &output, &input);
      if (ZSTD_isError(r)) throw UnpackError(label + ": damaged zstd stream: " + ZSTD_getErrorName(r));
      total += output.pos;
      if (total > limit)
        throw UnpackError(label + ": holds more than " + human_size(limit) + " unpacked, the most a cache mount may");
    }
  }
  if (first) throw UnpackError(label + ": empty archive");
}

}  // namespace

bool run_cache_needs_seed(const fs::path& folder) {
  std::error_code ec;
  return !fs::exists(folder, ec) || fs::is_empty(folder, ec);
}

fs::path run_cache_folder(const fs::path& cache_dir, const std::string& image_path) {
  return cache_dir / "run-cache" / std::string(sha256_of(image_path).hex().substr(0, 16));
}

void mark_secret_exposed(const fs::path& folder) { write_file_atomic(secret_mark(folder), ""); }

bool secret_exposed(const fs::path& folder) {
  std::error_code ec;
  return fs::exists(secret_mark(folder), ec);
}

void remove_run_cache_marks(const fs::path& folder) {
  std::error_code ec;
  fs::remove(secret_mark(folder), ec);
}

RunCacheArchive archive_run_cache(const fs::path& folder, const fs::path& blob_dir, uint64_t limit) {
  if (secret_exposed(folder)) return {std::nullopt, "a step with a secret mounted it"};
  if (run_cache_needs_seed(folder)) return {};
  std::vector<LayerEntry> entries;
  uint64_t bytes = 0;
  const uid_t me = ::geteuid();
  const gid_t my_group = ::getegid();
  for (auto it = fs::recursive_directory_iterator(folder); it != fs::recursive_directory_iterator(); ++it) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) throw_errno("stat " + it->path().string());
    LayerEntry e;
    e.path = it->path().lexically_relative(folder).generic_string();
    e.mode = st.st_mode & 07777;
    // Rootless, the steps' root is the invoking user on disk.
    e.uid = me != 0 && st.st_uid == me ? 0 : st.st_uid;
    e.gid = me != 0 && st.st_gid == my_group ? 0 : st.st_gid;
    if (S_ISREG(st.st_mode)) {
      e.type = LayerEntry::Type::File;
      e.source = it->path().string();
      e.size = static_cast<uint64_t>(st.st_size);
      bytes += e.size;
    } else if (S_ISDIR(st.st_mode)) {
      e.type = LayerEntry::Type::Directory;
    } else if (S_ISLNK(st.st_mode)) {
      e.type = LayerEntry::Type::Symlink;
      e.link_target = fs::read_symlink(it->path()).string();
    } else {
      continue;  // a cache has no use for device nodes, fifos or sockets
    }
    entries.push_back(std::move(e));
  }
  if (bytes > limit)
    return {std::nullopt,
            "holds " + human_size(bytes) + ", over the " + human_size(limit) + " a cache mount may export"};
  LayerOptions options;
  options.compression = Compression::Zstd;
  return {write_layer(std::move(entries), blob_dir, options), ""};
}

bool seed_run_cache(const fs::path& blob, const fs::path& folder, const std::string& label, uint64_t limit) {
  if (!run_cache_needs_seed(folder)) return false;
  check_stream_size(blob, label, limit);
  // ".unpack-" folders are what a killed build left: prune removes them.
  TempDir unpack(folder.parent_path(), ".unpack-");
  fs::path tree = unpack.path() / "tree";
  fs::create_directory(tree);
  UnpackOptions options;
  options.nodes = false;
  apply_layer(tree, blob, label, options);
  // Onto a missing or empty folder, rename is atomic; a folder another build
  // filled meanwhile is kept.
  if (::rename(tree.c_str(), folder.c_str()) == 0) return true;
  if (errno == ENOTEMPTY || errno == EEXIST) return false;
  throw_errno("rename " + tree.string() + " to " + folder.string());
}

}  // namespace imgbuild
