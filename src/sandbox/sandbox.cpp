#include "sandbox/sandbox.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <sstream>

#include "base/fs.hpp"
#include "layer/resolve.hpp"
#include "sandbox/launch.hpp"
#include "sandbox/network.hpp"
#include "sandbox/rootless.hpp"
#include "sandbox/snapshot.hpp"

namespace imgbuild {

namespace fs = std::filesystem;

namespace {

/// What runc masks by default (specconv's example spec): kernel memory, key
/// rings, timers and hardware a step has no business reading. In /proc and
/// /sys, which imgbuild mounts itself.
constexpr const char* kMaskedPaths[] = {"/proc/acpi",
                                        "/proc/asound",
                                        "/proc/kcore",
                                        "/proc/keys",
                                        "/proc/latency_stats",
                                        "/proc/timer_list",
                                        "/proc/timer_stats",
                                        "/proc/sched_debug",
                                        "/proc/scsi",
                                        "/sys/firmware",
                                        "/sys/devices/virtual/powercap"};

/// What runc makes read-only by default: the kernel's settings
/// (kernel.core_pattern names a program the kernel runs as root on the host),
/// SysRq and hardware.
/// Why an emulated step cannot run chroot-ed.
constexpr const char* kNoEmulatorInChroot =
    "an emulated RUN step registers its emulator in a user namespace of its own, which chroot isolation does "
    "not make: register qemu-user-static on the machine (binfmt_misc, with the F flag), or cross-compile on the "
    "build platform";

constexpr const char* kReadOnlyPaths[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"};

std::string absolute_in(const std::string& path) { return path.starts_with("/") ? path : "/" + path; }

/// Where the mount target `target` stands in the image `root`, as the step
/// will see it: its components resolved inside the root (a symlink to /etc
/// of the host is /etc of the image), the missing rest as named, to be made.
/// The result names no symlink, so the child can make and mount on it from
/// outside the root. A symlink that leads nowhere inside the root (dangling,
/// looping, through a file) is refused: what it would make is not known.
std::string resolve_target(const RootStack& root, const std::string& target) {
  ImagePath at;
  std::vector<std::string> names = ImagePath(target).segments();
  for (size_t i = 0; i < names.size(); ++i) {
    ImagePath next = at.join(names[i]);
    if (std::optional<ImagePath> resolved = root.resolve(next.str())) {
      at = *resolved;
      continue;
    }
    if (root.lacks(at, names[i])) {
      for (; i < names.size(); ++i) at = at.join(names[i]);
      return at.str();
    }
    throw SandboxError("cannot mount on " + target + " in the image: " + next.str() +
                       " leads nowhere inside it (a symlink that dangles or loops, or a file where a folder must be)");
  }
  return at.str();
}

std::string describe(const SetupFailure& f) { return std::string(f.what) + ": " + strerror(f.error); }

/// Whether `path` is `dir` or below it; both resolved, absolute.
bool at_or_below(const std::string& path, const std::string& dir) {
  return path == dir || (path.starts_with(dir) && path[dir.size()] == '/');
}

}  // namespace

std::string MountTargets::add(const std::string& image_path) {
  std::string at = prefix_ + resolve_target(image_, image_path);
  for (auto& [other, other_at] : targets_)
    if (at_or_below(at, other_at) || at_or_below(other_at, at)) {
      auto named = [&](const std::string& name, const std::string& resolved) {
        std::string inside = resolved.substr(prefix_.size());
        return inside == name ? name : name + " (" + inside + " in the image)";
      };
      throw SandboxError("cannot mount on " + named(image_path, at) + ": " + named(other, other_at) +
                         " is mounted too, and one mount inside another is made in what the outer one shows; " +
                         "mount on paths that do not nest");
    }
  targets_.emplace_back(image_path, at);
  return at;
}

void plan_command(ChildPlan& p, const SandboxSpec& spec) {
  p.ids = resolve_user(image_root_of(spec), spec.user);
  p.workdir_path = absolute_in(spec.workdir.empty() ? "/" : spec.workdir);
  for (size_t i = 1; i <= p.workdir_path.size(); ++i)
    if (i == p.workdir_path.size() || p.workdir_path[i] == '/')
      p.workdir_parents.push_back(p.workdir_path.substr(0, i));
  p.groups.assign(p.ids.groups.begin(), p.ids.groups.end());
  for (auto& a : spec.argv) p.strings.push_back(a);
  size_t argc = p.strings.size();
  for (auto& e : spec.env) p.strings.push_back(e);
  // Docker's RUN has HOME when the image sets none (Docker Hub's golang does
  // not, and `go build` needs it): the user's home folder from the image.
  // HOSTNAME as docker's containers have it, unless the image or step sets one.
  auto sets = [&](const char* name) {
    return std::any_of(spec.env.begin(), spec.env.end(),
                       [&](const std::string& e) { return e.starts_with(std::string(name) + "="); });
  };
  if (!sets("HOME")) p.strings.push_back("HOME=" + p.ids.home);
  if (!sets("HOSTNAME")) p.strings.push_back(std::string("HOSTNAME=") + kStepHostname);
  for (size_t i = 0; i < p.strings.size(); ++i) (i < argc ? p.argv : p.envp).push_back(p.strings[i].data());
  p.argv.push_back(nullptr);
  p.envp.push_back(nullptr);
}

namespace {

/// A map (uid_map, gid_map) for a user namespace made inside this one that
/// maps every id `map_file` says this one has to itself.
std::string identity_map(const char* map_file) {
  std::istringstream in(read_file(map_file));
  std::string out;
  for (unsigned long inside, outside, count; in >> inside >> outside >> count;)
    out += std::to_string(inside) + " " + std::to_string(inside) + " " + std::to_string(count) + "\n";
  return out;
}

/// The step in namespaces of its own: on an overlay, or on a snapshot.
SandboxResult run_in_namespaces(const SandboxSpec& spec) {
  ChildPlan p;
  plan_command(p, spec);
  p.network = spec.network;
  p.user_namespace = rootless();

  TempDir scratch(spec.work.parent_path(), "sandbox-");
  fs::path merged = scratch.path() / "root";
  fs::create_directory(merged);
  p.merged = merged.string();
  // Every target resolved in the image before the child makes or mounts
  // anything: it works on host paths, where the image's symlinks would lead
  // out of the root. The root the child mounts starts as the image's root is.
  MountTargets targets(image_root_of(spec), p.merged);
  // The folders a target needs are made by the step's root before it runs.
  auto make_parents = [&](const std::string& path) {
    std::string parent = fs::path(path).parent_path().string();
    for (size_t i = p.merged.size() + 1; i <= parent.size(); ++i)
      if (i == parent.size() || parent[i] == '/') p.dirs_to_make.push_back(parent.substr(0, i));
  };
  // What imgbuild mounts itself, then what the step asks for.
  auto target = [&](const std::string& image_path) { return targets.add(image_path); };
  p.proc = target("/proc");
  if (spec.emulator) {
    // Registered after the step entered the image, through the descriptor
    // PID 1 opened the emulator on before: with F the kernel opens it at
    // once. Without C: a setuid program gains nothing through the emulator.
    p.binfmt_rule = spec.emulator->binfmt_match + "/proc/self/fd/" + std::to_string(kEmulatorFd) + ":F";
    p.emulator = spec.emulator->program.string();
    p.binfmt_dir = p.proc.substr(p.merged.size()) + "/sys/fs/binfmt_misc";
    p.binfmt_register = p.binfmt_dir + "/register";
    // Rootless, the step has a user namespace of its own already.
    if (!p.user_namespace) {
      p.uid_map = identity_map("/proc/self/uid_map");
      p.gid_map = identity_map("/proc/self/gid_map");
    }
  }
  p.sys = target("/sys");
  p.dev = target("/dev");
  p.dev_shm = p.dev + "/shm";
  p.dev_pts = p.dev + "/pts";
  for (const std::string& dir : {p.proc, p.sys, p.dev}) {
    make_parents(dir);
    p.dirs_to_make.push_back(dir);
  }
  for (const char* d : kStepDevices) p.device_binds.emplace_back(std::string("/dev/") + d, p.dev + "/" + d);
  p.dev_links = {{"/proc/self/fd", p.dev + "/fd"},
                 {"/proc/self/fd/0", p.dev + "/stdin"},
                 {"/proc/self/fd/1", p.dev + "/stdout"},
                 {"/proc/self/fd/2", p.dev + "/stderr"},
                 {"pts/ptmx", p.dev + "/ptmx"}};
  // Below the fresh /proc and /sys the names are the kernel's: no symlink of
  // the image's is on the way.
  auto in_kernel_fs = [&](const std::string& path) {
    return (path.starts_with("/proc/") ? p.proc : p.sys) + path.substr(path.find('/', 1));
  };
  for (const char* path : kReadOnlyPaths) p.read_only.push_back(in_kernel_fs(path));
  for (const char* path : kMaskedPaths) p.masked.push_back(in_kernel_fs(path));
  auto bind = [&](const fs::path& source, const std::string& image_path, bool read_only, bool is_file) {
    std::string at = target(image_path);
    make_parents(at);
    p.binds.push_back({source.string(), at, read_only, is_file});
  };
  // /etc/hosts names the step's host; resolv.conf is the host's, so the
  // network (when there is one) resolves as the build machine's does, but
  // for a resolver on the host's loopback, which a network of the step's own
  // reaches through slirp4netns's forwarder.
  fs::path hosts = scratch.path() / "hosts";
  write_scratch_file(hosts, step_hosts());
  bind(hosts, "/etc/hosts", true, true);
  if (spec.network == StepNetwork::host && fs::exists("/etc/resolv.conf"))
    bind(fs::canonical("/etc/resolv.conf"), "/etc/resolv.conf", true, true);
  if (spec.network == StepNetwork::own && fs::exists("/etc/resolv.conf")) {
    fs::path resolv_conf = scratch.path() / "resolv.conf";
    write_scratch_file(resolv_conf, step_resolv_conf(read_file("/etc/resolv.conf"), p.dns_forwarder));
    bind(resolv_conf, "/etc/resolv.conf", true, true);
  }
  for (auto& m : spec.mounts) {
    std::error_code ec;
    bind(m.source, m.target, m.read_only, fs::is_regular_file(m.source, ec));
  }

  SandboxResult result;
  for (auto& made : p.dirs_to_make) result.mount_points.push_back(made.substr(p.merged.size()));
  for (auto& [name, at] : targets.all()) result.mount_points.push_back(at.substr(p.merged.size()));
  if (!spec.force_snapshot) {
    std::vector<fs::path> dirs = spec.stacked;
    dirs.insert(dirs.end(), {spec.lower, spec.upper, spec.work});
    for (auto& dir : dirs)
      if (result.overlay_error.empty() && dir.string().find_first_of(",:\\") != std::string::npos)
        result.overlay_error =
            "the build folder " + dir.string() + " has a ',', ':' or '\\', which overlay options cannot take";
    if (result.overlay_error.empty()) {
      // The upper folder must hold whole files and whole folders, as
      // overlay_diff reads it: no data left in the lower file (metacopy), no
      // renamed folder that only points at the lower one (redirect_dir). A
      // kernel that does not know these options is one to take a snapshot on.
      // userxattr (rootless) rules both out itself, and refuses them spelled out.
      std::string lowerdir;
      for (auto& dir : spec.stacked) lowerdir += dir.string() + ":";
      p.overlay_options = "lowerdir=" + lowerdir + spec.lower.string() + ",upperdir=" + spec.upper.string() +
                          ",workdir=" + spec.work.string() +
                          (p.user_namespace ? ",userxattr" : ",redirect_dir=off,metacopy=off");
      // volatile (Linux 5.10): the upper folder is scratch, read into a layer
      // blob that is synced on its own. Without it, the overlay's unmount when
      // the step ends syncs the whole file system the upper folder is on:
      // every dirty page of that disk, the machine's other work's too (30 ms
      // after the bench's Go step on a quiet disk, 7 ms with it).
      if (kernel_at_least(5, 10)) p.overlay_options += ",volatile";
      std::optional<SetupFailure> failure = launch(p, spec, result);
      if (!failure) return result;
      if (!failure->overlay) throw SandboxError(describe(*failure));
      result.overlay_error = describe(*failure);
    }
  }
  if (!spec.stacked.empty())
    throw NeedsOneFolder(spec.force_snapshot ? "a snapshot step was asked for" : result.overlay_error);
  copy_image(spec.lower, spec.upper);
  p.overlay_options.clear();
  p.snapshot = spec.upper.string();
  result.snapshot = true;
  if (std::optional<SetupFailure> failure = launch(p, spec, result)) throw SandboxError(describe(*failure));
  return result;
}

}  // namespace

RootStack image_root_of(const SandboxSpec& spec) {
  std::vector<fs::path> folders = spec.stacked;
  folders.push_back(spec.lower);
  return RootStack(std::move(folders));
}

SandboxResult run_in_sandbox(const SandboxSpec& spec) {
  if (spec.argv.empty()) throw SandboxError("nothing to run");
  // Once refused, refused for the rest of the build: no step tries again.
  static std::atomic<bool> namespaces_refused = false;
  static std::string refusal;
  if (spec.emulator && spec.isolation == Isolation::chroot) throw SandboxError(kNoEmulatorInChroot);
  if (!spec.stacked.empty() && spec.isolation != Isolation::namespaces)
    throw NeedsOneFolder("chroot isolation mounts no overlay");
  if (spec.isolation == Isolation::chroot) return run_in_chroot(spec, "");
  if (spec.isolation == Isolation::automatic && namespaces_refused) {
    if (spec.emulator) throw SandboxError(refusal + "; " + kNoEmulatorInChroot);
    return run_in_chroot(spec, refusal);
  }
  try {
    return run_in_namespaces(spec);
  } catch (const NamespacesRefused& e) {
    if (spec.isolation != Isolation::automatic) throw;
    static std::once_flag once;
    std::call_once(once, [&] {
      refusal = std::string(e.what()).substr(0, std::string(e.what()).find(" ("));
      namespaces_refused = true;
    });
    if (spec.emulator) throw SandboxError(refusal + "; " + kNoEmulatorInChroot);
    // A snapshot step had copied the image before the clone failed.
    fs::remove_all(spec.upper);
    fs::create_directory(spec.upper);
    return run_in_chroot(spec, refusal);
  }
}

}  // namespace imgbuild
