#pragma once
// Internal to src/sandbox/: the child that runs a step, in its own
// namespaces, on a plan run_in_sandbox makes before the clone.
#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sandbox/sandbox.hpp"

namespace imgbuild {

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
};

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

}  // namespace imgbuild
