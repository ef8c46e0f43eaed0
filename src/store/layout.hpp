#pragma once
// An OCI image layout directory: the local store, and `-o oci:DIR` outputs.
#include <filesystem>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "oci/digest.hpp"
#include "oci/image.hpp"

namespace imgbuild {

/// Manifests and configs are small documents; anything bigger is refused
/// rather than read into memory.
inline constexpr size_t kMaxDocumentSize = 4 << 20;

/// An OCI image layout (oci-layout, index.json, blobs/sha256/). Blobs are
/// written atomically under their digest; index.json is replaced atomically
/// under a lock, so concurrent builds into one layout never corrupt it.
class Layout {
public:
  /// Opens the layout at `root`, creating an empty one if the directory has none.
  explicit Layout(std::filesystem::path root);

  const std::filesystem::path& root() const { return root_; }
  std::filesystem::path blob_dir() const { return root_ / "blobs" / "sha256"; }
  std::filesystem::path blob_path(const Digest& d) const { return blob_dir() / std::string(d.hex()); }
  bool has_blob(const Digest& d) const;
  /// Whether the store holds `d` whole: its size and, read through, its
  /// digest. A damaged blob is removed, so it is fetched or made again.
  bool verify_blob(const Digest& d, uint64_t size) const;

  /// Stores a small document (manifest, config) and describes it.
  Descriptor put_document(const std::string& data, const MediaType& media_type);
  /// Reads a document blob, verifying its size and digest.
  std::string read_document(const Descriptor& d) const;

  /// Names `manifest` `name` in index.json, replacing an earlier image of that
  /// name and platform. Built images have no platform in the index; pulled
  /// bases do, since one tag can name an image per platform.
  void set_ref(const std::string& name, Descriptor manifest);
  /// The named images, in index.json order.
  std::vector<Descriptor> refs() const;
  std::optional<Descriptor> find_ref(const std::string& name, const std::optional<Platform>& platform = {}) const;

  /// Reads a stored image's manifest and config.
  StoredImage load(const Descriptor& manifest) const;
  /// Copies an image's blobs from `src` (hard links where possible) and names it.
  void import_image(const Layout& src, const Descriptor& manifest, const std::string& name);

  /// Removes every blob (and leftover temporary file) that neither a named
  /// image nor `keep` needs. The caller holds the store's usage lock
  /// exclusively: no build is writing blobs it has not named yet.
  /// Returns how many files went and their bytes.
  std::pair<size_t, uint64_t> collect_garbage(const std::set<Digest>& keep) const;

private:
  nlohmann::json read_index() const;
  std::filesystem::path root_;
};

/// The local store: $XDG_DATA_HOME/imgbuild, else ~/.local/share/imgbuild.
std::filesystem::path default_store_dir();
/// The build cache: $XDG_CACHE_HOME/imgbuild, else ~/.cache/imgbuild.
std::filesystem::path default_cache_dir();

}  // namespace imgbuild
