#pragma once
// Child processes that never outlive the code that started them.
#include <sys/types.h>

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

private:
  void kill_and_reap();
  pid_t pid_;
  bool group_;
};

}  // namespace imgbuild
