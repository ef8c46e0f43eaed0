#include "core/sandbox.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
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
#include <cstring>
#include <deque>
#include <fstream>
#include <set>
#include <sstream>

#include "core/fs.hpp"
#include "core/text.hpp"

extern char** environ;

namespace imgbuild {

namespace fs = std::filesystem;

namespace {

constexpr size_t kTailLines = 20;

/// The capabilities a step keeps: docker's default set. Everything else
/// (mounting, loading modules, raw I/O, tracing other processes...) is dropped
/// from the bounding set before the command starts.
constexpr int kKeptCapabilities[] = {CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FSETID,           CAP_FOWNER,
                                     CAP_MKNOD,  CAP_NET_RAW,      CAP_SETGID,           CAP_SETUID,
                                     CAP_SETFCAP, CAP_SETPCAP,     CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT,
                                     CAP_KILL,   CAP_AUDIT_WRITE};

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
  std::string overlay_options, merged, workdir_path;
  std::vector<std::string> workdir_parents;  // "/a", "/a/b": made before entering it
  std::vector<std::string> dirs_to_make;  // absolute, inside merged, before pivot
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

[[noreturn]] void child_fail(int fd, const char* what) {
  // A message for the parent on the output pipe, then a status it recognises.
  char buf[512];
  int n = snprintf(buf, sizeof buf, "imgbuild-sandbox: %s: %s\n", what, strerror(errno));
  if (n > 0) (void)!write(fd, buf, static_cast<size_t>(std::min(n, 511)));
  _exit(125);
}

void make_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd >= 0) ::close(fd);
}

/// The child, PID 1 of the new PID namespace: sets up the mounts, enters the
/// image, drops privileges, then forks the command and reaps until it ends.
[[noreturn]] void child_main(const ChildPlan& p, int out_fd, int sync_fd) {
  if (p.user_namespace) {
    char c;
    if (::read(sync_fd, &c, 1) != 1) child_fail(out_fd, "waiting for the user namespace mapping");
  }
  ::close(sync_fd);
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) child_fail(out_fd, "making mounts private");
  if (::mount("overlay", p.merged.c_str(), "overlay", 0, p.overlay_options.c_str()) != 0)
    child_fail(out_fd, "mounting the overlay");
  for (auto& d : p.dirs_to_make) ::mkdir(d.c_str(), 0755);
  if (::mount("proc", p.proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    child_fail(out_fd, "mounting /proc");
  if (::mount("tmpfs", p.dev.c_str(), "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=65536k") != 0)
    child_fail(out_fd, "mounting /dev");
  for (auto& [host, target] : p.device_binds) {
    make_file(target);
    if (::mount(host.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) child_fail(out_fd, "mounting a device");
  }
  for (auto& [to, link] : p.dev_links) (void)!::symlink(to.c_str(), link.c_str());
  ::mkdir(p.dev_shm.c_str(), 01777);
  ::mount("shm", p.dev_shm.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k");
  ::mkdir(p.dev_pts.c_str(), 0755);
  ::mount("devpts", p.dev_pts.c_str(), "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620");
  for (auto& b : p.binds) {
    if (b.is_file) make_file(b.target);
    else ::mkdir(b.target.c_str(), 0755);
    if (::mount(b.source.c_str(), b.target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
      child_fail(out_fd, "bind-mounting into the step");
    if (b.read_only &&
        ::mount(nullptr, b.target.c_str(), nullptr, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, nullptr) != 0)
      child_fail(out_fd, "making a mount read-only");
  }
  ::sethostname("imgbuild", 8);
  if (::chdir(p.merged.c_str()) != 0) child_fail(out_fd, "entering the image root");
  if (::syscall(SYS_pivot_root, ".", ".") != 0) child_fail(out_fd, "pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) child_fail(out_fd, "detaching the host root");
  if (::chdir("/") != 0) child_fail(out_fd, "chdir /");
  // The working directory, made as docker makes it: by root, before the step.
  for (auto& dir : p.workdir_parents) ::mkdir(dir.c_str(), 0755);
  if (::chdir(p.workdir_path.c_str()) != 0) child_fail(out_fd, "entering the working directory");

  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap)
    if (std::find(std::begin(kKeptCapabilities), std::end(kKeptCapabilities), cap) == std::end(kKeptCapabilities))
      ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  if (!p.user_namespace && ::setgroups(p.groups.size(), p.groups.data()) != 0) child_fail(out_fd, "setgroups");
  if (::setgid(p.ids.gid) != 0) child_fail(out_fd, "setgid");
  if (::setuid(p.ids.uid) != 0) child_fail(out_fd, "setuid");

  int in = ::open("/dev/null", O_RDONLY);
  if (in < 0 || ::dup2(in, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(out_fd, 2) < 0) child_fail(out_fd, "stdio");
  // Nothing of imgbuild's leaks into the step: every other descriptor closes.
  if (::syscall(SYS_close_range, 3, ~0U, 0) != 0)
    for (int fd = 3; fd < 65536; ++fd) ::close(fd);

  pid_t cmd = ::fork();
  if (cmd < 0) child_fail(2, "fork");
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
  p.user_namespace = ::geteuid() != 0;

  TempDir scratch(spec.work.parent_path(), "sandbox-");
  fs::path merged = scratch.path() / "root";
  fs::create_directory(merged);
  p.merged = merged.string();
  p.overlay_options = "lowerdir=" + spec.lower.string() + ",upperdir=" + spec.upper.string() +
                      ",workdir=" + spec.work.string();
  for (auto& dir : {spec.lower, spec.upper, spec.work})
    if (dir.string().find_first_of(",:") != std::string::npos)
      throw SandboxError("the build folder " + dir.string() + " has a ',' or ':', which overlay mounts cannot take");
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
    if (i == p.workdir_path.size() || p.workdir_path[i] == '/') p.workdir_parents.push_back(p.workdir_path.substr(0, i));
  p.groups.assign(p.ids.groups.begin(), p.ids.groups.end());
  for (auto& a : spec.argv) p.strings.push_back(a);
  size_t argc = p.strings.size();
  for (auto& e : spec.env) p.strings.push_back(e);
  for (size_t i = 0; i < p.strings.size(); ++i) (i < argc ? p.argv : p.envp).push_back(p.strings[i].data());
  p.argv.push_back(nullptr);
  p.envp.push_back(nullptr);

  int out[2], sync[2];
  if (::pipe2(out, O_CLOEXEC) != 0 || ::pipe2(sync, O_CLOEXEC) != 0) throw_errno("pipe");
  Fd out_read(out[0]), out_write(out[1]), sync_read(sync[0]), sync_write(sync[1]);

  unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
  if (!spec.network) flags |= CLONE_NEWNET;
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
  if (pid == 0) child_main(p, out_write.get(), sync_read.get());

  out_write = Fd();
  sync_read = Fd();
  if (p.user_namespace) {
    // Root inside is the invoking user outside: the step can own its files.
    auto write_map = [&](const std::string& file, const std::string& text) {
      std::ofstream f("/proc/" + std::to_string(pid) + "/" + file);
      f << text;
    };
    write_map("setgroups", "deny");
    write_map("uid_map", "0 " + std::to_string(::geteuid()) + " 1\n");
    write_map("gid_map", "0 " + std::to_string(::getegid()) + " 1\n");
  }
  (void)!::write(sync_write.get(), "x", 1);
  sync_write = Fd();

  SandboxResult result;
  std::deque<std::string> tail;
  std::string pending;
  auto emit = [&](std::string line) {
    if (spec.output) spec.output(line);
    tail.push_back(std::move(line));
    if (tail.size() > kTailLines) tail.pop_front();
  };
  char buf[1 << 16];
  for (;;) {
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
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.last_lines.assign(tail.begin(), tail.end());
  // The sandbox's own failure to start, not the command's.
  if (result.exit_code == 125 && !result.last_lines.empty() && result.last_lines.back().starts_with("imgbuild-sandbox: "))
    throw SandboxError(result.last_lines.back().substr(18));
  return result;
}

std::vector<LayerEntry> overlay_diff(const fs::path& upper, const fs::path& lower,
                                     const std::vector<std::string>& mount_points, const fs::path& whiteout_source) {
  std::vector<LayerEntry> entries;
  auto skipped = [&](const std::string& rel) {
    for (auto& m : mount_points) {
      std::string mp = m.starts_with("/") ? m.substr(1) : m;
      if (rel == mp && !fs::exists(fs::symlink_status(lower / rel))) return true;
    }
    return false;
  };
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(upper, fs::directory_options::none, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw std::runtime_error(upper.string() + ": " + ec.message());
    fs::path full = it->path();
    std::string rel = fs::relative(full, upper).generic_string();
    struct stat st {};
    if (::lstat(full.c_str(), &st) != 0) throw_errno(full.string());
    if (skipped(rel)) {
      if (S_ISDIR(st.st_mode)) it.disable_recursion_pending();
      continue;
    }
    LayerEntry e;
    e.path = rel;
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
      // overlay's whiteout: the file was deleted.
      fs::path p(rel);
      e.path = (p.parent_path() / (".wh." + p.filename().string())).generic_string();
      e.type = LayerEntry::Type::File;
      e.mode = 0644;
      e.uid = e.gid = 0;
      e.source = whiteout_source;
      e.size = 0;
    } else if (S_ISDIR(st.st_mode)) {
      e.type = LayerEntry::Type::Directory;
      char v[4] = {};
      ssize_t n = ::lgetxattr(full.c_str(), "trusted.overlay.opaque", v, sizeof v);
      if (n == 1 && v[0] == 'y') {
        entries.push_back(e);
        LayerEntry marker{rel + "/.wh..wh..opq", LayerEntry::Type::File, 0644, 0, 0, whiteout_source, 0, ""};
        entries.push_back(marker);
        continue;
      }
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
    entries.push_back(std::move(e));
  }
  // Folders overlay copied up only because something below them changed (or
  // was mounted there) are left out when nothing below them is kept: the
  // lower layers already have them as they are.
  auto unchanged_dir = [&](const LayerEntry& e) {
    struct stat st {};
    return e.type == LayerEntry::Type::Directory && ::lstat((lower / e.path).c_str(), &st) == 0 &&
           S_ISDIR(st.st_mode) && (st.st_mode & 07777) == e.mode && st.st_uid == e.uid && st.st_gid == e.gid;
  };
  std::set<std::string> needed;
  for (auto& e : entries)
    if (!unchanged_dir(e))
      for (fs::path p = fs::path(e.path).parent_path(); !p.empty(); p = p.parent_path()) needed.insert(p.generic_string());
  std::erase_if(entries, [&](const LayerEntry& e) { return unchanged_dir(e) && !needed.count(e.path); });
  return entries;
}

}  // namespace imgbuild
