#pragma once
// Child processes that never outlive the code that started them.
#include <sys/types.h>

#include <filesystem>
#include <string>
#include <vector>

namespace imgbuild {

/// A child process that is killed (SIGKILL, its whole process group when it
/// leads one) and reaped when this goes out of scope before wait() did: an
/// exception, an interrupt, leaves no process behind.
class ChildProcess {
public:
  /// `group`: the child leads its own process group (what it starts goes too).
  ChildProcess(pid_t pid, bool group);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  /// Waits for the end; throws Interrupted (after killing it) when a signal
  /// comes first. Returns the exit status, or 128 + N when killed by signal N.
  int wait();
  /// Forgets the process, which is then neither killed nor reaped here: the
  /// caller reaped it itself (waitpid), or it was reaped elsewhere.
  void release() { pid_ = -1; }

private:
  void kill_and_reap();
  pid_t pid_;
  bool group_;
};

/// A process to start: what runs, with what, where. Meant for designated
/// initializers; the `{}`s let them leave a member out without a warning.
struct ProcessSpec {
  /// argv[0] names the program too, found as posix_spawnp finds it (in this
  /// process's PATH, unless it has a '/').
  std::vector<std::string> argv;
  /// The file to run instead, found the same way; argv[0] is then only the
  /// name the process is given.
  std::string program{};
  std::vector<std::string> env{};  ///< "NAME=value": its whole environment
  std::filesystem::path cwd{};     ///< its working directory; empty: this process's
  /// Descriptors of this process that become the child's stdin, stdout and
  /// stderr (one may serve twice); -1: it shares this process's own.
  int stdin_fd = -1, stdout_fd = -1, stderr_fd = -1;
  /// More descriptors of this process the child inherits, under the same
  /// numbers: those a program is told about on its command line.
  std::vector<int> inherited_fds{};
  /// It leads a process group of its own, so that the ChildProcess kills
  /// what it starts along with it.
  bool own_group = false;
};

/// Starts `spec`, with no signal blocked and SIGPIPE at its default, whatever
/// this process does with them. It inherits no other descriptor as long as
/// this process opens every descriptor close-on-exec. Throws std::system_error
/// "cannot start PROGRAM: REASON" when it cannot start (no such program, no
/// such working directory...).
ChildProcess spawn_process(const ProcessSpec& spec);

}  // namespace imgbuild
