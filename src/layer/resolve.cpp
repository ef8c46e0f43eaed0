#include "layer/resolve.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "base/text.hpp"

namespace imgbuild {

namespace {

/// The kernel's limit, so that every root gives up on the same paths as openat2.
constexpr int kMaxSymlinks = 40;

}  // namespace

int RootWalk::make(const std::string&) { return EROFS; }

std::optional<ResolveError> RootWalk::walk(std::string_view path, const Options& options) {
  struct Part {
    std::string name;
    size_t component;  ///< of `path`: itself, or the one whose link this came from
    bool own;          ///< of `path` itself, not of a link's target
  };
  std::vector<Part> todo;  // a stack: the next component on top
  auto push = [&](std::string_view text, size_t component, bool own) {
    std::vector<std::string> parts = split(std::string(text), '/');
    for (size_t i = parts.size(); i-- > 0;) todo.push_back({std::move(parts[i]), own ? i : component, own});
  };
  push(path, 0, true);
  restart();
  at_.clear();
  int links = 0;
  while (!todo.empty()) {
    Part part = std::move(todo.back());
    todo.pop_back();
    auto stop = [&](int error) { return ResolveError{error, part.component}; };
    if (part.name == ".") continue;
    if (part.name == "..") {
      if (at_.empty()) continue;  // the root is its own parent
      if (int err = leave()) return stop(err);
      at_.pop_back();
      continue;
    }
    Kind kind;
    std::string target;
    if (int err = look(part.name, kind, target)) {
      if (err != ENOENT || !options.create || !part.own) return stop(err);
      // EEXIST: something came meanwhile; say what was seen.
      if (int made = make(part.name)) return stop(made == EEXIST ? ENOENT : made);
      at_.push_back(std::move(part.name));
      continue;
    }
    const bool last = todo.empty();
    if (kind == Kind::Symlink && (!last || options.follow_last)) {
      if (++links > kMaxSymlinks) return stop(ELOOP);
      if (target.empty()) return stop(ENOENT);  // as the kernel treats an empty target
      if (target.front() == '/') {
        restart();
        at_.clear();
      }
      push(target, part.component, false);
      continue;
    }
    // Only a folder can be walked through, "." and ".." included.
    if (kind != Kind::Directory && (!last || options.directory)) return stop(ENOTDIR);
    enter(part.name, kind);
    at_.push_back(std::move(part.name));
  }
  return std::nullopt;
}

namespace {

constexpr uint64_t kInRoot = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;

long sys_openat2(int dirfd, const char* path, uint64_t flags, uint64_t resolve) {
  open_how how{};
  how.flags = flags;
  how.resolve = resolve;
  // EAGAIN: a rename raced with RESOLVE_IN_ROOT's lookup; the kernel asks for a retry.
  for (int attempt = 0;; ++attempt) {
    long fd = ::syscall(SYS_openat2, dirfd, path, &how, sizeof how);
    if (fd >= 0 || (errno != EAGAIN && errno != EINTR) || attempt == 100) return fd;
  }
}

Fd dup_fd(int fd) {
  Fd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!copy) throw_errno("dup");
  return copy;
}

/// Makes the missing directory dirfd/name as 0755 whatever the umask, as Docker
/// does for the parents a layer leaves out. Returns 0 or an errno.
int make_dir(int dirfd, const std::string& name, Fd& made) {
  if (::mkdirat(dirfd, name.c_str(), 0755) != 0) return errno;
  made = Fd(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!made || ::fchmod(made.get(), 0755) != 0) return errno;
  return 0;
}

/// RootWalk on disk. Only one folder is held open: ".." is opened from the
/// current one and checked against the identity recorded on the way down, so
/// a folder moved meanwhile cannot lead out of the root (EXDEV).
class DiskWalk : public RootWalk {
public:
  explicit DiskWalk(int root) : root_(root), ids_{file_identity(root)} {}

  /// The descriptor (O_PATH) of where the walk stands.
  Fd& current() { return cur_; }
  /// The mode of what the walk entered last (the root: a folder).
  mode_t mode() const { return mode_; }

protected:
  void restart() override {
    cur_ = dup_fd(root_);
    ids_.resize(1);
    mode_ = S_IFDIR;
  }

  int leave() override {
    Fd up(::openat(cur_.get(), "..", O_PATH | O_DIRECTORY | O_CLOEXEC));
    struct stat st;
    if (!up || ::fstat(up.get(), &st) != 0) return errno;
    ids_.pop_back();
    if (st.st_dev != ids_.back().first || st.st_ino != ids_.back().second) return EXDEV;
    cur_ = std::move(up);
    mode_ = S_IFDIR;
    return 0;
  }

  int look(const std::string& name, Kind& kind, std::string& target) override {
    looked_ = Fd(::openat(cur_.get(), name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
    if (!looked_ || ::fstat(looked_.get(), &looked_st_) != 0) return errno;
    kind = S_ISDIR(looked_st_.st_mode) ? Kind::Directory : S_ISLNK(looked_st_.st_mode) ? Kind::Symlink : Kind::Other;
    if (kind == Kind::Symlink) {
      char buf[PATH_MAX];
      ssize_t len = ::readlinkat(looked_.get(), "", buf, sizeof buf);
      if (len < 0) return errno;
      if (static_cast<size_t>(len) == sizeof buf) return ENAMETOOLONG;
      target.assign(buf, static_cast<size_t>(len));
    }
    return 0;
  }

  void enter(const std::string&, Kind kind) override {
    cur_ = std::move(looked_);
    mode_ = looked_st_.st_mode;
    if (kind == Kind::Directory) ids_.emplace_back(looked_st_.st_dev, looked_st_.st_ino);
  }

  int make(const std::string& name) override {
    Fd made;
    if (int err = make_dir(cur_.get(), name, made)) return err;
    cur_ = std::move(made);
    ids_.push_back(file_identity(cur_.get()));
    mode_ = S_IFDIR;
    return 0;
  }

private:
  int root_;
  Fd cur_, looked_;
  struct stat looked_st_ {};
  mode_t mode_ = S_IFDIR;
  std::vector<std::pair<dev_t, ino_t>> ids_;  ///< of the root and each folder entered
};

}  // namespace

RootDir::RootDir(Fd root, bool use_openat2) : root_(std::move(root)) {
  if (use_openat2) {
    Fd probe(static_cast<int>(sys_openat2(root_.get(), ".", O_PATH | O_DIRECTORY | O_CLOEXEC, kInRoot)));
    // ENOSYS (an older kernel) or EPERM (a seccomp filter): the walk in user space.
    openat2_ = static_cast<bool>(probe);
  }
}

RootDir::RootDir(const std::filesystem::path& root, bool use_openat2)
    : RootDir(Fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)), use_openat2) {
  if (!root_) throw std::runtime_error("cannot open " + root.string() + ": " + std::strerror(errno));
}

Fd RootDir::open_dir(std::span<const std::string> dir, bool create, ResolveError& error) const {
  if (!openat2_) {
    DiskWalk walk(root_.get());
    if (auto stop = walk.walk(join(dir, "/"), {.directory = true, .create = create})) {
      error = *stop;
      return Fd();
    }
    return std::move(walk.current());
  }
  auto in_root = [&](std::span<const std::string> prefix) {
    std::string path = prefix.empty() ? "." : join(prefix, "/");
    return Fd(static_cast<int>(sys_openat2(root_.get(), path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC, kInRoot)));
  };
  Fd fd = in_root(dir);
  if (fd) return fd;
  if (errno != ENOENT || !create) {
    error = {errno, dir.empty() ? 0 : dir.size() - 1};
    return Fd();
  }
  // Something is missing: find the first missing component and make it and
  // the rest; each is created right inside the directory resolved before it.
  Fd parent = in_root({});
  for (size_t i = 1; i <= dir.size(); ++i) {
    Fd next = in_root(dir.first(i));
    if (!next) {
      if (errno != ENOENT) {
        error = {errno, i - 1};
        return Fd();
      }
      // EEXIST: a dangling symlink stands there; report what openat2 said.
      if (int err = make_dir(parent.get(), dir[i - 1], next)) {
        error = {err == EEXIST ? ENOENT : err, i - 1};
        return Fd();
      }
    }
    parent = std::move(next);
  }
  return parent;
}

std::optional<ImagePath> RootDir::resolve(std::string_view path) const {
  DiskWalk walk(root_.get());
  if (walk.walk(path, {})) return std::nullopt;
  return ImagePath(join(walk.at(), "/"));
}

std::optional<std::string> RootDir::read(std::string_view path) const {
  DiskWalk walk(root_.get());
  if (walk.walk(path, {}) || !S_ISREG(walk.mode())) return std::nullopt;
  // The walk holds the file as O_PATH; reopened through its folder, by a
  // name that O_NOFOLLOW keeps from being a symlink swapped in meanwhile.
  ResolveError error;
  std::span<const std::string> at = walk.at();
  Fd dir = open_dir(at.first(at.size() - 1), false, error);
  Fd fd(dir ? ::openat(dir.get(), at.back().c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC) : -1);
  struct stat st;
  if (!fd || ::fstat(fd.get(), &st) != 0 || !S_ISREG(st.st_mode)) return std::nullopt;
  std::string out;
  char buf[1 << 16];
  for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      return std::nullopt;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

}  // namespace imgbuild
