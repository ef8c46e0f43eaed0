#pragma once
// The file tree of an image as its layers build it, known without unpacking
// anything: what the doctor checks entrypoints, loaders and libraries against.
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/layer.hpp"

namespace imgbuild {

class ImageTree {
public:
  struct File {
    LayerEntry::Type type = LayerEntry::Type::File;
    uint32_t mode = 0;
    std::string link_target;
    std::string source;            ///< where a file's bytes can be read on the host (as LayerEntry), or
    std::filesystem::path layer;   ///< the layer blob holding them, as `member`
    std::string member;
  };
  struct Resolved {
    std::string path;  ///< absolute, symlinks resolved
    const File* file;  ///< nullptr for a folder that only exists as a parent
  };

  /// Applies one layer: its entries replace what stood at their paths, and an
  /// entry that is not a folder drops whatever was below it.
  void apply(const std::vector<LayerEntry>& entries);

  /// Applies a layer blob of a pulled image (a tar, compressed or not),
  /// honouring OCI whiteouts. The listing is read only when the tree is first
  /// asked something, so building on a large base costs nothing until the
  /// doctor looks; file bytes stay in the blob until contents() asks. A blob
  /// that is not a readable tar throws std::runtime_error then.
  void apply_layer_blob(const std::filesystem::path& blob);

  /// The bytes of a file (at most `max` of them), from the host or its layer.
  std::string contents(const File& file, size_t max) const;

  /// Resolves an absolute path inside the image, following the image's own
  /// symlinks in every component (relative ones from the link's folder,
  /// absolute ones from the image root, never the host's). nullopt when it does
  /// not exist or loops.
  std::optional<Resolved> resolve(const std::string& path) const;

  /// Whether anything stands below the resolved folder `path` (a folder can
  /// exist only as the parent of its entries).
  bool has_children(const std::string& path) const;

private:
  using Layer = std::variant<std::filesystem::path, std::vector<LayerEntry>>;
  /// Applies the layers not read yet, in order.
  void settle() const;
  void apply_entries(const std::vector<LayerEntry>& entries) const;
  void apply_blob(const std::filesystem::path& blob) const;

  mutable std::map<std::string, File> files_;  ///< keyed by absolute path
  mutable std::vector<Layer> pending_;
};

}  // namespace imgbuild
