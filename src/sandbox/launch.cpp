#include "sandbox/launch.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <fstream>

#include "base/fs.hpp"
#include "base/interrupt.hpp"
#include "base/process.hpp"
#include "sandbox/cgroup.hpp"
#include "sandbox/network.hpp"
#include "sandbox/seccomp.hpp"

extern char** environ;

namespace imgbuild {

namespace {

constexpr size_t kTailLines = 20;

/// The capabilities a step keeps: docker's default set. Everything else
/// (mounting, loading modules, raw I/O, tracing other processes...) is dropped
/// from the bounding set before the command starts, and from the command's
/// own sets before it runs.
constexpr int kKeptCapabilities[] = {
    CAP_CHOWN,  CAP_DAC_OVERRIDE, CAP_FSETID,  CAP_FOWNER,           CAP_MKNOD,      CAP_NET_RAW, CAP_SETGID,
    CAP_SETUID, CAP_SETFCAP,      CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT, CAP_KILL,    CAP_AUDIT_WRITE};

}  // namespace

bool keeps_capability(const ChildPlan& p, int cap) {
  // On the host's network a raw socket would see the host's traffic (a
  // loopback request's Authorization header). Outside a mount namespace of
  // its own, chroot() is a way out of the step's root.
  if (cap == CAP_NET_RAW && p.network == StepNetwork::host) return false;
  if (cap == CAP_SYS_CHROOT && p.chroot) return false;
  return std::find(std::begin(kKeptCapabilities), std::end(kKeptCapabilities), cap) != std::end(kKeptCapabilities);
}

bool limit_capabilities(const ChildPlan& p) {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap)
    if (keeps_capability(p, cap)) data[CAP_TO_INDEX(cap)].effective |= CAP_TO_MASK(cap);
  for (auto& d : data) d.permitted = d.effective;
  return ::syscall(SYS_capset, &header, data) == 0;
}

void child_fail(int report_fd, const char* what, bool overlay) {
  SetupFailure f;
  f.error = errno;
  f.overlay = overlay;
  ::strncpy(f.what, what, sizeof f.what - 1);
  (void)!::write(report_fd, &f, sizeof f);
  _exit(125);
}

void become_step_user(const ChildPlan& p, bool keep_groups, int report_fd) {
  if (!keep_groups && ::syscall(SYS_setgroups, p.groups.size(), p.groups.data()) != 0)
    child_fail(report_fd, "setgroups");
  if (::syscall(SYS_setgid, p.ids.gid) != 0) child_fail(report_fd, "setgid");
  if (::syscall(SYS_setuid, p.ids.uid) != 0) child_fail(report_fd, "setuid");
}

void close_fds(unsigned lo, unsigned hi) {
  if (lo > hi || ::syscall(SYS_close_range, lo, hi, 0) == 0) return;
  for (unsigned fd = lo; fd <= std::min(hi, 65535U); ++fd) ::close(static_cast<int>(fd));
}

void exec_command(const ChildPlan& p) {
  environ = const_cast<char**>(p.envp.data());
  ::execvp(p.argv[0], const_cast<char* const*>(p.argv.data()));
  int error = errno;
  // strerrordesc_np, not strerror: no translation, so no locale lock that
  // another thread of imgbuild may have held at the clone.
  const char* why = ::strerrordesc_np(error);
  std::string_view parts[] = {p.argv[0], ": ", why ? why : "cannot run", "\n"};
  iovec lines[std::size(parts)];
  for (size_t i = 0; i < std::size(parts); ++i) lines[i] = {const_cast<char*>(parts[i].data()), parts[i].size()};
  (void)!::writev(2, lines, std::size(parts));
  _exit(error == ENOENT ? 127 : 126);
}

bool kernel_at_least(int major, int minor) {
  utsname u{};
  int ma = 0, mi = 0;
  return ::uname(&u) == 0 && std::sscanf(u.release, "%d.%d", &ma, &mi) == 2 &&
         (ma > major || (ma == major && mi >= minor));
}

void write_scratch_file(const fs::path& path, std::string_view data) {
  Fd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!fd) throw_errno(path.string());
  write_all(fd.get(), data.data(), data.size(), path);
}

namespace {

void make_file(const std::string& path) {
  // O_EXCL: opening the image's own file for writing would make overlay copy it up.
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd >= 0) ::close(fd);
}

/// Remounts the bind mount at `target` with `flags` added to those it has.
/// The flags a mount already has are given again: inside a user namespace
/// the kernel refuses to drop the flags of a mount from outside it.
bool remount(const std::string& target, unsigned long flags) {
  struct statfs st {};
  if (::statfs(target.c_str(), &st) != 0) return false;
  constexpr std::pair<long, unsigned long> kept[] = {
      {ST_RDONLY, MS_RDONLY},   {ST_NOSUID, MS_NOSUID},         {ST_NODEV, MS_NODEV},      {ST_NOEXEC, MS_NOEXEC},
      {ST_NOATIME, MS_NOATIME}, {ST_NODIRATIME, MS_NODIRATIME}, {ST_RELATIME, MS_RELATIME}};
  for (auto [has, flag] : kept)
    if (st.f_flags & has) flags |= flag;
  return ::mount(nullptr, target.c_str(), nullptr, MS_BIND | MS_REMOUNT | flags, nullptr) == 0;
}

/// Brings the loopback interface of the step's own network namespace up, as
/// docker does: a step without a network still talks to itself on 127.0.0.1.
void loopback_up(int report_fd) {
  int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) child_fail(report_fd, "opening a socket for lo");
  ifreq req{};
  ::strncpy(req.ifr_name, "lo", sizeof req.ifr_name - 1);
  if (::ioctl(sock, SIOCGIFFLAGS, &req) != 0) child_fail(report_fd, "reading the flags of lo");
  req.ifr_flags = static_cast<short>(req.ifr_flags | IFF_UP);
  if (::ioctl(sock, SIOCSIFFLAGS, &req) != 0) child_fail(report_fd, "bringing lo up");
  ::close(sock);
}

/// Gives the step a binfmt_misc of its own holding its emulator, out of its
/// sight. A binfmt_misc registration belongs to a user namespace (Linux
/// 6.7), and the kernel looks a program's rule up in the nearest namespace
/// that has one: the step's programs find the emulator, nothing outside the
/// step does. A rootless step has its user namespace already; as root, PID 1
/// makes one (with a mount namespace it owns) mapping imgbuild's ids to
/// themselves, and imgbuild, in the namespace above, writes the maps when
/// `sync_fd` says so (map_emulated_step). Called in the image, once the
/// mounts are made: a namespace made before would lock them, and pivot_root
/// refuses a locked root. The emulator was opened on kEmulatorFd before.
void own_emulator(const ChildPlan& p, int sync_fd, int report_fd) {
  if (!p.user_namespace) {
    if (::unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0)
      child_fail(report_fd, "making the user namespace of the emulated step");
    char c;
    if (::write(sync_fd, "u", 1) != 1 || ::read(sync_fd, &c, 1) != 1 || ::getuid() != 0)
      child_fail(report_fd, "mapping the emulated step's ids");
  }
  if (::mount("binfmt_misc", p.binfmt_dir.c_str(), "binfmt_misc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    child_fail(report_fd, "mounting a binfmt_misc of the step's own (Linux 6.7 or later)");
  int reg = ::open(p.binfmt_register.c_str(), O_WRONLY | O_CLOEXEC);
  if (reg < 0 || ::write(reg, p.binfmt_rule.data(), p.binfmt_rule.size()) != static_cast<ssize_t>(p.binfmt_rule.size()))
    child_fail(report_fd, "registering the step's emulator");
  ::close(reg);
  ::close(kEmulatorFd);
  // The registration lasts while its mount does, under an empty read-only
  // one: the step can neither read nor change it.
  if (::mount("tmpfs", p.binfmt_dir.c_str(), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    child_fail(report_fd, "hiding the step's binfmt_misc");
}

/// What the kernel enforces on the step's processes besides their capabilities.
struct KernelLimits {
  const std::vector<sock_filter>& seccomp;
  const std::vector<std::string>& cgroup_files;  ///< to write "0" into: StepCgroup::join_files
  rlim_t nproc = 0;                              ///< RLIMIT_NPROC of the command, where no cgroup counts its processes
};

/// The child, PID 1 of the new PID namespace: sets up the mounts, enters the
/// image, then forks the command and ends when it ends. Its end ends the
/// namespace: the kernel kills every process of the step still there, so
/// nothing a step starts outlives it or keeps its output open.
[[noreturn]] void child_main(const ChildPlan& p, const KernelLimits& limits, int out_fd, int sync_fd, int sync_write_fd,
                             int report_fd) {
  // A session of its own: imgbuild's terminal is no controlling terminal of
  // the step's, so /dev/tty opens nothing and TIOCSTI types into nothing.
  ::setsid();
  // Killed with imgbuild, whatever kills it (kill -9 too), and the namespace
  // with it. imgbuild may have died before this line: the byte it sends
  // once the child exists tells, since the socket it held is closed then
  // (this child's own copy of it goes first) and read() sees its end.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  ::close(sync_write_fd);
  char c;
  if (::read(sync_fd, &c, 1) != 1) child_fail(report_fd, "waiting for imgbuild");
  // Into the step's cgroups before anything else: what it starts is counted.
  for (auto& file : limits.cgroup_files) {
    int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
    if (fd < 0 || ::write(fd, "0", 1) != 1) child_fail(report_fd, "entering the step's cgroup");
    ::close(fd);
  }
  if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) child_fail(report_fd, "making mounts private");
  // nodev wherever the step writes: a device node that a base layer ships
  // or that the step makes (as Docker keeps them) opens nothing there. The
  // nodes of /dev are binds of the host's, whose mounts keep their own flags.
  if (!p.snapshot.empty()) {
    if (::mount(p.snapshot.c_str(), p.merged.c_str(), nullptr, MS_BIND, nullptr) != 0 || !remount(p.merged, MS_NODEV))
      child_fail(report_fd, "bind-mounting the snapshot");
  } else if (::mount("overlay", p.merged.c_str(), "overlay", MS_NODEV, p.overlay_options.c_str()) != 0) {
    child_fail(report_fd, "mounting the overlay", true);
  }
  for (auto& d : p.dirs_to_make) ::mkdir(d.c_str(), 0755);
  if (::mount("proc", p.proc.c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
    child_fail(report_fd, "mounting /proc");
  for (auto& path : p.read_only)
    if (::mount(path.c_str(), path.c_str(), nullptr, MS_BIND | MS_REC, nullptr) == 0) {
      if (!remount(path, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC))
        child_fail(report_fd, "making a path of /proc read-only");
    } else if (errno != ENOENT) {
      child_fail(report_fd, "binding a path of /proc");
    }
  // Read-only, as Docker gives it. Mounting a sysfs needs the network
  // namespace's owner: a rootless step on the host's network gets the
  // host's, bound and read-only too.
  if (::mount("sysfs", p.sys.c_str(), "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0 &&
      (::mount("/sys", p.sys.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0 ||
       !remount(p.sys, MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)))
    child_fail(report_fd, "mounting /sys");
  // As runc masks: a folder under an empty read-only tmpfs, a file under
  // /dev/null; what this kernel does not have needs no mask.
  for (auto& path : p.masked) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) continue;
    bool masked = S_ISDIR(st.st_mode) ? ::mount("tmpfs", path.c_str(), "tmpfs",
                                                MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) == 0
                                      : ::mount("/dev/null", path.c_str(), nullptr, MS_BIND, nullptr) == 0;
    if (!masked) child_fail(report_fd, "masking a path of /proc or /sys");
  }
  if (::mount("tmpfs", p.dev.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=755,size=65536k") != 0)
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
  // Not nodev: its nodes are the step's terminals (ptmx opens through it).
  ::mount("devpts", p.dev_pts.c_str(), "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620");
  for (auto& b : p.binds) {
    if (b.is_file)
      make_file(b.target);
    else
      ::mkdir(b.target.c_str(), 0755);
    if (::mount(b.source.c_str(), b.target.c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
      child_fail(report_fd, "bind-mounting into the step");
    if (!remount(b.target, b.read_only ? MS_RDONLY | MS_NOSUID | MS_NODEV : MS_NODEV))
      child_fail(report_fd, b.read_only ? "making a mount read-only" : "making a mount nodev");
  }
  ::sethostname(kStepHostname, std::strlen(kStepHostname));
  if (p.network != StepNetwork::host) loopback_up(report_fd);
  if (!p.emulator.empty()) {
    int emulator = ::open(p.emulator.c_str(), O_RDONLY | O_CLOEXEC);
    if (emulator < 0 || out_fd == kEmulatorFd || sync_fd == kEmulatorFd || report_fd == kEmulatorFd ||
        ::dup2(emulator, kEmulatorFd) < 0)
      child_fail(report_fd, "opening the step's emulator");
    ::close(emulator);
  }
  if (::chdir(p.merged.c_str()) != 0) child_fail(report_fd, "entering the image root");
  if (::syscall(SYS_pivot_root, ".", ".") != 0) child_fail(report_fd, "pivot_root");
  if (::umount2(".", MNT_DETACH) != 0) child_fail(report_fd, "detaching the host root");
  if (::chdir("/") != 0) child_fail(report_fd, "chdir /");
  if (!p.emulator.empty()) own_emulator(p, sync_fd, report_fd);
  ::close(sync_fd);
  // The working directory, made as docker makes it: by root, before the step.
  for (auto& dir : p.workdir_parents) ::mkdir(dir.c_str(), 0755);
  if (::chdir(p.workdir_path.c_str()) != 0) child_fail(report_fd, "entering the working directory");

  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap)
    if (!keeps_capability(p, cap)) ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  int in = ::open("/dev/null", O_RDONLY);
  if (in < 0 || ::dup2(in, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(out_fd, 2) < 0) child_fail(report_fd, "stdio");
  // Nothing of imgbuild's leaks into the step: every other descriptor closes
  // but the report pipe, which is close-on-exec and so stays with PID 1.
  close_fds(3, static_cast<unsigned>(report_fd) - 1);
  close_fds(static_cast<unsigned>(report_fd) + 1, ~0U);

  // The filter, last of PID 1's setup (which mounts) and before the command
  // exists: PID 1 and everything of the step run under it. PID 1 still has
  // CAP_SYS_ADMIN for it, so no_new_privs stays off: a setuid program of the
  // image works, as in docker.
  if (!install_seccomp(limits.seccomp)) child_fail(report_fd, "installing the seccomp filter");
  // The raw system call, not fork(): glibc's fork takes the malloc and stdio
  // locks first, and this child of a raw clone may hold copies of them that
  // another thread of imgbuild had locked at that instant: it would wait forever.
  pid_t cmd = static_cast<pid_t>(::syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr));
  if (cmd < 0) child_fail(report_fd, "fork");
  if (cmd == 0) {
    // The command alone drops to the image's user: a change of ids would
    // clear PID 1's parent-death signal.
    if (!limit_capabilities(p)) child_fail(report_fd, "limiting capabilities");
    rlimit nproc{limits.nproc, limits.nproc};
    if (limits.nproc && ::setrlimit(RLIMIT_NPROC, &nproc) != 0) child_fail(report_fd, "limiting processes");
    become_step_user(p, p.user_namespace, report_fd);
    exec_command(p);
  }
  // PID 1: reap orphans until the command ends, then end with its status.
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(-1, &status, 0);
    if (r == cmd) break;
    if (r < 0 && errno != EINTR) child_fail(report_fd, "waiting for the command");
  }
  _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

/// Writes `text` into /proc/PID/`file` (a map of its user namespace).
void write_proc_file(pid_t pid, const std::string& file, const std::string& text) {
  std::ofstream f("/proc/" + std::to_string(pid) + "/" + file);
  f << text;
}

/// The maps of the user namespace an emulated step's PID 1 makes itself
/// (own_emulator), written once it says it has made it: only a process in the
/// namespace above may map ids there beyond its own. A PID 1 that failed
/// before says nothing and closes its end; collect() reports why.
void map_emulated_step(pid_t pid, const ChildPlan& p, const Fd& sync) {
  char c;
  ssize_t n;
  while ((n = ::read(sync.get(), &c, 1)) < 0 && errno == EINTR) {
  }
  if (n != 1) return;
  write_proc_file(pid, "uid_map", p.uid_map);
  write_proc_file(pid, "gid_map", p.gid_map);
  (void)!::send(sync.get(), "m", 1, MSG_NOSIGNAL);
}

}  // namespace

std::optional<SetupFailure> launch(const ChildPlan& p, const SandboxSpec& spec, SandboxResult& result) {
  auto [out_read, out_write] = make_pipe();
  // A socket pair, not a pipe: send() can refuse SIGPIPE when the child is
  // already gone.
  int sync_fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync_fds) != 0) throw_errno("socketpair");
  Fd sync_read(sync_fds[0]), sync_write(sync_fds[1]);
  auto [report_read, report_write] = make_pipe();

  // Made before the clone: the child may only make system calls. The
  // child enters it itself, before it does anything else.
  StepCgroup cgroup(spec.max_processes);
  // Rootless, RLIMIT_NPROC counts the processes of the step's own user
  // namespace (Linux 5.14; before, every process of the invoking user). As
  // root it would count every process of the step user's uid on the host,
  // and none of uid 0's: no limit then.
  KernelLimits limits{step_seccomp_program(), cgroup.join_files(),
                      !cgroup.limits_processes() && p.user_namespace ? static_cast<rlim_t>(spec.max_processes) : 0};
  result.unconfined = cgroup.missing();
  if (limits.nproc) result.unconfined += "; RLIMIT_NPROC limits the processes of its user namespace instead";

  unsigned long flags = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
  if (p.network != StepNetwork::host) flags |= CLONE_NEWNET;
  if (p.user_namespace) flags |= CLONE_NEWUSER;
  pid_t pid = static_cast<pid_t>(::syscall(SYS_clone, flags, nullptr, nullptr, nullptr, nullptr));
  if (pid < 0) {
    int e = errno;
    if (p.user_namespace && (e == EPERM || e == EINVAL || e == ENOSPC))
      throw SandboxError(std::string("cannot create a user namespace for a rootless RUN step (") + strerror(e) +
                         "): a user that is not root runs RUN steps only in a user namespace of its own, and this "
                         "host allows none. What works: run imgbuild as root (in an unprivileged container, as "
                         "root with --isolation chroot), or allow unprivileged user namespaces (sysctl "
                         "kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0); a recipe without "
                         "RUN steps (host builds, copies, pulls) builds as it is");
    if (e == EPERM)
      throw NamespacesRefused(std::string("cannot create the step's namespaces: ") + strerror(e) +
                              " (an unprivileged container?): --isolation chroot (or IMGBUILD_ISOLATION=chroot) "
                              "runs RUN steps without namespaces, with " +
                              kChrootGivesUp + "; --isolation auto takes it only where namespaces are refused");
    throw SandboxError(std::string("cannot create the step's namespaces: ") + strerror(e));
  }
  if (pid == 0) child_main(p, limits, out_write.get(), sync_read.get(), sync_write.get(), report_write.get());
  // Killed (and with it the whole PID namespace) if anything below throws,
  // an interrupt included.
  ChildProcess child(pid, false);

  out_write = Fd();
  sync_read = Fd();
  report_write = Fd();
  if (p.user_namespace) {
    // Root inside is the invoking user outside: the step can own its files.
    write_proc_file(pid, "setgroups", "deny");
    write_proc_file(pid, "uid_map", "0 " + std::to_string(::geteuid()) + " 1\n");
    write_proc_file(pid, "gid_map", "0 " + std::to_string(::getegid()) + " 1\n");
  }
  // Connected before the child goes on, so the command finds its network up;
  // killed when the step ends (and it ends by itself with imgbuild).
  std::optional<UserModeNetwork> network;
  if (p.network == StepNetwork::own) network.emplace(pid, p.dns_forwarder);
  (void)!::send(sync_write.get(), "x", 1, MSG_NOSIGNAL);
  if (!p.emulator.empty() && !p.user_namespace) map_emulated_step(pid, p, sync_write);
  sync_write = Fd();
  return collect(child, out_read, report_read, spec, result);
}

std::optional<SetupFailure> collect(ChildProcess& child, const Fd& out_read, const Fd& report_read,
                                    const SandboxSpec& spec, SandboxResult& result) {
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

}  // namespace imgbuild
