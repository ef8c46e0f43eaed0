#pragma once
// RUN steps: a command executed inside an image's file system, isolated from
// the host, whose changes land in an overlay upper directory that becomes the
// step's layer.
//
// The command runs in fresh mount, PID, IPC and UTS namespaces (and network,
// when asked), pivot_root-ed into an overlay of the image root; /proc, a
// minimal /dev, /etc/resolv.conf and /etc/hosts are provided by mounts and
// never enter the diff. It runs as the image's user, resolved from the image's
// own /etc/passwd and /etc/group, with a reduced capability set, and inherits
// no file descriptor of imgbuild but its output pipe.
#include <filesystem>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/layer.hpp"

namespace imgbuild {

/// A step that could not be started (not one that ran and failed): no overlay
/// support, no user namespaces, an unknown user.
class SandboxError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// A host path mounted into the step.
struct SandboxMount {
  std::filesystem::path source;  ///< on the host
  std::string target;            ///< absolute, inside the image
  bool read_only = false;
};

struct SandboxSpec {
  std::filesystem::path lower;  ///< the image root; never modified
  std::filesystem::path upper;  ///< an empty folder: receives the step's changes
  std::filesystem::path work;   ///< an empty folder on upper's file system (overlay's scratch)
  std::vector<std::string> argv;
  std::vector<std::string> env;  ///< "NAME=value"
  std::string workdir = "/";     ///< created when missing, as docker does
  std::string user;              ///< "", "name", "uid", "name:group", "uid:gid"
  bool network = true;           ///< false: an empty network namespace
  std::vector<SandboxMount> mounts;
  /// Every line the step writes to stdout or stderr, as it comes.
  std::function<void(std::string_view line)> output;
};

struct SandboxResult {
  int exit_code = 0;  ///< 128 + N when killed by signal N
  std::vector<std::string> last_lines;  ///< the last 20 lines of output
};

/// Runs the step to its end. Throws SandboxError when it cannot start.
SandboxResult run_in_sandbox(const SandboxSpec& spec);

/// uid, gid and supplementary groups of `user` as the image at `root` defines
/// it (its /etc/passwd and /etc/group, never the host's). Numeric ids need no
/// entry. Throws SandboxError naming the user when a name is unknown.
struct UserIds {
  uint32_t uid = 0, gid = 0;
  std::vector<uint32_t> groups;
};
UserIds resolve_user(const std::filesystem::path& root, const std::string& user);

/// The layer entries of an overlay upper folder: what a step changed. Overlay
/// whiteouts (0/0 character devices) become OCI whiteouts and opaque folders
/// get an opaque marker; `whiteout_source` is an empty host file the marker
/// entries read. Paths in `mount_points` (created only to mount over) are
/// left out when `lower` does not have them. Modes and owners are kept as
/// the step left them. Sorted, parents first.
std::vector<LayerEntry> overlay_diff(const std::filesystem::path& upper, const std::filesystem::path& lower,
                                     const std::vector<std::string>& mount_points,
                                     const std::filesystem::path& whiteout_source);

}  // namespace imgbuild
