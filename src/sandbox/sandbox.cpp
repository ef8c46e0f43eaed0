#include "sandbox/sandbox.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/fs.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <deque>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "base/fs.hpp"
#include "base/interrupt.hpp"
#include "base/process.hpp"
#include "base/text.hpp"

extern char** environ;

namespace imgbuild {

namespace fs = std::filesystem;

namespace {

constexpr size_t kTailLines = 20;

/// The capabilities a step keeps: docker's default set. Everything else
/// (mounting, loading modules, raw I/O, tracing other processes...) is dropped
/// from the bounding set before the command starts.
constexpr int kKeptCapabilities[] = {
    CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FSETID,  CAP_FOWNER,           CAP_MKNOD,      CAP_NET_RAW, CAP_SETGID,
    CAP_SETUID, CAP_SETFCAP,      CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_KILL,    CAP_AUDIT_WRITE};

/// Host device nodes bind-mounted into the step's /dev.
constexpr const char* kDevices[] = {"null", "zero", "full", "random", "urandom", "tty"};

/// Lines of /etc/passwd or /etc/group: name:x:id:...
std::vector<std::vector<std::string>> read_db(const fs::path& file) {
  std::vector<std::vector<std::string>> rows;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') rows.push_back(split(line, ':'));
  return rows;
}

std::optional<uint32_t> number(const std::string& s) {
  if (s.empty() || s.size() > 10 || !std::all_of(s.begin(), s.end(), ::isdigit)) return std::nullopt;
  unsigned long v = std::stoul(s);
  if (v > 0xffffffffUL) return std::nullopt;
  return static_cast<uint32_t>(v);
}

/// Everything the child needs, prepared before fork: after it, a child of a
/// possibly multi-threaded process may only make system calls.
struct ChildPlan {
  std::vector<std::string> strings;  // owns the storage below
  std::vector<char*> argv, envp;
  std::string overlay_options;  // empty: a snapshot step
  std::string snapshot;         // the copy bind-mounted as the root of a snapshot step
  std::string merged, workdir_path;
  std::vector<std::string> workdir_parents;  // "/a", "/a/b": made before entering it
  std::vector<std::string> dirs_to_make;     // absolute, inside merged, before pivot
  struct Bind {
    std::string source, target;
    bool read_only, is_file;
  };
  std::vector<Bind> binds;
  std::string proc, dev, dev_shm, dev_pts;
  std::vector<std::pair<std::string, std::string>> device_binds;  // host node, target
  std::vector<std::pair<std::string, std::string>> dev_links;     // link target, path
  UserIds ids;
  std::vector<gid_t> groups;
  bool network = true;
  bool user_namespace = false;
};

/// What the child writes on its report pipe when it cannot set the step up.
/// A pipe of its own, not the output: the parent must tell a refused overlay
/// (retried on a snapshot) from a command that printed anything and failed.
struct SetupFailure {
  int error = 0;
  bool overlay = false;  // the overlay mount itself was refused
  char what[64] = {};
};

[[noreturn]] void child_fail(int report_fd, const char* what, bool overlay = false) {
  SetupFailure f;
  f.error = errno;
  f.overlay = overlay;
  ::strncpy(f.what, what, sizeof f.what - 1);
  (void)!::write(report_fd, &f, sizeof f);
  _exit(125);
}

/// Closes descriptors `lo` to `hi`, both included.
void close_fds(unsigned lo, unsigned hi) {
  if (lo > hi || ::syscall(SYS_close_range, lo, hi, 0) == 0) return;
  for (unsigned fd = lo; fd <= std::min(hi, 65535U); ++fd) ::close(static_cast<int>(fd));
}

void make_file(const std::string& path) {
  // O_EXCL: opening the image's own file for writing would make overlay copy it up.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd >= 0) ::close(fd);
}

/// The child, PID 1 of the new PID namespace: sets up the mounts, enters the
/// image, drops privileges, then forks the command and reaps until it ends.
[[noreturn]] void child_main(const ChildPlan& p, int out_fd, int sync_fd, int report_fd) {
  if (p.user_namespace) {
    char c;
    if (::read(sync_fd, &c, 1) != 1) child_fail(report_fd, "waiting for the user namespace mapping");
  }
  ::close(sync_fd);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) child_fail(report_fd, "making mounts private");
  if (!p.snapshot.empty()) {
    if (::mount(p.snapshot.c_str(), p.merged.c_str(), nullptr, MS_BIND, nullptr) != 0)
      child_fail(report_fd, "bind-mounting the snapshot");
  } else if (::mount("overlay", p.merged.c_str(), "overlay", 0, p.overlay_options.c_str()) != 0) {
    child_fail(report_fd, "mounting the overlay", true);
  }
  for (auto& d : p.dirs_to_make) ::mkdir(d.c_str(), 0755);
  if (::mount("proc", p.proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    child_fail(report_fd, "mounting /proc");
  if (::mount("tmpfs", p.dev.c_str(), "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k") != 0)
    child_fail(report_fd, "mounting /dev");
  for (auto& [host, target] : p.device_binds) {
    make_file(target);
    if (::mount(host.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0)
      child_fail(report_fd, "mounting a device");
  }
  for (auto& [to, link] : p.dev_links) (void)!::symlink(to.c_str(), link.c_str());
  ::mkdir(p.dev_shm.c_str(), 01777);
  ::mount("shm", p.dev_shm.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
  ::mkdir(p.dev_pts.c_str(), 0755);
  ::mount("devpts", p.dev_pts.c_str(), "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620");
  for (auto& b : p.binds) {
    if (b.is_file)
      make_file(b.target);
    else
      ::mkdir(b.target.c_str(), 0755);
    if (::mount(b.source.c_str(), b.target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
      child_fail(report_fd, "bind-mounting into the step");
    if (b.read_only && ::mount(nullptr, b.target.c_str(), nullptr,
                               MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0)
      child_fail(report_fd, "making a mount read-only");
  }
  ::sethostname("imgbuild", 8);
  if (::chdir(p.merged.c_str()) != 0) child_fail(report_fd, "entering the image root");
  if (::syscall(SYS_pivot_root, ".", ".") != 0) child_fail(report_fd, "pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) child_fail(report_fd, "detaching the host root");
  if (::chdir("/") != 0) child_fail(report_fd, "chdir /");
  // The working directory, made as docker makes it: by root, before the step.
  for (auto& dir : p.workdir_parents) ::mkdir(dir.c_str(), 0755);
  if (::chdir(p.workdir_path.c_str()) != 0) child_fail(report_fd, "entering the working directory");

  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap)
    if (std::find(std::begin(kKeptCapabilities), std::end(kKeptCapabilities), cap) == std::end(kKeptCapabilities))
      ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  if (!p.user_namespace && ::setgroups(p.groups.size(), p.groups.data()) != 0) child_fail(report_fd, "setgroups");
  if (::setgid(p.ids.gid) != 0) child_fail(report_fd, "setgid");
  if (::setuid(p.ids.uid) != 0) child_fail(report_fd, "setuid");

  int in = ::open("/dev/null", O_RDONLY);
  if (in < 0 || ::dup2(in, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(out_fd, 2) < 0) child_fail(report_fd, "stdio");
  // Nothing of imgbuild's leaks into the step: every other descriptor closes
  // but the report pipe, which is close-on-exec and so stays with PID 1.
  close_fds(3, static_cast<unsigned>(report_fd) - 1);
  close_fds(static_cast<unsigned>(report_fd) + 1, ~0U);

  // The raw system call, not fork(): glibc's fork takes the malloc and stdio
  // locks first, and this child of a raw clone may hold copies of them that
  // another thread of imgbuild had locked at that instant: it would wait forever.
  pid_t cmd = static_cast<pid_t>(::syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr));
  if (cmd < 0) child_fail(report_fd, "fork");
  if (cmd == 0) {
    environ = const_cast<char**>(p.envp.data());
    ::execvp(p.argv[0], const_cast<char* const*>(p.argv.data()));
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s: %s\n", p.argv[0], strerror(errno));
    if (n > 0) (void)!write(2, buf, static_cast<size_t>(std::min(n, 511)));
    _exit(errno == ENOENT ? 127 : 126);
  }
  // PID 1: reap everything, end with the command's status.
  int status = 0;
  for (;;) {
    int s = 0;
    pid_t r = ::waitpid(-1, &s, 0);
    if (r == cmd) status = s;
    if (r < 0 && errno == ECHILD) break;
  }
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

std::string absolute_in(const std::string& path) { return path.starts_with("/") ? path : "/" + path; }

/// Without root the step runs in a user namespace, whose root cannot write
/// trusted.* xattrs: overlay then keeps its marks in user.overlay.* (its
/// userxattr option), and the snapshot copy its own in user.imgbuild.*.
bool rootless() { return ::geteuid() != 0; }

/// Set on every folder of a snapshot copy: a folder without it was made by
/// the step, which deleted the image's folder and made a new one. Overlay
/// knows that and marks the folder opaque; the copy needs this to know it.
/// In trusted.* when root, where the step (which has no CAP_SYS_ADMIN) can
/// neither see nor copy it.
const char* snapshot_marker() { return rootless() ? "user.imgbuild.snapshot" : "trusted.imgbuild.snapshot"; }

bool has_snapshot_marker(const fs::path& dir) { return ::lgetxattr(dir.c_str(), snapshot_marker(), nullptr, 0) >= 0; }

std::string describe(const SetupFailure& f) { return std::string(f.what) + ": " + strerror(f.error); }

[[noreturn]] void copy_failed(const std::string& rel, const char* what) {
  int e = errno;
  throw SandboxError("cannot copy the image for a snapshot step: /" + rel + ": " + what + ": " + strerror(e));
}

std::string join(const std::string& dir, const std::string& name) { return dir.empty() ? name : dir + "/" + name; }

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
/// files as they are. Best effort: layers carry no xattrs, so one the copy
/// cannot set (a trusted.* one without root, a file system without them)
/// changes nothing but what the step could read.
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

/// Copies the image root `from` into the empty folder `to` for a snapshot step.
void copy_image(const fs::path& from, const fs::path& to) {
  Fd src(::open(from.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)),
      dst(::open(to.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!src || !dst) copy_failed("", "open");
  struct stat st {};
  if (::fstat(src.get(), &st) != 0) copy_failed("", "stat");
  copy_tree(src.get(), dst.get(), "");
  copy_attributes(src.get(), dst.get(), st, "", true);
}

/// Starts the child on plan `p` and waits for its end, passing its output to
/// `spec.output` and `result`. Returns what the child reported when it could
/// not set the step up: the command did not run then.
std::optional<SetupFailure> launch(const ChildPlan& p, const SandboxSpec& spec, SandboxResult& result) {
  auto make_pipe = [] {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw_errno("pipe");
    return std::pair<Fd, Fd>(Fd(fds[0]), Fd(fds[1]));
  };
  auto [out_read, out_write] = make_pipe();
  auto [sync_read, sync_write] = make_pipe();
  auto [report_read, report_write] = make_pipe();

  unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
  if (!p.network) flags |= CLONE_NEWNET;
  if (p.user_namespace) flags |= CLONE_NEWUSER;
  pid_t pid = static_cast<pid_t>(::syscall(SYS_clone, flags, nullptr, nullptr, nullptr, nullptr));
  if (pid < 0) {
    int e = errno;
    if (p.user_namespace && (e == EPERM || e == EINVAL || e == ENOSPC))
      throw SandboxError(std::string("cannot create a user namespace for a rootless RUN step (") + strerror(e) +
                         "): run as root, or allow unprivileged user namespaces "
                         "(sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0)");
    throw SandboxError(std::string("cannot create the step's namespaces: ") + strerror(e));
  }
  if (pid == 0) child_main(p, out_write.get(), sync_read.get(), report_write.get());
  // Killed (and with it the whole PID namespace) if anything below throws,
  // an interrupt included.
  ChildProcess child(pid, false);

  out_write = Fd();
  sync_read = Fd();
  report_write = Fd();
  if (p.user_namespace) {
    // Root inside is the invoking user outside: the step can own its files.
    auto write_map = [&](const std::string& file, const std::string& text) {
      std::ofstream f("/proc/" + std::to_string(pid) + "/" + file);
      f << text;
    };
    write_map("setgroups", "deny");
    write_map("uid_map", "0 " + std::to_string(::geteuid()) + " 1\n");
    write_map("gid_map", "0 " + std::to_string(::getegid()) + " 1\n");
    // Only this child waits for the byte; another has closed its end, and
    // writing there would raise SIGPIPE in a process that does not ignore it.
    (void)!::write(sync_write.get(), "x", 1);
  }
  sync_write = Fd();

  std::deque<std::string> tail;
  std::string pending;
  auto emit = [&](std::string line) {
    if (spec.output) spec.output(line);
    tail.push_back(std::move(line));
    if (tail.size() > kTailLines) tail.pop_front();
  };
  char buf[1 << 16];
  for (;;) {
    if (!wait_readable(out_read.get())) check_interrupt();
    ssize_t n = ::read(out_read.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
    for (size_t nl; (nl = pending.find('\n')) != std::string::npos;) {
      emit(pending.substr(0, nl));
      pending.erase(0, nl + 1);
    }
  }
  if (!pending.empty()) emit(pending);
  result.exit_code = child.wait();
  result.last_lines.assign(tail.begin(), tail.end());
  SetupFailure failure;
  if (::read(report_read.get(), &failure, sizeof failure) == static_cast<ssize_t>(sizeof failure)) return failure;
  return std::nullopt;
}

/// Whether two regular files hold the same bytes. Size and mtime are not
/// enough: a step can rewrite a file within the same second, keeping its size.
bool same_bytes(const fs::path& a, const fs::path& b) {
  Fd fa(::open(a.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fa) throw_errno(a.string());
  Fd fb(::open(b.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fb) throw_errno(b.string());
  auto fill = [](int fd, std::vector<char>& buf, const fs::path& what) {
    size_t got = 0;
    while (got < buf.size()) {
      ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno(what.string());
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    return got;
  };
  std::vector<char> ba(1 << 16), bb(1 << 16);
  for (;;) {
    size_t na = fill(fa.get(), ba, a), nb = fill(fb.get(), bb, b);
    if (na != nb || std::memcmp(ba.data(), bb.data(), na) != 0) return false;
    if (na == 0) return true;
  }
}

/// The entries of a step, from either kind of run, under the rules both
/// share, so that a change gives the same entries whichever ran.
class Diff {
public:
  Diff(const fs::path& lower, const std::vector<std::string>& mount_points, const fs::path& whiteout_source)
      : lower_(lower), whiteout_source_(whiteout_source) {
    for (auto& m : mount_points) mount_points_.insert(m.starts_with("/") ? m.substr(1) : m);
  }

  /// A folder or file made only to mount on, which the image did not have.
  bool skipped(const std::string& rel) const {
    return mount_points_.count(rel) && !fs::exists(fs::symlink_status(lower_ / rel));
  }

  /// The step's folder, file or symlink `rel`, found at `full`. `keep`: it
  /// is below an opaque folder, so it is in the layer even when the image's
  /// own is the same.
  void add(const fs::path& full, const std::string& rel, const struct stat& st, bool keep) {
    LayerEntry e;
    e.path = rel;
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    if (S_ISDIR(st.st_mode)) {
      e.type = LayerEntry::Type::Directory;
    } else if (S_ISLNK(st.st_mode)) {
      e.type = LayerEntry::Type::Symlink;
      e.link_target = fs::read_symlink(full).string();
    } else if (S_ISREG(st.st_mode)) {
      e.type = LayerEntry::Type::File;
      e.source = full;
      e.size = static_cast<uint64_t>(st.st_size);
    } else {
      throw std::runtime_error("/" + rel + ": a device, fifo or socket cannot be put in a layer");
    }
    candidates_.push_back({std::move(e), keep});
  }

  /// `rel` was deleted.
  void add_whiteout(const std::string& rel) {
    fs::path p(rel);
    add_empty((p.parent_path() / (".wh." + p.filename().string())).generic_string());
  }

  /// Folder `dir` hides the image's folder whole.
  void add_opaque_marker(const std::string& dir) { add_empty(dir + "/.wh..wh..opq"); }

  /// The entries, sorted by path. What the step left as the image has it
  /// (a folder above a change, a file rewritten with the same bytes) is left
  /// out, but for the folders a kept entry is in.
  std::vector<LayerEntry> finish() {
    std::vector<bool> unchanged(candidates_.size());
    std::set<std::string> needed;
    for (size_t i = 0; i < candidates_.size(); ++i) {
      unchanged[i] = !candidates_[i].keep && same_as_lower(candidates_[i].entry);
      if (!unchanged[i])
        for (fs::path p = fs::path(candidates_[i].entry.path).parent_path(); !p.empty(); p = p.parent_path())
          needed.insert(p.generic_string());
    }
    std::vector<LayerEntry> entries;
    for (size_t i = 0; i < candidates_.size(); ++i) {
      LayerEntry& e = candidates_[i].entry;
      if (!unchanged[i] || (e.type == LayerEntry::Type::Directory && needed.count(e.path)))
        entries.push_back(std::move(e));
    }
    std::sort(entries.begin(), entries.end(), [](const LayerEntry& a, const LayerEntry& b) { return a.path < b.path; });
    return entries;
  }

private:
  struct Candidate {
    LayerEntry entry;
    bool keep = false;  // a whiteout, a marker or below an opaque folder: in the layer whatever the image has
  };

  void add_empty(const std::string& path) {
    candidates_.push_back({{path, LayerEntry::Type::File, 0644, 0, 0, whiteout_source_, 0, ""}, true});
  }

  bool same_as_lower(const LayerEntry& e) const {
    fs::path path = lower_ / e.path;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return false;
    if ((st.st_mode & 07777) != e.mode || st.st_uid != e.uid || st.st_gid != e.gid) return false;
    switch (e.type) {
      case LayerEntry::Type::Directory:
        return S_ISDIR(st.st_mode);
      case LayerEntry::Type::Symlink:
        return S_ISLNK(st.st_mode) && fs::read_symlink(path).string() == e.link_target;
      case LayerEntry::Type::File:
        return S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) == e.size && same_bytes(e.source, path);
    }
    return false;
  }

  fs::path lower_, whiteout_source_;
  std::set<std::string> mount_points_;  // relative to the root
  std::vector<Candidate> candidates_;
};

struct stat lstat_of(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) throw_errno(path.string());
  return st;
}

std::vector<std::string> sorted_names(const fs::path& dir) {
  std::vector<std::string> names;
  for (auto& de : fs::directory_iterator(dir)) names.push_back(de.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

/// The snapshot side of step_changes: the copy a step ran on, walked beside
/// the image root it was copied from.
class SnapshotWalk {
public:
  SnapshotWalk(Diff& diff, const fs::path& copy, const fs::path& lower)
      : diff_(diff), copy_(copy), lower_(lower), markers_(has_snapshot_marker(copy)) {}

  /// Folder `dir`, in both, holds what the image's did but for the changes.
  void children(const std::string& dir) {
    std::vector<std::string> now = sorted_names(copy_ / dir), before = sorted_names(lower_ / dir);
    for (auto& name : before)
      if (!std::binary_search(now.begin(), now.end(), name)) diff_.add_whiteout(join(dir, name));
    for (auto& name : now) path(join(dir, name));
  }

private:
  void path(const std::string& rel) {
    if (diff_.skipped(rel)) return;
    struct stat st = lstat_of(copy_ / rel), old{};
    bool had = ::lstat((lower_ / rel).c_str(), &old) == 0;
    if (!S_ISDIR(st.st_mode)) {
      // The image's own device nodes and fifos, untouched, are not changes.
      bool special = !S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode);
      if (special && had && old.st_mode == st.st_mode && old.st_rdev == st.st_rdev && old.st_uid == st.st_uid &&
          old.st_gid == st.st_gid)
        return;
      diff_.add(copy_ / rel, rel, st, false);
    } else if (!had) {
      tree(rel, false);
    } else if (!S_ISDIR(old.st_mode) || (markers_ && !has_snapshot_marker(copy_ / rel))) {
      // Made where a file was, or deleted and made again: overlay makes such
      // a folder opaque, so nothing of the image's shows through it.
      diff_.add(copy_ / rel, rel, st, false);
      diff_.add_opaque_marker(rel);
      for (auto& name : sorted_names(copy_ / rel)) tree(join(rel, name), true);
    } else {
      diff_.add(copy_ / rel, rel, st, false);
      children(rel);
    }
  }

  /// `rel` and everything below it, all the step's.
  void tree(const std::string& rel, bool keep) {
    if (diff_.skipped(rel)) return;
    struct stat st = lstat_of(copy_ / rel);
    diff_.add(copy_ / rel, rel, st, keep);
    if (S_ISDIR(st.st_mode))
      for (auto& name : sorted_names(copy_ / rel)) tree(join(rel, name), keep);
  }

  Diff& diff_;
  const fs::path& copy_;
  const fs::path& lower_;
  bool markers_;  // the copy's folders carry snapshot_marker(): a folder without it is the step's
};

}  // namespace

UserIds resolve_user(const fs::path& root, const std::string& user) {
  UserIds ids;
  if (user.empty()) return ids;
  std::string name = user.substr(0, user.find(':'));
  std::optional<std::string> group;
  if (user.find(':') != std::string::npos) group = user.substr(user.find(':') + 1);
  auto passwd = read_db(root / "etc/passwd");
  auto groups = read_db(root / "etc/group");
  std::string user_name;
  if (auto uid = number(name)) {
    ids.uid = *uid;
    for (auto& row : passwd)
      if (row.size() > 3 && number(row[2]) == *uid) {
        user_name = row[0];
        ids.gid = number(row[3]).value_or(0);
        break;
      }
  } else {
    bool found = false;
    for (auto& row : passwd)
      if (row.size() > 3 && row[0] == name) {
        ids.uid = number(row[2]).value_or(0);
        ids.gid = number(row[3]).value_or(0);
        user_name = name;
        found = true;
        break;
      }
    if (!found) throw SandboxError("user '" + name + "' is not in the image's /etc/passwd");
  }
  if (group) {
    if (auto gid = number(*group)) {
      ids.gid = *gid;
    } else {
      bool found = false;
      for (auto& row : groups)
        if (row.size() > 2 && row[0] == *group) {
          ids.gid = number(row[2]).value_or(0);
          found = true;
          break;
        }
      if (!found) throw SandboxError("group '" + *group + "' is not in the image's /etc/group");
    }
  }
  ids.groups.push_back(ids.gid);
  if (!user_name.empty())
    for (auto& row : groups)
      if (row.size() > 3) {
        auto members = split(row[3], ',');
        if (std::find(members.begin(), members.end(), user_name) != members.end())
          if (auto gid = number(row[2]); gid && *gid != ids.gid) ids.groups.push_back(*gid);
      }
  return ids;
}

SandboxResult run_in_sandbox(const SandboxSpec& spec) {
  if (spec.argv.empty()) throw SandboxError("nothing to run");
  ChildPlan p;
  p.ids = resolve_user(spec.lower, spec.user);
  p.network = spec.network;
  p.user_namespace = rootless();

  TempDir scratch(spec.work.parent_path(), "sandbox-");
  fs::path merged = scratch.path() / "root";
  fs::create_directory(merged);
  p.merged = merged.string();
  auto in_root = [&](const std::string& image_path) { return p.merged + absolute_in(image_path); };
  p.proc = in_root("/proc");
  p.dev = in_root("/dev");
  p.dev_shm = in_root("/dev/shm");
  p.dev_pts = in_root("/dev/pts");
  p.dirs_to_make = {p.proc, p.dev, in_root("/etc")};
  for (const char* d : kDevices) p.device_binds.emplace_back(std::string("/dev/") + d, p.dev + "/" + d);
  p.dev_links = {{"/proc/self/fd", p.dev + "/fd"},
                 {"/proc/self/fd/0", p.dev + "/stdin"},
                 {"/proc/self/fd/1", p.dev + "/stdout"},
                 {"/proc/self/fd/2", p.dev + "/stderr"},
                 {"pts/ptmx", p.dev + "/ptmx"}};
  // /etc/hosts names the step's host; resolv.conf is the host's, so the
  // network (when there is one) resolves as the build machine's does.
  fs::path hosts = scratch.path() / "hosts";
  write_file_atomic(hosts, "127.0.0.1\tlocalhost imgbuild\n::1\tlocalhost ip6-localhost ip6-loopback\n");
  p.binds.push_back({hosts.string(), in_root("/etc/hosts"), true, true});
  if (spec.network && fs::exists("/etc/resolv.conf"))
    p.binds.push_back({fs::canonical("/etc/resolv.conf").string(), in_root("/etc/resolv.conf"), true, true});
  for (auto& m : spec.mounts) {
    std::error_code ec;
    bool is_file = fs::is_regular_file(m.source, ec);
    // Parents of a mount target are made by the step's root before it runs.
    std::string parent = fs::path(absolute_in(m.target)).parent_path().string();
    for (size_t i = 1; i <= parent.size(); ++i)
      if (i == parent.size() || parent[i] == '/') p.dirs_to_make.push_back(p.merged + parent.substr(0, i));
    p.binds.push_back({m.source.string(), in_root(m.target), m.read_only, is_file});
  }
  p.workdir_path = absolute_in(spec.workdir.empty() ? "/" : spec.workdir);
  for (size_t i = 1; i <= p.workdir_path.size(); ++i)
    if (i == p.workdir_path.size() || p.workdir_path[i] == '/')
      p.workdir_parents.push_back(p.workdir_path.substr(0, i));
  p.groups.assign(p.ids.groups.begin(), p.ids.groups.end());
  for (auto& a : spec.argv) p.strings.push_back(a);
  size_t argc = p.strings.size();
  for (auto& e : spec.env) p.strings.push_back(e);
  for (size_t i = 0; i < p.strings.size(); ++i) (i < argc ? p.argv : p.envp).push_back(p.strings[i].data());
  p.argv.push_back(nullptr);
  p.envp.push_back(nullptr);

  SandboxResult result;
  if (!spec.force_snapshot) {
    for (auto& dir : {spec.lower, spec.upper, spec.work})
      if (result.overlay_error.empty() && dir.string().find_first_of(",:\\") != std::string::npos)
        result.overlay_error =
            "the build folder " + dir.string() + " has a ',', ':' or '\\', which overlay options cannot take";
    if (result.overlay_error.empty()) {
      // The upper folder must hold whole files and whole folders, as
      // overlay_diff reads it: no data left in the lower file (metacopy), no
      // renamed folder that only points at the lower one (redirect_dir). A
      // kernel that does not know these options is one to take a snapshot on.
      // userxattr (rootless) rules both out itself, and refuses them spelled out.
      p.overlay_options = "lowerdir=" + spec.lower.string() + ",upperdir=" + spec.upper.string() +
                          ",workdir=" + spec.work.string() +
                          (p.user_namespace ? ",userxattr" : ",redirect_dir=off,metacopy=off");
      std::optional<SetupFailure> failure = launch(p, spec, result);
      if (!failure) return result;
      if (!failure->overlay) throw SandboxError(describe(*failure));
      result.overlay_error = describe(*failure);
    }
  }
  copy_image(spec.lower, spec.upper);
  p.overlay_options.clear();
  p.snapshot = spec.upper.string();
  result.snapshot = true;
  if (std::optional<SetupFailure> failure = launch(p, spec, result)) throw SandboxError(describe(*failure));
  return result;
}

std::vector<LayerEntry> overlay_diff(const fs::path& upper, const fs::path& lower,
                                     const std::vector<std::string>& mount_points, const fs::path& whiteout_source) {
  Diff diff(lower, mount_points, whiteout_source);
  const std::string opaque_xattr = rootless() ? "user.overlay.opaque" : "trusted.overlay.opaque";
  std::set<std::string, std::less<>> opaque;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(upper, fs::directory_options::none, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw std::runtime_error(upper.string() + ": " + ec.message());
    fs::path full = it->path();
    // Lexically: fs::relative resolves symlinks, which would turn a symlink
    // the step made into the path of its target.
    std::string rel = full.lexically_relative(upper).generic_string();
    struct stat st = lstat_of(full);
    if (diff.skipped(rel)) {
      if (S_ISDIR(st.st_mode)) it.disable_recursion_pending();
      continue;
    }
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
      diff.add_whiteout(rel);  // overlay's whiteout: the file was deleted
      continue;
    }
    // Every ancestor, as a prefix of rel: no path objects, so that a tree
    // thousands of folders deep does not cost cubic time.
    bool below_opaque = false;
    for (size_t slash = rel.rfind('/'); !opaque.empty() && !below_opaque && slash != std::string::npos && slash > 0;
         slash = rel.rfind('/', slash - 1))
      below_opaque = opaque.contains(std::string_view(rel).substr(0, slash));
    diff.add(full, rel, st, below_opaque);
    char v[4] = {};
    if (S_ISDIR(st.st_mode) && ::lgetxattr(full.c_str(), opaque_xattr.c_str(), v, sizeof v) == 1 && v[0] == 'y') {
      opaque.insert(rel);
      diff.add_opaque_marker(rel);
    }
  }
  return diff.finish();
}

std::vector<LayerEntry> step_changes(const SandboxSpec& spec, const SandboxResult& result,
                                     const std::vector<std::string>& mount_points, const fs::path& whiteout_source) {
  if (!result.snapshot) return overlay_diff(spec.upper, spec.lower, mount_points, whiteout_source);
  Diff diff(spec.lower, mount_points, whiteout_source);
  SnapshotWalk(diff, spec.upper, spec.lower).children("");
  return diff.finish();
}

}  // namespace imgbuild
