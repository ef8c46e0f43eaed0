#pragma once
// Internal to src/sandbox/: the cgroups of a RUN step, which limit its
// processes and the devices it may open, on cgroup v1 or v2.
#include <string>
#include <vector>

namespace imgbuild {

/// The cgroups of one step, made before its first process runs and removed
/// with whatever is left in them when the step ends, whatever ends it.
///
/// A process limit: `pids.max` in a pids cgroup (v2, or v1's pids
/// hierarchy). A device policy on cgroup v1: only the nodes of the step's
/// own /dev can be read or written (null, zero, full, random, urandom, tty,
/// ptmx, pts/*), as runc allows; any node may still be made, as in docker,
/// but a host disk made with mknod or shipped in a layer cannot be opened.
/// On cgroup v2 the policy would be a BPF program: not made, nodev stands
/// alone there.
///
/// They are made inside imgbuild's own cgroup on v1, and at the top of the
/// v2 hierarchy, where the pids controller can be enabled (a cgroup with
/// processes of its own cannot give controllers to its children). Folders
/// left by an imgbuild that was killed (kill -9) are removed by the next one.
class StepCgroup {
public:
  /// Makes the cgroups, `max_processes` processes and threads at most. What
  /// cannot be made (no cgroupfs, read-only, not root) is told by missing().
  explicit StepCgroup(long max_processes);
  ~StepCgroup();
  StepCgroup(const StepCgroup&) = delete;
  StepCgroup& operator=(const StepCgroup&) = delete;

  /// The files a process writes "0" into to enter the cgroups itself, the
  /// step's PID 1 first thing, before it starts anything. Moving oneself
  /// through v1's `tasks` costs some microseconds; moving another process
  /// (cgroup.procs) waits for an RCU grace period, some 10 ms a step. On v2
  /// it is `cgroup.procs`, the one way without clone3's CLONE_INTO_CGROUP.
  const std::vector<std::string>& join_files() const { return join_files_; }
  /// Whether the step's processes are counted and limited.
  bool limits_processes() const { return limits_processes_; }
  /// What the step runs without, for the user ("no process limit (cgroup
  /// /sys/fs/cgroup/pids: Read-only file system)"); empty when nothing.
  const std::string& missing() const { return missing_; }

private:
  std::vector<std::string> dirs_, join_files_;
  bool limits_processes_ = false;
  std::string missing_;
};

}  // namespace imgbuild
