#include "base/process.hpp"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "base/fs.hpp"
#include "base/interrupt.hpp"

namespace imgbuild {

ChildProcess::ChildProcess(pid_t pid, bool group) : pid_(pid), group_(group) {}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) kill_and_reap();
}

void ChildProcess::kill_and_reap() {
  ::kill(group_ ? -pid_ : pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

int ChildProcess::wait() {
  // A pidfd becomes readable when the process ends; without one (a kernel
  // before 5.3) the wait cannot be interrupted, but still ends.
  Fd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
  if (pidfd && !wait_readable(pidfd.get())) {
    kill_and_reap();
    check_interrupt();
  }
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0)
    if (errno != EINTR) throw_errno("waitpid");
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace imgbuild
