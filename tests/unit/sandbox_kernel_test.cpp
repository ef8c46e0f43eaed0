// Tests for what the kernel enforces on a RUN step: the seccomp filter, the
// capability sets, the cgroup that limits its processes and devices and
// goes with whatever is left in it. tests/e2e/hostile_kernel.sh attacks the
// same defences from a real build.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "base/fs.hpp"
#include "sandbox/cgroup.hpp"
#include "sandbox/sandbox.hpp"
#include "sandbox/seccomp.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using imgbuild::Fd;
using imgbuild::run_in_sandbox;
using imgbuild::SandboxResult;
using imgbuild::SandboxSpec;
using imgbuild::StepCgroup;
using imgbuild::StepNetwork;
using namespace imgbuild::test;

namespace {

/// Busybox and a passwd with root and nobody.
void make_image(const fs::path& root) {
  fs::create_directories(root / "bin");
  fs::copy_file("/bin/busybox", root / "bin/busybox");
  for (const char* applet : {"sh", "cat", "grep", "sleep"}) fs::create_symlink("busybox", root / "bin" / applet);
  fs::create_directories(root / "etc");
  spit(root / "etc/passwd", "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n");
  fs::create_directories(root / "tmp");
}

/// The output of `script` run as a step on a fresh image.
SandboxResult run_script(const std::string& script, bool host_network = false, long max_processes = 0,
                         const std::string& user = "", std::function<void(std::string_view)> output = {}) {
  ScratchDir dir;
  make_image(dir.path / "image");
  fs::create_directory(dir.path / "upper");
  fs::create_directory(dir.path / "work");
  SandboxSpec spec;
  spec.lower = dir.path / "image";
  spec.upper = dir.path / "upper";
  spec.work = dir.path / "work";
  spec.env = {"PATH=/bin"};
  spec.network = host_network ? StepNetwork::host : StepNetwork::none;
  spec.user = user;
  if (max_processes) spec.max_processes = max_processes;
  spec.argv = {"/bin/sh", "-c", script};
  spec.output = std::move(output);
  return run_in_sandbox(spec);
}

/// Every cgroup folder this test process made and left.
bool cgroups_left() {
  std::string mine = "imgbuild-" + std::to_string(::getpid()) + "-";
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator("/sys/fs/cgroup", fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (it.depth() > 6) it.disable_recursion_pending();
    if (it->path().filename().string().starts_with(mine)) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("the seccomp program is built once and refuses namespaces, mounts and clone3", "[sandbox][root]") {
  const auto& program = imgbuild::step_seccomp_program();
  CHECK(&program == &imgbuild::step_seccomp_program());
  REQUIRE(!program.empty());
  pid_t pid = ::fork();
  if (pid == 0) {
    if (!imgbuild::install_seccomp(program)) _exit(10);
    if (::unshare(CLONE_NEWUSER) == 0 || errno != EPERM) _exit(11);
    if (::syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0) != -1 || errno != EPERM) _exit(12);
    if (::syscall(SYS_clone3, nullptr, 0) != -1 || errno != ENOSYS) _exit(13);
    if (::syscall(SYS_keyctl, 0, -3, 0) != -1 || errno != EPERM) _exit(14);
    if (::getpid() <= 0) _exit(15);
    _exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("a step has docker's capabilities, none as a user, no CAP_NET_RAW on the host's network", "[sandbox][root]") {
  SandboxResult root = run_script("grep -E '^(CapEff|CapInh|Seccomp):' /proc/self/status");
  REQUIRE(root.exit_code == 0);
  CHECK(root.last_lines ==
        std::vector<std::string>{"CapInh:\t0000000000000000", "CapEff:\t00000000a80425fb", "Seccomp:\t2"});
  SandboxResult host = run_script("grep '^CapEff:' /proc/self/status", true);
  CHECK(host.last_lines == std::vector<std::string>{"CapEff:\t00000000a80405fb"});
  SandboxResult user = run_script("grep '^CapEff:' /proc/self/status", false, 0, "nobody");
  CHECK(user.last_lines == std::vector<std::string>{"CapEff:\t0000000000000000"});
}

TEST_CASE("a step's processes stop at its limit, and its cgroup goes with it", "[sandbox][root]") {
  // Each background sleep is a process; the shell and PID 1 are two more.
  // Builtins only: the shell ends at the first fork the kernel refuses.
  int started = 0;
  SandboxResult result = run_script("i=0; while [ $i -lt 40 ]; do sleep 60 & echo started; i=$((i+1)); done", false, 12,
                                    "", [&](std::string_view line) { started += line == "started"; });
  CHECK(result.unconfined.find("process limit") == std::string::npos);
  REQUIRE(!result.last_lines.empty());
  CHECK(result.last_lines.back().find("can't fork") != std::string::npos);
  CHECK(started == 10);
  CHECK_FALSE(cgroups_left());
}

TEST_CASE("a step cgroup kills what is left in it when it goes", "[sandbox][root]") {
  pid_t pid = 0;
  {
    StepCgroup cgroup(100);
    REQUIRE(cgroup.limits_processes());
    int ready[2];
    REQUIRE(::pipe(ready) == 0);
    pid = ::fork();
    if (pid == 0) {
      for (auto& file : cgroup.join_files()) spit(file, "0");
      // A child that leaves its parent behind: not this test's to reap.
      if (::fork() == 0) ::pause();
      (void)!::write(ready[1], "x", 1);
      ::pause();
      _exit(0);
    }
    char c;
    REQUIRE(::read(ready[0], &c, 1) == 1);
    ::close(ready[0]);
    ::close(ready[1]);
    CHECK(cgroups_left());
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGKILL);
  CHECK_FALSE(cgroups_left());
}

TEST_CASE("a step cgroup lets no device be opened but those of the step's /dev", "[sandbox][root]") {
  // On the host's /tmp, which has no nodev: the policy alone refuses the node.
  ScratchDir dir;
  fs::path kmsg = dir.path / "kmsg", null = dir.path / "null";
  REQUIRE(::mknod(kmsg.c_str(), S_IFCHR | 0600, makedev(1, 11)) == 0);
  REQUIRE(::mknod(null.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0);
  Fd outside(::open(kmsg.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(outside);  // what the policy must refuse is there to open
  StepCgroup cgroup(100);
  if (cgroup.missing().find("no device policy") != std::string::npos) {
    WARN("no device policy on this host: " << cgroup.missing());
    return;
  }
  pid_t pid = ::fork();
  if (pid == 0) {
    for (auto& file : cgroup.join_files()) spit(file, "0");
    if (::open(kmsg.c_str(), O_RDONLY) >= 0 || errno != EPERM) _exit(10);
    if (::open(null.c_str(), O_RDWR) < 0) _exit(11);
    if (::mknod((dir.path / "made").c_str(), S_IFBLK | 0600, makedev(7, 0)) != 0) _exit(12);
    _exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
