#include "base/fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <utility>

#include "base/interrupt.hpp"
#include "base/text.hpp"
#include "base/threads.hpp"

namespace imgbuild {

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = o.release();
  }
  return *this;
}

Fd::~Fd() {
  if (fd_ >= 0) ::close(fd_);
}

const char* file_kind(mode_t mode) {
  switch (mode & S_IFMT) {
    case S_IFIFO:
      return "a named pipe";
    case S_IFSOCK:
      return "a socket";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFDIR:
      return "a folder";
    case S_IFLNK:
      return "a symlink";
    default:
      return "a file";
  }
}

Fd open_read(const fs::path& path, FollowLink follow, struct ::stat* opened) {
  // O_NONBLOCK: a named pipe opens at once instead of waiting for a writer.
  // A socket does not open at all (ENXIO): lstat says what it is.
  int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (follow == FollowLink::No ? O_NOFOLLOW : 0);
  Fd fd(::open(path.c_str(), flags));
  struct stat own {};
  struct stat& st = opened ? *opened : own;
  if (!fd) {
    int error = errno;
    bool stat_ok = (follow == FollowLink::No ? ::lstat(path.c_str(), &st) : ::stat(path.c_str(), &st)) == 0;
    if ((error == ELOOP || error == ENXIO) && stat_ok && !S_ISREG(st.st_mode))
      throw std::runtime_error(path.string() + ": is " + file_kind(st.st_mode) + ", not a file");
    errno = error;
    throw_errno(path.string());
  }
  if (::fstat(fd.get(), &st) != 0) throw_errno(path.string());
  if (S_ISDIR(st.st_mode)) throw std::system_error(EISDIR, std::generic_category(), path.string());
  if (!S_ISREG(st.st_mode)) throw std::runtime_error(path.string() + ": is " + file_kind(st.st_mode) + ", not a file");
  // O_NONBLOCK stays: it changes nothing for a regular file (open(2)), and
  // clearing it cost a system call per file of a copy of thousands.
  return fd;
}

std::string read_file(const fs::path& path) {
  struct stat st {};
  Fd fd = open_read(path, FollowLink::Yes, &st);
  return read_opened(fd, st, path);
}

std::string read_opened(const Fd& fd, const struct ::stat& opened, const fs::path& path) {
  // Read in place, into room for what fstat says and a byte more (the read
  // that sees the end); a file that grows meanwhile, or a /proc file that
  // says 0, gets more room as it goes.
  const size_t announced = static_cast<size_t>(opened.st_size);
  std::string out;
  make_room(out, std::max<size_t>(announced + 1, 1 << 16));
  size_t got = 0;
  for (;;) {
    if (got == out.size()) make_room(out, out.size() * 2);
    ssize_t n = ::read(fd.get(), out.data() + got, out.size() - got);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(path.string());
    }
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  return out;
}

std::pair<Fd, Fd> make_pipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe");
  return {Fd(fds[0]), Fd(fds[1])};
}

void make_room(std::string& s, size_t size) {
  // Two huge pages at least: a smaller buffer holds no aligned one whole.
  constexpr size_t kHugePage = size_t{2} << 20;
  if (size >= 2 * kHugePage && size > s.size()) {
    s.reserve(size);
    const auto start = (reinterpret_cast<uintptr_t>(s.data()) + s.size() + kHugePage - 1) & ~(kHugePage - 1);
    const auto end = (reinterpret_cast<uintptr_t>(s.data()) + size) & ~(kHugePage - 1);
    // Advice only: a kernel without transparent huge pages says no, and the
    // pages are the usual ones.
    if (end > start) (void)::madvise(reinterpret_cast<void*>(start), end - start, MADV_HUGEPAGE);
  }
  s.resize(size);
}

void write_all(int fd, const void* data, size_t size, const fs::path& what) {
  auto p = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(what.string());
    }
    p += n;
    size -= static_cast<size_t>(n);
  }
}

namespace {
void fsync_dir(const fs::path& dir) {
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d && ::fsync(d.get()) != 0 && errno != EINVAL) throw_errno("fsync " + dir.string());
}
}  // namespace

AtomicFile::AtomicFile(fs::path final_path) : final_(std::move(final_path)) {
  fs::path dir = final_.parent_path().empty() ? fs::path(".") : final_.parent_path();
  std::string tmpl = (dir / ("." + final_.filename().string() + ".tmp-XXXXXX")).string();
  int fd = ::mkostemp(tmpl.data(), O_CLOEXEC);
  if (fd < 0) throw_errno("create temporary file in " + dir.string());
  fd_ = Fd(fd);
  temp_ = tmpl;
}

AtomicFile::~AtomicFile() {
  if (!committed_) ::unlink(temp_.c_str());
}

void AtomicFile::commit(mode_t mode) { put_in_place(mode, true); }

void AtomicFile::commit_unsynced(mode_t mode) { put_in_place(mode, false); }

void AtomicFile::put_in_place(mode_t mode, bool durable) {
  if (::fchmod(fd_.get(), mode) != 0) throw_errno("chmod " + temp_.string());
  if (durable && ::fsync(fd_.get()) != 0) throw_errno("fsync " + temp_.string());
  if (::rename(temp_.c_str(), final_.c_str()) != 0) throw_errno("rename to " + final_.string());
  committed_ = true;
  if (durable) fsync_dir(final_.parent_path().empty() ? fs::path(".") : final_.parent_path());
}

void AtomicFile::commit_as(fs::path final_path) {
  final_ = std::move(final_path);
  commit();
}

void mark_used(const fs::path& path) { ::utimensat(AT_FDCWD, path.c_str(), nullptr, 0); }

void write_file_atomic(const fs::path& path, std::string_view data) {
  AtomicFile f(path);
  f.write(data);
  f.commit();
}

void write_record_atomic(const fs::path& path, std::string_view data) {
  AtomicFile f(path);
  f.write(data);
  f.commit_unsynced();
}

FileLock::FileLock(const fs::path& lock_path, Mode mode, const std::function<void()>& on_wait) {
  int fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) throw_errno("open lock " + lock_path.string());
  fd_ = Fd(fd);
  const int operation = mode == Mode::Shared ? LOCK_SH : LOCK_EX;
  if (::flock(fd_.get(), operation | LOCK_NB) == 0) return;
  if (errno != EWOULDBLOCK && errno != EINTR) throw_errno("lock " + lock_path.string());
  if (on_wait) on_wait();
  // Polled rather than blocking: flock is restarted after a signal, and a
  // build waiting for `cache prune` must still stop on Ctrl-C.
  while (::flock(fd_.get(), operation | LOCK_NB) != 0) {
    if (errno != EWOULDBLOCK && errno != EINTR) throw_errno("lock " + lock_path.string());
    sleep_or_interrupt(std::chrono::milliseconds(100));
  }
}

FileLock::~FileLock() { ::flock(fd_.get(), LOCK_UN); }

TempDir::TempDir(const fs::path& parent, std::string_view prefix) {
  fs::create_directories(parent);
  std::string tmpl = (parent / (std::string(prefix) + "XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) throw_errno("create temporary directory in " + parent.string());
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) fs::remove_all(path_, ec);
}

void TempDir::remove_later(BackgroundRemover& remover) { remover.remove(std::exchange(path_, fs::path())); }

std::pair<dev_t, ino_t> file_identity(int fd) {
  struct stat st;
  if (::fstat(fd, &st) != 0) throw_errno("stat");
  return {st.st_dev, st.st_ino};
}

Fd open_dir_nofollow(int dirfd, const std::string& name) {
  return Fd(::openat(dirfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
}

namespace {

bool stopped(const std::atomic<bool>* stop) { return stop && stop->load(std::memory_order_relaxed); }

/// Reads the names in directory `dirfd` and unlinks every non-directory among
/// them; returns the subdirectories, or nullopt when `stop` was set first.
std::optional<std::vector<std::string>> unlink_files(int dirfd, const std::atomic<bool>* stop) {
  Fd fd(::openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno("cannot open directory");
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(fd.get()), ::closedir);
  if (!dir) throw_errno("cannot read directory");
  fd.release();
  std::vector<std::string> subdirs;
  while (dirent* de = ::readdir(dir.get())) {
    if (stopped(stop)) return std::nullopt;
    std::string_view name = de->d_name;
    if (name == "." || name == "..") continue;
    unsigned char type = de->d_type;
    if (type == DT_UNKNOWN) {
      struct stat st;
      if (::fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue;
        throw_errno("cannot stat " + quote(name));
      }
      type = S_ISDIR(st.st_mode) ? DT_DIR : DT_REG;
    }
    if (type == DT_DIR)
      subdirs.emplace_back(name);
    else if (::unlinkat(dirfd, de->d_name, 0) != 0 && errno != ENOENT)
      throw_errno("cannot remove " + quote(name));
  }
  return subdirs;
}

}  // namespace

bool remove_tree_at(int dirfd, const std::string& name, const std::atomic<bool>* stop) {
  if (stopped(stop)) return false;
  Fd cur = open_dir_nofollow(dirfd, name);
  if (!cur) {
    if (errno == ENOENT) return true;
    if (errno != ENOTDIR && errno != ELOOP) throw_errno("cannot open " + quote(name));
    if (::unlinkat(dirfd, name.c_str(), 0) != 0 && errno != ENOENT) throw_errno("cannot remove " + quote(name));
    return true;
  }
  struct Level {
    std::string name;                  ///< of this directory in its parent
    std::pair<dev_t, ino_t> parent;    ///< where ".." must lead
    std::vector<std::string> subdirs;  ///< still to remove
  };
  std::vector<Level> levels;
  std::optional<std::vector<std::string>> first = unlink_files(cur.get(), stop);
  if (!first) return false;
  levels.push_back({name, {}, std::move(*first)});
  for (;;) {
    Level& level = levels.back();
    if (!level.subdirs.empty()) {
      std::string sub = std::move(level.subdirs.back());
      level.subdirs.pop_back();
      Fd next = open_dir_nofollow(cur.get(), sub);
      if (!next) {
        if (errno == ENOENT) continue;
        throw_errno("cannot open " + quote(sub));
      }
      auto parent = file_identity(cur.get());
      std::optional<std::vector<std::string>> subdirs = unlink_files(next.get(), stop);
      if (!subdirs) return false;
      levels.push_back({std::move(sub), parent, std::move(*subdirs)});
      cur = std::move(next);
      continue;
    }
    // A name unlinked while the directory was read may hide another from
    // readdir on some file systems: look again before removing it.
    std::optional<std::vector<std::string>> again = unlink_files(cur.get(), stop);
    if (!again) return false;
    level.subdirs = std::move(*again);
    if (!level.subdirs.empty()) continue;
    if (levels.size() == 1) break;
    Fd up(::openat(cur.get(), "..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!up) throw_errno("cannot open the parent of " + quote(level.name));
    if (file_identity(up.get()) != level.parent)
      throw std::runtime_error("cannot remove " + quote(level.name) + ": it was moved during the removal");
    if (::unlinkat(up.get(), level.name.c_str(), AT_REMOVEDIR) != 0) throw_errno("cannot remove " + quote(level.name));
    levels.pop_back();
    cur = std::move(up);
  }
  if (::unlinkat(dirfd, name.c_str(), AT_REMOVEDIR) != 0) throw_errno("cannot remove " + quote(name));
  return true;
}

namespace {

/// Removes every entry of the folder `dir` as remove_tree_at() does; an entry
/// that cannot be removed is left, the others still go. False once `stop` is set.
bool remove_children(const fs::path& dir, const std::atomic<bool>& stop) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return true;
  std::vector<std::string> names;
  {
    std::unique_ptr<DIR, int (*)(DIR*)> listing(::fdopendir(::dup(fd.get())), ::closedir);
    if (!listing) return true;
    while (const dirent* e = ::readdir(listing.get()))
      if (std::string_view n = e->d_name; n != "." && n != "..") names.emplace_back(n);
  }
  for (const std::string& name : names) try {
      if (!remove_tree_at(fd.get(), name, &stop)) return false;
    } catch (const std::runtime_error&) {
      // left where it is, for the next remover or `cache prune`
    }
  return true;
}

/// remove_tree_at() for a path; errors leave what they concern where it is.
bool remove_path(const fs::path& path, const std::atomic<bool>& stop) {
  Fd parent(::open(path.parent_path().empty() ? "." : path.parent_path().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!parent) return true;
  try {
    return remove_tree_at(parent.get(), path.filename().string(), &stop);
  } catch (const std::runtime_error&) {
    return true;
  }
}

}  // namespace

BackgroundRemover::BackgroundRemover(fs::path trash) : trash_(std::move(trash)) {
  std::error_code ec;
  if (trash_.empty() || fs::is_empty(trash_, ec) || ec) return;
  std::lock_guard lock(mutex_);
  start();
}

BackgroundRemover::~BackgroundRemover() {
  stop_now_ = leave_the_rest_.load();
  stop_threads(mutex_, stopping_, wake_, std::span(&thread_, 1));
}

void BackgroundRemover::remove(const fs::path& dir) {
  std::error_code ec;
  if (!trash_.empty()) {
    fs::create_directories(trash_, ec);
    // Unique in the trash as it was in its folder (mkdtemp's name), unless
    // two folders of one name meet there: the rename then fails, and the
    // thread removes the second where it is.
    if (!ec) fs::rename(dir, trash_ / dir.filename(), ec);
  }
  {
    std::lock_guard lock(mutex_);
    if (trash_.empty() || ec) unmoved_.push_back(dir);
    start();
  }
  wake_.notify_one();
}

void BackgroundRemover::start() {
  pending_ = true;
  if (!thread_.joinable()) thread_ = std::thread([this] { work(); });
}

void BackgroundRemover::work() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [&] { return stopping_ || pending_; });
    if (!pending_) return;  // stopping, and everything handed is removed
    pending_ = false;
    std::vector<fs::path> unmoved = std::exchange(unmoved_, {});
    lock.unlock();
    bool going = true;
    for (const fs::path& dir : unmoved)
      if (!(going = remove_path(dir, stop_now_))) break;
    if (going && !trash_.empty()) remove_children(trash_, stop_now_);
    lock.lock();
  }
}

}  // namespace imgbuild
