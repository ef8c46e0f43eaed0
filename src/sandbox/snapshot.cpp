#include "sandbox/snapshot.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <memory>
#include <vector>

#include "base/fs.hpp"
#include "base/interrupt.hpp"
#include "sandbox/rootless.hpp"
#include "sandbox/sandbox.hpp"

namespace imgbuild {

namespace fs = std::filesystem;

namespace {

/// Set on every folder of a snapshot copy: a folder without it was made by
/// the step, which deleted the image's folder and made a new one. Overlay
/// knows that and marks the folder opaque; the copy needs this to know it.
/// In trusted.* when root, where the step (which has no CAP_SYS_ADMIN) can
/// neither see nor copy it.
const char* snapshot_marker() { return rootless() ? "user.imgbuild.snapshot" : "trusted.imgbuild.snapshot"; }

[[noreturn]] void copy_failed(const std::string& rel, const char* what) {
  int e = errno;
  throw SandboxError("cannot copy the image for a snapshot step: /" + rel + ": " + what + ": " + strerror(e));
}

/// The names in the open folder `dir_fd`, read through a descriptor of its
/// own so `dir_fd` stays usable for the *at calls.
std::vector<std::string> names_at(int dir_fd, const std::string& rel) {
  int fd = ::openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) copy_failed(rel, "open");
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(fd), ::closedir);
  if (!dir) {
    ::close(fd);
    copy_failed(rel, "opendir");
  }
  std::vector<std::string> names;
  for (;;) {
    errno = 0;
    dirent* de = ::readdir(dir.get());
    if (!de) {
      if (errno != 0) copy_failed(rel, "readdir");
      return names;
    }
    std::string_view name = de->d_name;
    if (name != "." && name != "..") names.emplace_back(name);
  }
}

/// Copies `len` bytes at `offset`: in the kernel when it can, else through a buffer.
void copy_range(int in, int out, off_t offset, off_t len, const std::string& rel) {
  loff_t from = offset, to = offset;
  while (len > 0) {
    ssize_t n = ::copy_file_range(in, &from, out, &to, static_cast<size_t>(len), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) break;
    if (n < 0) copy_failed(rel, "copy");
    if (n == 0) {
      errno = EIO;
      copy_failed(rel, "shorter than its size");
    }
    from += n;
    to += n;
    len -= n;
  }
  std::vector<char> buf(1 << 16);
  while (len > 0) {
    ssize_t n =
        ::pread(in, buf.data(), static_cast<size_t>(std::min<off_t>(len, static_cast<off_t>(buf.size()))), from);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      copy_failed(rel, "read");
    }
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::pwrite(out, buf.data() + done, static_cast<size_t>(n - done), to + done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) copy_failed(rel, "write");
      done += w;
    }
    from += n;
    to += n;
    len -= n;
  }
}

/// A regular file's bytes: shared extents where the file system can
/// (btrfs, xfs), and otherwise only its data, so a sparse file stays sparse.
void copy_bytes(int in, int out, off_t size, const std::string& rel) {
  if (size == 0 || ::ioctl(out, FICLONE, in) == 0) return;
  for (off_t pos = 0; pos < size;) {
    off_t data = ::lseek(in, pos, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // only a hole is left
    if (data < 0) data = pos;               // no SEEK_DATA here: copy it all
    if (data >= size) break;
    off_t end = ::lseek(in, data, SEEK_HOLE);
    if (end < 0 || end > size) end = size;
    copy_range(in, out, data, end - data, rel);
    pos = end;
  }
  if (::ftruncate(out, size) != 0) copy_failed(rel, "truncate");
}

/// Extended attributes, file capabilities among them, so the step sees its
/// files as they are. Best effort: an attribute the copy cannot set (a
/// trusted.* one without root, a file system without them) is one no layer
/// keeps (layer_keeps_xattr keeps only security.capability and user.*, which
/// any owner can set), so it changes nothing but what the step could read.
void copy_xattrs(int from, int to) {
  std::vector<char> names(1 << 16), value(1 << 16);
  ssize_t n = ::flistxattr(from, names.data(), names.size());
  for (ssize_t i = 0; i < n; i += static_cast<ssize_t>(strlen(names.data() + i)) + 1) {
    std::string_view name = names.data() + i;
    if (name.starts_with("trusted.overlay.") || name.starts_with("user.overlay.") || name == snapshot_marker())
      continue;
    ssize_t size = ::fgetxattr(from, name.data(), value.data(), value.size());
    if (size >= 0) (void)::fsetxattr(to, name.data(), value.data(), static_cast<size_t>(size), 0);
  }
}

/// Owner, mode, xattrs and times, in that order: chown clears setuid bits
/// and file capabilities, and the times must come last to stay.
void copy_attributes(int from, int to, const struct stat& st, const std::string& rel, bool dir) {
  if (::fchown(to, st.st_uid, st.st_gid) != 0) copy_failed(rel, "chown");
  if (::fchmod(to, st.st_mode & 07777) != 0) copy_failed(rel, "chmod");
  copy_xattrs(from, to);
  // Failing (no xattrs on this file system), the folder only looks made by
  // the step: its layer then lists it as opaque, which is still right.
  if (dir) (void)::fsetxattr(to, snapshot_marker(), "1", 1, 0);
  const timespec times[2] = {st.st_atim, st.st_mtim};
  if (::futimens(to, times) != 0) copy_failed(rel, "set times");
}

Fd open_dir_at(int parent, const std::string& name, const std::string& rel) {
  Fd fd(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) copy_failed(rel, "open");
  return fd;
}

/// Copies the contents of folder `from` into the empty folder `to`, by
/// descriptors and *at calls that never follow a symlink. Hard links become
/// separate files, as overlay breaks them when one name is written: a step
/// changing one name then changes only that one in both kinds of run.
void copy_tree(int from, int to, const std::string& rel) {
  for (const std::string& name : names_at(from, rel)) {
    check_interrupt();
    std::string child = join(rel, name);
    const char* n = name.c_str();
    struct stat st {};
    if (::fstatat(from, n, &st, AT_SYMLINK_NOFOLLOW) != 0) copy_failed(child, "stat");
    if (S_ISDIR(st.st_mode)) {
      // 0700 until its children are in: the folder's own mode may forbid writing them.
      if (::mkdirat(to, n, 0700) != 0) copy_failed(child, "mkdir");
      Fd src = open_dir_at(from, name, child), dst = open_dir_at(to, name, child);
      copy_tree(src.get(), dst.get(), child);
      copy_attributes(src.get(), dst.get(), st, child, true);
    } else if (S_ISREG(st.st_mode)) {
      Fd src(::openat(from, n, O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!src) copy_failed(child, "open");
      Fd dst(::openat(to, n, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!dst) copy_failed(child, "create");
      copy_bytes(src.get(), dst.get(), st.st_size, child);
      copy_attributes(src.get(), dst.get(), st, child, false);
    } else {
      if (S_ISLNK(st.st_mode)) {
        std::string target(PATH_MAX + 1, '\0');
        ssize_t len = ::readlinkat(from, n, target.data(), target.size());
        if (len < 0 || static_cast<size_t>(len) >= target.size()) copy_failed(child, "readlink");
        target.resize(static_cast<size_t>(len));
        if (::symlinkat(target.c_str(), to, n) != 0) copy_failed(child, "symlink");
      } else {
        // Device nodes need root, as they did to unpack the image.
        if (::mknodat(to, n, (st.st_mode & S_IFMT) | 0600, st.st_rdev) != 0) copy_failed(child, "mknod");
      }
      if (::fchownat(to, n, st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0) copy_failed(child, "chown");
      if (!S_ISLNK(st.st_mode) && ::fchmodat(to, n, st.st_mode & 07777, 0) != 0) copy_failed(child, "chmod");
      const timespec times[2] = {st.st_atim, st.st_mtim};
      if (::utimensat(to, n, times, AT_SYMLINK_NOFOLLOW) != 0) copy_failed(child, "set times");
    }
  }
}

}  // namespace

bool has_snapshot_marker(const fs::path& dir) { return ::lgetxattr(dir.c_str(), snapshot_marker(), nullptr, 0) >= 0; }

std::string join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

void copy_image(const fs::path& from, const fs::path& to) {
  Fd src(::open(from.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)),
      dst(::open(to.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!src || !dst) copy_failed("", "open");
  struct stat st {};
  if (::fstat(src.get(), &st) != 0) copy_failed("", "stat");
  copy_tree(src.get(), dst.get(), "");
  copy_attributes(src.get(), dst.get(), st, "", true);
}

}  // namespace imgbuild
