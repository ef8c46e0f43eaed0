// Tests for RUN steps: users resolved from the image's own files, the step's
// exit status and output, no descriptor of ours leaking in, and above all that
// an overlay run and a snapshot run of the same step give the same entries.
// Running a step needs root (namespaces, mounts); those tests are skipped
// without it.
#include "sandbox/sandbox.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.hpp"
#include "base/interrupt.hpp"
#include "sandbox/launch.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using imgbuild::Fd;
using imgbuild::kStepHostname;
using imgbuild::LayerEntry;
using imgbuild::resolve_user;
using imgbuild::run_in_sandbox;
using imgbuild::SandboxError;
using imgbuild::SandboxResult;
using imgbuild::SandboxSpec;
using imgbuild::StepNetwork;
using imgbuild::UserIds;
using namespace imgbuild::test;

namespace {

/// A tiny image root: busybox, its applets, a passwd with root and app (1000),
/// and files for the steps below to change.
void make_image(const fs::path& root) {
  fs::create_directories(root / "bin");
  fs::copy_file("/bin/busybox", root / "bin/busybox");
  for (const char* applet : {"sh", "ls", "rm", "mkdir", "touch", "chmod", "chown", "ln", "printf", "cat"})
    fs::create_symlink("busybox", root / "bin" / applet);
  fs::create_directories(root / "etc");
  spit(root / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n");
  spit(root / "etc/group", "root:x:0:\napp:x:1000:\nstaff:x:50:app\n");
  // The image's own /etc/hosts, mounted over by the step: never part of the diff.
  spit(root / "etc/hosts", "127.0.0.1 image\n");
  fs::create_directories(root / "tmp");
  fs::permissions(root / "tmp", fs::perms(01777));
  fs::create_directories(root / "var");
  fs::path d = root / "data";
  fs::create_directories(d / "gonedir/sub");
  spit(d / "gone.txt", "gone\n");
  spit(d / "gonedir/a", "a\n");
  spit(d / "gonedir/sub/b", "b\n");
  fs::create_directories(d / "dir2file");
  spit(d / "dir2file/x", "x\n");
  spit(d / "file2dir", "file\n");
  fs::create_directories(d / "recreate");
  spit(d / "recreate/old1", "1\n");
  spit(d / "recreate/old2", "2\n");
  fs::create_directories(d / "emptied");
  spit(d / "emptied/e1", "1\n");
  spit(d / "emptied/e2", "2\n");
  fs::create_directories(d / "remade");
  spit(d / "remade/r1", "r\n");
  fs::create_directories(d / "o1/s");
  spit(d / "o1/s/z", "z\n");
  spit(d / "same.txt", "hello world\n");
  spit(d / "mode.txt", "mode\n");
  spit(d / "rewrite.txt", "same\n");
  spit(d / "owned", "owned\n");
  spit(d / "hl1", "link\n");
  fs::create_hard_link(d / "hl1", d / "hl2");
  fs::create_directories(d / "untouched/deep");
  spit(d / "untouched/deep/f", "f\n");
  for (auto& e : fs::recursive_directory_iterator(root))
    if (!e.is_symlink()) fs::permissions(e.path(), e.is_directory() ? fs::perms(0755) : fs::perms(0644));
  fs::permissions(root / "bin/busybox", fs::perms(0755));
  fs::permissions(root / "tmp", fs::perms(01777));
}

/// Everything about a tree that a step must not change: the lower folder is
/// shared and read-only.
std::string listing(const fs::path& root) {
  std::vector<std::string> lines;
  for (auto& e : fs::recursive_directory_iterator(root)) {
    struct stat st {};
    REQUIRE(::lstat(e.path().c_str(), &st) == 0);
    std::ostringstream line;
    line << e.path().lexically_relative(root).generic_string() << " " << std::oct << st.st_mode << std::dec << " "
         << st.st_uid << ":" << st.st_gid << " " << st.st_nlink << " " << st.st_mtim.tv_sec << "."
         << st.st_mtim.tv_nsec;
    if (S_ISREG(st.st_mode)) line << " " << slurp(e.path());
    if (S_ISLNK(st.st_mode)) line << " -> " << fs::read_symlink(e.path()).string();
    lines.push_back(line.str());
  }
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (auto& l : lines) out += l + "\n";
  return out;
}

/// One line per entry, with the bytes a file entry would put in the layer.
std::vector<std::string> describe(const std::vector<LayerEntry>& entries) {
  std::vector<std::string> out;
  for (auto& e : entries) {
    std::ostringstream line;
    line << e.path << " ";
    switch (e.type) {
      case LayerEntry::Type::Directory:
        line << "dir";
        break;
      case LayerEntry::Type::Symlink:
        line << "link";
        break;
      case LayerEntry::Type::File:
        line << "file";
        break;
      case LayerEntry::Type::CharDevice:
        line << "chardev " << e.device_major << ":" << e.device_minor;
        break;
      case LayerEntry::Type::BlockDevice:
        line << "blockdev " << e.device_major << ":" << e.device_minor;
        break;
      case LayerEntry::Type::Fifo:
        line << "fifo";
        break;
    }
    line << " " << std::oct << e.mode << std::dec << " " << e.uid << ":" << e.gid;
    if (e.type == LayerEntry::Type::Symlink) line << " -> " << e.link_target;
    if (e.type == LayerEntry::Type::File) {
      CHECK(fs::file_size(e.source) == e.size);
      line << " " << slurp(e.source);
    }
    out.push_back(line.str());
  }
  return out;
}

/// What the builder leaves out of a step's layer: its own mounts and the cache
/// mounted at /var/cache/thing, with the folders made to mount it on.
const std::vector<std::string> kMountPoints = {
    "/proc", "/dev", "/etc", "/etc/hosts", "/etc/resolv.conf", "/var/cache/thing", "/var/cache", "/var"};

/// A step on `image` with its overlay folders in `step_dir`, no network and
/// only /bin in PATH; `snapshot` forces the copy used where overlay is refused.
SandboxSpec step_spec(const fs::path& image, const fs::path& step_dir, bool snapshot,
                      imgbuild::Isolation isolation = imgbuild::Isolation::namespaces) {
  SandboxSpec spec;
  spec.lower = image;
  spec.upper = step_dir / "upper";
  spec.work = step_dir / "work";
  fs::create_directory(spec.upper);
  fs::create_directory(spec.work);
  spec.env = {"PATH=/bin"};
  spec.network = StepNetwork::none;
  spec.force_snapshot = snapshot;
  spec.isolation = isolation;
  // This test machine is disposable; chroot isolation otherwise refuses to
  // run outside a container (the test "... outside a container" below).
  if (isolation == imgbuild::Isolation::chroot) ::setenv("IMGBUILD_CHROOT_ON_HOST", "1", 1);
  return spec;
}

/// What the step changed, described, and every line it wrote.
struct StepRun {
  SandboxResult result;
  std::vector<std::string> changes;
  std::vector<std::string> lines;
};

/// Runs `script` on `image` with `cache` mounted at /var/cache/thing, and
/// `mounts` too; `mount_points` are the builder's, left out of the layer.
StepRun run_step(const fs::path& image, const fs::path& cache, const std::string& script, bool snapshot,
                 const std::string& user = "", const std::vector<imgbuild::SandboxMount>& mounts = {},
                 const std::vector<std::string>& mount_points = kMountPoints,
                 imgbuild::Isolation isolation = imgbuild::Isolation::namespaces) {
  ScratchDir step;
  SandboxSpec spec = step_spec(image, step.path, snapshot, isolation);
  spec.argv = {"/bin/sh", "-c", "set -e; umask 022; " + script};
  spec.user = user;
  spec.mounts = {{cache, "/var/cache/thing", false}};
  spec.mounts.insert(spec.mounts.end(), mounts.begin(), mounts.end());
  StepRun run;
  spec.output = [&](std::string_view line) { run.lines.emplace_back(line); };
  run.result = run_in_sandbox(spec);
  std::string output;
  for (auto& l : run.result.last_lines) output += l + "\n";
  INFO(output);
  REQUIRE(run.result.exit_code == 0);
  spit(step.path / "empty", "");
  std::vector<LayerEntry> entries = imgbuild::step_changes(spec, run.result, mount_points, step.path / "empty");
  CHECK(std::is_sorted(entries.begin(), entries.end(),
                       [](const LayerEntry& a, const LayerEntry& b) { return a.path < b.path; }));
  run.changes = describe(entries);
  return run;
}

/// Whether a process on the host has `marker` in its command line.
bool running(const std::string& marker) {
  for (auto& p : fs::directory_iterator("/proc"))
    if (slurp(p.path() / "cmdline").find(marker) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST_CASE("resolve_user reads the image's own passwd and group", "[sandbox]") {
  ScratchDir dir;
  make_image(dir.path);
  auto ids = [&](const std::string& user) {
    UserIds u = resolve_user(dir.path, user);
    std::ostringstream s;
    s << u.uid << ":" << u.gid << " [";
    for (auto g : u.groups) s << " " << g;
    s << " ]";
    return s.str();
  };
  CHECK(ids("") == "0:0 [ ]");
  CHECK(ids("root") == "0:0 [ 0 ]");
  CHECK(ids("app") == "1000:1000 [ 1000 50 ]");
  CHECK(ids("1000") == "1000:1000 [ 1000 50 ]");
  CHECK(ids("4242") == "4242:0 [ 0 ]");
  CHECK(ids("app:staff") == "1000:50 [ 50 ]");
  // Named with another group, app still has the groups it is a member of.
  CHECK(ids("app:7") == "1000:7 [ 7 50 ]");
  CHECK(ids("4242:4243") == "4242:4243 [ 4243 ]");
  CHECK(error_of([&] { resolve_user(dir.path, "nobody"); }) == "user 'nobody' is not in the image's /etc/passwd");
  CHECK(error_of([&] { resolve_user(dir.path, "app:wheel"); }) == "group 'wheel' is not in the image's /etc/group");
}

TEST_CASE("resolve_user finds the home folder as runc does, / without one, fields by position", "[sandbox]") {
  ScratchDir dir;
  make_image(dir.path);
  CHECK(resolve_user(dir.path, "").home == "/root");
  CHECK(resolve_user(dir.path, "root").home == "/root");
  CHECK(resolve_user(dir.path, "app").home == "/home/app");
  CHECK(resolve_user(dir.path, "1000:50").home == "/home/app");
  CHECK(resolve_user(dir.path, "4242").home == "/");
  // Fields count by position: an empty password or comment shifts nothing.
  spit(dir.path / "etc/passwd", "root:x:0:0:root::/bin/sh\nshort:x:7:7\nnopw::1001:1002::/home/nopw:/bin/sh\n");
  spit(dir.path / "etc/group", "nopw::1002:\nextra::60:nopw\n");
  CHECK(resolve_user(dir.path, "").home == "/");
  CHECK(resolve_user(dir.path, "short").home == "/");
  UserIds nopw = resolve_user(dir.path, "nopw");
  CHECK(nopw.uid == 1001);
  CHECK(nopw.gid == 1002);
  CHECK(nopw.groups == std::vector<uint32_t>{1002, 60});
  CHECK(nopw.home == "/home/nopw");
  fs::remove(dir.path / "etc/passwd");
  CHECK(resolve_user(dir.path, "").home == "/");
}

TEST_CASE("an overlay step and a snapshot step give the same entries", "[sandbox][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image", cache = dir.path / "cache";
  make_image(image);
  fs::create_directories(cache);
  std::string before = listing(image);

  const std::string script =
      "cd /data; "
      "rm gone.txt; "
      "rm -rf gonedir; "
      "rm -rf dir2file; echo file > dir2file; "
      "rm file2dir; mkdir file2dir; echo inside > file2dir/f; "
      "rm -rf recreate; mkdir recreate; echo new > recreate/new; "
      "rm -rf emptied/*; touch emptied/new; "
      "rm -rf remade; mkdir remade; "
      "rm -rf o1; mkdir -p o1/s; "
      "printf 'HELLO WORLD\\n' > same.txt; "
      "chmod 600 mode.txt; "
      "echo same > rewrite.txt; "
      "echo more >> hl1; "
      "chown 1000:1000 owned; "
      "ln -s /etc/passwd link_abs; "
      "ln -s busybox /bin/ls2; "
      "echo cached > /var/cache/thing/c";
  StepRun overlay = run_step(image, cache, script, false);
  if (overlay.result.snapshot)
    WARN("overlay refused here (" + overlay.result.overlay_error + "): snapshot runs only");
  else
    CHECK(overlay.result.overlay_error.empty());
  StepRun snapshot = run_step(image, cache, script, true);
  CHECK(snapshot.result.overlay_error.empty());

  std::vector<std::string> expected = {
      "bin dir 755 0:0",
      "bin/ls2 link 777 0:0 -> busybox",
      "data dir 755 0:0",
      "data/.wh.gone.txt file 644 0:0 ",
      "data/.wh.gonedir file 644 0:0 ",
      "data/dir2file file 644 0:0 file\n",
      "data/emptied dir 755 0:0",
      "data/emptied/.wh.e1 file 644 0:0 ",
      "data/emptied/.wh.e2 file 644 0:0 ",
      "data/emptied/new file 644 0:0 ",
      "data/file2dir dir 755 0:0",
      "data/file2dir/.wh..wh..opq file 644 0:0 ",
      "data/file2dir/f file 644 0:0 inside\n",
      "data/hl1 file 644 0:0 link\nmore\n",
      "data/link_abs link 777 0:0 -> /etc/passwd",
      "data/mode.txt file 600 0:0 mode\n",
      "data/o1 dir 755 0:0",
      "data/o1/.wh..wh..opq file 644 0:0 ",
      "data/o1/s dir 755 0:0",
      "data/owned file 644 1000:1000 owned\n",
      "data/recreate dir 755 0:0",
      "data/recreate/.wh..wh..opq file 644 0:0 ",
      "data/recreate/new file 644 0:0 new\n",
      "data/remade dir 755 0:0",
      "data/remade/.wh..wh..opq file 644 0:0 ",
      "data/same.txt file 644 0:0 HELLO WORLD\n",
  };
  std::sort(expected.begin(), expected.end());
  CHECK(overlay.changes == expected);
  CHECK(snapshot.changes == overlay.changes);
  // Written under the cache mount: in the cache, not in the layer.
  CHECK(slurp(cache / "c") == "cached\n");
  CHECK(listing(image) == before);

  // Chroot isolation: no namespace and no mount, the same layer.
  StepRun chroot = run_step(image, cache, "rm /var/cache/thing/c; " + script, false, "", {}, kMountPoints,
                            imgbuild::Isolation::chroot);
  CHECK(chroot.result.snapshot);
  CHECK(chroot.changes == overlay.changes);
  CHECK(slurp(cache / "c") == "cached\n");

  SECTION("as the image's user") {
    StepRun as_app = run_step(image, cache, "touch /tmp/appfile", false, "app");
    StepRun as_app_copy = run_step(image, cache, "touch /tmp/appfile", true, "app");
    StepRun as_app_chroot =
        run_step(image, cache, "touch /tmp/appfile", false, "app", {}, kMountPoints, imgbuild::Isolation::chroot);
    CHECK(as_app.changes == std::vector<std::string>{"tmp dir 1777 0:0", "tmp/appfile file 644 1000:1000 "});
    CHECK(as_app_copy.changes == as_app.changes);
    CHECK(as_app_chroot.changes == as_app.changes);
  }
  SECTION("a step that changes nothing has no entries") {
    CHECK(run_step(image, cache, "cat /data/same.txt >/dev/null; touch /data/rewrite.txt", false).changes.empty());
    CHECK(run_step(image, cache, "cat /data/same.txt >/dev/null; touch /data/rewrite.txt", true).changes.empty());
  }
  CHECK(listing(image) == before);
}

TEST_CASE("an overlay the kernel refuses falls back to a snapshot", "[sandbox][root]") {
  ScratchDir dir, elsewhere("/dev/shm");
  fs::path image = dir.path / "image";
  make_image(image);
  SandboxSpec spec;
  spec.lower = image;
  spec.upper = dir.path / "upper";
  // Overlay wants its work folder on the upper folder's mount: refused.
  spec.work = elsewhere.path / "work";
  fs::create_directory(spec.upper);
  fs::create_directory(spec.work);
  spec.argv = {"/bin/sh", "-c", "echo hi > /data/new"};
  spec.network = StepNetwork::none;
  SandboxResult result = run_in_sandbox(spec);
  CHECK(result.exit_code == 0);
  CHECK(result.snapshot);
  CHECK(result.overlay_error == "mounting the overlay: Invalid argument");
  spit(dir.path / "empty", "");
  CHECK(describe(imgbuild::step_changes(spec, result, kMountPoints, dir.path / "empty")) ==
        std::vector<std::string>{"data dir 755 0:0", "data/new file 644 0:0 hi\n"});
}

TEST_CASE("a failing step reports its status and last lines", "[sandbox][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image";
  make_image(image);
  for (bool snapshot : {false, true}) {
    ScratchDir step;
    SandboxSpec spec = step_spec(image, step.path, snapshot);
    std::vector<std::string> seen;
    spec.output = [&](std::string_view line) { seen.emplace_back(line); };
    spec.argv = {"/bin/sh", "-c", "i=0; while [ $i -lt 25 ]; do echo line $i; i=$((i+1)); done; echo oops >&2; exit 3"};
    SandboxResult result = run_in_sandbox(spec);
    CHECK(result.exit_code == 3);
    CHECK(result.snapshot == snapshot);
    REQUIRE(seen.size() == 26);
    CHECK(seen.front() == "line 0");
    REQUIRE(result.last_lines.size() == 20);
    CHECK(result.last_lines.front() == "line 6");
    CHECK(result.last_lines.back() == "oops");

    fs::remove_all(spec.upper);
    fs::remove_all(spec.work);
    fs::create_directory(spec.upper);
    fs::create_directory(spec.work);
    spec.argv = {"/no/such/program"};
    result = run_in_sandbox(spec);
    CHECK(result.exit_code == 127);
    CHECK(result.last_lines == std::vector<std::string>{"/no/such/program: No such file or directory"});
  }
}

TEST_CASE("a step cannot start as a user the image does not have", "[sandbox]") {
  ScratchDir dir;
  make_image(dir.path / "image");
  SandboxSpec spec;
  spec.lower = dir.path / "image";
  spec.upper = dir.path / "upper";
  spec.work = dir.path / "work";
  spec.argv = {"/bin/true"};
  spec.user = "ghost";
  CHECK_THROWS_AS(run_in_sandbox(spec), SandboxError);
  CHECK(error_of([&] { run_in_sandbox(spec); }) == "user 'ghost' is not in the image's /etc/passwd");
}

TEST_CASE("no descriptor of imgbuild leaks into the step", "[sandbox][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image";
  make_image(image);
  // Opened without O_CLOEXEC, as a careless library in the same process might.
  Fd leaky(::open("/dev/null", O_RDONLY));
  REQUIRE(leaky);
  for (bool snapshot : {false, true}) {
    ScratchDir step;
    SandboxSpec spec = step_spec(image, step.path, snapshot);
    spec.argv = {"/bin/ls", "/proc/self/fd"};
    SandboxResult result = run_in_sandbox(spec);
    CHECK(result.exit_code == 0);
    // 0, 1 and 2, and the folder ls itself has open to list.
    CHECK(result.last_lines == std::vector<std::string>{"0", "1", "2", "3"});
  }
}

TEST_CASE("an interrupted step is killed with everything it started", "[sandbox][interrupt][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image";
  make_image(image);
  for (bool snapshot : {false, true}) {
    ScratchDir step;
    SandboxSpec spec = step_spec(image, step.path, snapshot);
    // A child of the step that outlives the shell would keep running on the
    // host if only the shell were killed; the sleep's own argument finds it.
    spec.argv = {"/bin/sh", "-c", "sleep 86401 & echo started; wait"};
    spec.output = [](std::string_view line) {
      if (line == "started") imgbuild::set_interrupt_for_testing(SIGINT);
    };
    int signal = 0;
    try {
      run_in_sandbox(spec);
    } catch (const imgbuild::Interrupted& i) {
      signal = i.signal;
    }
    imgbuild::set_interrupt_for_testing(0);
    CHECK(signal == SIGINT);
    CHECK_FALSE(running("86401"));
    // The sandbox's own scratch folder is gone; the caller's are left to it.
    CHECK(names_in(step.path) == std::vector<std::string>{"upper", "work"});
  }
}

TEST_CASE("a step becomes its user though imgbuild's other threads start and end threads meanwhile",
          "[sandbox][root]") {
  // glibc's setuid in a process it believes multi-threaded (a raw clone's
  // child of one) takes the lock of its thread list, which a thread being
  // started or ended at the clone held: the step waited forever.
  ScratchDir dir;
  fs::path image = dir.path / "image";
  make_image(image);
  fs::create_symlink("busybox", image / "bin/id");
  struct Background {
    std::atomic<bool> done{false};
    std::thread churn{[this] {
      while (!done) std::thread([] {}).join();
    }};
    // A hung step is interrupted (and so killed) rather than hanging the suite.
    std::thread watchdog{[this] {
      for (int waited = 0; !done && waited < 600; ++waited) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (!done) imgbuild::set_interrupt_for_testing(SIGINT);
    }};
    ~Background() {
      done = true;
      churn.join();
      watchdog.join();
      imgbuild::set_interrupt_for_testing(0);
    }
  } background;
  int finished = 0;
  bool hung = false;
  for (auto isolation : {imgbuild::Isolation::namespaces, imgbuild::Isolation::chroot})
    for (int i = 0; i < 25 && !hung; ++i) {
      ScratchDir step;
      SandboxSpec spec = step_spec(image, step.path, false, isolation);
      spec.argv = {"/bin/id", "-u"};
      spec.user = "app";
      std::vector<std::string> lines;
      try {
        lines = run_in_sandbox(spec).last_lines;
      } catch (const imgbuild::Interrupted&) {
        hung = true;
        break;
      }
      CHECK(lines == std::vector<std::string>{"1000"});
      ++finished;
    }
  INFO("steps finished before one hung: " << finished);
  CHECK_FALSE(hung);
}

TEST_CASE("resolve_user never reads the host's files through the image's symlinks", "[sandbox]") {
  ScratchDir dir;
  fs::path image = dir.path / "image";
  make_image(image);
  spit(dir.path / "host-passwd", "hostuser:x:4242:4242::/:/bin/sh\n");
  fs::remove(image / "etc/passwd");
  fs::create_symlink(dir.path / "host-passwd", image / "etc/passwd");
  CHECK(error_of([&] { resolve_user(image, "hostuser"); }) == "user 'hostuser' is not in the image's /etc/passwd");
  // Inside the root, the same absolute target is the image's own file.
  fs::create_directories(image / dir.path.relative_path());
  spit(image / dir.path.relative_path() / "host-passwd", "imageuser:x:7:7::/:/bin/sh\n");
  CHECK(resolve_user(image, "imageuser").uid == 7);
}

TEST_CASE("a mount target behind a symlink out of the root is refused, the host untouched", "[sandbox][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image", host = dir.path / "host";
  make_image(image);
  fs::create_directories(host);
  fs::create_symlink(host, image / "cachelink");
  ScratchDir step;
  SandboxSpec spec = step_spec(image, step.path, false);
  spec.argv = {"/bin/true"};
  spec.mounts = {{dir.path / "cache", "/cachelink/sub", false}};
  fs::create_directories(dir.path / "cache");
  CHECK(error_of([&] { run_in_sandbox(spec); }) ==
        "cannot mount on /cachelink/sub in the image: /cachelink leads nowhere inside it (a symlink that dangles or "
        "loops, or a file where a folder must be)");
  CHECK(names_in(host).empty());
}

TEST_CASE("a step ends with its main process, and no process of it stays", "[sandbox][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image";
  make_image(image);
  for (bool snapshot : {false, true}) {
    ScratchDir step;
    SandboxSpec spec = step_spec(image, step.path, snapshot);
    // The background sleep holds the output open: waiting for it would wait forever.
    spec.argv = {"/bin/sh", "-c", "sleep 86402 & echo started"};
    SandboxResult result = run_in_sandbox(spec);
    CHECK(result.exit_code == 0);
    CHECK(result.last_lines == std::vector<std::string>{"started"});
    CHECK_FALSE(running("86402"));
  }
}

TEST_CASE("an overlay step's root is volatile: its end syncs nothing of the disk its folders are on",
          "[sandbox][root]") {
  // Without volatile, unmounting the overlay when the step ends syncs the
  // whole file system of its upper folder (syncfs), every dirty page on it.
  if (!imgbuild::kernel_at_least(5, 10)) {
    WARN("overlay has no volatile option before Linux 5.10: not checked");
    return;
  }
  ScratchDir dir;
  fs::path image = dir.path / "image";
  make_image(image);
  ScratchDir step;
  SandboxSpec spec = step_spec(image, step.path, false);
  spec.argv = {"/bin/sh", "-c", "busybox grep '^overlay / ' /proc/self/mounts"};
  SandboxResult result = run_in_sandbox(spec);
  REQUIRE(result.exit_code == 0);
  CHECK_FALSE(result.snapshot);
  REQUIRE(result.last_lines.size() == 1);
  const std::string& root = result.last_lines[0];
  INFO(root);
  // Linux 6.8 and later show it as fsync=volatile.
  CHECK((root.find(",volatile") != std::string::npos || root.find(",fsync=volatile") != std::string::npos));
  CHECK(root.find("nodev") != std::string::npos);
}

TEST_CASE("a step without a network has lo up, in a session of its own", "[sandbox][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image";
  make_image(image);
  ScratchDir step;
  SandboxSpec spec = step_spec(image, step.path, false);
  spec.network = StepNetwork::none;
  // Field 6 of /proc/self/stat is the session: 1, the step's PID 1, not one outside.
  spec.argv = {"/bin/sh", "-c", "busybox ip -o link show lo; cat /proc/self/stat"};
  SandboxResult result = run_in_sandbox(spec);
  REQUIRE(result.exit_code == 0);
  REQUIRE(result.last_lines.size() == 2);
  CHECK(result.last_lines[0].find("<LOOPBACK,UP,LOWER_UP>") != std::string::npos);
  std::istringstream stat(result.last_lines[1]);
  std::string field;
  for (int i = 0; i < 6; ++i) stat >> field;
  CHECK(field == "1");
}

TEST_CASE("a step gets HOME from the image's passwd unless its environment sets one", "[sandbox][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image";
  make_image(image);
  auto home_in_step = [&](const std::string& user, std::vector<std::string> env) {
    ScratchDir step;
    SandboxSpec spec = step_spec(image, step.path, false);
    spec.network = StepNetwork::none;
    spec.user = user;
    spec.env = std::move(env);
    spec.argv = {"/bin/sh", "-c", "echo \"$HOME\""};
    SandboxResult result = run_in_sandbox(spec);
    REQUIRE(result.exit_code == 0);
    REQUIRE(result.last_lines.size() == 1);
    return result.last_lines[0];
  };
  CHECK(home_in_step("", {"PATH=/bin"}) == "/root");
  CHECK(home_in_step("app", {"PATH=/bin"}) == "/home/app");
  CHECK(home_in_step("4242", {"PATH=/bin"}) == "/");
  CHECK(home_in_step("app", {"PATH=/bin", "HOME=/srv"}) == "/srv");
}

TEST_CASE("a step's HOSTNAME is its host name unless its environment sets one", "[sandbox][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image";
  make_image(image);
  auto in_step = [&](std::vector<std::string> argv, std::vector<std::string> env = {"PATH=/bin"}) {
    ScratchDir step;
    SandboxSpec spec = step_spec(image, step.path, false);
    spec.network = StepNetwork::none;
    spec.env = std::move(env);
    spec.argv = std::move(argv);
    SandboxResult result = run_in_sandbox(spec);
    REQUIRE(result.exit_code == 0);
    return result.last_lines;
  };
  // The environment as exec gives it (a shell would set HOSTNAME itself).
  auto hostname_in = [](const std::vector<std::string>& lines) {
    for (auto& line : lines)
      if (line.starts_with("HOSTNAME=")) return line.substr(9);
    return std::string("(unset)");
  };
  CHECK(hostname_in(in_step({"/bin/busybox", "env"})) == kStepHostname);
  CHECK(hostname_in(in_step({"/bin/busybox", "env"}, {"PATH=/bin", "HOSTNAME=db"})) == "db");
  // The name the kernel gives and /etc/hosts agree with it.
  CHECK(in_step({"/bin/busybox", "uname", "-n"}) == std::vector<std::string>{kStepHostname});
  CHECK(in_step({"/bin/busybox", "grep", "-c", std::string(" ") + kStepHostname + "$", "/etc/hosts"}) ==
        std::vector<std::string>{"1"});
}

namespace {

/// runc's masked paths, as docs/sandbox.md lists them.
const std::vector<std::string> kMasked = {"/proc/acpi",
                                          "/proc/asound",
                                          "/proc/kcore",
                                          "/proc/keys",
                                          "/proc/latency_stats",
                                          "/proc/timer_list",
                                          "/proc/timer_stats",
                                          "/proc/sched_debug",
                                          "/proc/scsi",
                                          "/sys/firmware",
                                          "/sys/devices/virtual/powercap"};

/// The device numbers of the disk the host's root is on (of the first disk
/// when the root is no disk's: an overlay, a tmpfs).
std::pair<unsigned, unsigned> host_disk() {
  struct stat st {};
  REQUIRE(::stat("/", &st) == 0);
  if (major(st.st_dev) != 0) return {major(st.st_dev), minor(st.st_dev)};
  for (auto& e : fs::directory_iterator("/sys/block")) {
    unsigned ma = 0, mi = 0;
    if (std::sscanf(slurp(e.path() / "dev").c_str(), "%u:%u", &ma, &mi) == 2) return {ma, mi};
  }
  FAIL("no disk on this host");
  return {};
}

/// A node at `path`, mode 0666 whatever the umask.
void make_node(const fs::path& path, mode_t type, unsigned ma, unsigned mi) {
  REQUIRE(::mknod(path.c_str(), type | 0666, makedev(ma, mi)) == 0);
  REQUIRE(::chmod(path.c_str(), 0666) == 0);
}

/// A shell function that opens its argument for reading and writing (never
/// writes, never makes it) and says whether it could.
const std::string kOpen =
    "o() { if [ ! -e \"$1\" ]; then echo \"no $1\"; elif (exec 3<>\"$1\") 2>/dev/null; then echo \"opened $1\"; "
    "else echo \"refused $1\"; fi; }; ";

}  // namespace

TEST_CASE("a root step sees the kernel's files masked and read-only, and cannot undo that", "[sandbox][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image", cache = dir.path / "cache";
  make_image(image);
  fs::create_directories(cache);
  std::string core_pattern = slurp("/proc/sys/kernel/core_pattern");
  // A masked folder is empty and a masked file has no bytes, where this host's own have some.
  std::string list;
  std::vector<std::string> expected;
  for (auto& path : kMasked) {
    list += " " + path;
    if (fs::is_directory(path)) expected.push_back(path + " dir 0");
    if (fs::is_regular_file(path)) expected.push_back(path + " file 0");
  }
  REQUIRE_FALSE(expected.empty());
  for (auto& path : kMasked)
    if (fs::exists(path)) expected.push_back("refused busybox umount " + path);
  for (std::string line :
       {"refused /proc/sys/kernel/core_pattern", "refused /proc/sysrq-trigger", "refused /proc/sys/vm/drop_caches",
        "refused busybox mount -o remount,rw /proc/sys", "refused busybox umount /proc/sys",
        "refused busybox mount -o remount,rw /sys", "refused busybox mount -t proc proc /tmp",
        "refused busybox mount -t sysfs sysfs /tmp", "refused busybox touch /sys/planted"})
    expected.push_back(line);
  for (std::string line :
       {"/proc/bus ro", "/proc/fs ro", "/proc/irq ro", "/proc/sys ro", "/proc/sysrq-trigger ro", "/sys ro"})
    if (fs::exists(line.substr(0, line.find(' ')))) expected.push_back(line);
  const std::string script =
      "for f in" + list +
      "; do if [ -d $f ]; then echo \"$f dir $(ls -A $f | busybox wc -l)\"; "
      "elif [ -e $f ]; then echo \"$f file $(busybox wc -c <$f)\"; fi; done; "
      "r() { if \"$@\" 2>/dev/null; then echo \"did $*\"; else echo \"refused $*\"; fi; }; "
      "for f in" +
      list +
      "; do if [ -e $f ]; then r busybox umount $f; fi; done; "
      "w() { if (printf %s \"$2\" >\"$1\") 2>/dev/null; then echo \"wrote $1\"; else echo \"refused $1\"; fi; }; "
      // Each would be harmless had it worked: the test fails, the host lives on.
      "w /proc/sys/kernel/core_pattern '|/tmp/pwn'; w /proc/sysrq-trigger h; w /proc/sys/vm/drop_caches 1; "
      "r busybox mount -o remount,rw /proc/sys; r busybox umount /proc/sys; r busybox mount -o remount,rw /sys; "
      "r busybox mount -t proc proc /tmp; r busybox mount -t sysfs sysfs /tmp; r busybox touch /sys/planted; "
      "busybox awk '$2 ~ /^\\/(proc\\/(bus|fs|irq|sys|sysrq-trigger)|sys)$/ { split($4, o, \",\"); print $2, o[1] }' "
      "/proc/self/mounts";
  for (bool snapshot : {false, true}) {
    INFO((snapshot ? "snapshot" : "overlay"));
    StepRun run = run_step(image, cache, script, snapshot);
    CHECK(run.lines == expected);
    // What the step read and tried leaves nothing in its layer.
    CHECK(run.changes.empty());
    CHECK(slurp("/proc/sys/kernel/core_pattern") == core_pattern);
  }
}

TEST_CASE("no device node a step reaches opens a host device, yet the step's nodes enter its layer",
          "[sandbox][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image", cache = dir.path / "cache";
  make_image(image);
  fs::create_directories(cache);
  auto [ma, mi] = host_disk();
  // As a hostile base layer ships them: the host's disk as a block and a
  // character node, and the host's memory, all open to everyone.
  fs::create_directories(image / "nodes");
  make_node(image / "nodes/disk", S_IFBLK, ma, mi);
  make_node(image / "nodes/diskc", S_IFCHR, ma, mi);
  make_node(image / "nodes/mem", S_IFCHR, 1, 1);
  std::string numbers = std::to_string(ma) + " " + std::to_string(mi);
  const std::string shipped = kOpen + "o /nodes/disk; o /nodes/diskc; o /nodes/mem";
  const std::string made = kOpen +
                           "for at in /made /tmp/made /dev/made /dev/shm/made /var/cache/thing/made; do "
                           "busybox mknod -m 666 $at b " +
                           numbers +
                           "; o $at; done; "
                           "rm /dev/made /dev/shm/made /var/cache/thing/made; busybox mkfifo /fifo; "
                           // /dev's own nodes still work, and its terminals.
                           "echo x >/dev/null && echo null works; "
                           "echo \"$(busybox head -c 4 /dev/urandom | busybox wc -c) random bytes\"; "
                           "echo \"$(busybox head -c 4 /dev/zero | busybox wc -c) zero bytes\"; o /dev/ptmx";
  for (bool snapshot : {false, true}) {
    INFO((snapshot ? "snapshot" : "overlay"));
    CHECK(run_step(image, cache, shipped, snapshot).lines ==
          std::vector<std::string>{"refused /nodes/disk", "refused /nodes/diskc", "refused /nodes/mem"});
    CHECK(run_step(image, cache, shipped, snapshot, "app").lines ==
          std::vector<std::string>{"refused /nodes/disk", "refused /nodes/diskc", "refused /nodes/mem"});
    StepRun run = run_step(image, cache, made, snapshot);
    CHECK(run.lines == std::vector<std::string>{"refused /made", "refused /tmp/made", "refused /dev/made",
                                                "refused /dev/shm/made", "refused /var/cache/thing/made", "null works",
                                                "4 random bytes", "4 zero bytes", "opened /dev/ptmx"});
    std::string node = "blockdev " + std::to_string(ma) + ":" + std::to_string(mi) + " 666 0:0";
    CHECK(run.changes ==
          std::vector<std::string>{"fifo fifo 644 0:0", "made " + node, "tmp dir 1777 0:0", "tmp/made " + node});
    CHECK(names_in(cache).empty());
  }
}

TEST_CASE("what imgbuild mounts leaves nothing in a layer, what a step writes beside it stays", "[sandbox][root]") {
  ScratchDir dir;
  // No /proc, /sys, /dev, /etc, /run, /var, /tmp: every mount point is made for the step.
  fs::path image = dir.path / "image", cache = dir.path / "cache";
  fs::create_directories(image / "bin");
  fs::copy_file("/bin/busybox", image / "bin/busybox");
  for (const char* applet : {"sh", "mkdir", "ls"}) fs::create_symlink("busybox", image / "bin" / applet);
  fs::create_directories(cache);
  spit(dir.path / "token", "secret\n");
  std::vector<imgbuild::SandboxMount> secret = {{dir.path / "token", "/run/secrets/token", true}};
  for (bool snapshot : {false, true}) {
    INFO((snapshot ? "snapshot" : "overlay"));
    // No help from the builder's list: the sandbox knows what it made.
    StepRun idle = run_step(image, cache, "ls /proc/self /sys/kernel /dev/pts >/dev/null", snapshot, "", secret, {});
    CHECK(idle.changes.empty());
    // Written beside a mount, in folders made to mount on: kept, as BuildKit keeps them.
    StepRun wrote = run_step(image, cache,
                             "echo a >/etc/a; mkdir -p /var/log /var/cache/other; echo b >/var/log/b; "
                             "echo c >/run/c; echo d >/var/cache/thing/d",
                             snapshot, "", secret, {});
    CHECK(wrote.changes == std::vector<std::string>{"etc dir 755 0:0", "etc/a file 644 0:0 a\n", "run dir 755 0:0",
                                                    "run/c file 644 0:0 c\n", "var dir 755 0:0",
                                                    "var/cache dir 755 0:0", "var/cache/other dir 755 0:0",
                                                    "var/log dir 755 0:0", "var/log/b file 644 0:0 b\n"});
    CHECK(slurp(cache / "d") == "d\n");
    fs::remove(cache / "d");
  }
}

TEST_CASE("mounts never nest, and a target the image leads astray is refused", "[sandbox][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image", cache = dir.path / "cache", host = dir.path / "host";
  make_image(image);
  fs::create_directories(cache);
  fs::create_directories(host);
  spit(dir.path / "token", "secret\n");
  auto error = [&](const std::vector<imgbuild::SandboxMount>& mounts) {
    ScratchDir step;
    SandboxSpec spec = step_spec(image, step.path, false);
    spec.argv = {"/bin/true"};
    spec.mounts = mounts;
    return error_of([&] { run_in_sandbox(spec); });
  };
  const std::string nest =
      " is mounted too, and one mount inside another is made in what the outer one shows; "
      "mount on paths that do not nest";
  // A cache at /run that an earlier build filled with symlinks to the host
  // would lead the secret's mount there.
  fs::create_symlink(host, cache / "secrets");
  CHECK(error({{cache, "/run", false}, {dir.path / "token", "/run/secrets/token", true}}) ==
        "cannot mount on /run/secrets/token: /run" + nest);
  CHECK(error({{dir.path / "token", "/run/secrets/token", true}, {cache, "/run", false}}) ==
        "cannot mount on /run: /run/secrets/token" + nest);
  CHECK(error({{cache, "/proc/sys", false}}) == "cannot mount on /proc/sys: /proc" + nest);
  CHECK(error({{cache, "/etc", false}}) == "cannot mount on /etc: /etc/hosts" + nest);
  CHECK(error({{cache, "/dev/cache", false}}) == "cannot mount on /dev/cache: /dev" + nest);
  // The same through the image's symlinks.
  fs::create_directories(image / "var/cache/thing");
  fs::create_symlink("var/cache/thing", image / "run");
  CHECK(error({{cache, "/var/cache/thing", false}, {dir.path / "token", "/run/secrets/token", true}}) ==
        "cannot mount on /run/secrets/token (/var/cache/thing/secrets/token in the image): /var/cache/thing" + nest);
  fs::create_directories(image / "proc");
  fs::create_symlink("proc", image / "sys");
  CHECK(error({}) == "cannot mount on /sys (/proc in the image): /proc" + nest);
  fs::remove(image / "sys");
  // A symlinked target that leads nowhere inside the image stays refused:
  // making it would add a folder to the step's layer that the step did not make.
  fs::remove(image / "run");
  fs::create_symlink("missing", image / "run");
  CHECK(error({{dir.path / "token", "/run/secrets/token", true}}) ==
        "cannot mount on /run/secrets/token in the image: /run leads nowhere inside it (a symlink that dangles or "
        "loops, or a file where a folder must be)");
  fs::remove(image / "proc");
  fs::create_symlink(host, image / "proc");
  CHECK(error({}) ==
        "cannot mount on /proc in the image: /proc leads nowhere inside it (a symlink that dangles or loops, or a "
        "file where a folder must be)");
  CHECK(names_in(host).empty());
  CHECK(names_in(cache) == std::vector<std::string>{"secrets"});
}

TEST_CASE("an image's /dev that leads to planted nodes or host paths shows only the step's own", "[sandbox][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image", cache = dir.path / "cache", host = dir.path / "host";
  make_image(image);
  fs::create_directories(cache);
  fs::create_directories(host);
  auto [ma, mi] = host_disk();
  // /dev is a folder of planted nodes, whose shm and pts lead to the host.
  fs::create_directories(image / "planted");
  make_node(image / "planted/disk", S_IFBLK, ma, mi);
  fs::create_symlink(host, image / "planted/shm");
  fs::create_symlink(host, image / "planted/pts");
  fs::create_symlink("planted", image / "dev");
  for (bool snapshot : {false, true}) {
    INFO((snapshot ? "snapshot" : "overlay"));
    StepRun run = run_step(image, cache,
                           kOpen +
                               "o /dev/disk; o /planted/disk; echo x >/dev/shm/x; ls /dev/pts; "
                               // Replaced after the mounts, they lead nowhere but into the step's own /dev.
                               "rm -rf /dev/shm/x; ln -s " +
                               host.string() + " /dev/host; (echo y >/dev/host/y) 2>/dev/null || true",
                           snapshot);
    CHECK(run.lines == std::vector<std::string>{"no /dev/disk", "no /planted/disk", "ptmx"});
    CHECK(run.changes.empty());
    CHECK(names_in(host).empty());
  }
}

TEST_CASE("a chroot step runs as the image's user, in its workdir, with HOME, and a /dev of its own",
          "[sandbox][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image";
  make_image(image);
  ScratchDir step;
  SandboxSpec spec = step_spec(image, step.path, false, imgbuild::Isolation::chroot);
  spec.argv = {"/bin/sh", "-c",
               "echo \"$(id -u):$(id -g):$(id -G) $(pwd) $HOME $GREETING\"; echo x > /dev/null; "
               "head -c 4 /dev/zero | wc -c; cat /etc/hosts | head -n 1; ls /proc 2>/dev/null | wc -l"};
  spec.env = {"PATH=/bin", "GREETING=hi"};
  spec.user = "app";
  spec.workdir = "/work/here";
  std::vector<std::string> lines;
  spec.output = [&](std::string_view line) { lines.emplace_back(line); };
  for (const char* applet : {"id", "wc", "head", "pwd"}) fs::create_symlink("busybox", image / "bin" / applet);
  SandboxResult result = run_in_sandbox(spec);
  INFO(lines.size());
  REQUIRE(result.exit_code == 0);
  REQUIRE(lines.size() == 4);
  CHECK(lines[0] == "1000:1000:1000 50 /work/here /home/app hi");
  CHECK(lines[1] == "4");
  CHECK(lines[2] == "127.0.0.1\tlocalhost imgbuild");
  CHECK(lines[3] == "0");  // no /proc: one of what chroot isolation gives up
  CHECK(result.unconfined.starts_with("chroot isolation: no /proc"));
}

TEST_CASE("a chroot step's secret reaches no layer, its cache stays, and it cannot steer imgbuild out of its root",
          "[sandbox][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image", cache = dir.path / "cache", secret = dir.path / "secret";
  make_image(image);
  fs::create_directories(cache);
  spit(cache / "old", "from an earlier build\n");
  fs::create_symlink("busybox", image / "bin/grep");
  spit(secret, "canary-7d41e0\n");
  // What the host has where the step's symlinks point, were they followed from outside.
  fs::path host = dir.path / "host";
  fs::create_directories(host / "thing");
  spit(host / "thing/precious", "host file\n");
  spit(host / "s", "host file\n");
  std::string before = listing(image);
  const std::vector<imgbuild::SandboxMount> secrets = {{secret, "/run/secrets/s", true}};
  std::vector<std::string> points = kMountPoints;
  points.insert(points.end(), {"/run/secrets/s", "/run/secrets", "/run"});

  StepRun run = run_step(image, cache,
                         "grep -q canary-7d41e0 /run/secrets/s; cat /var/cache/thing/old; echo new > "
                         "/var/cache/thing/new; echo mine > /data/mine",
                         false, "", secrets, points, imgbuild::Isolation::chroot);
  CHECK(run.changes == std::vector<std::string>{"data dir 755 0:0", "data/mine file 644 0:0 mine\n"});
  CHECK(run.lines == std::vector<std::string>{"from an earlier build"});
  CHECK(slurp(cache / "new") == "new\n");
  CHECK(slurp(cache / "old") == "from an earlier build\n");

  SECTION("the step swaps the folders of its secret and cache for symlinks to host paths") {
    StepRun swapped = run_step(image, cache,
                               "rm -rf /run/secrets /var/cache; ln -s " + host.string() + " /run/secrets; ln -s " +
                                   host.string() + " /var/cache",
                               false, "", secrets, points, imgbuild::Isolation::chroot);
    CHECK(slurp(host / "thing/precious") == "host file\n");
    CHECK(slurp(host / "s") == "host file\n");
    // The cache is taken out only when the step left a folder there.
    CHECK(slurp(cache / "new") == "new\n");
    for (auto& change : swapped.changes) CHECK(change.find("canary") == std::string::npos);
  }
  CHECK(listing(image) == before);
}

TEST_CASE("a chroot step's background processes are killed when it ends, and it cannot chroot again",
          "[sandbox][root]") {
  ScratchDir dir;
  fs::path image = dir.path / "image", cache = dir.path / "cache";
  make_image(image);
  fs::create_directories(cache);
  fs::create_symlink("busybox", image / "bin/sleep");
  fs::create_symlink("busybox", image / "bin/setsid");
  run_step(image, cache, "setsid sleep 4242.5 >/dev/null 2>&1 & (sleep 4243.5 &) ; true", false, "", {}, kMountPoints,
           imgbuild::Isolation::chroot);
  CHECK_FALSE(running("4242.5"));
  CHECK_FALSE(running("4243.5"));
  // chroot(2) by root inside the step is the classic way out of a chroot:
  // the step has no CAP_SYS_CHROOT.
  fs::create_symlink("busybox", image / "bin/chroot");
  StepRun escape = run_step(image, cache, "chroot / /bin/true 2>&1 || echo refused", false, "", {}, kMountPoints,
                            imgbuild::Isolation::chroot);
  CHECK(escape.lines ==
        std::vector<std::string>{"chroot: can't change root directory to '/': Operation not permitted", "refused"});
}

TEST_CASE("chroot isolation refuses to run a step outside a container", "[sandbox][root]") {
  struct stat ns {};
  REQUIRE(::stat("/proc/self/ns/pid", &ns) == 0);
  if (ns.st_ino != 0xEFFFFFFC) {
    WARN("not checked: this test runs in a PID namespace of its own, and the refusal is for the machine's");
    return;
  }
  ScratchDir dir;
  fs::path image = dir.path / "image";
  make_image(image);
  ScratchDir step;
  SandboxSpec spec = step_spec(image, step.path, false, imgbuild::Isolation::chroot);
  ::unsetenv("IMGBUILD_CHROOT_ON_HOST");
  spec.argv = {"/bin/sh", "-c", "touch /made"};
  std::string error = error_of([&] { imgbuild::run_in_sandbox(spec); });
  ::setenv("IMGBUILD_CHROOT_ON_HOST", "1", 1);
  CHECK(
      error.starts_with("chroot isolation is for a container without privileges, and imgbuild runs on the machine "
                        "itself (its PID namespace is the machine's)"));
  CHECK_FALSE(fs::exists(step.path / "upper" / "made"));
}
