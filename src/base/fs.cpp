#include "base/fs.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "base/interrupt.hpp"
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

Fd open_read(const fs::path& path, FollowLink follow) {
  // O_NONBLOCK: a named pipe opens at once instead of waiting for a writer.
  // A socket does not open at all (ENXIO): lstat says what it is.
  int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | (follow == FollowLink::No ? O_NOFOLLOW : 0);
  Fd fd(::open(path.c_str(), flags));
  struct stat st {};
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
  // A file's reads as usual: O_NONBLOCK was for the open.
  if (::fcntl(fd.get(), F_SETFL, 0) != 0) throw_errno(path.string());
  return fd;
}

std::string read_file(const fs::path& path) {
  Fd fd = open_read(path);
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno(path.string());
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
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

namespace {

bool remove_entry(int parent, const char* name, const std::atomic<bool>& stop);

/// Removes everything in the open folder `fd` (closed here), entry by entry,
/// never following a symlink; false when `stop` was set before it was all
/// gone. Errors leave what they concern where it is.
bool remove_children(int fd, const std::atomic<bool>& stop) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(fd), ::closedir);
  if (!dir) {
    ::close(fd);
    return true;
  }
  while (const dirent* e = ::readdir(dir.get())) {
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    if (!remove_entry(fd, e->d_name, stop)) return false;
  }
  return true;
}

/// Removes `name` in the folder `parent` and everything below it, as
/// remove_children() does.
bool remove_entry(int parent, const char* name, const std::atomic<bool>& stop) {
  if (stop.load(std::memory_order_relaxed)) return false;
  // Linux says EISDIR for a folder.
  if (::unlinkat(parent, name, 0) == 0 || errno != EISDIR) return true;
  int fd = ::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return true;
  if (!remove_children(fd, stop)) return false;
  ::unlinkat(parent, name, AT_REMOVEDIR);
  return true;
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
    for (const fs::path& dir : unmoved)
      if (!remove_entry(AT_FDCWD, dir.c_str(), stop_now_)) break;
    if (!trash_.empty()) {
      int fd = ::open(trash_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0) remove_children(fd, stop_now_);
    }
    lock.lock();
  }
}

}  // namespace imgbuild
