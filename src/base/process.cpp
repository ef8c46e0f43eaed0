#include "base/process.hpp"

#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <system_error>
#include <utility>

#include "base/fs.hpp"
#include "base/interrupt.hpp"

namespace imgbuild {

namespace {

/// The null-terminated array that exec takes, pointing into `strings`.
std::vector<char*> c_strings(const std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (const std::string& s : strings) pointers.push_back(const_cast<char*>(s.c_str()));
  pointers.push_back(nullptr);
  return pointers;
}

}  // namespace

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

ChildProcess spawn_process(const ProcessSpec& spec) {
  if (spec.argv.empty()) throw std::invalid_argument("spawn_process: no argv");
  const std::string& program = spec.program.empty() ? spec.argv[0] : spec.program;
  std::vector<char*> argv = c_strings(spec.argv), envp = c_strings(spec.env);
  auto fail = [&](int error) { return std::system_error(error, std::generic_category(), "cannot start " + program); };

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  if (int rc = posix_spawn_file_actions_init(&actions); rc != 0) throw fail(rc);
  if (int rc = posix_spawnattr_init(&attributes); rc != 0) {
    posix_spawn_file_actions_destroy(&actions);
    throw fail(rc);
  }
  // Signals this process ignores or blocks would otherwise stay so in the child.
  sigset_t none, pipe_only;
  sigemptyset(&none);
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  // A process group of its own: on an interrupt the child and every process
  // it started are killed together.
  if (spec.own_group) flags |= POSIX_SPAWN_SETPGROUP;
  int rc = 0;  // the first error of these, all of which return an errno value
  auto step = [&rc](int r) {
    if (rc == 0) rc = r;
  };
  for (auto [fd, target] : {std::pair{spec.stdin_fd, 0}, {spec.stdout_fd, 1}, {spec.stderr_fd, 2}})
    if (fd >= 0) step(posix_spawn_file_actions_adddup2(&actions, fd, target));
  // A dup2 onto itself clears close-on-exec (glibc 2.29 on), where dup2 would do nothing.
  for (int fd : spec.inherited_fds) step(posix_spawn_file_actions_adddup2(&actions, fd, fd));
  if (!spec.cwd.empty()) step(posix_spawn_file_actions_addchdir_np(&actions, spec.cwd.c_str()));
  step(posix_spawnattr_setsigmask(&attributes, &none));
  step(posix_spawnattr_setsigdefault(&attributes, &pipe_only));
  step(posix_spawnattr_setpgroup(&attributes, 0));
  step(posix_spawnattr_setflags(&attributes, flags));
  pid_t pid = 0;
  if (rc == 0) rc = ::posix_spawnp(&pid, program.c_str(), &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (rc != 0) throw fail(rc);
  return ChildProcess(pid, spec.own_group);
}

}  // namespace imgbuild
