#pragma once
// The file tree of an image as its layers build it, known without unpacking
// anything: what the doctor checks entrypoints, loaders and libraries against.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "layer/layer.hpp"

namespace imgbuild {

class ImageTree {
public:
  /// One path of the image. Small on purpose: a context of a million files
  /// puts a million of these in the tree, and the tree lives until the build
  /// ends.
  struct File {
    LayerEntry::Type type = LayerEntry::Type::File;
    uint32_t mode = 0;
    /// A symlink's target, or a file's member name in the layer blob `layer`.
    std::string where;
    uint32_t layer = 0;  ///< which of the tree's layer blobs holds a file's bytes
  };
  struct Resolved {
    std::string path;  ///< absolute, symlinks resolved
    const File* file;  ///< nullptr for the root and a folder that only exists as a parent
  };

  /// Applies a layer blob (a tar, compressed or not: a pulled image's or one
  /// this build wrote), honouring OCI whiteouts. The listing is read only when the tree is first
  /// asked something, so building on a large base costs nothing until the
  /// doctor looks; file bytes stay in the blob until contents() asks. A blob
  /// that is not a readable tar throws std::runtime_error then.
  void apply_layer_blob(const std::filesystem::path& blob);

  /// The bytes of a file (at most `max` of them), read from its layer.
  std::string contents(const File& file, size_t max) const;
  /// Streams the bytes of many regular files with one pass over each layer
  /// blob that holds any of them (contents() per file would read a layer once
  /// per file): `begin(i)` starts `files[i]`, then `chunk(i, bytes)` gets its
  /// bytes in order, in pieces (none for an empty file). A member a tar names
  /// twice begins again at its second occurrence, which is the one the tree
  /// holds. Throws std::runtime_error naming the blob when a file is missing
  /// from its layer.
  void stream_contents(const std::vector<const File*>& files, const std::function<void(size_t)>& begin,
                       const std::function<void(size_t, std::string_view)>& chunk) const;

  /// Resolves an absolute path inside the image, following the image's own
  /// symlinks in every component (relative ones from the link's folder,
  /// absolute ones from the image root, never the host's), by the same rules
  /// as an unpacked root on disk (RootWalk). nullopt when it does not exist,
  /// loops, or goes through a file.
  std::optional<Resolved> resolve(const std::string& path) const;

  /// Whether anything stands below the resolved folder `path` (a folder can
  /// exist only as the parent of its entries).
  bool has_children(const std::string& path) const;

  /// The regular files directly in the folder `path` (also those further
  /// below when `recursive`), in path order. `path` is resolved first (a
  /// /bin that links to /usr/bin lists /usr/bin); nothing below is followed.
  std::vector<Resolved> files_in(const std::string& path, bool recursive) const;

private:
  /// An absolute path and what stands there.
  using Node = std::pair<std::string, File>;
  /// Paths in sorted order. Shared, and never changed while shared: copying
  /// a tree (every step that adds a layer does) costs a pointer, not a
  /// million paths.
  using Nodes = std::shared_ptr<std::vector<Node>>;
  /// Applies the layers not read yet, in order.
  void settle() const;
  void apply_blob(const std::filesystem::path& blob) const;
  /// Makes the tree of one more layer: `added` (sorted, unique paths)
  /// replace what stood at their paths, and drop everything below those
  /// that are not folders; paths in `removed` (sorted) go with everything
  /// below them, and everything below the folders in `emptied` (sorted).
  void merge(std::vector<Node> added, const std::vector<std::string>& removed,
             const std::vector<std::string>& emptied) const;
  const Node* find(std::string_view path) const;

  mutable Nodes files_ = std::make_shared<std::vector<Node>>();
  mutable std::vector<std::filesystem::path> pending_;  ///< layer blobs not read yet
  /// The layer blobs files are read from; File::layer indexes it.
  mutable std::vector<std::filesystem::path> blobs_;
};

}  // namespace imgbuild
