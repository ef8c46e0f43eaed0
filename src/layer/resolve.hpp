#pragma once
// Symlinks followed inside a root: one algorithm for every kind of root (as
// umoci's pkg/fseval and filepath-securejoin's VFS do), each kind saying only
// what stands at a name. The roots are an unpacked image on disk (RootDir:
// unpacking layers, `:copy` from another image, reading the image's own
// files) and the in-memory ImageTree the doctor reads.
#include <sys/types.h>

#include <cstddef>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/fs.hpp"
#include "oci/image_path.hpp"

namespace imgbuild {

/// Why and where a walk stopped: `error` an errno (ENOENT, ENOTDIR, ELOOP,
/// EXDEV...), `component` the index of the path's component it was at (a
/// component of a symlink's target counts as the one that led to the link).
struct ResolveError {
  int error = 0;
  size_t component = 0;
};

/// The one resolution algorithm, as the kernel does it for openat2's
/// RESOLVE_IN_ROOT: symlinks followed in every component, absolute targets
/// from the root, ".." never above it, at most 40 links, an empty target
/// naming nothing, every component but the last a folder. A kind of root
/// derives from it and says what stands where.
class RootWalk {
public:
  enum class Kind { Directory, Symlink, Other };
  struct Options {
    bool follow_last = true;  ///< a symlink in the last component is followed too
    bool directory = false;   ///< the path must name a folder (ENOTDIR otherwise)
    /// Missing folders of the path itself are made; never those a symlink's
    /// target names, since that may lead anywhere.
    bool create = false;
  };

  virtual ~RootWalk() = default;

  /// Walks from the root along `path` ('/'-separated components; a leading
  /// '/' changes nothing). On success at() is what it names.
  std::optional<ResolveError> walk(std::string_view path, const Options& options);

  /// Where the walk stands: components below the root, none a symlink
  /// (unless the last, not followed).
  const std::vector<std::string>& at() const { return at_; }

protected:
  /// To the root folder.
  virtual void restart() = 0;
  /// To the parent of the current folder, which is not the root: 0 or an errno.
  virtual int leave() = 0;
  /// What stands at `name` in the current folder, not followed; a symlink's
  /// target in `target`. 0 or an errno (ENOENT: nothing).
  virtual int look(const std::string& name, Kind& kind, std::string& target) = 0;
  /// To what the last look() found at `name`.
  virtual void enter(const std::string& name, Kind kind) = 0;
  /// Makes the missing folder `name` in the current one and enters it: 0 or
  /// an errno. A root that is only read refuses.
  virtual int make(const std::string& name);

private:
  std::vector<std::string> at_;
};

/// An image root on disk. Every path below it is walked through descriptors
/// of the folders on the way, one name at a time with O_NOFOLLOW (or by the
/// kernel's openat2 RESOLVE_IN_ROOT where that is offered), so nothing
/// outside the root is touched even while the tree changes under the walk.
class RootDir {
public:
  /// `root` open as a folder. `use_openat2` false: always walk in user space
  /// (the tests cover both that way).
  explicit RootDir(Fd root, bool use_openat2 = true);
  /// Opens the folder at `root` (a symlink there is followed: the caller
  /// names the root); throws std::runtime_error naming it.
  explicit RootDir(const std::filesystem::path& root, bool use_openat2 = true);

  int fd() const { return root_.get(); }

  /// A descriptor (O_PATH) of the folder `dir` (components below the root);
  /// missing folders are made when `create`. An invalid one, and `error`
  /// set, when that fails.
  Fd open_dir(std::span<const std::string> dir, bool create, ResolveError& error) const;

  /// What `path` names with every symlink followed: a path free of symlinks;
  /// nullopt when nothing is there, it loops, or a folder moved during the walk.
  std::optional<ImagePath> resolve(std::string_view path) const;

  /// The bytes of the regular file `path` names (symlinks followed inside
  /// the root); nullopt when there is none: missing, a folder, a device or
  /// fifo (never opened: that has effects), or unreadable.
  std::optional<std::string> read(std::string_view path) const;

private:
  Fd root_;
  bool openat2_ = false;
};

}  // namespace imgbuild
