#pragma once
// The image root a RUN step runs on, as its overlay shows it: one folder, or
// folders stacked the upper first (lowerdir=A:B:C), whose union is the root.
// Stacking the layer a step adds on the root of the layers below it costs
// what that layer holds; linking the whole root below into a new folder
// costs what the image holds.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/fs.hpp"
#include "layer/image_tree.hpp"
#include "layer/resolve.hpp"
#include "oci/image_path.hpp"

namespace imgbuild {

/// An image root of one folder or of several stacked, read as the overlay
/// merges them: at each name the upper-most folder holding it wins, and a
/// folder merges with the folders below it until one holds something else
/// there. Paths are resolved with RootWalk, the one algorithm inside a root,
/// each step looking at the folders through descriptors, never following a
/// symlink on the host: no path leads out of the root.
class RootStack {
public:
  /// The root that is the one folder `root` (read through RootDir).
  RootStack(const std::filesystem::path& root);
  /// `folders`, the upper first, none empty; throws std::runtime_error naming
  /// one that cannot be opened.
  explicit RootStack(std::vector<std::filesystem::path> folders);

  /// What `path` names with every symlink followed: a path free of symlinks;
  /// nullopt when nothing is there or it loops.
  std::optional<ImagePath> resolve(std::string_view path) const;

  /// The bytes of the regular file `path` names (symlinks followed inside
  /// the root); nullopt when there is none, or it is no regular file.
  std::optional<std::string> read(std::string_view path) const;

  /// Whether the folder `dir` (free of symlinks) holds nothing named `name`.
  /// False too when `dir` is no folder: nothing can be made there.
  bool lacks(const ImagePath& dir, const std::string& name) const;

  /// The host path of what stands at `rel` (relative to the root, taken as
  /// it is: no symlink followed on the way): in the upper-most folder that
  /// holds it. nullopt when nothing does.
  std::optional<std::filesystem::path> find(const std::string& rel) const;

private:
  std::vector<std::filesystem::path> folders_;
  std::vector<Fd> fds_;            // of folders_, when more than one
  std::optional<RootDir> single_;  // when one
};

/// Whether the layer unpacked alone into the folder `top`, whose listing is
/// `listing`, stacked on the root `below` as an overlay's lower folders,
/// shows exactly the root that applying the layer to `below` makes: it
/// deletes nothing (no whiteout, no opaque folder), links nothing (a hard
/// link may name a file below), holds no device (overlay reads a 0/0
/// character device as a whiteout), and no path of it stands where `below`
/// has another kind of thing (a folder over a non-folder or the reverse,
/// which overlay would hide instead of merge), nor over a folder with
/// extended attributes (which applying the layer keeps). The folders the
/// unpack made for the layer's entries without the layer naming them take
/// the mode and owner `below` gives them, as they keep them when applied.
bool stacks_plainly(const std::filesystem::path& top, const std::filesystem::path& below,
                    const ImageTree::Listing& listing);

}  // namespace imgbuild
