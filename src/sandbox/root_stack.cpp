#include "sandbox/root_stack.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>

#include "base/text.hpp"

namespace imgbuild {

namespace fs = std::filesystem;

namespace {

/// RootWalk on folders stacked as an overlay stacks them. Where it stands
/// is, for each folder that holds the folder walked to, a descriptor of it
/// (the upper-most first); leaving pops back to the descriptors of the
/// parent, so ".." is never looked up on the host.
class StackWalk : public RootWalk {
public:
  explicit StackWalk(const std::vector<Fd>& roots) : roots_(roots) {}

  /// The folder (index in the stack) and parent descriptor of the non-folder
  /// the walk ended on; nullopt when it ended on a folder.
  struct Leaf {
    size_t folder = 0;
    int parent = -1;
    mode_t mode = 0;
  };
  const std::optional<Leaf>& leaf() const { return leaf_; }

  /// The upper-most folder (index in the stack) that holds the folder the
  /// walk stands in; nullopt when it went meanwhile.
  std::optional<size_t> holder() const {
    if (levels_.back().empty()) return std::nullopt;
    return levels_.back().front().folder;
  }

  /// Whether the folder the walk stands in holds nothing named `name`.
  bool lacks(const std::string& name) {
    Kind kind;
    std::string target;
    return look(name, kind, target) == ENOENT;
  }

protected:
  struct Holder {
    size_t folder;
    Fd fd;
  };

  void restart() override {
    levels_.clear();
    std::vector<Holder> top;
    for (size_t i = 0; i < roots_.size(); ++i) {
      Fd copy(::fcntl(roots_[i].get(), F_DUPFD_CLOEXEC, 0));
      if (!copy) throw_errno("dup");
      top.push_back({i, std::move(copy)});
    }
    levels_.push_back(std::move(top));
    leaf_.reset();
  }

  int leave() override {
    levels_.pop_back();
    leaf_.reset();
    return 0;
  }

  int look(const std::string& name, Kind& kind, std::string& target) override {
    for (size_t i = 0; i < levels_.back().size(); ++i) {
      const Holder& h = levels_.back()[i];
      struct stat st {};
      if (::fstatat(h.fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;
        return errno;
      }
      found_ = i;
      found_mode_ = st.st_mode;
      kind = S_ISDIR(st.st_mode) ? Kind::Directory : S_ISLNK(st.st_mode) ? Kind::Symlink : Kind::Other;
      if (kind == Kind::Symlink) {
        char buf[PATH_MAX];
        ssize_t len = ::readlinkat(h.fd.get(), name.c_str(), buf, sizeof buf);
        if (len < 0) return errno;
        if (static_cast<size_t>(len) == sizeof buf) return ENAMETOOLONG;
        target.assign(buf, static_cast<size_t>(len));
      }
      return 0;
    }
    return ENOENT;
  }

  void enter(const std::string& name, Kind kind) override {
    const std::vector<Holder>& here = levels_.back();
    if (kind != Kind::Directory) {
      // The last component: what read() opens, through its folder.
      leaf_ = Leaf{here[found_].folder, here[found_].fd.get(), found_mode_};
      levels_.push_back({});
      return;
    }
    // The folder merges with the same folder below it until a folder holds
    // something else there, which hides the rest.
    std::vector<Holder> next;
    for (size_t i = found_; i < here.size(); ++i) {
      Fd dir(::openat(here[i].fd.get(), name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (dir) {
        next.push_back({here[i].folder, std::move(dir)});
      } else if (errno != ENOENT) {
        break;
      }
    }
    levels_.push_back(std::move(next));
  }

private:
  const std::vector<Fd>& roots_;
  std::vector<std::vector<Holder>> levels_;
  size_t found_ = 0;
  mode_t found_mode_ = 0;
  std::optional<Leaf> leaf_;
};

}  // namespace

RootStack::RootStack(const fs::path& root) : folders_{root}, single_(std::in_place, root) {}

RootStack::RootStack(std::vector<fs::path> folders) : folders_(std::move(folders)) {
  if (folders_.size() == 1) {
    single_.emplace(folders_.front());
    return;
  }
  for (auto& folder : folders_) {
    fds_.emplace_back(::open(folder.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!fds_.back()) throw std::runtime_error("cannot open " + folder.string() + ": " + std::strerror(errno));
  }
}

std::optional<ImagePath> RootStack::resolve(std::string_view path) const {
  if (single_) return single_->resolve(path);
  StackWalk walk(fds_);
  if (walk.walk(path, {})) return std::nullopt;
  return ImagePath(join(walk.at(), "/"));
}

std::optional<std::string> RootStack::read(std::string_view path) const {
  if (single_) return single_->read(path);
  StackWalk walk(fds_);
  if (walk.walk(path, {}) || !walk.leaf() || !S_ISREG(walk.leaf()->mode)) return std::nullopt;
  // Read as RootDir reads a file, in the folder that holds it.
  Fd parent(::fcntl(walk.leaf()->parent, F_DUPFD_CLOEXEC, 0));
  if (!parent) throw_errno("dup");
  return RootDir(std::move(parent)).read(walk.at().back());
}

bool RootStack::lacks(const ImagePath& dir, const std::string& name) const {
  if (single_) {
    ResolveError error;
    Fd fd = single_->open_dir(dir.segments(), false, error);
    struct stat st {};
    return fd && ::fstatat(fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 && errno == ENOENT;
  }
  StackWalk walk(fds_);
  if (walk.walk(dir.str(), {.directory = true}) || walk.at() != dir.segments()) return false;
  return walk.lacks(name);
}

std::optional<fs::path> RootStack::find(const std::string& rel) const {
  if (single_) {
    fs::path path = folders_.front() / rel;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return std::nullopt;
    return path;
  }
  StackWalk walk(fds_);
  ImagePath wanted(rel);
  // Taken as it is: a walk that followed a symlink on the way ends elsewhere.
  if (walk.walk(wanted.str(), {.follow_last = false}) || walk.at() != wanted.segments()) return std::nullopt;
  std::optional<size_t> folder = walk.leaf() ? walk.leaf()->folder : walk.holder();
  if (!folder) return std::nullopt;
  return folders_[*folder] / wanted.relative();
}

bool stacks_plainly(const fs::path& top, const fs::path& below, const ImageTree::Listing& listing) {
  if (!listing.removed.empty() || !listing.emptied.empty() || !listing.hardlinks.empty()) return false;
  auto named = [&](const std::string& path) {
    auto at = std::lower_bound(listing.added.begin(), listing.added.end(), path,
                               [](const ImageTree::Node& node, const std::string& p) { return node.first < p; });
    return at != listing.added.end() && at->first == path;
  };
  // in_below[d]: whether the folder at depth d of the walk is a folder of
  // `below` too, reached through folders only (else nothing below it is).
  std::vector<bool> in_below{true};
  // The folders the unpack made on the way to the layer's entries, with what `below` has there.
  std::vector<std::pair<fs::path, struct stat>> unnamed;
  // What cannot be read (a folder of mode 000, without privileges) cannot be
  // shown plain: the step runs on a root of one folder then.
  std::error_code error;
  for (auto it = fs::recursive_directory_iterator(top, error); it != fs::recursive_directory_iterator();
       it.increment(error)) {
    if (error) return false;
    size_t depth = static_cast<size_t>(it.depth());
    in_below.resize(depth + 1);
    std::string rel = it->path().lexically_relative(top).generic_string();
    fs::path there = below / rel;
    struct stat ours {
    }, theirs{};
    if (::lstat(it->path().c_str(), &ours) != 0) return false;
    if (S_ISCHR(ours.st_mode) || S_ISBLK(ours.st_mode)) return false;
    bool below_too = in_below[depth] && ::lstat(there.c_str(), &theirs) == 0;
    if (in_below[depth] && !below_too && errno != ENOENT) return false;
    if (below_too && S_ISDIR(ours.st_mode) != S_ISDIR(theirs.st_mode)) return false;
    if (!S_ISDIR(ours.st_mode)) continue;
    in_below.push_back(below_too);
    if (!below_too) continue;
    if (::llistxattr(there.c_str(), nullptr, 0) != 0) return false;
    if (!named("/" + rel)) unnamed.emplace_back(it->path(), theirs);
  }
  if (error) return false;
  // Deepest first, after the walk: a mode that shuts a folder is set once
  // nothing more is done in it.
  for (auto at = unnamed.rbegin(); at != unnamed.rend(); ++at) {
    auto& [path, st] = *at;
    // Owner first: chown clears setuid and setgid bits.
    if (::lchown(path.c_str(), st.st_uid, st.st_gid) != 0 && errno != EPERM) throw_errno("chown " + path.string());
    if (::chmod(path.c_str(), st.st_mode & 07777) != 0) throw_errno("chmod " + path.string());
  }
  return true;
}

}  // namespace imgbuild
