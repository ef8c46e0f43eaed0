// Tests for spawn_process: a child gets the argv, environment, working
// directory, standard and other descriptors it is given, a clean signal state and,
// when asked, a process group of its own; what cannot start says why.
#include "base/process.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <system_error>

#include "base/fs.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using imgbuild::ChildProcess;
using imgbuild::Fd;
using imgbuild::spawn_process;
using namespace imgbuild::test;

namespace {

Fd open_or_fail(const fs::path& path, int flags) {
  Fd fd(::open(path.c_str(), flags | O_CLOEXEC, 0600));
  REQUIRE(fd);
  return fd;
}

/// Whether `signal` is in a signal mask field ("SigBlk", "SigIgn"...) of
/// `pid`'s /proc status.
bool in_status_mask(pid_t pid, const std::string& field, int signal) {
  std::string status = slurp("/proc/" + std::to_string(pid) + "/status");
  size_t at = status.find("\n" + field + ":\t");
  REQUIRE(at != std::string::npos);
  return (std::stoull(status.substr(at + field.size() + 3), nullptr, 16) >> (signal - 1)) & 1;
}

}  // namespace

TEST_CASE("a process gets its argv, environment, directory and descriptors", "[process]") {
  ScratchDir dir;
  fs::create_directory(dir.path / "work");
  spit(dir.path / "input", "from stdin\n");
  Fd in = open_or_fail(dir.path / "input", O_RDONLY);
  Fd out = open_or_fail(dir.path / "out", O_WRONLY | O_CREAT);
  Fd err = open_or_fail(dir.path / "err", O_WRONLY | O_CREAT);
  // Only the given environment is there.
  int status =
      spawn_process({.argv = {"sh", "-c", "echo \"$0|$1|$GREETING|$HOME\"; pwd -P; cat; echo oops >&2", "zero", "one"},
                     .env = {"GREETING=hello"},
                     .cwd = dir.path / "work",
                     .stdin_fd = in.get(),
                     .stdout_fd = out.get(),
                     .stderr_fd = err.get()})
          .wait();
  CHECK(status == 0);
  CHECK(slurp(dir.path / "out") == "zero|one|hello|\n" + fs::canonical(dir.path / "work").string() + "\nfrom stdin\n");
  CHECK(slurp(dir.path / "err") == "oops\n");
}

TEST_CASE("a program given apart runs under the name argv[0] gives it", "[process]") {
  ScratchDir dir;
  Fd out = open_or_fail(dir.path / "out", O_WRONLY | O_CREAT);
  // Read by the shell itself: its exec is over by then.
  std::string script = "cat /proc/$$/cmdline";
  CHECK(spawn_process({.argv = {"a name", "-c", script}, .program = "sh", .stdout_fd = out.get()}).wait() == 0);
  CHECK(slurp(dir.path / "out") == std::string("a name\0-c\0", 10) + script + '\0');
}

TEST_CASE("one descriptor can be both stdout and stderr", "[process]") {
  ScratchDir dir;
  Fd log = open_or_fail(dir.path / "log", O_WRONLY | O_CREAT);
  CHECK(spawn_process({.argv = {"sh", "-c", "echo out; echo err >&2"}, .stdout_fd = log.get(), .stderr_fd = log.get()})
            .wait() == 0);
  CHECK(slurp(dir.path / "log") == "out\nerr\n");
}

TEST_CASE("a process inherits the descriptors it is given, under their numbers, and no other", "[process]") {
  ScratchDir dir;
  Fd given = open_or_fail(dir.path / "given", O_WRONLY | O_CREAT);
  Fd other = open_or_fail(dir.path / "other", O_WRONLY | O_CREAT);
  std::string script = "echo to-given >&" + std::to_string(given.get()) + "; { echo to-other >&" +
                       std::to_string(other.get()) + "; } 2>/dev/null || true";
  CHECK(spawn_process({.argv = {"sh", "-c", script}, .inherited_fds = {given.get()}}).wait() == 0);
  CHECK(slurp(dir.path / "given") == "to-given\n");
  CHECK(slurp(dir.path / "other").empty());
  // Still close-on-exec here: only the child's copy lost it.
  CHECK((::fcntl(given.get(), F_GETFD) & FD_CLOEXEC) != 0);
}

TEST_CASE("a process leads its own group only when asked", "[process]") {
  ChildProcess alone = spawn_process({.argv = {"sleep", "1000"}, .own_group = true});
  CHECK(::getpgid(alone.pid()) == alone.pid());
  ChildProcess along = spawn_process({.argv = {"sleep", "1000"}});
  CHECK(::getpgid(along.pid()) == ::getpgrp());
}

TEST_CASE("a process blocks and ignores no signal because its parent does", "[process]") {
  sigset_t usr1, before;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  REQUIRE(::pthread_sigmask(SIG_BLOCK, &usr1, &before) == 0);
  struct sigaction ignore {};
  struct sigaction old {};
  ignore.sa_handler = SIG_IGN;
  REQUIRE(::sigaction(SIGPIPE, &ignore, &old) == 0);
  ChildProcess child = spawn_process({.argv = {"sleep", "1000"}});
  ::sigaction(SIGPIPE, &old, nullptr);
  ::pthread_sigmask(SIG_SETMASK, &before, nullptr);
  CHECK_FALSE(in_status_mask(child.pid(), "SigBlk", SIGUSR1));
  CHECK_FALSE(in_status_mask(child.pid(), "SigIgn", SIGPIPE));
}

TEST_CASE("a process that cannot start says why", "[process]") {
  auto code_of = [](auto&& f) {
    try {
      f();
    } catch (const std::system_error& e) {
      return e.code().value();
    }
    return 0;
  };
  auto missing = [] { spawn_process({.argv = {"imgbuild-test-no-such-program"}}); };
  CHECK(error_of(missing) == "cannot start imgbuild-test-no-such-program: No such file or directory");
  CHECK(code_of(missing) == ENOENT);
  CHECK(error_of([] { spawn_process({.argv = {"true"}, .cwd = "/nonexistent/imgbuild-test"}); }) ==
        "cannot start true: No such file or directory");
  CHECK(error_of([] { spawn_process({.argv = {"name"}, .program = "/nonexistent/imgbuild-test"}); }) ==
        "cannot start /nonexistent/imgbuild-test: No such file or directory");
}

TEST_CASE("a released process is left to whoever reaps it", "[process]") {
  pid_t pid = 0;
  {
    ChildProcess child = spawn_process({.argv = {"sleep", "1000"}});
    pid = child.pid();
    child.release();
  }
  CHECK(::kill(pid, 0) == 0);  // not killed, and not reaped either
  ::kill(pid, SIGKILL);
  int status = 0;
  CHECK(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status));
}
