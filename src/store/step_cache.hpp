#pragma once
// The step cache: what each build step produced, found again by a key computed
// before the step runs. Entries are small JSON files under <cache>/steps,
// named by their key and replaced atomically; the layers they name are blobs
// of the local store, so a cached step and a stored image share one copy.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/fs.hpp"
#include "layer/layer.hpp"
#include "oci/digest.hpp"

namespace imgbuild {

/// The key of a step: sha256 over the canonical form of everything the step's
/// result depends on (`inputs`, a JSON object the builder fills), tagged with
/// the cache format so an engine that writes layers differently never reuses
/// an older engine's results.
Digest step_key(nlohmann::json inputs);

/// The sha256 of each regular file's bytes, read on every core; a file whose
/// stamp is still the one in `known` (indexed like the entries, or empty) is
/// not read again. `files_read` receives how many were.
FileDigests hash_files(const std::vector<LayerEntry>& entries, FileDigests known = {}, size_t* files_read = nullptr);

/// The entries of a layer as a key sees them: every field that reaches the
/// tar, and the sha256 of each regular file's bytes (`contents`, indexed like
/// the entries), in the order given. Where a file is read from does not count.
Digest describe_entries(const std::vector<LayerEntry>& entries, const FileDigests& contents);

/// The entries as describe_entries() sees them, but files by size instead of
/// content: what a layer's step is known by before any file is read. A step
/// whose shape was never built cannot be cached, whatever the files hold.
Digest describe_shape(const std::vector<LayerEntry>& entries);

/// What a step produced.
struct CachedStep {
  Digest key;
  std::string step;                ///< "run go mod download", for `imgbuild cache ls`
  std::optional<LayerBlob> layer;  ///< none: the step changed no file
  int64_t created = 0;             ///< seconds since the epoch
  /// For a result taken from a registry cache: where its layer is fetched
  /// from while the store lacks it.
  std::string source{};
  int64_t last_used{};     ///< the entry file's mtime, renewed on every hit (not stored)
  uint64_t entry_bytes{};  ///< the entry file itself

  nlohmann::json to_json() const;
  static CachedStep from_json(const nlohmann::json& j);
};

nlohmann::json layer_to_json(const LayerBlob& layer);
LayerBlob layer_from_json(const nlohmann::json& j);

class StepCache {
public:
  /// The cache in `cache_dir` (created when missing).
  explicit StepCache(std::filesystem::path cache_dir);

  /// The entry of `key`, its last use renewed; nullopt when there is none or
  /// it cannot be read (a damaged entry is removed: it is a miss, never an error).
  std::optional<CachedStep> find(const Digest& key) const;
  /// Records a step's result (atomically: a reader sees the old entry or the new one).
  void put(const CachedStep& entry) const;
  void remove(const Digest& key) const;
  /// Every readable entry, oldest use first.
  std::vector<CachedStep> list() const;

  /// Whether a step of this shape (describe_shape, in a step_key) was ever
  /// recorded. When not, no entry can match it: the step can be built while
  /// its key is computed, reading each file once, instead of reading every
  /// file first to look for a result that cannot be there.
  bool knows_shape(const Digest& shape) const;
  /// The file digests last recorded with a shape, indexed like its `entries`
  /// entries; empty when there are none or the record is damaged.
  FileDigests shape_files(const Digest& shape, size_t entries) const;
  /// Records a shape (<cache>/shapes/HEX) with its files' digests, those
  /// whose ctime is over a second before `read_since_ns` (when reading them
  /// began, CLOCK_REALTIME): the next build reads only files whose stamp changed.
  void add_shape(const Digest& shape, const FileDigests& files, int64_t read_since_ns) const;

  const std::filesystem::path& dir() const { return dir_; }

private:
  std::filesystem::path entry_path(const Digest& key) const;
  std::filesystem::path shape_path(const Digest& shape) const;
  std::filesystem::path dir_, shapes_dir_;
};

/// What `imgbuild cache prune` removes: everything by default; with a limit,
/// what was last used longest ago until the cache fits.
struct PruneOptions {
  std::optional<uint64_t> keep_bytes;  ///< keep at most this much (most recently used first)
  std::optional<int64_t> older_than;   ///< remove what was not used for this many seconds
};

struct PruneReport {
  size_t entries = 0, trees = 0, blobs = 0;  ///< step entries, unpacked roots/files/run caches, store blobs
  uint64_t bytes = 0;                        ///< freed
};

/// Something the cache holds besides step entries: an unpacked base root, a
/// host-built file, a RUN cache mount. All can be made again.
struct CacheTree {
  std::filesystem::path path;
  std::string kind;  ///< "root", "file", "run-cache"
  /// What only this tree holds (its folders, and files no other tree links):
  /// what removing it alone frees.
  uint64_t bytes = 0;
  /// Files it shares with other trees (a root links the unchanged files of
  /// the root it was made from): counted once in CacheTrees::bytes.
  uint64_t shared_bytes = 0;
  int64_t last_used = 0;
};

/// The cache's trees and the disk they take.
struct CacheTrees {
  std::vector<CacheTree> trees;  ///< oldest use first
  uint64_t bytes = 0;            ///< every file once, however many trees link it
};

/// Walks every tree of the cache, counting each file (inode) once.
CacheTrees cache_trees(const std::filesystem::path& cache_dir);

/// The disk `tree` takes that nothing outside it shares: its folders, and the
/// files whose every link is inside it. A stat per entry.
uint64_t own_bytes(const std::filesystem::path& tree);

/// Records `bytes` as what the cache tree `tree` holds on its own (in
/// TREE.bytes beside it): prune reads it instead of walking a tree it keeps.
/// A root records what it added to the root it was made from, when it is
/// made, and its number of `layers`; a run cache what it holds after each
/// step that used it. Not synced (write_record_atomic): one a crash took is
/// missing, and the tree is walked again.
void record_tree_bytes(const std::filesystem::path& tree, uint64_t bytes, std::optional<size_t> layers = std::nullopt);

/// The root in `roots` of as many `layers` used last, if there is one: the
/// root of the same step of an earlier build, whose files a new root's
/// layers may have written again (share_identical_files).
std::optional<std::filesystem::path> root_like(const std::filesystem::path& roots, size_t layers);

class Layout;

/// Removes what `options` select from the cache in `cache_dir`, the leftovers
/// of killed builds, and then every blob of `store` that neither a stored
/// image nor a remaining entry needs. Entries and trees go least recently used
/// first, RUN caches last (they make a changed step fast, and cost nothing
/// to keep warm). Trees it keeps are not walked: their sizes are recorded
/// (record_tree_bytes), so its cost follows what it removes. Takes both usage
/// locks exclusively, waiting for running builds (`on_wait` says so first).
PruneReport prune_cache(const std::filesystem::path& cache_dir, const Layout& store, const PruneOptions& options,
                        const std::function<void()>& on_wait = {});

/// The lock file of a cache (or store) directory. Builds hold it shared while
/// they run; `imgbuild cache prune` holds it exclusively, so it never removes
/// what a running build uses or has just written.
std::filesystem::path usage_lock_path(const std::filesystem::path& dir);

}  // namespace imgbuild
