#pragma once
// The build context: the directory `:copy` reads from, with .dockerignore applied,
// and the planner that turns a copy into layer entries with Docker's COPY rules.
#include <sys/types.h>

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "build/dockerignore.hpp"
#include "build/graph.hpp"
#include "layer/image_tree.hpp"
#include "layer/layer.hpp"
#include "oci/image_path.hpp"

namespace imgbuild {

class FolderReader;

/// A source file or directory resolved on the host, ready to copy.
struct CopyItem {
  std::filesystem::path host_path;  ///< what is read
  std::string name;                 ///< base name used when the destination is a directory
  bool in_context = true;           ///< false for files a stdlib module offers from the host
  /// An archive `:add` extracted: host_path is the folder holding its files,
  /// whose modes and owners are the archive's.
  bool extracted = false;
};

/// Where `:add` finds the files of a local tar archive: the folder it was
/// extracted into (by the builder, in its cache). Throws UnpackError for a
/// hostile or broken archive.
using ExtractArchive = std::function<std::filesystem::path(const std::filesystem::path& archive)>;

/// The build context directory. Nothing outside it, and nothing .dockerignore
/// excludes, can be read through it.
class BuildContext {
public:
  explicit BuildContext(std::filesystem::path root);
  const std::filesystem::path& root() const { return root_; }

  /// Resolves a context path or glob to the items it names. Throws
  /// std::runtime_error "no such file in the build context: go.sm" and the like.
  std::vector<CopyItem> resolve(const std::string& source) const;

  /// The host path of a context folder named relative to the context; throws
  /// "<dir>: outside the build context" for one that leaves it, through ".." or
  /// a symlink.
  std::filesystem::path directory(const std::string& dir) const;

  /// Adds to `out` the entries of the directory `host_dir` placed under `dest`:
  /// for a context directory, skipping what .dockerignore excludes; for a host
  /// folder a stdlib module offers (in_context false), all of it.
  void add_tree(const std::filesystem::path& host_dir, const ImagePath& dest, bool in_context,
                std::vector<LayerEntry>& out) const;

private:
  /// add_tree() for the folder `host_dir`, `rel_dir` in the context.
  void walk(FolderReader& reader, const std::string& host_dir, const std::string& rel_dir, const ImagePath& dest,
            bool in_context, std::vector<LayerEntry>& out) const;
  std::string relative(const std::filesystem::path& p) const;
  /// Whether .dockerignore lets a recipe name this context path.
  bool visible(const std::string& rel) const;
  std::filesystem::path root_;
  IgnoreRules ignore_;
};

/// Throws "<rel> is a named pipe: a build context holds only files, folders
/// and symlinks" (or a socket, a device) unless `mode` is one of those three:
/// reading anything else would wait for a writer or never end. `rel` names
/// the file relative to the context.
void require_copyable(const std::string& rel, mode_t mode);

/// Turns one `:copy` into the entries of its layer, in layer order (as
/// sort_layer_entries leaves them: by path, none twice), by Docker's COPY
/// rules. `workdir` resolves a relative destination; `image` is the file
/// tree the copy goes into (an existing folder receives the sources, its
/// symlinks lead the destination); `files` are the already built
/// file-valued sources, in the order of op.sources that have a file_node,
/// after the fetched file of a remote `:add`. For `:add`, `extract` gives
/// each local archive's files, placed as a folder source's are.
std::vector<LayerEntry> plan_copy(const CopyOp& op, const BuildContext& context, const std::string& workdir,
                                  const ImageTree& image, const std::vector<CopyItem>& files,
                                  const ExtractArchive& extract = {});

/// The sources of `:copy(src, dst, { from = other })`: paths in the other
/// image, unpacked at `root` (relative ones from `source_workdir`; a pattern
/// in the last component), their symlinks resolved inside it by RootDir. Each
/// item is named by the last component of the path the recipe gave.
std::vector<CopyItem> copy_from_items(const CopyOp& op, const std::filesystem::path& root,
                                      const std::string& source_workdir);

/// A source of `:copy(src, dst, { from = other })` found in the other
/// image's tree: the regular file it names, symlinks followed, and the name
/// the copy gives it (as copy_from_items names its item).
struct TreeSource {
  const ImageTree::File* file;
  std::string name;
};

/// The sources of `op` as copy_from_items finds them, but read from the other
/// image's `tree` (its layers' listings) instead of a root on disk, when each
/// names one regular file without a pattern; nullopt for anything else (a
/// folder, a pattern, a path the image does not have), which copy_from_items
/// handles or reports. `tree` must outlive the files it gives.
std::optional<std::vector<TreeSource>> copy_from_files(const CopyOp& op, const ImageTree& tree,
                                                       const std::string& source_workdir);

/// The layer entries of `:copy(src, dst, { from = other })` for its sources
/// `items` (copy_from_items, or the same files found another way). Modes are
/// kept and owners are root unless chown says otherwise, as docker's COPY
/// --from does. In layer order and into `image`, as plan_copy.
std::vector<LayerEntry> plan_copy_from(const CopyOp& op, const std::vector<CopyItem>& items, const std::string& workdir,
                                       const ImageTree& image);

}  // namespace imgbuild
