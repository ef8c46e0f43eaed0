// Isolation::chroot: a RUN step with no namespace and no mount, for builds
// inside an unprivileged container, where the container is the boundary.
// It needs only what docker's default capabilities and seccomp profile allow
// root: chroot(2), mknod(2) of the nodes docker's device rules let it open,
// setgroups/setgid/setuid. What the namespace sandbox mounts (a /dev,
// /etc/hosts, /etc/resolv.conf, secrets, caches) is put into the copy of the
// image root for the step and taken out again before the copy is compared
// with the image, so its layer is the one the namespace sandbox gives.
#include <fcntl.h>
#include <linux/capability.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <optional>
#include <string_view>

#include "base/fs.hpp"
#include "sandbox/launch.hpp"
#include "sandbox/snapshot.hpp"

namespace imgbuild {

const char* const kChrootGivesUp =
    "no /proc or /sys, no PID, IPC, UTS or network namespace (the step sees the container's processes, hostname "
    "and network, so network = \"none\" is not kept), no seccomp filter or process limit of imgbuild's (the "
    "container's own still apply), no chroot() inside the step, and background processes a step leaves survive "
    "imgbuild only when it is killed with SIGKILL";

namespace {

namespace fs = std::filesystem;

/// Something the namespace sandbox would mount, put into the step's root
/// instead: the image's own is set aside while the step runs.
struct Placed {
  enum class Kind { Dev, File, Cache } kind;
  std::string at;      ///< resolved in the image, relative to the root: "dev", "run/secrets/npmrc"
  fs::path source;     ///< File: the file copied in; Cache: the host folder copied in and back out
  fs::path set_aside;  ///< where the image's own waits for the step's end; empty when the image has none
};

[[noreturn]] void place_failed(const std::string& at, const std::string& what) {
  int e = errno;
  throw SandboxError("chroot isolation: cannot make /" + at + " in the step's root: " + what + ": " + strerror(e));
}

/// A folder of the step's own /dev, made as the namespace sandbox mounts it:
/// the host's nodes (mknod of those docker's device rules let a container
/// open), its symlinks into /proc (which dangle here) and /dev/shm. No
/// devpts: ptmx points at nothing, as /proc does.
void make_dev(const fs::path& dev, const std::string& at) {
  if (::mkdir(dev.c_str(), 0755) != 0) place_failed(at, "mkdir");
  for (const char* name : kStepDevices) {
    struct stat st {};
    fs::path node = dev / name;
    if (::stat(("/dev/" + std::string(name)).c_str(), &st) != 0 || !S_ISCHR(st.st_mode)) continue;
    if (::mknod(node.c_str(), S_IFCHR | 0600, st.st_rdev) != 0) place_failed(at + "/" + name, "mknod");
    if (::chmod(node.c_str(), st.st_mode & 07777) != 0) place_failed(at + "/" + name, "chmod");
  }
  for (auto [to, link] :
       {std::pair{"/proc/self/fd", "fd"}, std::pair{"/proc/self/fd/0", "stdin"}, std::pair{"/proc/self/fd/1", "stdout"},
        std::pair{"/proc/self/fd/2", "stderr"}, std::pair{"pts/ptmx", "ptmx"}})
    if (::symlink(to, (dev / link).c_str()) != 0) place_failed(at + "/" + link, "symlink");
  for (auto [name, mode] : {std::pair{"shm", 01777}, std::pair{"pts", 0755}})
    if (::mkdir((dev / name).c_str(), 0700) != 0 || ::chmod((dev / name).c_str(), mode) != 0)
      place_failed(at + "/" + name, "mkdir");
}

/// The file `source` copied to `to` with its mode and owner, as a bind
/// mount of it would show it.
void copy_file_in(const fs::path& source, const fs::path& to, const std::string& at) {
  struct stat st {};
  Fd in = open_read(source, FollowLink::Yes, &st);
  Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) place_failed(at, "create");
  std::string bytes = read_opened(in, st, source);
  write_all(out.get(), bytes.data(), bytes.size(), to);
  if (::fchown(out.get(), st.st_uid, st.st_gid) != 0 || ::fchmod(out.get(), st.st_mode & 0777) != 0)
    place_failed(at, "chown");
}

/// `root`/`at` once the step is over, its folders resolved inside `root`,
/// where the step may have put symlinks (the step's processes are all gone,
/// so nothing changes them while imgbuild works there); nullopt when the
/// step removed the folder, and what was placed there with it.
std::optional<fs::path> in_root(const fs::path& root, const std::string& at) {
  fs::path rel(at);
  std::optional<ImagePath> parent = RootDir(root).resolve("/" + rel.parent_path().string());
  struct stat st {};
  if (!parent || ::lstat((root / parent->relative()).c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) return std::nullopt;
  return root / parent->relative() / rel.filename();
}

/// Puts each of `placed` into the step's root `root`, setting the image's own
/// aside in `aside`.
void place(const fs::path& root, std::vector<Placed>& placed, const fs::path& aside) {
  for (size_t i = 0; i < placed.size(); ++i) {
    Placed& p = placed[i];
    fs::path at = root / p.at;
    // The image's folders on the way are made as the namespace sandbox makes them.
    ResolveError error;
    if (!RootDir(root).open_dir(ImagePath("/" + fs::path(p.at).parent_path().string()).segments(), true, error))
      place_failed(p.at, "making its folder");
    struct stat st {};
    if (::lstat(at.c_str(), &st) == 0) {
      p.set_aside = aside / std::to_string(i);
      if (::rename(at.c_str(), p.set_aside.c_str()) != 0) place_failed(p.at, "setting the image's own aside");
    }
    switch (p.kind) {
      case Placed::Kind::Dev:
        make_dev(at, p.at);
        break;
      case Placed::Kind::File:
        copy_file_in(p.source, at, p.at);
        break;
      case Placed::Kind::Cache:
        if (::mkdir(at.c_str(), 0700) != 0) place_failed(p.at, "mkdir");
        copy_image(p.source, at);
        break;
    }
  }
}

/// Takes what place() put into `root` out again, last first, a cache's
/// contents back to its host folder, and puts the image's own back: nothing
/// of it (a secret's bytes) reaches the comparison with the image. Where the
/// step removed the folder, it went with it, and the image's own stays out,
/// as the step left it.
void take_out(const fs::path& root, const std::vector<Placed>& placed) {
  for (auto p = placed.rbegin(); p != placed.rend(); ++p) {
    std::optional<fs::path> found = in_root(root, p->at);
    if (!found) continue;
    const fs::path& at = *found;
    struct stat st {};
    bool there = ::lstat(at.c_str(), &st) == 0;
    if (p->kind == Placed::Kind::Cache && there && S_ISDIR(st.st_mode)) {
      fs::remove_all(p->source);
      fs::create_directory(p->source);
      copy_image(at, p->source);
    }
    if (there) fs::remove_all(at);
    if (!p->set_aside.empty() && ::rename(p->set_aside.c_str(), at.c_str()) != 0)
      place_failed(p->at, "putting the image's own back");
  }
}

/// The command's process: into the root, to the step's user, then the command.
[[noreturn]] void command_main(const ChildPlan& p, pid_t supervisor, int report_fd) {
  if (::chroot(p.snapshot.c_str()) != 0) child_fail(report_fd, "chroot");
  if (::chdir("/") != 0) child_fail(report_fd, "chdir /");
  // The working directory, made as docker makes it: by root, before the step.
  for (auto& dir : p.workdir_parents) ::mkdir(dir.c_str(), 0755);
  if (::chdir(p.workdir_path.c_str()) != 0) child_fail(report_fd, "entering the working directory");
  for (int cap = 0; cap <= CAP_LAST_CAP; ++cap)
    if (!keeps_capability(p, cap) && ::prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL)
      child_fail(report_fd, "dropping capabilities");
  if (!limit_capabilities(p)) child_fail(report_fd, "limiting capabilities");
  become_step_user(p, false, report_fd);
  // After the change of ids, which clears it: killed with the supervisor.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (::getppid() != supervisor) _exit(125);
  exec_command(p);
}

/// Sends SIGKILL to every child of the calling process that /proc lists.
void kill_children() {
  int fd = ::open("/proc/thread-self/children", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  char buf[4096];
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n < 0) return;
  buf[n] = ' ';  // ends the last number
  pid_t pid = 0;
  for (ssize_t i = 0; i <= n; ++i)
    if (buf[i] >= '0' && buf[i] <= '9') {
      pid = pid * 10 + (buf[i] - '0');
    } else {
      if (pid > 0) ::kill(pid, SIGKILL);
      pid = 0;
    }
}

/// The supervisor: outside the root, the subreaper of everything the step
/// starts, so that what the command leaves behind (a daemon, `sleep &`) is
/// reparented to it and killed when the command ends, as the end of a PID
/// namespace kills it. It ends with the command's status.
[[noreturn]] void supervisor_main(const ChildPlan& p, pid_t imgbuild, int out_fd, int report_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
  if (::getppid() != imgbuild) _exit(125);
  ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
  // A session of its own: imgbuild's terminal is no controlling terminal of the step's.
  ::setsid();
  int in = ::open("/dev/null", O_RDONLY);
  if (in < 0 || ::dup2(in, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(out_fd, 2) < 0) child_fail(report_fd, "stdio");
  close_fds(3, static_cast<unsigned>(report_fd) - 1);
  close_fds(static_cast<unsigned>(report_fd) + 1, ~0U);
  pid_t self = ::getpid();
  // The raw system call, as in launch.cpp: glibc's fork takes locks another
  // thread of imgbuild may have held at the clone.
  pid_t cmd = static_cast<pid_t>(::syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr));
  if (cmd < 0) child_fail(report_fd, "fork");
  if (cmd == 0) command_main(p, self, report_fd);
  int status = 0;
  for (;;) {
    pid_t r = ::waitpid(-1, &status, 0);
    if (r == cmd) break;
    if (r < 0 && errno != EINTR) child_fail(report_fd, "waiting for the command");
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  // Until no child is left: one reparented after the list was read is in the next.
  for (;;) {
    kill_children();
    pid_t r = ::waitpid(-1, nullptr, WNOHANG);
    if (r < 0 && errno == ECHILD) break;
    if (r == 0) {
      const timespec pause{0, 1'000'000};
      ::nanosleep(&pause, nullptr);
    }
  }
  _exit(code);
}

}  // namespace

/// The inode of the machine's initial PID namespace (the kernel's
/// PROC_PID_INIT_INO): a process that sees it in /proc/self/ns/pid runs among
/// the machine's own processes, not in a container.
constexpr ino_t kInitialPidNamespace = 0xEFFFFFFC;

/// Chroot isolation leaves the boundary to the container around imgbuild. On
/// the machine itself a root step would share its processes (root signals
/// any root process, no CAP_KILL needed) and could make device nodes of its
/// disks: refused there, unless IMGBUILD_CHROOT_ON_HOST says the machine is
/// itself disposable (the unit tests' own).
void require_a_container() {
  struct stat ns {};
  if (::stat("/proc/self/ns/pid", &ns) != 0 || ns.st_ino != kInitialPidNamespace) return;
  if (const char* allowed = std::getenv("IMGBUILD_CHROOT_ON_HOST"); allowed && std::string_view(allowed) == "1") return;
  throw SandboxError(
      "chroot isolation is for a container without privileges, and imgbuild runs on the machine itself (its PID "
      "namespace is the machine's): a step in a chroot here would run among the machine's own processes as root. "
      "Here the default --isolation namespaces works; set IMGBUILD_CHROOT_ON_HOST=1 only on a machine you throw away");
}

SandboxResult run_in_chroot(const SandboxSpec& spec, const std::string& why) {
  if (::geteuid() != 0)
    throw SandboxError(
        "chroot isolation runs RUN steps only as root (chroot, mknod and a change to the step's user need it), "
        "and imgbuild runs as uid " +
        std::to_string(::geteuid()) +
        ". What works: run imgbuild as root in the container, or where user namespaces are allowed, "
        "--isolation namespaces; a recipe without RUN steps (host builds, copies, pulls) builds as it is");
  require_a_container();
  ChildPlan p;
  plan_command(p, spec);
  p.chroot = true;
  p.network = StepNetwork::host;  // the container's: CAP_NET_RAW goes
  p.snapshot = spec.upper.string();

  SandboxResult result;
  result.snapshot = true;
  result.unconfined = why.empty() ? std::string("chroot isolation: ") + kChrootGivesUp
                                  : "chroot isolation, as " + why + ": " + kChrootGivesUp;
  MountTargets targets(spec.lower, "");
  std::vector<Placed> placed;
  auto add = [&](Placed::Kind kind, const std::string& image_path, const fs::path& source) {
    std::string at = targets.add(image_path).substr(1);
    placed.push_back({kind, at, source, {}});
    // It and the folders made for it stay out of the layer (step_changes'
    // stubs) unless the image has them.
    for (fs::path dir = at; !dir.empty(); dir = dir.parent_path()) result.mount_points.push_back("/" + dir.string());
  };
  TempDir scratch(spec.work.parent_path(), "chroot-");
  fs::path hosts = scratch.path() / "hosts";
  write_scratch_file(hosts, step_hosts());
  add(Placed::Kind::Dev, "/dev", {});
  add(Placed::Kind::File, "/etc/hosts", hosts);
  // The step is on the container's network: its resolver is the container's.
  if (fs::exists("/etc/resolv.conf")) add(Placed::Kind::File, "/etc/resolv.conf", fs::canonical("/etc/resolv.conf"));
  for (auto& m : spec.mounts) {
    std::error_code ec;
    add(fs::is_regular_file(m.source, ec) ? Placed::Kind::File : Placed::Kind::Cache, m.target, m.source);
  }

  copy_image(spec.lower, spec.upper);
  fs::path aside = scratch.path() / "aside";
  fs::create_directory(aside);
  place(spec.upper, placed, aside);

  auto [out_read, out_write] = make_pipe();
  auto [report_read, report_write] = make_pipe();
  pid_t self = ::getpid();
  pid_t pid = static_cast<pid_t>(::syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr));
  if (pid < 0) throw_errno("starting a RUN step");
  if (pid == 0) supervisor_main(p, self, out_write.get(), report_write.get());
  std::optional<SetupFailure> failure;
  {
    ChildProcess child(pid, false);
    out_write = Fd();
    report_write = Fd();
    failure = collect(child, out_read, report_read, spec, result);
  }
  take_out(spec.upper, placed);
  if (failure) {
    std::string what = std::string(failure->what) + ": " + strerror(failure->error);
    if (std::string_view(failure->what) == "chroot")
      what +=
          " (chroot isolation needs CAP_SYS_CHROOT, which docker's default capabilities give root: add it "
          "back where the runner drops it)";
    throw SandboxError(what);
  }
  return result;
}

}  // namespace imgbuild
