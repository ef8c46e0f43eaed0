#pragma once
// Internal to src/sandbox/: the child that runs a step, in its own
// namespaces or chroot-ed (chroot.cpp), on a plan run_in_sandbox makes
// before the clone, and what both kinds of child share.
#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/fs.hpp"
#include "base/process.hpp"
#include "layer/resolve.hpp"
#include "sandbox/sandbox.hpp"

namespace imgbuild {

/// The kernel refused the step's namespaces to root (EPERM: an unprivileged
/// container): --isolation auto runs the step chroot-ed instead.
class NamespacesRefused : public SandboxError {
public:
  using SandboxError::SandboxError;
};

/// The /etc/hosts of a step: it names the step's host.
inline std::string step_hosts() {
  return std::string("127.0.0.1\tlocalhost ") + kStepHostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n";
}

/// The device nodes of a step's /dev, as /dev/NAME of the host.
constexpr const char* kStepDevices[] = {"null", "zero", "full", "random", "urandom", "tty"};

/// Where the mounts of a step land in the image `image`: each target
/// resolved inside the image (a symlink to /etc of the host is /etc of the
/// image), the missing rest as named, to be made; never one at or below
/// another, whose mount would be made in what the outer one shows.
class MountTargets {
public:
  /// `prefix`: what the resolved targets are put after (the folder the root is at).
  MountTargets(RootStack image, std::string prefix) : image_(std::move(image)), prefix_(std::move(prefix)) {}
  /// `prefix` + `image_path` resolved; throws SandboxError naming it when it
  /// leads nowhere inside the image or nests with one added before.
  std::string add(const std::string& image_path);
  /// The targets added, as named and as add() returned them.
  const std::vector<std::pair<std::string, std::string>>& all() const { return targets_; }

private:
  RootStack image_;
  std::string prefix_;
  std::vector<std::pair<std::string, std::string>> targets_;
};

/// The descriptor an emulated step's PID 1 holds its emulator on, from
/// before it enters the image until it has registered it.
constexpr int kEmulatorFd = 1000;

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
  std::string proc, sys, dev, dev_shm, dev_pts;
  std::vector<std::string> read_only;                             // below proc: bound on themselves, read-only
  std::vector<std::string> masked;                                // below proc and sys: hidden when there
  std::vector<std::pair<std::string, std::string>> device_binds;  // host node, target
  std::vector<std::pair<std::string, std::string>> dev_links;     // link target, path
  UserIds ids;
  std::vector<gid_t> groups;
  StepNetwork network = StepNetwork::own;
  bool dns_forwarder = false;  ///< the step's resolv.conf names slirp4netns's forwarder
  bool user_namespace = false;
  bool chroot = false;  ///< chroot-ed into `snapshot` (chroot.cpp): no namespace, no mount
  // A binfmt_misc of the step's own (SandboxSpec::emulator): the emulator,
  // the rule naming it by kEmulatorFd, the folder the binfmt_misc is mounted
  // on and its `register` file (in the image: under the step's /proc/sys,
  // hidden after), and, as root, the uid and gid maps of the user namespace
  // PID 1 makes for it ("0 0 4294967295": the ids imgbuild's namespace has).
  std::string emulator, binfmt_rule, binfmt_dir, binfmt_register, uid_map, gid_map;
};

/// Fills the command of `p` from `spec`: the user's ids and groups as the
/// image defines them, argv, the environment (HOME added from the user's
/// passwd entry when missing) and the working directory.
void plan_command(ChildPlan& p, const SandboxSpec& spec);

/// Whether a step of plan `p` keeps capability `cap`: docker's default set,
/// less what its network or its isolation makes a way out.
bool keeps_capability(const ChildPlan& p, int cap);

/// Leaves the calling process the kept capabilities alone, effective and
/// permitted, none inheritable: a dropped bounding set alone would leave
/// root's full effective set until exec, and an inheritable one past it.
bool limit_capabilities(const ChildPlan& p);

/// Switches the calling process to the step's user: its groups (unless
/// `keep_groups`: a user namespace denies setgroups), gid, then uid. Raw
/// system calls, which change the calling process alone: glibc's setuid and
/// friends, in a process it believes multi-threaded (as a raw clone's child
/// of imgbuild is), take its thread-list lock and signal every thread it
/// lists; a lock another thread of imgbuild held at the clone stays held
/// in the child forever. Ends the child with a report on failure.
void become_step_user(const ChildPlan& p, bool keep_groups, int report_fd);

/// Reports `what` and errno on the child's report pipe and ends the child.
[[noreturn]] void child_fail(int report_fd, const char* what, bool overlay = false);

/// Runs the command of `p` with its environment: exec, or its error on
/// standard error and exit status 127 (not found) or 126.
[[noreturn]] void exec_command(const ChildPlan& p);

/// Closes descriptors `lo` to `hi`, both included.
void close_fds(unsigned lo, unsigned hi);

/// Whether the running kernel is version `major`.`minor` or later.
bool kernel_at_least(int major, int minor);

/// Writes `data` into the new file `path` of a step's scratch folder (its
/// /etc/hosts, its resolv.conf). Neither atomic nor synced: the folder is
/// the step's own and goes with it, so no reader sees the file half written
/// and no crash leaves it for anyone.
void write_scratch_file(const fs::path& path, std::string_view data);

/// What the child writes on its report pipe when it cannot set the step up.
/// A pipe of its own, not the output: the parent must tell a refused overlay
/// (retried on a snapshot) from a command that printed anything and failed.
struct SetupFailure {
  int error = 0;
  bool overlay = false;  // the overlay mount itself was refused
  char what[64] = {};
};

/// Starts the child on plan `p` and waits for its end, passing its output to
/// `spec.output` and `result`. Returns what the child reported when it could
/// not set the step up: the command did not run then.
std::optional<SetupFailure> launch(const ChildPlan& p, const SandboxSpec& spec, SandboxResult& result);

/// The parent's side of a started step: passes every line of `out_read` to
/// `spec.output` and the last ones to `result`, waits for `child` and
/// returns what it wrote on `report_read` when it could not set the step up.
std::optional<SetupFailure> collect(ChildProcess& child, const Fd& out_read, const Fd& report_read,
                                    const SandboxSpec& spec, SandboxResult& result);

/// Runs the step of `spec` chroot-ed into a copy of its image root
/// (Isolation::chroot). `why`: the reason namespaces were not used, when
/// --isolation auto fell back ("" when chroot was asked for).
SandboxResult run_in_chroot(const SandboxSpec& spec, const std::string& why);

}  // namespace imgbuild
