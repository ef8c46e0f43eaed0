// Tests for the file-system primitives: atomic writes, file locks, temporary
// directories and the small helpers around file descriptors.
#include "base/fs.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace fs = std::filesystem;
using imgbuild::AtomicFile;
using imgbuild::BackgroundRemover;
using imgbuild::Fd;
using imgbuild::FileLock;
using imgbuild::TempDir;
using namespace imgbuild::test;
using Catch::Matchers::Contains;

namespace {

bool fd_is_open(int fd) { return ::fcntl(fd, F_GETFD) != -1 || errno != EBADF; }

// Forks a child that tries a non-blocking exclusive flock on `path` through its
// own open file description. Returns 0 when the lock was busy, 1 when the child
// got it, 2 or more on an unexpected error.
int probe_lock_in_child(const fs::path& path) {
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) ::_exit(3);
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) ::_exit(1);
    ::_exit(errno == EWOULDBLOCK ? 0 : 2);
  }
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) throw std::runtime_error("waitpid failed");
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

}  // namespace

TEST_CASE("AtomicFile destroyed without commit leaves nothing", "[fs]") {
  ScratchDir dir;
  fs::path final_path = dir.path / "doc.json";
  fs::path temp;
  {
    AtomicFile f(final_path);
    temp = f.temp_path();
    f.write("partial content");
    // The temporary sits next to the final name, hidden, and holds the bytes.
    REQUIRE(temp.parent_path() == dir.path);
    REQUIRE(temp.filename().string().rfind(".doc.json.tmp-", 0) == 0);
    REQUIRE(fs::exists(temp));
    REQUIRE(slurp(temp) == "partial content");
    REQUIRE_FALSE(fs::exists(final_path));
  }
  REQUIRE_FALSE(fs::exists(temp));
  REQUIRE_FALSE(fs::exists(final_path));
  REQUIRE(fs::is_empty(dir.path));
}

TEST_CASE("AtomicFile unwinding through an exception leaves the old file intact", "[fs]") {
  ScratchDir dir;
  fs::path final_path = dir.path / "index.json";
  spit(final_path, "old");
  try {
    AtomicFile f(final_path);
    f.write("new but torn");
    throw std::runtime_error("writer died");
  } catch (const std::runtime_error&) {
  }
  REQUIRE(slurp(final_path) == "old");
  REQUIRE(names_in(dir.path) == std::vector<std::string>{"index.json"});
}

TEST_CASE("AtomicFile::commit replaces the file atomically", "[fs]") {
  ScratchDir dir;
  fs::path final_path = dir.path / "index.json";
  spit(final_path, "old content");
  struct stat before {};
  REQUIRE(::stat(final_path.c_str(), &before) == 0);
  // A reader that opened the old file keeps seeing the old bytes: the new file is
  // a different inode renamed over the name, never the old one truncated.
  Fd reader = imgbuild::open_read(final_path);

  AtomicFile f(final_path);
  fs::path temp = f.temp_path();
  f.write("new ");
  f.write("content");
  REQUIRE(slurp(final_path) == "old content");  // nothing visible before commit
  f.commit();

  REQUIRE(slurp(final_path) == "new content");
  REQUIRE_FALSE(fs::exists(temp));
  REQUIRE(names_in(dir.path) == std::vector<std::string>{"index.json"});
  struct stat after {};
  REQUIRE(::stat(final_path.c_str(), &after) == 0);
  REQUIRE(after.st_ino != before.st_ino);
  REQUIRE((after.st_mode & 07777) == 0644);

  char buf[64] = {};
  ssize_t n = ::pread(reader.get(), buf, sizeof buf, 0);
  REQUIRE(n == 11);
  REQUIRE(std::string(buf, static_cast<size_t>(n)) == "old content");
}

TEST_CASE("AtomicFile committed survives its destructor", "[fs]") {
  ScratchDir dir;
  fs::path final_path = dir.path / "blob";
  {
    AtomicFile f(final_path);
    f.write("kept");
    f.commit();
  }
  REQUIRE(slurp(final_path) == "kept");
  REQUIRE(names_in(dir.path) == std::vector<std::string>{"blob"});
}

TEST_CASE("AtomicFile::commit_as names the file only once written", "[fs]") {
  ScratchDir dir;
  fs::path provisional = dir.path / "layer";
  fs::path named = dir.path / "0123abcd";
  {
    AtomicFile f(provisional);
    ::ssize_t w = ::write(f.fd(), "via fd ", 7);  // the raw fd is the temporary file
    REQUIRE(w == 7);
    f.write("and write()");
    f.commit_as(named);
  }
  REQUIRE(slurp(named) == "via fd and write()");
  REQUIRE_FALSE(fs::exists(provisional));
  REQUIRE(names_in(dir.path) == std::vector<std::string>{"0123abcd"});
  struct stat st {};
  REQUIRE(::stat(named.c_str(), &st) == 0);
  REQUIRE((st.st_mode & 07777) == 0644);
}

TEST_CASE("AtomicFile in a missing directory throws naming the directory", "[fs]") {
  ScratchDir dir;
  fs::path missing = dir.path / "no" / "such" / "file";
  REQUIRE_THROWS_AS(AtomicFile(missing), std::system_error);
  REQUIRE_THROWS_WITH(AtomicFile(missing), Contains((dir.path / "no" / "such").string()));
}

TEST_CASE("write_file_atomic and write_record_atomic create and replace", "[fs]") {
  for (auto write : {&imgbuild::write_file_atomic, &imgbuild::write_record_atomic}) {
    ScratchDir dir;
    fs::path p = dir.path / "oci-layout";
    write(p, "first");
    REQUIRE(slurp(p) == "first");
    write(p, "second, longer than the first");
    REQUIRE(slurp(p) == "second, longer than the first");
    write(p, "");
    REQUIRE(fs::exists(p));
    REQUIRE(fs::file_size(p) == 0);
    std::string binary("a\0b\xff", 4);
    write(p, binary);
    REQUIRE(slurp(p) == binary);
    struct stat st {};
    REQUIRE(::stat(p.c_str(), &st) == 0);
    CHECK((st.st_mode & 07777) == 0644);
    REQUIRE(names_in(dir.path) == std::vector<std::string>{"oci-layout"});
    REQUIRE_THROWS_WITH(write(dir.path / "no" / "such", "x"), Contains((dir.path / "no").string()));
  }
}

TEST_CASE("read_file, open_read and write_all", "[fs]") {
  ScratchDir dir;
  fs::path p = dir.path / "big";
  std::string data;
  for (int i = 0; i < 200000; ++i) data.push_back(static_cast<char>(i % 253));  // > the 64 KiB read buffer
  {
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    REQUIRE(fd >= 0);
    Fd owned(fd);
    imgbuild::write_all(owned.get(), data.data(), data.size(), p);
  }
  REQUIRE(imgbuild::read_file(p) == data);

  fs::path empty = dir.path / "empty";
  spit(empty, "");
  REQUIRE(imgbuild::read_file(empty).empty());

  // Room is made for what fstat says: a file that says 0 (a /proc file) is
  // still read whole, and one bigger than the huge pages asked for too.
  std::string status = imgbuild::read_file("/proc/self/status");
  CHECK(status.starts_with("Name:"));
  CHECK(status.ends_with("\n"));
  fs::path large = dir.path / "large";
  std::string many(5 << 20, 'x');
  for (size_t i = 0; i < many.size(); i += 4099) many[i] = static_cast<char>('a' + i % 26);
  spit(large, many);
  CHECK(imgbuild::read_file(large) == many);

  fs::path missing = dir.path / "missing";
  REQUIRE_THROWS_AS(imgbuild::read_file(missing), std::system_error);
  REQUIRE_THROWS_WITH(imgbuild::read_file(missing), Contains(missing.string()));
  REQUIRE_THROWS_WITH(imgbuild::open_read(missing), Contains(missing.string()));
  try {
    imgbuild::open_read(missing);
    FAIL("open_read of a missing file did not throw");
  } catch (const std::system_error& e) {
    REQUIRE(e.code().value() == ENOENT);
  }
}

TEST_CASE("read_opened reads the file that was opened, not what its path names later", "[fs]") {
  ScratchDir dir;
  fs::path p = dir.path / "secret";
  spit(p, "the opened file's bytes");
  struct stat st {};
  Fd fd = imgbuild::open_read(p, imgbuild::FollowLink::Yes, &st);
  // Swapped for another file between the stat and the read.
  fs::path other = dir.path / "other";
  spit(other, "another file, put there after the open");
  REQUIRE(::rename(other.c_str(), p.c_str()) == 0);
  CHECK(imgbuild::read_opened(fd, st, p) == "the opened file's bytes");
  CHECK(imgbuild::read_file(p) == "another file, put there after the open");
}

TEST_CASE("Fd closes on destruction and transfers on move", "[fs]") {
  ScratchDir dir;
  fs::path p = dir.path / "f";
  spit(p, "x");
  int raw = -1;
  {
    Fd a = imgbuild::open_read(p);
    raw = a.get();
    REQUIRE(static_cast<bool>(a));
    REQUIRE(fd_is_open(raw));
    Fd b(std::move(a));
    REQUIRE_FALSE(static_cast<bool>(a));
    REQUIRE(a.get() == -1);
    REQUIRE(b.get() == raw);
    REQUIRE(fd_is_open(raw));  // the move did not close it
    Fd c;
    REQUIRE_FALSE(static_cast<bool>(c));
    c = std::move(b);
    REQUIRE(c.get() == raw);
    REQUIRE(fd_is_open(raw));
  }
  REQUIRE_FALSE(fd_is_open(raw));

  Fd d = imgbuild::open_read(p);
  int released = d.release();
  REQUIRE(d.get() == -1);
  { Fd gone(std::move(d)); }
  REQUIRE(fd_is_open(released));  // release() handed ownership out
  ::close(released);
}

TEST_CASE("FileLock excludes a second process", "[fs]") {
  ScratchDir dir;
  fs::path lock_path = dir.path / ".imgbuild.lock";
  {
    FileLock lock(lock_path);
    REQUIRE(fs::exists(lock_path));  // the lock file is created
    REQUIRE(probe_lock_in_child(lock_path) == 0);
    REQUIRE(probe_lock_in_child(lock_path) == 0);
  }
  // Released on destruction: now the child gets it.
  REQUIRE(probe_lock_in_child(lock_path) == 1);
  // And again after a second FileLock comes and goes.
  {
    FileLock again(lock_path);
    REQUIRE(probe_lock_in_child(lock_path) == 0);
  }
  REQUIRE(probe_lock_in_child(lock_path) == 1);
}

TEST_CASE("FileLock blocks a second FileLock until released", "[fs]") {
  ScratchDir dir;
  fs::path lock_path = dir.path / "lock";
  int pipefd[2];
  REQUIRE(::pipe(pipefd) == 0);
  auto lock = std::make_unique<FileLock>(lock_path);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(pipefd[0]);
    try {
      FileLock mine(lock_path);  // blocks while the parent holds the lock
      char c = 'L';
      if (::write(pipefd[1], &c, 1) != 1) ::_exit(2);
    } catch (...) {
      ::_exit(3);
    }
    ::_exit(0);
  }
  ::close(pipefd[1]);
  struct pollfd pfd {
    pipefd[0], POLLIN, 0
  };
  int ready = ::poll(&pfd, 1, 300);
  bool acquired_while_held = ready > 0;
  lock.reset();  // release: the child may proceed now
  ready = ::poll(&pfd, 1, 10000);
  char c = 0;
  ssize_t n = ready > 0 ? ::read(pipefd[0], &c, 1) : -1;
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);

  REQUIRE_FALSE(acquired_while_held);
  REQUIRE(n == 1);
  REQUIRE(c == 'L');
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
}

TEST_CASE("FileLock on an impossible path throws", "[fs]") {
  ScratchDir dir;
  fs::path bad = dir.path / "missing-dir" / "lock";
  REQUIRE_THROWS_AS(FileLock(bad), std::system_error);
  REQUIRE_THROWS_WITH(FileLock(bad), Contains("open lock " + bad.string()));
}

TEST_CASE("TempDir is private and removed on destruction", "[fs]") {
  ScratchDir dir;
  fs::path parent = dir.path / "not" / "yet";  // created on demand
  fs::path made;
  {
    TempDir t(parent, "build-");
    made = t.path();
    REQUIRE(made.parent_path() == parent);
    REQUIRE(made.filename().string().rfind("build-", 0) == 0);
    REQUIRE(made.filename().string().size() == std::string("build-").size() + 6);
    REQUIRE(fs::is_directory(made));
    struct stat st {};
    REQUIRE(::stat(made.c_str(), &st) == 0);
    REQUIRE((st.st_mode & 0077) == 0);  // mkdtemp: owner only

    fs::create_directories(made / "a" / "b");
    spit(made / "a" / "b" / "file", "data");
    fs::create_symlink(dir.path, made / "link-out");  // must not be followed on removal
    spit(dir.path / "outside", "survives");
  }
  REQUIRE_FALSE(fs::exists(made));
  REQUIRE(fs::is_directory(parent));
  REQUIRE(fs::is_empty(parent));
  REQUIRE(slurp(dir.path / "outside") == "survives");

  TempDir a(parent), b(parent);
  REQUIRE(a.path() != b.path());
  REQUIRE(a.path().filename().string().rfind("imgbuild-", 0) == 0);
}

TEST_CASE("BackgroundRemover removes what it is handed before its destructor returns", "[fs]") {
  ScratchDir dir;
  // Through a trash folder, and without one (removed where they are).
  const fs::path trash = GENERATE(as<fs::path>{}, "", "trash");
  INFO("trash: " << trash);
  spit(dir.path / "outside", "survives");
  std::vector<fs::path> handed;
  fs::path kept;
  {
    BackgroundRemover remover(trash.empty() ? trash : dir.path / trash);
    for (int i = 0; i < 3; ++i) {
      fs::path d = dir.path / ("step-" + std::to_string(i));
      fs::create_directories(d / "upper" / "deep");
      for (int f = 0; f < 50; ++f) spit(d / "upper" / "deep" / std::to_string(f), "data");
      fs::create_symlink(dir.path, d / "upper" / "link-out");  // must not be followed on removal
      handed.push_back(d);
      remover.remove(d);
    }
    remover.remove(dir.path / "never-made");  // nothing there: no error
    TempDir scratch(dir.path, "run-");
    kept = scratch.path();
    spit(kept / "file", "data");
    scratch.remove_later(remover);
    CHECK(scratch.path().empty());  // its destructor leaves the folder to the remover
  }
  for (auto& d : handed) CHECK_FALSE(fs::exists(d));
  CHECK_FALSE(fs::exists(kept));
  CHECK(slurp(dir.path / "outside") == "survives");
  if (trash.empty()) {
    CHECK(names_in(dir.path) == std::vector<std::string>{"outside"});
  } else {
    CHECK(names_in(dir.path) == std::vector<std::string>{"outside", "trash"});
    CHECK(fs::is_empty(dir.path / trash));
  }
}

TEST_CASE("BackgroundRemover empties a tree deeper than the process may hold folders open", "[fs]") {
  // A RUN step can leave a folder chain as deep as it likes in its scratch
  // folder. A removal that held every folder on the way down open would run
  // out of descriptors (and leave the chain in the trash for good), or starve
  // the build's other threads of them.
  ScratchDir dir;
  const fs::path trash = dir.path / "trash";
  fs::create_directories(trash / "deep");
  constexpr int kDepth = 3000;  // "d/" 3000 times: also longer than PATH_MAX
  {
    imgbuild::Fd cur(::open((trash / "deep").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    for (int i = 0; i < kDepth; ++i) {
      REQUIRE(::mkdirat(cur.get(), "d", 0755) == 0);
      imgbuild::Fd next(::openat(cur.get(), "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      REQUIRE(next);
      if (i % 500 == 0) REQUIRE(::close(::openat(next.get(), "f", O_CREAT | O_WRONLY | O_CLOEXEC, 0644)) == 0);
      cur = std::move(next);
    }
  }
  rlimit saved{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &saved) == 0);
  rlimit low = saved;
  low.rlim_cur = 256;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  { BackgroundRemover remover(trash); }  // the destructor waits until all is removed
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &saved) == 0);
  CHECK(fs::is_empty(trash));
}

TEST_CASE("BackgroundRemover moves a folder into the trash at once, and the next one empties what is left", "[fs]") {
  ScratchDir dir;
  spit(dir.path / "outside", "survives");
  const fs::path trash = dir.path / "tmp" / "trash";
  // What an earlier build left in the trash when it ended, or was killed.
  fs::create_directories(trash / "run-left" / "upper" / "cache");
  for (int f = 0; f < 100; ++f) spit(trash / "run-left" / "upper" / "cache" / std::to_string(f), "data");
  fs::create_symlink(dir.path, trash / "run-left" / "upper" / "link-out");
  spit(trash / "stray-file", "data");
  fs::path handed = dir.path / "tmp" / "run-now";
  fs::create_directories(handed / "upper");
  spit(handed / "upper" / "file", "data");
  {
    BackgroundRemover remover(trash);
    remover.remove(handed);
    CHECK_FALSE(fs::exists(handed));  // moved, before anything is removed
    // Polled: the removal's pace is the disk's; the promise is that it ends.
    for (int i = 0; i < 3000 && !fs::is_empty(trash); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    CHECK(fs::is_empty(trash));
    remover.leave_the_rest();
  }
  CHECK(slurp(dir.path / "outside") == "survives");
  CHECK(names_in(dir.path / "tmp") == std::vector<std::string>{"trash"});
}
