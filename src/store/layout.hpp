#pragma once
// An OCI image layout directory: the local store, and `-o oci:DIR` outputs.
#include <sys/stat.h>

#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "layer/layer.hpp"
#include "oci/digest.hpp"
#include "oci/image.hpp"

namespace imgbuild {

/// An entry of a layout's index.json as it stands, well formed or not: a
/// damaged entry is listed and can be removed, and the others still work.
struct IndexEntry {
  std::string name;                      ///< its ref-name annotation; empty when it has none
  std::optional<Descriptor> descriptor;  ///< unset when the entry is not a descriptor
  std::string problem;                   ///< why `descriptor` is unset
  /// Its artifactType: set for an artifact listed beside the images (an
  /// SBOM, a provenance, a signature whose subject is one of them), which is
  /// no image of its own.
  std::string artifact_type;
};

/// A named image whose documents cannot be read: a manifest or config that is
/// missing, damaged, over kMaxDocumentSize or not an image's. what() names the
/// image and the cause.
class DamagedImage : public std::runtime_error {
public:
  DamagedImage(std::string name, const std::string& message) : std::runtime_error(message), name_(std::move(name)) {}
  /// The image's name in the index; empty for an unnamed entry.
  const std::string& name() const { return name_; }

private:
  std::string name_;
};

/// How to recover from a damaged blob of a stored image, which the store has
/// removed: a build fetches a base's layers again and makes its steps' again.
inline constexpr const char* kRebuildHint = "build the image again (a base's layers are fetched again)";

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

  // Blobs are trusted by what they hold, never by their name (verified.cpp).
  // A blob is read through and hashed once; what was verified is recorded as
  // the file's stamp (device, inode, size, mtime, ctime) in a small record
  // beside the blobs, so a later use costs a stat and a read of that record.
  // A swapped or edited file has another stamp and is hashed again.

  /// Whether the store holds `d` whole: its size (when given) and its
  /// digest, read through unless its stamp was recorded. A damaged blob is
  /// reported (set_warning), removed and its record dropped, so it is
  /// fetched or made again; false then, as for a missing one. `rehash`
  /// reads it through whatever the record says.
  bool verify_blob(const Digest& d, std::optional<uint64_t> size = std::nullopt, bool rehash = false) const;
  /// The path of the blob `d`, verified as verify_blob() does; a missing or
  /// damaged one throws, naming the digest and the path and adding `recover`
  /// (how to get it back: "pull the image again with ...").
  std::filesystem::path verified_blob(const Digest& d, std::optional<uint64_t> size, const std::string& recover) const;
  /// Records the blob `d` as it is now as verified: its writer hashed every
  /// byte it wrote (a download, a layer written, a document stored).
  void note_verified(const Digest& d) const;
  /// The uncompressed digest recorded for the layer blob `d`: its true
  /// diff_id, hashed once from its content; nullopt when none was yet.
  std::optional<Digest> known_diff_id(const Digest& d) const;
  /// Records that the uncompressed stream of the layer blob `d` hashes to `diff_id`.
  void note_diff_id(const Digest& d, const Digest& diff_id) const;
  /// Records a layer this engine just wrote into the store: its writer
  /// hashed both the blob and its uncompressed stream.
  void note_layer(const LayerBlob& layer) const;
  /// Where warnings go (a damaged blob found and removed); nowhere by default.
  void set_warning(std::function<void(const std::string&)> warn) { warn_ = std::move(warn); }

  /// Stores a small document (manifest, config) and describes it; one over
  /// kMaxDocumentSize is refused (DocumentTooLarge) and nothing is written.
  Descriptor put_document(const std::string& data, const MediaType& media_type);
  /// Reads a document blob, verifying its size and digest.
  std::string read_document(const Descriptor& d) const;

  /// Names `manifest` `name` in index.json, replacing an earlier image of that
  /// name and platform. Built images have no platform in the index; pulled
  /// bases do, since one tag can name an image per platform.
  void set_ref(const std::string& name, Descriptor manifest);
  /// Every entry of index.json, in its order, damaged ones too. Throws when
  /// index.json itself cannot be read, saying how to recover.
  std::vector<IndexEntry> entries() const;
  /// The well-formed entries of index.json that are images, in its order:
  /// the artifacts listed beside them are not.
  std::vector<Descriptor> refs() const;
  std::optional<Descriptor> find_ref(const std::string& name, const std::optional<Platform>& platform = {}) const;

  /// Reads a stored image's manifest and config; DamagedImage when either
  /// cannot be read or is not an image's, or the sizes are missing
  /// (StoredImage::total_size() works on what this returns).
  StoredImage load(const Descriptor& manifest) const;
  /// Stores the index of an image built for several platforms: `manifests`,
  /// each with its platform, in their order, and `annotations` (none: no field).
  Descriptor put_index(const std::vector<Descriptor>& manifests,
                       const std::map<std::string, std::string>& annotations = {});
  /// The manifests a stored index lists; DamagedImage when it cannot be read.
  std::vector<Descriptor> index_manifests(const Descriptor& index) const;
  /// Copies an image's blobs from `src` (hard links where possible) and names
  /// it; an index comes with every manifest it lists and their blobs.
  void import_image(const Layout& src, const Descriptor& manifest, const std::string& name);

  /// Lists the artifact manifests `entries` (descriptors with their
  /// artifactType, stored already) in index.json, each once, so that a
  /// referrers lookup scanning the layout finds them (image-spec 1.1). An
  /// artifact listed before whose subject is no longer in the layout (an
  /// image replaced by a new build of its name) goes: its image is gone.
  void add_artifacts(const std::vector<nlohmann::json>& entries);
  /// The digest of the `subject` of the manifest `d`; nullopt for a manifest
  /// with none, or one that cannot be read.
  std::optional<Digest> subject_of(const Descriptor& d) const;

  /// Takes every entry `remove` selects out of index.json, in one atomic
  /// replacement under the index lock, and returns them. Their blobs stay:
  /// an interrupted removal leaves a readable layout and at worst unused blobs.
  std::vector<IndexEntry> remove_entries(const std::function<bool(const IndexEntry&)>& remove);

  /// The blobs an entry needs, as far as they can be read: its manifest (or
  /// index, and the manifests it lists), their configs and layers. A
  /// document that cannot be read contributes only its own digest.
  std::set<Digest> blobs_of(const Descriptor& d) const;
  /// Every blob a named image or a listed artifact needs (blobs_of each entry).
  std::set<Digest> live_blobs() const;

  /// Removes every blob (and leftover temporary file) that neither a named
  /// image nor `keep` needs, and the records of images no named image needs
  /// (drop_image_records). The caller holds the store's usage lock
  /// exclusively: no build is writing blobs it has not named yet.
  /// Returns how many files went and their bytes.
  std::pair<size_t, uint64_t> collect_garbage(const std::set<Digest>& keep) const;
  /// Removes each of `candidates` that neither a named image nor `keep`
  /// needs, and the records of images no named image needs, under the same
  /// lock as collect_garbage. Returns how many blobs
  /// went and their bytes.
  std::pair<size_t, uint64_t> remove_unused(const std::set<Digest>& candidates, const std::set<Digest>& keep) const;

private:
  nlohmann::json read_index() const;
  /// The records of what was verified: beside the blobs, hidden like the
  /// store's lock files, so the layout stays one any OCI tool reads.
  std::filesystem::path record_dir() const { return root_ / ".imgbuild-verified"; }
  std::filesystem::path record_path(const Digest& d, const char* kind) const;
  /// Removes a damaged blob (when `checked`, only if it is still that file)
  /// and its records; says so through warn_.
  void drop_damaged(const Digest& d, const std::string& why, const struct ::stat* checked = nullptr) const;
  std::filesystem::path root_;
  std::function<void(const std::string&)> warn_;
};

/// The local store: $XDG_DATA_HOME/imgbuild, else ~/.local/share/imgbuild.
std::filesystem::path default_store_dir();
/// The build cache: $XDG_CACHE_HOME/imgbuild, else ~/.cache/imgbuild.
std::filesystem::path default_cache_dir();

}  // namespace imgbuild
