#pragma once
// The folders of `:run { cache = {...} }` mounts (cache dir run-cache/ID/),
// and their archives: what --cache-to exports of them and --cache-from seeds
// a fresh machine's folder with. An archive is a tar, zstd-compressed, with
// fixed mtimes and sorted entries: the same folder makes the same blob on any
// machine. A folder a step with a secret mounted is never archived.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "oci/image.hpp"

namespace imgbuild {

/// The most a cache archive holds: its files' bytes, uncompressed. A bigger
/// folder is not exported (the export says so); a bigger archive is refused
/// on import, however small its blob.
inline constexpr uint64_t kRunCacheLimit = uint64_t{4} << 30;

/// The folder of the cache mounted at `image_path` ("/root/.cache/go-build"):
/// one per image path, shared by every build on this machine that mounts it.
std::filesystem::path run_cache_folder(const std::filesystem::path& cache_dir, const std::string& image_path);

/// Records that a step with a secret mounted `folder`: the step may have
/// written the secret into it, so it is never exported again, until `cache
/// prune` removes it (remove_run_cache_marks).
void mark_secret_exposed(const std::filesystem::path& folder);
/// Whether mark_secret_exposed() was called on `folder` since it was made.
bool secret_exposed(const std::filesystem::path& folder);
/// Removes what the cache keeps beside `folder` once the folder is gone.
void remove_run_cache_marks(const std::filesystem::path& folder);

/// What archive_run_cache() made: the blob, or why there is none.
struct RunCacheArchive {
  std::optional<LayerBlob> blob;
  /// Why a folder with files has no blob ("holds 5100.0 MB, over ..."); ""
  /// when the blob was made, or the folder is missing or empty.
  std::string skipped;
};

/// Archives `folder` into `blob_dir` (a store's blobs) unless it is missing or
/// empty, a secret was exposed to it, or its files take more than `limit`
/// bytes. Symlinks are kept as links, never followed; device nodes, fifos and
/// sockets are left out; owners are kept (the invoking user as root, as a
/// rootless step's layer has them); every mtime is 0.
RunCacheArchive archive_run_cache(const std::filesystem::path& folder, const std::filesystem::path& blob_dir,
                                  uint64_t limit = kRunCacheLimit);

/// Whether the cache `folder` is missing or empty: what seed_run_cache() fills.
bool run_cache_needs_seed(const std::filesystem::path& folder);

/// Seeds the cache `folder` with the archive `blob` when the folder is missing
/// or empty (false otherwise: what this machine has is kept). The archive is
/// refused unless it is zstd and its tar stream holds at most `limit` bytes,
/// measured before anything is written; it is unpacked with every defence a
/// layer gets and no device nodes, beside the folder, then renamed into place
/// (another build that seeded the folder first wins: false). Errors are
/// UnpackError naming `label`.
bool seed_run_cache(const std::filesystem::path& blob, const std::filesystem::path& folder, const std::string& label,
                    uint64_t limit = kRunCacheLimit);

}  // namespace imgbuild
