#pragma once
// RUN steps: a command executed inside an image's file system, isolated from
// the host, whose changes become the step's layer.
//
// The command runs in fresh mount, PID, IPC, UTS and network namespaces (the
// host's network only when asked), pivot_root-ed into an overlay of the image root, whose upper
// folder is the diff. Where the kernel refuses that overlay (too old, no
// overlayfs, a rootless mount it does not allow, an upper folder on a file
// system overlay cannot use), the step runs on a copy of the image root and
// the diff is a comparison of that copy with the root: slower, same layer.
// /proc (runc's masked and read-only paths included), a read-only /sys, a
// minimal /dev, /etc/resolv.conf and /etc/hosts are provided by mounts, at
// paths resolved inside the image that never nest, and never enter the diff;
// whatever the step can write is mounted nodev. It
// runs as the image's user, resolved from the image's own /etc/passwd and
// /etc/group, with a reduced capability set, in a session of its own (no
// terminal of imgbuild's), and inherits no file descriptor of imgbuild but its
// output pipe. A seccomp filter refuses the system calls docker's default
// profile refuses, and a cgroup limits its processes and the devices it may
// open. Every process of the step dies when its command ends or when
// imgbuild does. docs/sandbox.md compares it with runc's defaults.
//
// Where no namespace can be made (a CI job in an unprivileged container),
// chroot isolation runs the step without them: see Isolation.
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "layer/layer.hpp"
#include "sandbox/root_stack.hpp"

namespace imgbuild {

/// A step that could not be started (not one that ran and failed): no overlay
/// support, no user namespaces, an unknown user.
class SandboxError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// A step on stacked folders (SandboxSpec::stacked) that cannot run on an
/// overlay here (none, or chroot isolation): nothing of it ran, and it runs
/// on the image root as one folder instead. Says why, as overlay_error does.
class NeedsOneFolder : public SandboxError {
public:
  using SandboxError::SandboxError;
};

/// A host path mounted into the step.
struct SandboxMount {
  std::filesystem::path source;  ///< on the host
  std::string target;            ///< absolute, inside the image
  bool read_only = false;
};

/// The network a step runs in.
enum class StepNetwork {
  /// The default: a network namespace of its own that slirp4netns connects
  /// to the outside (src/sandbox/network.hpp): the step reaches registries
  /// and module proxies, but neither sees the host's interfaces nor reaches
  /// the host's loopback.
  own,
  host,  ///< the build machine's network namespace (network = "host")
  none,  ///< a network namespace with only lo, up (network = "none")
};

/// How a RUN step is kept apart from the machine that builds.
enum class Isolation {
  /// The default: the namespaces, mounts, seccomp filter and cgroup above.
  namespaces,
  /// No namespace and no mount, for a build inside an unprivileged container
  /// (the container is the boundary then): the step runs as root or its user
  /// chroot-ed into a copy of the image root, with a /dev of its own made
  /// there, and secrets and caches copied in and taken out again.
  /// kChrootGivesUp says what it does without.
  chroot,
  /// namespaces where the kernel allows them, chroot where it refuses them.
  automatic,
};

/// What chroot isolation does without, as the notice of a build and the
/// error that suggests it say: "no private /proc, ...".
extern const char* const kChrootGivesUp;

/// The default process limit of a step: a fork bomb stops there, and the
/// machine stays usable, while a parallel build (make -j, a Go or Rust
/// compiler's threads, which count too) stays far below it. Docker sets
/// none unless its daemon is told to; 4096 is what runners commonly set.
constexpr long kDefaultMaxProcesses = 4096;

/// Every step's host name (UTS namespace, /etc/hosts and $HOSTNAME): one
/// name, so nothing a step records of it differs from build to build.
inline constexpr const char* kStepHostname = "imgbuild";

/// An emulator a step registers for itself with binfmt_misc.
struct StepEmulator {
  /// The rule's start, up to its interpreter: ":NAME:M::MAGIC:MASK:".
  std::string binfmt_match;
  /// The emulator on this machine (/usr/bin/qemu-aarch64-static): opened
  /// before the step enters the image and registered with the F flag, so
  /// nothing is looked for inside the image's root.
  std::filesystem::path program;
};

struct SandboxSpec {
  std::filesystem::path lower;  ///< the image root, or its lowest folder (`stacked`); never modified
  /// Folders stacked on `lower`, the upper first: the image root is then
  /// their union as overlay merges it (RootStack), and every reader of the
  /// root reads that union. Only for a step on an overlay: see
  /// NeedsOneFolder. Never modified.
  std::vector<std::filesystem::path> stacked;
  /// An empty folder: receives the step's changes (overlay), or a whole copy
  /// of `lower` that the step runs on (snapshot).
  std::filesystem::path upper;
  std::filesystem::path work;  ///< an empty folder on upper's file system (overlay's scratch)
  std::vector<std::string> argv;
  /// "NAME=value"; HOME (the user's passwd entry) and HOSTNAME added when missing
  std::vector<std::string> env;
  std::string workdir = "/";  ///< created when missing, as docker does
  std::string user;           ///< "", "name", "uid", "name:group", "uid:gid"
  StepNetwork network = StepNetwork::own;
  std::vector<SandboxMount> mounts;
  /// Every line the step writes to stdout or stderr, as it comes.
  std::function<void(std::string_view line)> output;
  /// Run on a copy of `lower` without trying overlay: the path taken anyway
  /// when the kernel refuses the overlay, chosen here to test it or to avoid
  /// an overlay that misbehaves on some file system.
  bool force_snapshot = false;
  /// Processes and threads the step may have at once, counted by a cgroup
  /// (kDefaultMaxProcesses unless the user chose).
  long max_processes = kDefaultMaxProcesses;
  Isolation isolation = Isolation::namespaces;
  /// What runs the step's programs of another CPU, when the step registers
  /// it itself: the step then runs in a user namespace of its own, mapping
  /// the ids imgbuild has, whose own binfmt_misc (Linux 6.7 and later) holds
  /// only this rule, so nothing of the machine's registrations changes. Not
  /// with chroot isolation, which makes no namespace. Empty: the machine's
  /// registrations, if any, serve.
  std::optional<StepEmulator> emulator;
};

struct SandboxResult {
  int exit_code = 0;  ///< 128 + N when killed by signal N
  /// The last 20 lines of output, as the step wrote them: control bytes
  /// and all, to be shown through printable_text().
  std::vector<std::string> last_lines;
  /// The step ran on a copy of the image root in `upper`, not on an overlay;
  /// step_changes compares that copy with `lower`.
  bool snapshot = false;
  /// Why the overlay was not used, when it was tried and refused
  /// ("mounting the overlay: Operation not permitted"): worth telling the
  /// user, since a snapshot step copies the whole image first.
  std::string overlay_error;
  /// What the step's root got only to be mounted on: the mount targets as
  /// resolved inside the image and the folders made above them, absolute.
  /// step_changes leaves those the image did not have out of the layer,
  /// unless the step wrote something below them.
  std::vector<std::string> mount_points;
  /// What the step ran without, when this host did not allow it ("no
  /// process limit (cgroup /sys/fs/cgroup/pids: Permission denied)"): worth
  /// telling the user once. Empty when the step had every limit.
  std::string unconfined;
};

/// Runs the step to its end: on an overlay, or on a snapshot when the overlay
/// cannot be mounted, `force_snapshot` is set or the isolation is chroot.
/// Throws SandboxError when it cannot start, NeedsOneFolder when a step on
/// stacked folders would need a snapshot.
SandboxResult run_in_sandbox(const SandboxSpec& spec);

/// uid, gid, supplementary groups and home folder of `user` as the image
/// `root` defines it (its /etc/passwd and /etc/group, never the host's); ""
/// is root. Numeric ids need no entry. Throws SandboxError naming the user
/// when a name is unknown.
struct UserIds {
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> groups;
  std::string home = "/";  ///< HOME of a step that sets none, as runc sets it
};
UserIds resolve_user(const RootStack& root, const std::string& user);

/// The layer entries of an overlay upper folder: what a step changed. Overlay
/// whiteouts (0/0 character devices) become OCI whiteouts and opaque folders
/// get an opaque marker; `whiteout_source` is an empty host file the marker
/// entries read. Paths in `mount_points` (created only to mount over) are
/// left out when `lower` does not have them, but for a folder the step
/// wrote something in (outside the mount): that stays, as BuildKit keeps it
/// and drops only empty mount stubs. Modes and owners are kept as
/// the step left them. What overlay copied up but the step left as it was (a
/// folder above a change, a file rewritten with the same bytes) is left out,
/// except below an opaque folder. Sorted by path, so parents come first.
std::vector<LayerEntry> overlay_diff(const std::filesystem::path& upper, const RootStack& lower,
                                     const std::vector<std::string>& mount_points,
                                     const std::filesystem::path& whiteout_source);

/// The image root of `spec`: `stacked` on `lower`.
RootStack image_root_of(const SandboxSpec& spec);

/// What the step of `spec` changed, as layer entries: overlay_diff of its
/// upper folder, or for a snapshot step the same entries found by comparing
/// the copy with `lower` (type, mode, owner, symlink target and bytes). A
/// deleted path becomes one whiteout (a folder's children get none); a folder
/// the step deleted and made again, or made where a file was, becomes opaque,
/// as overlay makes it. File entries read from `spec.upper`, so the entries
/// must be written out before that folder goes. `mount_points` (the caller's
/// own) join `result.mount_points`. Sorted by path.
std::vector<LayerEntry> step_changes(const SandboxSpec& spec, const SandboxResult& result,
                                     const std::vector<std::string>& mount_points,
                                     const std::filesystem::path& whiteout_source);

}  // namespace imgbuild
