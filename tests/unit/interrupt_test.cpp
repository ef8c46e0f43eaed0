// Tests for interrupts: a recorded SIGINT or SIGTERM stops the work at its next
// check point with Interrupted, and the unwinding leaves nothing behind: no
// child process, no partial blob, no half-unpacked root, no lock wait.
#include "base/interrupt.hpp"
#include "base/process.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>

#include "base/fs.hpp"
#include "layer/layer.hpp"
#include "layer/unpack.hpp"
#include "oci/digest.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using imgbuild::ChildProcess;
using imgbuild::Interrupted;
using imgbuild::set_interrupt_for_testing;
using imgbuild::spawn_process;
using namespace imgbuild::test;

namespace {

/// Forgets the recorded signal however the test ends: the next test must not
/// start interrupted.
struct ClearInterrupt {
  ~ClearInterrupt() { set_interrupt_for_testing(0); }
};

/// The signal `f` was interrupted by, 0 when it returned.
template <class F>
int interrupted_by(F&& f) {
  try {
    f();
  } catch (const Interrupted& i) {
    return i.signal;
  }
  return 0;
}

/// Whether `pid` still runs: gone, or a zombie nobody reaped yet, is not.
bool running(pid_t pid) {
  std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  if (stat.empty()) return false;
  size_t close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

}  // namespace

TEST_CASE("a SIGINT or SIGTERM is recorded, and check points throw it", "[interrupt]") {
  ClearInterrupt clear;
  imgbuild::install_interrupt_handlers();
  CHECK(imgbuild::interrupt_signal() == 0);
  CHECK_NOTHROW(imgbuild::check_interrupt());
  REQUIRE(::raise(SIGTERM) == 0);
  CHECK(imgbuild::interrupt_signal() == SIGTERM);
  CHECK(interrupted_by([] { imgbuild::check_interrupt(); }) == SIGTERM);
  CHECK(interrupted_by([] { imgbuild::sleep_or_interrupt(std::chrono::hours(1)); }) == SIGTERM);
  set_interrupt_for_testing(0);
  CHECK_NOTHROW(imgbuild::sleep_or_interrupt(std::chrono::milliseconds(1)));
}

TEST_CASE("a child process ends with its status, or is killed when interrupted", "[interrupt]") {
  ClearInterrupt clear;
  CHECK(spawn_process({.argv = {"sh", "-c", "exit 7"}}).wait() == 7);
  CHECK(spawn_process({.argv = {"sh", "-c", "kill -9 $$"}}).wait() == 128 + SIGKILL);

  // The shell's background sleep is in its process group: both go.
  ScratchDir dir;
  fs::path pid_file = dir.path / "sleep.pid";
  pid_t shell = 0;
  {
    ChildProcess child = spawn_process(
        {.argv = {"sh", "-c", "sleep 1000 & echo $! > " + pid_file.string() + "; wait"}, .own_group = true});
    shell = child.pid();
    std::thread interrupt([&] {
      while (slurp(pid_file).empty()) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      set_interrupt_for_testing(SIGINT);
    });
    CHECK(interrupted_by([&] { child.wait(); }) == SIGINT);
    interrupt.join();
  }
  pid_t sleeper = std::stoi(slurp(pid_file));
  CHECK_FALSE(running(shell));
  // Killed with its group; it may stay a zombie until init reaps it.
  for (int i = 0; i < 100 && running(sleeper); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK_FALSE(running(sleeper));
}

TEST_CASE("a child process is killed and reaped when its owner unwinds", "[interrupt]") {
  pid_t pid = 0;
  {
    ChildProcess child = spawn_process({.argv = {"sleep", "1000"}});
    pid = child.pid();
  }
  errno = 0;
  CHECK(::waitpid(pid, nullptr, WNOHANG) == -1);
  CHECK(errno == ECHILD);
}

TEST_CASE("an interrupted layer leaves no partial blob", "[interrupt]") {
  ClearInterrupt clear;
  ScratchDir dir;
  // The signal arrives once the blob is being written (its temporary file is
  // there), in a layer long enough that the check before a later entry sees
  // it: a hundred thousand folders after a file.
  spit(dir.path / "first", "first file\n");
  std::vector<imgbuild::LayerEntry> entries = {
      {"a", imgbuild::LayerEntry::Type::File, 0644, 0, 0, dir.path / "first", 11, ""}};
  for (int i = 0; i < 100000; ++i)
    entries.push_back({"d" + std::to_string(i), imgbuild::LayerEntry::Type::Directory, 0755, 0, 0, "", 0, ""});
  fs::path blobs = dir.path / "blobs";
  fs::create_directories(blobs);
  std::atomic<bool> seen{false};
  std::thread signaller([&] {
    for (int i = 0; i < 20000 && !seen; ++i) {
      for (auto& name : names_in(blobs))
        if (name.find(".tmp-") != std::string::npos) seen = true;
      if (!seen) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    set_interrupt_for_testing(SIGTERM);
  });
  CHECK(interrupted_by([&] { imgbuild::write_layer(entries, blobs, {}); }) == SIGTERM);
  signaller.join();
  CHECK(seen);
  CHECK(names_in(blobs).empty());
}

TEST_CASE("hashing a large file stops when interrupted", "[interrupt]") {
  ClearInterrupt clear;
  ScratchDir dir;
  // Sparse: a terabyte reads as zeros, for hours, unless the signal is seen.
  fs::path big = dir.path / "big";
  {
    imgbuild::Fd fd(::open(big.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644));
    REQUIRE(::ftruncate(fd.get(), 1LL << 40) == 0);
  }
  std::thread signaller([] {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    set_interrupt_for_testing(SIGINT);
  });
  auto start = std::chrono::steady_clock::now();
  CHECK(interrupted_by([&] { imgbuild::sha256_file(big); }) == SIGINT);
  signaller.join();
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
}

TEST_CASE("signals after the first are counted and change nothing: the cleanup is never cut short", "[interrupt]") {
  ClearInterrupt clear;
  set_interrupt_for_testing(0);
  imgbuild::install_interrupt_handlers();
  // stderr into a pipe, to read the note the handler writes.
  int pipe_fds[2];
  REQUIRE(::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) == 0);
  imgbuild::Fd read_end(pipe_fds[0]), write_end(pipe_fds[1]);
  imgbuild::Fd saved_stderr(::dup(STDERR_FILENO));
  REQUIRE(::dup2(write_end.get(), STDERR_FILENO) == STDERR_FILENO);
  // The first SIGINT, then a burst of both kinds, as `timeout -s INT` (the
  // process, then its group) or an impatient user deliver them: this process
  // must survive every one.
  REQUIRE(::raise(SIGINT) == 0);
  for (int i = 0; i < 10; ++i) REQUIRE(::raise(i % 2 ? SIGTERM : SIGINT) == 0);
  ::dup2(saved_stderr.get(), STDERR_FILENO);
  CHECK(imgbuild::interrupt_signal() == SIGINT);
  CHECK(imgbuild::interrupt_count() == 11);
  CHECK(interrupted_by([] { imgbuild::check_interrupt(); }) == SIGINT);
  char buf[512] = {};
  ssize_t n = ::read(read_end.get(), buf, sizeof buf - 1);
  // One note, at the first repeat.
  CHECK(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0) ==
        "imgbuild: interrupted: cleaning up before exiting (Ctrl-\\ quits at once, leaving temporary files)\n");
}

TEST_CASE("an interrupted unpack removes the root it made", "[interrupt]") {
  ClearInterrupt clear;
  ScratchDir dir;
  std::vector<imgbuild::LayerEntry> entries = {
      {"f", imgbuild::LayerEntry::Type::File, 0644, 0, 0, dir.path / "f", 2, ""}};
  spit(dir.path / "f", "f\n");
  imgbuild::LayerBlob blob = imgbuild::write_layer(entries, dir.path / "blobs", {});
  set_interrupt_for_testing(SIGINT);
  fs::path root = dir.path / "root";
  CHECK(interrupted_by([&] {
          imgbuild::unpack_image(root, {{dir.path / "blobs" / std::string(blob.digest.hex()), "layer 1"}});
        }) == SIGINT);
  CHECK_FALSE(fs::exists(root));
}

TEST_CASE("waiting for a lock stops when interrupted", "[interrupt]") {
  ClearInterrupt clear;
  ScratchDir dir;
  imgbuild::FileLock held(dir.path / "lock");
  bool waited = false;
  CHECK(interrupted_by([&] {
          imgbuild::FileLock second(dir.path / "lock", imgbuild::FileLock::Mode::Shared, [&] {
            waited = true;
            set_interrupt_for_testing(SIGINT);
          });
        }) == SIGINT);
  CHECK(waited);
}
