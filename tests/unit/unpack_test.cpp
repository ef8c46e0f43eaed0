// Tests for the layer unpacker: what each kind of entry becomes on disk, OCI
// whiteouts, replacement rules, and hostile layers (escapes through "..",
// symlinks and hardlinks, invalid whiteouts, malformed archives), each checked
// for its exact error and for nothing having appeared outside the root. The
// escape cases run with both resolvers: openat2 and the component walk.
#include "layer/unpack.hpp"

#include "layer/resolve.hpp"

#include <catch2/catch.hpp>

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "test_support.hpp"

namespace fs = std::filesystem;
using imgbuild::UnpackError;
using imgbuild::UnpackLayer;
using imgbuild::UnpackOptions;
using namespace imgbuild::test;

namespace {

/// One tar entry as a test writes it. type: f file, d directory, l symlink,
/// h hardlink, c char device, b block device, p fifo.
struct Entry {
  std::string path;
  char type = 'f';
  unsigned mode = 0644;
  std::string content = {};
  std::string link = {};  ///< symlink or hardlink target
  int64_t uid = 0, gid = 0;
  std::vector<std::pair<std::string, std::string>> xattrs = {};
  uint64_t major = 0, minor = 0;
  int64_t mtime = 1700000000;
  long nsec = 0;
  /// A sparse file: its logical size and data blocks {offset, length}; content
  /// covers the file up to the end of the last block.
  int64_t sparse_size = 0;
  std::vector<std::pair<int64_t, int64_t>> sparse = {};
};

la_ssize_t append_to_string(archive*, void* out, const void* data, size_t size) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(data), size);
  return static_cast<la_ssize_t>(size);
}

enum class Compression { None, Gzip, Zstd };

/// A PAX tar of `entries`, names and targets written exactly as given.
std::string make_tar(const std::vector<Entry>& entries, Compression compression = Compression::None) {
  std::string out;
  std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(), &archive_write_free);
  archive_write_set_format_pax(a.get());
  if (compression == Compression::Gzip) archive_write_add_filter_gzip(a.get());
  if (compression == Compression::Zstd) archive_write_add_filter_zstd(a.get());
  archive_write_set_bytes_in_last_block(a.get(), 1);
  if (archive_write_open2(a.get(), &out, nullptr, append_to_string, nullptr, nullptr) != ARCHIVE_OK)
    throw std::runtime_error("archive_write_open2 failed");
  for (const Entry& en : entries) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), &archive_entry_free);
    archive_entry_copy_pathname(e.get(), en.path.c_str());
    archive_entry_set_perm(e.get(), en.mode);
    archive_entry_set_uid(e.get(), en.uid);
    archive_entry_set_gid(e.get(), en.gid);
    archive_entry_set_mtime(e.get(), en.mtime, en.nsec);
    for (const auto& [name, value] : en.xattrs)
      archive_entry_xattr_add_entry(e.get(), name.c_str(), value.data(), value.size());
    switch (en.type) {
      case 'f':
        archive_entry_set_filetype(e.get(), AE_IFREG);
        break;
      case 'd':
        archive_entry_set_filetype(e.get(), AE_IFDIR);
        break;
      case 'l':
        archive_entry_set_filetype(e.get(), AE_IFLNK);
        archive_entry_copy_symlink(e.get(), en.link.c_str());
        break;
      case 'h':
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_copy_hardlink(e.get(), en.link.c_str());
        break;
      case 'c':
        archive_entry_set_filetype(e.get(), AE_IFCHR);
        break;
      case 'b':
        archive_entry_set_filetype(e.get(), AE_IFBLK);
        break;
      case 'p':
        archive_entry_set_filetype(e.get(), AE_IFIFO);
        break;
      default:
        throw std::logic_error("unknown entry type");
    }
    archive_entry_set_rdevmajor(e.get(), en.major);
    archive_entry_set_rdevminor(e.get(), en.minor);
    archive_entry_set_size(e.get(), en.type != 'f'   ? 0
                                    : en.sparse_size ? en.sparse_size
                                                     : static_cast<la_int64_t>(en.content.size()));
    for (const auto& [offset, length] : en.sparse) archive_entry_sparse_add_entry(e.get(), offset, length);
    if (archive_write_header(a.get(), e.get()) < ARCHIVE_WARN)
      throw std::runtime_error(std::string("tar header: ") + archive_error_string(a.get()));
    if (en.type == 'f' && !en.content.empty() &&
        archive_write_data(a.get(), en.content.data(), en.content.size()) != static_cast<la_ssize_t>(en.content.size()))
      throw std::runtime_error("tar data");
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) throw std::runtime_error("tar close");
  return out;
}

std::span<const unsigned char> bytes(const std::string& s) {
  return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

/// A root to unpack into, next to an empty sentinel directory that every escape
/// would most likely reach ("../outside", or its absolute path).
struct Sandbox {
  ScratchDir scratch;
  fs::path root = scratch.path / "root";
  fs::path outside = scratch.path / "outside";
  UnpackOptions options;

  Sandbox() {
    fs::create_directory(root);
    fs::create_directory(outside);
  }

  void apply(const std::vector<Entry>& entries, const std::string& label = "layer 1") {
    imgbuild::apply_layer(root, bytes(make_tar(entries)), label, options);
  }

  /// The error a layer gives, "" when it applies.
  std::string error(const std::vector<Entry>& entries, const std::string& label = "layer 1") {
    try {
      apply(entries, label);
    } catch (const UnpackError& e) {
      return e.what();
    }
    return "";
  }

  /// Only the root and the still-empty sentinel next to it.
  bool nothing_outside() const {
    return names_in(scratch.path) == std::vector<std::string>{"outside", "root"} && fs::is_empty(outside);
  }
};

struct stat lstat_of(const fs::path& p) {
  struct stat st;
  if (::lstat(p.c_str(), &st) != 0) throw std::runtime_error("lstat " + p.string() + ": " + std::strerror(errno));
  return st;
}

unsigned perm_of(const fs::path& p) { return lstat_of(p).st_mode & 07777; }

std::string xattr_of(const fs::path& p, const char* name) {
  char buf[256];
  ssize_t n = ::lgetxattr(p.c_str(), name, buf, sizeof buf);
  return n < 0 ? "<" + std::string(std::strerror(errno)) + ">" : std::string(buf, static_cast<size_t>(n));
}

struct UmaskGuard {
  explicit UmaskGuard(mode_t mask) : old(::umask(mask)) {}
  ~UmaskGuard() { ::umask(old); }
  UmaskGuard(const UmaskGuard&) = delete;
  UmaskGuard& operator=(const UmaskGuard&) = delete;
  mode_t old;
};

/// Both resolvers: openat2 and the component walk used without it.
bool use_openat2_or_walk() {
  bool use = GENERATE(true, false);
  UNSCOPED_INFO((use ? "resolver: openat2" : "resolver: component walk"));
  return use;
}

}  // namespace

TEST_CASE("files, directories, symlinks and hardlinks are unpacked with their metadata", "[unpack][root]") {
  auto compression = GENERATE(Compression::None, Compression::Gzip, Compression::Zstd);
  Sandbox box;
  // A parent the layer leaves out is made 0755, whatever the umask.
  UmaskGuard umask_077(077);
  std::string tar = make_tar(
      {
          {.path = "./", .type = 'd', .mode = 0750, .mtime = 1500000000},
          {.path = "etc/", .type = 'd', .mode = 0755},
          {.path = "etc/hostname", .content = "box\n", .mtime = 1700000000, .nsec = 123456789},
          {.path = "bin/", .type = 'd', .mode = 0711, .mtime = 1600000000},
          {.path = "bin/sh", .mode = 0755, .content = "#!shell", .uid = 1000, .gid = 1001},
          {.path = "bin/ash", .type = 'h', .link = "bin/sh"},
          {.path = "usr/lib/os-release", .content = "ID=test\n"},
          {.path = "lib", .type = 'l', .link = "usr/lib", .mtime = 1400000000},
          {.path = "/abs/dangling", .type = 'l', .link = "/no/such/file"},
          {.path = "caf\xc3\xa9", .content = "utf-8 name"},
      },
      compression);
  imgbuild::apply_layer(box.root, bytes(tar), "layer 1", box.options);

  REQUIRE(names_in(box.root) == std::vector<std::string>{"abs", "bin", "caf\xc3\xa9", "etc", "lib", "usr"});
  REQUIRE(slurp(box.root / "etc/hostname") == "box\n");
  REQUIRE(perm_of(box.root / "etc/hostname") == 0644);
  struct stat host = lstat_of(box.root / "etc/hostname");
  REQUIRE(host.st_mtim.tv_sec == 1700000000);
  REQUIRE(host.st_mtim.tv_nsec == 123456789);

  REQUIRE(slurp(box.root / "bin/sh") == "#!shell");
  REQUIRE(perm_of(box.root / "bin/sh") == 0755);
  struct stat sh = lstat_of(box.root / "bin/sh"), ash = lstat_of(box.root / "bin/ash");
  REQUIRE(sh.st_ino == ash.st_ino);
  REQUIRE(sh.st_nlink == 2);
  REQUIRE(sh.st_uid == 1000);
  REQUIRE(sh.st_gid == 1001);
  // Directories get mode and mtime after their contents were written.
  REQUIRE(perm_of(box.root / "bin") == 0711);
  REQUIRE(lstat_of(box.root / "bin").st_mtim.tv_sec == 1600000000);
  REQUIRE(perm_of(box.root) == 0750);
  REQUIRE(lstat_of(box.root).st_mtim.tv_sec == 1500000000);

  REQUIRE(perm_of(box.root / "usr") == 0755);
  REQUIRE(perm_of(box.root / "usr/lib") == 0755);
  REQUIRE(slurp(box.root / "usr/lib/os-release") == "ID=test\n");
  REQUIRE(fs::read_symlink(box.root / "lib") == "usr/lib");
  REQUIRE(lstat_of(box.root / "lib").st_mtim.tv_sec == 1400000000);
  REQUIRE(fs::read_symlink(box.root / "abs/dangling") == "/no/such/file");
  REQUIRE(slurp(box.root / "caf\xc3\xa9") == "utf-8 name");
  REQUIRE(box.nothing_outside());
}

TEST_CASE("a sparse file keeps its holes", "[unpack]") {
  Sandbox box;
  // 1 GiB described by a 10 KiB tar: written out as zeros it would take the disk.
  box.apply({{.path = "sparse",
              .content = std::string(1000000, '\0') + "hello",
              .sparse_size = 1 << 30,
              .sparse = {{1000000, 5}}}});
  struct stat st = lstat_of(box.root / "sparse");
  REQUIRE(st.st_size == 1 << 30);
  REQUIRE(st.st_blocks * 512 <= 64 * 1024);
  std::ifstream in(box.root / "sparse", std::ios::binary);
  in.seekg(999998);
  char data[9] = {};
  in.read(data, 9);
  REQUIRE(std::string(data, 9) == std::string("\0\0hello\0\0", 9));
}

TEST_CASE("symlinks in a path are followed inside the root, never out of it", "[unpack]") {
  Sandbox box;
  box.options.use_openat2 = use_openat2_or_walk();

  box.apply({
      {.path = "tmp/", .type = 'd', .mode = 01777},
      {.path = "outside/", .type = 'd'},
      {.path = "evil", .type = 'l', .link = "../../../.."},
      {.path = "abs", .type = 'l', .link = "/tmp"},
      {.path = "up", .type = 'l', .link = "tmp/../../../outside"},
      {.path = "sub/abs", .type = 'l', .link = "/tmp"},
      {.path = "sub/climb", .type = 'l', .link = "../../../outside"},
      // Through a symlink made earlier in the same layer.
      {.path = "evil/same-layer", .content = "1"},
  });
  box.apply(
      {
          {.path = "evil/pwned", .content = "2"},
          {.path = "abs/pwned", .content = "3"},
          {.path = "up/pwned", .content = "4"},
          {.path = "sub/abs/pwned-from-sub", .content = "5"},
          {.path = "sub/climb/pwned-from-sub", .content = "6"},
      },
      "layer 2");
  REQUIRE(slurp(box.root / "same-layer") == "1");
  REQUIRE(slurp(box.root / "pwned") == "2");
  REQUIRE(slurp(box.root / "tmp/pwned") == "3");
  REQUIRE(slurp(box.root / "outside/pwned") == "4");
  REQUIRE(slurp(box.root / "tmp/pwned-from-sub") == "5");
  REQUIRE(slurp(box.root / "outside/pwned-from-sub") == "6");
  REQUIRE(names_in(box.root / "sub") == std::vector<std::string>{"abs", "climb"});
  REQUIRE(perm_of(box.root / "tmp") == 01777);
  REQUIRE(names_in(box.root) ==
          std::vector<std::string>{"abs", "evil", "outside", "pwned", "same-layer", "sub", "tmp", "up"});
  REQUIRE(box.nothing_outside());

  // A symlink to the sentinel's absolute host path means that path inside the
  // image, where it does not exist: no directory is made through it.
  box.apply({{.path = "etc", .type = 'l', .link = box.outside.string()}}, "layer 3");
  REQUIRE(box.error({{.path = "etc/passwd", .content = "root::0:0::/:/bin/sh\n"}}, "layer 4") ==
          "layer 4: entry \"etc/passwd\": cannot open directory \"etc\": No such file or directory");
  REQUIRE(fs::read_symlink(box.root / "etc") == box.outside);
  REQUIRE(box.nothing_outside());

  box.apply({{.path = "loop1", .type = 'l', .link = "loop2"}, {.path = "loop2", .type = 'l', .link = "/loop1"}});
  REQUIRE(box.error({{.path = "loop1/x"}}) ==
          "layer 1: entry \"loop1/x\": cannot open directory \"loop1\": Too many levels of symbolic links");
  box.apply({{.path = "file", .content = "f"}, {.path = "to-file", .type = 'l', .link = "file"}});
  REQUIRE(box.error({{.path = "to-file/x"}}) ==
          "layer 1: entry \"to-file/x\": cannot open directory \"to-file\": Not a directory");
  REQUIRE(box.nothing_outside());
}

TEST_CASE("a path that climbs out of the root is an error naming layer and entry", "[unpack]") {
  Sandbox box;
  box.options.use_openat2 = use_openat2_or_walk();
  REQUIRE(box.error({{.path = "a/../../etc/passwd"}}, "layer 2") ==
          "layer 2: entry \"a/../../etc/passwd\": path escapes the image root");
  REQUIRE(box.error({{.path = "../outside/x"}}) == "layer 1: entry \"../outside/x\": path escapes the image root");
  // Control characters in a name cannot forge lines in the message.
  REQUIRE(box.error({{.path = "x\n/../../y"}}) == "layer 1: entry \"x\\x0a/../../y\": path escapes the image root");
  REQUIRE(names_in(box.root).empty());
  REQUIRE(box.nothing_outside());

  // ".." that stays inside is applied lexically; a leading "/" means the root.
  box.apply({{.path = "a/b/../c", .content = "c"}, {.path = "/abs", .content = "abs"}});
  REQUIRE(slurp(box.root / "a/c") == "c");
  REQUIRE(names_in(box.root / "a") == std::vector<std::string>{"c"});
  REQUIRE(slurp(box.root / "abs") == "abs");
}

TEST_CASE("hardlinks resolve their target inside the root", "[unpack]") {
  Sandbox box;
  box.options.use_openat2 = use_openat2_or_walk();
  REQUIRE(box.error({{.path = "h", .type = 'h', .link = "../../x"}}) ==
          "layer 1: entry \"h\": hardlink target \"../../x\" escapes the image root");
  REQUIRE(box.error({{.path = "h", .type = 'h', .link = "/etc/passwd"}}) ==
          "layer 1: entry \"h\": hardlink target \"/etc/passwd\" does not exist");
  REQUIRE(box.error({{.path = "h", .type = 'h', .link = "etc/shadow"}}) ==
          "layer 1: entry \"h\": hardlink target \"etc/shadow\" does not exist");
  REQUIRE(names_in(box.root).empty());

  box.apply({
      {.path = "etc/", .type = 'd'},
      {.path = "etc/passwd", .content = "root:x:0:0::/root:/bin/sh\n"},
      {.path = "evil", .type = 'l', .link = "../../.."},
      {.path = "passwd", .type = 'h', .link = "/etc/passwd"},
      {.path = "through-link", .type = 'h', .link = "evil/etc/passwd"},
      {.path = "sym", .type = 'l', .link = "/etc/passwd"},
      {.path = "sym-link", .type = 'h', .link = "sym"},
  });
  ino_t passwd = lstat_of(box.root / "etc/passwd").st_ino;
  REQUIRE(lstat_of(box.root / "passwd").st_ino == passwd);
  REQUIRE(lstat_of(box.root / "through-link").st_ino == passwd);
  REQUIRE(lstat_of(box.root / "etc/passwd").st_nlink == 3);
  REQUIRE(lstat_of("/etc/passwd").st_ino != passwd);
  // A hardlink to a symlink links the symlink itself.
  REQUIRE(lstat_of(box.root / "sym-link").st_ino == lstat_of(box.root / "sym").st_ino);
  REQUIRE(fs::read_symlink(box.root / "sym-link") == "/etc/passwd");

  REQUIRE(box.error({{.path = "h", .type = 'h', .link = "etc"}}) ==
          "layer 1: entry \"h\": hardlink target \"etc\" is a directory");
  REQUIRE(box.error({{.path = "h", .type = 'h', .link = "evil"}}) == "");
  REQUIRE(box.error({{.path = "h2", .type = 'h', .link = "./"}}) ==
          "layer 1: entry \"h2\": hardlink target \"./\" is a directory");
  REQUIRE(fs::is_symlink(box.root / "h"));
  REQUIRE(box.nothing_outside());
}

TEST_CASE("a layer limited to some members applies those alone, inside the root", "[unpack]") {
  Sandbox box;
  box.options.use_openat2 = use_openat2_or_walk();
  box.apply({{.path = "evil", .type = 'l', .link = "../../.."}, {.path = "keep", .content = "lower"}});
  const std::set<std::string> only = {"./app/bin/tool", "evil/pwned", "abs/pwned"};
  box.options.only = &only;
  box.apply(
      {
          {.path = "app/", .type = 'd', .mode = 0700},
          {.path = "abs", .type = 'l', .link = "/"},
          {.path = "./app/bin/tool", .mode = 0751, .content = "program"},
          {.path = "app/bin/other", .content = "not asked for"},
          {.path = ".wh.keep"},
          {.path = "evil/pwned", .content = "through an earlier layer's symlink"},
          {.path = "abs/pwned", .content = "through a symlink this layer does not make here"},
      },
      "layer 2");
  REQUIRE(slurp(box.root / "app/bin/tool") == "program");
  REQUIRE(perm_of(box.root / "app/bin/tool") == 0751);
  // The folders above a member are made, not taken from entries left out.
  REQUIRE(perm_of(box.root / "app") == 0755);
  REQUIRE(names_in(box.root / "app/bin") == std::vector<std::string>{"tool"});
  REQUIRE(slurp(box.root / "keep") == "lower");  // its whiteout was not asked for
  REQUIRE(slurp(box.root / "pwned") == "through an earlier layer's symlink");
  REQUIRE(slurp(box.root / "abs/pwned") == "through a symlink this layer does not make here");
  REQUIRE(names_in(box.root) == std::vector<std::string>{"abs", "app", "evil", "keep", "pwned"});
  REQUIRE(box.nothing_outside());
}

TEST_CASE("whiteouts delete lower files and directories and are not created", "[unpack]") {
  Sandbox box;
  box.apply({
      {.path = "a", .content = "a"},
      {.path = "d/", .type = 'd'},
      {.path = "d/x", .content = "x"},
      {.path = "d/sub/y", .content = "y"},
      {.path = "keep", .content = "keep"},
      {.path = "link", .type = 'l', .link = "keep"},
  });
  box.apply(
      {
          {.path = ".wh.a"},
          {.path = ".wh.d", .type = 'd'},
          {.path = ".wh.link"},
          {.path = ".wh.never-existed"},
          {.path = "missing-dir/.wh.x"},
      },
      "layer 2");
  REQUIRE(names_in(box.root) == std::vector<std::string>{"keep"});
  REQUIRE(slurp(box.root / "keep") == "keep");
}

TEST_CASE("an opaque directory keeps only what its own layer puts in it, wherever the marker is", "[unpack]") {
  Sandbox box;
  box.apply({
      {.path = "o/old1", .content = "old"},
      {.path = "o/sub/old2", .content = "old"},
      {.path = "o/gone/old3", .content = "old"},
      {.path = "o/file-whiteout-later", .content = "old"},
      {.path = "other/kept", .content = "kept"},
  });
  box.apply(
      {
          {.path = "o/new1", .content = "1"},
          {.path = "o/sub/new2", .content = "2"},
          {.path = "o/.wh..wh..opq"},
          {.path = "o/new3", .content = "3"},
          {.path = "o/sub2/new4", .content = "4"},
          // This layer's own file survives its whiteout too.
          {.path = "o/.wh.new1"},
      },
      "layer 2");
  REQUIRE(names_in(box.root / "o") == std::vector<std::string>{"new1", "new3", "sub", "sub2"});
  REQUIRE(names_in(box.root / "o/sub") == std::vector<std::string>{"new2"});
  REQUIRE(slurp(box.root / "o/new1") == "1");
  REQUIRE(slurp(box.root / "o/sub/new2") == "2");
  REQUIRE(slurp(box.root / "o/new3") == "3");
  REQUIRE(slurp(box.root / "o/sub2/new4") == "4");
  REQUIRE(slurp(box.root / "other/kept") == "kept");

  // A whiteout of a directory this layer also fills removes only the lower contents.
  box.apply({{.path = "w/lower", .content = "l"}}, "layer 3");
  box.apply({{.path = "w/upper", .content = "u"}, {.path = ".wh.w"}}, "layer 4");
  REQUIRE(names_in(box.root / "w") == std::vector<std::string>{"upper"});
}

TEST_CASE("invalid whiteouts are errors", "[unpack]") {
  std::vector<std::pair<std::string, std::string>> cases = {
      {".wh.", "layer 1: entry \".wh.\": invalid whiteout: no name after \".wh.\""},
      {"d/.wh..", "layer 1: entry \"d/.wh..\": invalid whiteout: it names \".\""},
      {".wh...", "layer 1: entry \".wh...\": invalid whiteout: it names \"..\""},
      {".wh.a/b", "layer 1: entry \".wh.a/b\": invalid whiteout: \".wh.a\" is used as a directory"},
      {"x/.wh..wh..opq/y",
       "layer 1: entry \"x/.wh..wh..opq/y\": invalid whiteout: \".wh..wh..opq\" is used as a directory"},
  };
  for (const auto& [name, message] : cases) {
    Sandbox box;
    box.apply({{.path = "a", .content = "a"}});
    REQUIRE(box.error({{.path = name}}) == message);
    REQUIRE(names_in(box.root) == std::vector<std::string>{"a"});
  }
}

TEST_CASE("AUFS metadata in old layers is skipped, as Docker skips it; the opaque marker still works", "[unpack]") {
  Sandbox box;
  box.apply({{.path = "a", .content = "a"}, {.path = "d/lower", .content = "lower"}, {.path = "o/lower"}});
  // A layer as Docker's AUFS driver exported them: its metadata folders and
  // files at the root, hard-link targets in .wh..wh.plnk, and the same
  // prefix below the root, where only the opaque marker means something.
  box.apply(
      {
          {.path = ".wh..wh.plnk/", .type = 'd', .mode = 0700},
          {.path = ".wh..wh.plnk/234.5678", .content = "hidden"},
          {.path = ".wh..wh.plnk/sub/deeper", .content = "hidden"},
          {.path = ".wh..wh.aufs", .content = "aufs"},
          {.path = ".wh..wh.orph/", .type = 'd'},
          {.path = ".wh..wh.orph/x", .type = 'l', .link = "/etc/shadow"},
          {.path = ".wh..wh.x"},
          {.path = ".wh..wh..opqx"},
          {.path = "d/.wh..wh.aufs"},
          {.path = "d/.wh..wh..opqx"},
          {.path = "d/new", .content = "new"},
          {.path = "o/.wh..wh..opq"},
          {.path = "o/new", .content = "new"},
      },
      "layer 2");
  // Nothing of the metadata appeared, nothing of the lower layer went but
  // what the opaque marker hides.
  REQUIRE(names_in(box.root) == std::vector<std::string>{"a", "d", "o"});
  REQUIRE(names_in(box.root / "d") == std::vector<std::string>{"lower", "new"});
  REQUIRE(names_in(box.root / "o") == std::vector<std::string>{"new"});
  // Below the root such a name used as a folder is refused, as every other whiteout is.
  REQUIRE(box.error({{.path = "d/.wh..wh.plnk/1.2", .content = "x"}}) ==
          "layer 1: entry \"d/.wh..wh.plnk/1.2\": invalid whiteout: \".wh..wh.plnk\" is used as a directory");
}

TEST_CASE("special bits, owners, device nodes and fifos", "[unpack][root]") {
  Sandbox box;
  box.apply({
      {.path = "usr/bin/su", .mode = 04755, .content = "su", .uid = 1000, .gid = 1000},
      {.path = "usr/bin/wall", .mode = 02755, .content = "wall", .gid = 5},
      {.path = "tmp/", .type = 'd', .mode = 01777},
      {.path = "srv/", .type = 'd', .mode = 02770, .uid = 33, .gid = 33},
      {.path = "dev/null", .type = 'c', .mode = 0666, .major = 1, .minor = 3},
      {.path = "dev/loop9", .type = 'b', .mode = 0660, .gid = 6, .major = 7, .minor = 9},
      {.path = "run/fifo", .type = 'p', .mode = 0620, .uid = 7},
      {.path = "home/link", .type = 'l', .link = "/", .uid = 1000, .gid = 1000},
  });
  struct stat su = lstat_of(box.root / "usr/bin/su");
  REQUIRE((su.st_mode & 07777) == 04755);
  REQUIRE(su.st_uid == 1000);
  REQUIRE(su.st_gid == 1000);
  REQUIRE(perm_of(box.root / "usr/bin/wall") == 02755);
  REQUIRE(lstat_of(box.root / "usr/bin/wall").st_gid == 5);
  REQUIRE(perm_of(box.root / "tmp") == 01777);
  struct stat srv = lstat_of(box.root / "srv");
  REQUIRE((srv.st_mode & 07777) == 02770);
  REQUIRE(srv.st_uid == 33);

  struct stat null = lstat_of(box.root / "dev/null");
  REQUIRE(S_ISCHR(null.st_mode));
  REQUIRE(major(null.st_rdev) == 1);
  REQUIRE(minor(null.st_rdev) == 3);
  REQUIRE((null.st_mode & 07777) == 0666);
  struct stat loop = lstat_of(box.root / "dev/loop9");
  REQUIRE(S_ISBLK(loop.st_mode));
  REQUIRE(loop.st_rdev == makedev(7, 9));
  REQUIRE((loop.st_mode & 07777) == 0660);
  REQUIRE(loop.st_gid == 6);
  struct stat fifo = lstat_of(box.root / "run/fifo");
  REQUIRE(S_ISFIFO(fifo.st_mode));
  REQUIRE((fifo.st_mode & 07777) == 0620);
  REQUIRE(fifo.st_uid == 7);
  struct stat link = lstat_of(box.root / "home/link");
  REQUIRE(S_ISLNK(link.st_mode));
  REQUIRE(link.st_uid == 1000);

  REQUIRE(box.error({{.path = "f", .uid = 4294967295}}) == "layer 1: entry \"f\": uid 4294967295 is out of range");
  REQUIRE(box.error({{.path = "f", .gid = 4294967296}}) == "layer 1: entry \"f\": gid 4294967296 is out of range");
  REQUIRE(box.nothing_outside());
}

TEST_CASE("without privileges, owners stay the caller's and device nodes are skipped", "[unpack][root]") {
  Sandbox box;
  constexpr uid_t nobody = 65534;
  REQUIRE(::chmod(box.scratch.path.c_str(), 0755) == 0);  // mkdtemp's 0700 would keep nobody out
  REQUIRE(::chown(box.root.c_str(), nobody, nobody) == 0);
  std::string tar = make_tar({
      {.path = "dev/null", .type = 'c', .mode = 0666, .major = 1, .minor = 3},
      {.path = "run/fifo", .type = 'p', .mode = 0600},
      {.path = "etc/owned", .mode = 0640, .content = "x", .uid = 1000, .gid = 1000},
  });
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (::setresgid(nobody, nobody, nobody) != 0 || ::setresuid(nobody, nobody, nobody) != 0) ::_exit(3);
    try {
      imgbuild::apply_layer(box.root, bytes(tar), "layer 1");  // default options: not root, so no chown
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      ::_exit(2);
    }
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  REQUIRE(names_in(box.root / "dev").empty());
  REQUIRE(S_ISFIFO(lstat_of(box.root / "run/fifo").st_mode));
  struct stat owned = lstat_of(box.root / "etc/owned");
  REQUIRE(owned.st_uid == nobody);
  REQUIRE(owned.st_gid == nobody);
  REQUIRE((owned.st_mode & 07777) == 0640);
}

TEST_CASE("extended attributes are restored, overlayfs's own are not", "[unpack][root]") {
  Sandbox box;
  fs::path probe = box.scratch.path / "probe";
  spit(probe, "");
  bool user_xattrs = ::setxattr(probe.c_str(), "user.probe", "1", 1, 0) == 0;
  if (!user_xattrs)
    WARN("the file system of /tmp has no user xattrs: " << std::strerror(errno) << "; user.* not checked");
  fs::remove(probe);
  // struct vfs_cap_data, revision 2, effective: cap_net_bind_service (10) permitted.
  std::string cap("\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
  box.apply({
      {.path = "d/", .type = 'd', .xattrs = {{"user.test", "on a dir"}, {"trusted.overlay.opaque", "y"}}},
      {.path = "d/f", .content = "f", .xattrs = {{"user.test", "value"}}},
      {.path = "bin/ping", .mode = 0755, .content = "ELF", .uid = 1000, .xattrs = {{"security.capability", cap}}},
      // user.* is not allowed on a symlink: skipped, not an error.
      {.path = "l", .type = 'l', .link = "d", .xattrs = {{"user.test", "symlink"}}},
  });
  if (user_xattrs) {
    REQUIRE(xattr_of(box.root / "d", "user.test") == "on a dir");
    REQUIRE(xattr_of(box.root / "d/f", "user.test") == "value");
  }
  REQUIRE(xattr_of(box.root / "l", "user.test") == "<No data available>");
  REQUIRE(xattr_of(box.root / "d", "trusted.overlay.opaque") == "<No data available>");
  // Survives the chown to uid 1000, which clears file capabilities.
  REQUIRE(xattr_of(box.root / "bin/ping", "security.capability") == cap);
  REQUIRE(lstat_of(box.root / "bin/ping").st_uid == 1000);
}

TEST_CASE("a base layer's xattrs other than capabilities and user.* are dropped", "[unpack][root]") {
  Sandbox box;
  // What a hostile base image could plant: trusted.* (the host's, settable
  // by a root unpack), imgbuild's own snapshot mark, overlayfs's state.
  box.apply({
      {.path = "d/",
       .type = 'd',
       .xattrs = {{"trusted.imgbuild.snapshot", "1"}, {"user.imgbuild.snapshot", "1"}, {"user.overlay.opaque", "y"}}},
      {.path = "d/f", .content = "f", .xattrs = {{"trusted.evil", "x"}, {"user.kept", "k"}}},
  });
  for (const char* name : {"trusted.imgbuild.snapshot", "user.imgbuild.snapshot", "user.overlay.opaque"})
    CHECK(xattr_of(box.root / "d", name) == "<No data available>");
  CHECK(xattr_of(box.root / "d/f", "trusted.evil") == "<No data available>");
  if (::geteuid() == 0) {
    // Proves the drop: root could have set it.
    fs::path probe = box.scratch.path / "probe";
    spit(probe, "");
    CHECK(::setxattr(probe.c_str(), "trusted.evil", "x", 1, 0) == 0);
    fs::remove(probe);
  }
  if (xattr_of(box.root / "d/f", "user.kept") != "<Operation not supported>")
    CHECK(xattr_of(box.root / "d/f", "user.kept") == "k");
  REQUIRE(box.nothing_outside());
}

TEST_CASE("long names work up to the file system's limits", "[unpack]") {
  Sandbox box;
  box.options.use_openat2 = use_openat2_or_walk();
  std::string c49(49, 'n');
  std::string long_path = c49 + "/" + c49 + "/" + c49 + "/" + c49 + "x/file";  // 206 bytes
  std::string c255(255, 'm');
  box.apply({{.path = long_path, .content = "deep"}, {.path = c255, .content = "255"}});
  REQUIRE(slurp(box.root / long_path) == "deep");
  REQUIRE(slurp(box.root / c255) == "255");

  std::string c300(300, 'z');
  // A name from a layer is quoted cut at 300 bytes: a hostile one cannot make a huge message.
  REQUIRE(box.error({{.path = "dir/" + c300}}) ==
          "layer 1: entry \"dir/" + c300.substr(4) + "\"...: path has a component longer than 255 bytes");
  std::string huge;
  for (int i = 0; i < 20; ++i) huge += c255 + "/";
  huge += "f";
  REQUIRE(box.error({{.path = huge}}) ==
          "layer 1: entry \"" + huge.substr(0, 300) + "\"...: path is longer than 4095 bytes");
  REQUIRE(box.error({{.path = "h", .type = 'h', .link = c300}}) ==
          "layer 1: entry \"h\": hardlink target \"" + c300 + "\" has a component longer than 255 bytes");
  REQUIRE(names_in(box.root) == std::vector<std::string>{c255, c49});
}

TEST_CASE("entries replace what stands at their path without following it", "[unpack]") {
  Sandbox box;
  box.apply({
      {.path = "file-then-dir", .content = "f"},
      {.path = "dir-then-file/", .type = 'd'},
      {.path = "dir-then-file/inner", .content = "i"},
      {.path = "dir-then-file/sub/deep", .content = "d"},
      {.path = "kept/", .type = 'd', .mode = 0700},
      {.path = "kept/f", .content = "f"},
      {.path = "target/", .type = 'd'},
      {.path = "target/t", .content = "t"},
      {.path = "sym", .type = 'l', .link = "target"},
      {.path = "sym-to-outside", .type = 'l', .link = "../outside/victim"},
      {.path = "a", .content = "old"},
      {.path = "b", .type = 'h', .link = "a"},
  });
  box.apply(
      {
          {.path = "file-then-dir/", .type = 'd', .mode = 0751},
          {.path = "file-then-dir/in", .content = "in"},
          {.path = "dir-then-file", .content = "now a file"},
          {.path = "kept/", .type = 'd', .mode = 0755},
          {.path = "sym/", .type = 'd', .mode = 0700},
          {.path = "sym-to-outside", .content = "written in the root"},
          {.path = "a", .content = "new"},
      },
      "layer 2");
  REQUIRE(perm_of(box.root / "file-then-dir") == 0751);
  REQUIRE(names_in(box.root / "file-then-dir") == std::vector<std::string>{"in"});
  REQUIRE(fs::is_regular_file(fs::symlink_status(box.root / "dir-then-file")));
  REQUIRE(slurp(box.root / "dir-then-file") == "now a file");
  REQUIRE(perm_of(box.root / "kept") == 0755);
  REQUIRE(names_in(box.root / "kept") == std::vector<std::string>{"f"});
  REQUIRE(fs::is_directory(fs::symlink_status(box.root / "sym")));
  REQUIRE(names_in(box.root / "sym").empty());
  REQUIRE(names_in(box.root / "target") == std::vector<std::string>{"t"});
  REQUIRE(slurp(box.root / "sym-to-outside") == "written in the root");
  // The new "a" is a new file: the old one lives on under its other name.
  REQUIRE(slurp(box.root / "a") == "new");
  REQUIRE(slurp(box.root / "b") == "old");
  REQUIRE(box.nothing_outside());

  REQUIRE(box.error({{.path = ".", .content = "x"}}) ==
          "layer 1: entry \".\": only a directory can stand at the image root");
  REQUIRE(box.error({{.path = ""}}) == "layer 1: entry \"\": empty path");
}

TEST_CASE("unpack_image builds the root from layers in order and removes it on error", "[unpack]") {
  ScratchDir scratch;
  fs::path root = scratch.path / "rootfs";
  fs::path one = scratch.path / "one.tar.gz", two = scratch.path / "two.tar", bad = scratch.path / "bad.tar.gz";
  spit(one, make_tar({{.path = "etc/os-release", .content = "ID=one\n"}, {.path = "old", .content = "old"}},
                     Compression::Gzip));
  spit(two, make_tar({{.path = ".wh.old"}, {.path = "new", .content = "new"}}));
  spit(bad, make_tar({{.path = "fine", .content = "fine"}, {.path = "x/../../up"}}, Compression::Gzip));

  imgbuild::unpack_image(root, {{one, "layer 1"}, {two, "layer 2"}});
  REQUIRE(names_in(root) == std::vector<std::string>{"etc", "new"});
  REQUIRE(slurp(root / "etc/os-release") == "ID=one\n");
  REQUIRE(perm_of(root) == 0755);
  REQUIRE(error_of([&] { imgbuild::unpack_image(root, {}); }) == "cannot create " + root.string() + ": File exists");

  fs::path root2 = scratch.path / "rootfs2";
  REQUIRE(error_of([&] {
            imgbuild::unpack_image(root2, {{one, "layer 1"}, {bad, "layer 2 (sha256:abcd)"}});
          }) == "layer 2 (sha256:abcd): entry \"x/../../up\": path escapes the image root");
  REQUIRE_FALSE(fs::exists(fs::symlink_status(root2)));
  fs::path missing = scratch.path / "missing.tar";
  REQUIRE(error_of([&] {
            imgbuild::unpack_image(root2, {{missing, "layer 1"}});
          }) == "layer 1: cannot open " + missing.string() + ": No such file or directory");
  REQUIRE(names_in(scratch.path) == std::vector<std::string>{"bad.tar.gz", "one.tar.gz", "rootfs", "two.tar"});
}

TEST_CASE("malformed layers are clean errors", "[unpack]") {
  Sandbox box;
  std::string payload;
  for (int i = 0; i < 20000; ++i) payload += std::to_string(i * 7919) + "\n";
  std::string gz = make_tar({{.path = "a", .content = "a"}, {.path = "big", .content = payload}}, Compression::Gzip);

  std::string cut = gz.substr(0, gz.size() / 2);
  REQUIRE(error_of([&] { imgbuild::apply_layer(box.root, bytes(cut), "layer 3"); }) ==
          "layer 3: entry \"big\": truncated gzip input");
  std::string random(4096, '\0');
  for (size_t i = 0; i < random.size(); ++i) random[i] = static_cast<char>((i * 2654435761u) >> 13);
  REQUIRE(error_of([&] { imgbuild::apply_layer(box.root, bytes(random), "layer 1"); }) ==
          "layer 1: Unrecognized archive format");
  REQUIRE(error_of([&] { imgbuild::apply_layer(box.root, bytes(""), "layer 1"); }) ==
          "layer 1: Unrecognized archive format");

  std::string zip;
  {
    std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(), &archive_write_free);
    archive_write_set_format_zip(a.get());
    archive_write_open2(a.get(), &zip, nullptr, append_to_string, nullptr, nullptr);
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), &archive_entry_free);
    archive_entry_copy_pathname(e.get(), "z");
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_size(e.get(), 1);
    archive_write_header(a.get(), e.get());
    archive_write_data(a.get(), "z", 1);
    archive_write_close(a.get());
  }
  REQUIRE(error_of([&] { imgbuild::apply_layer(box.root, bytes(zip), "layer 1"); }) ==
          "layer 1: Unrecognized archive format");
  REQUIRE(box.nothing_outside());
}

TEST_CASE("remove_tree removes deep trees without following symlinks", "[unpack]") {
  Sandbox box;
  spit(box.outside / "precious", "p");
  fs::path tree = box.root / "tree";
  fs::path deep = tree;
  for (int i = 0; i < 300; ++i) deep /= "d";
  fs::create_directories(deep);
  spit(deep / "leaf", "l");
  fs::create_directory_symlink(box.outside, tree / "to-outside");
  fs::create_directory_symlink(box.outside, deep / "to-outside");
  REQUIRE(::mkfifo((tree / "fifo").c_str(), 0600) == 0);

  // One directory open at a time: 300 levels with 32 descriptors.
  struct rlimit old_limit;
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &old_limit) == 0);
  struct rlimit low = old_limit;
  low.rlim_cur = 32;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &low) == 0);
  std::string error = error_of([&] { imgbuild::remove_tree(tree); });
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &old_limit) == 0);
  REQUIRE(error == "");
  REQUIRE(names_in(box.root).empty());
  REQUIRE(names_in(box.outside) == std::vector<std::string>{"precious"});

  fs::create_directory_symlink(box.outside, box.root / "link");
  imgbuild::remove_tree(box.root / "link");
  imgbuild::remove_tree(box.root / "never-existed");
  REQUIRE(names_in(box.root).empty());
  REQUIRE(names_in(box.outside) == std::vector<std::string>{"precious"});
  REQUIRE(error_of([] { imgbuild::remove_tree("/"); }) == "cannot remove /: not a path to remove");
  REQUIRE(error_of([] { imgbuild::remove_tree(".."); }) == "cannot remove ..: not a path to remove");
}

TEST_CASE("a sibling directory sharing the root's name prefix is out of reach", "[unpack]") {
  Sandbox box;
  box.options.use_openat2 = use_openat2_or_walk();
  fs::path victim = box.scratch.path / "root-victim", rootx = box.scratch.path / "rootx";
  fs::create_directory(victim);
  fs::create_directory(rootx);
  auto untouched = [&] {
    return names_in(box.scratch.path) == std::vector<std::string>{"outside", "root", "root-victim", "rootx"} &&
           fs::is_empty(victim) && fs::is_empty(rootx) && fs::is_empty(box.outside);
  };

  REQUIRE(box.error({{.path = "../root-victim/pwned", .content = "x"}}) ==
          "layer 1: entry \"../root-victim/pwned\": path escapes the image root");
  REQUIRE(box.error({{.path = "../rootx/pwned", .content = "x"}}) ==
          "layer 1: entry \"../rootx/pwned\": path escapes the image root");
  REQUIRE(box.error({{.path = "h", .type = 'h', .link = "../root-victim/x"}}) ==
          "layer 1: entry \"h\": hardlink target \"../root-victim/x\" escapes the image root");
  REQUIRE(names_in(box.root).empty());
  REQUIRE(untouched());

  // Through symlinks, "../root-victim" and its absolute host path mean paths
  // inside the image, where they do not exist.
  box.apply({
      {.path = "s", .type = 'l', .link = "../root-victim"},
      {.path = "x", .type = 'l', .link = "../../rootx"},
      {.path = "abs", .type = 'l', .link = victim.string()},
  });
  REQUIRE(box.error({{.path = "s/pwned", .content = "x"}}, "layer 2") ==
          "layer 2: entry \"s/pwned\": cannot open directory \"s\": No such file or directory");
  REQUIRE(box.error({{.path = "x/pwned", .content = "x"}}, "layer 2") ==
          "layer 2: entry \"x/pwned\": cannot open directory \"x\": No such file or directory");
  REQUIRE(box.error({{.path = "abs/pwned", .content = "x"}}, "layer 2") ==
          "layer 2: entry \"abs/pwned\": cannot open directory \"abs\": No such file or directory");
  REQUIRE(box.error({{.path = "s/.wh.pwned"}}, "layer 2") == "");
  REQUIRE(names_in(box.root) == std::vector<std::string>{"abs", "s", "x"});
  REQUIRE(untouched());

  // Once the image has its own "root-victim", the symlink leads there.
  box.apply({{.path = "root-victim/", .type = 'd'}, {.path = "s/pwned", .content = "in"}}, "layer 3");
  REQUIRE(slurp(box.root / "root-victim/pwned") == "in");
  REQUIRE(untouched());
}

TEST_CASE("a root that is a symlink is unpacked into the directory it names", "[unpack]") {
  ScratchDir scratch;
  UnpackOptions options;
  options.use_openat2 = use_openat2_or_walk();
  fs::path real = scratch.path / "real", link = scratch.path / "link", outside = scratch.path / "outside";
  fs::create_directory(real);
  fs::create_directory(outside);
  fs::create_directory_symlink(real, link);
  auto apply = [&](const std::vector<Entry>& entries, const std::string& label) {
    imgbuild::apply_layer(link, bytes(make_tar(entries)), label, options);
  };

  // apply_layer follows the symlink to the root itself, then keeps every entry inside it.
  apply({{.path = "etc/hostname", .content = "box\n"}, {.path = "up", .type = 'l', .link = "../../.."}}, "layer 1");
  apply({{.path = "up/pwned", .content = "p"}, {.path = "up/outside/pwned", .content = "o"}}, "layer 2");
  REQUIRE(fs::is_symlink(link));
  REQUIRE(fs::read_symlink(link) == real);
  REQUIRE(slurp(real / "etc/hostname") == "box\n");
  REQUIRE(slurp(real / "pwned") == "p");
  REQUIRE(slurp(real / "outside/pwned") == "o");
  REQUIRE(error_of([&] { apply({{.path = "../outside/x"}}, "layer 3"); }) ==
          "layer 3: entry \"../outside/x\": path escapes the image root");
  REQUIRE(error_of([&] { apply({{.path = "../link/x"}}, "layer 3"); }) ==
          "layer 3: entry \"../link/x\": path escapes the image root");
  REQUIRE(names_in(real) == std::vector<std::string>{"etc", "outside", "pwned", "up"});
  REQUIRE(names_in(scratch.path) == std::vector<std::string>{"link", "outside", "real"});
  REQUIRE(fs::is_empty(outside));

  // unpack_image makes its root: a symlink standing there, dangling or not, is
  // refused and left alone, and nothing is made where it points.
  fs::path layer = scratch.path / "layer.tar";
  spit(layer, make_tar({{.path = "f", .content = "f"}}));
  REQUIRE(error_of([&] {
            imgbuild::unpack_image(link, {{layer, "layer 1"}}, options);
          }) == "cannot create " + link.string() + ": File exists");
  fs::path dangling = scratch.path / "dangling", missing = scratch.path / "missing";
  fs::create_directory_symlink(missing, dangling);
  REQUIRE(error_of([&] {
            imgbuild::unpack_image(dangling, {{layer, "layer 1"}}, options);
          }) == "cannot create " + dangling.string() + ": File exists");
  REQUIRE(fs::read_symlink(link) == real);
  REQUIRE(fs::read_symlink(dangling) == missing);
  REQUIRE(names_in(real) == std::vector<std::string>{"etc", "outside", "pwned", "up"});
  REQUIRE(names_in(scratch.path) == std::vector<std::string>{"dangling", "layer.tar", "link", "outside", "real"});
  REQUIRE(fs::is_empty(outside));
}

TEST_CASE("a folder an entry replaced is resolved again for the entries after it", "[unpack]") {
  // The folder opened for one entry serves the next entries in it: only
  // while they follow one another, never after its path was given over to
  // something else.
  Sandbox box;
  box.options.use_openat2 = use_openat2_or_walk();
  box.apply({
      {.path = "target/", .type = 'd'},
      {.path = "d/", .type = 'd'},
      {.path = "d/x", .content = "in the folder d"},
      {.path = "elsewhere/z", .content = "z"},
      {.path = "d/w", .content = "in d again"},
      {.path = "d", .type = 'l', .link = "target"},
      {.path = "d/y", .content = "through the symlink d"},
  });
  REQUIRE(fs::read_symlink(box.root / "d") == "target");
  REQUIRE(fs::is_directory(fs::symlink_status(box.root / "target")));
  REQUIRE(names_in(box.root / "target") == std::vector<std::string>{"y"});
  REQUIRE(slurp(box.root / "target/y") == "through the symlink d");
  REQUIRE(slurp(box.root / "elsewhere/z") == "z");
  REQUIRE(box.nothing_outside());
}

TEST_CASE("a chain of symlinks is followed inside the root, across layers or within one", "[unpack]") {
  Sandbox box;
  box.options.use_openat2 = use_openat2_or_walk();
  bool across_layers = GENERATE(true, false);
  UNSCOPED_INFO((across_layers ? "across layers" : "within one layer"));
  std::vector<Entry> links = {
      {.path = "tmp/", .type = 'd'},
      {.path = "a", .type = 'l', .link = "b"},
      {.path = "b", .type = 'l', .link = "../../outside"},
      {.path = "c", .type = 'l', .link = "d"},
      {.path = "d", .type = 'l', .link = box.outside.string()},
      {.path = "e", .type = 'l', .link = "f"},
      {.path = "f", .type = 'l', .link = "../../tmp"},
      {.path = "g", .type = 'l', .link = "/e"},
  };
  auto with_links = [&](const Entry& write) {
    if (across_layers) return box.error({write}, "layer 2");
    std::vector<Entry> all = links;
    all.push_back(write);
    return box.error(all, "layer 2");
  };
  if (across_layers) box.apply(links);

  REQUIRE(with_links({.path = "a/pwned", .content = "x"}) ==
          "layer 2: entry \"a/pwned\": cannot open directory \"a\": No such file or directory");
  REQUIRE(with_links({.path = "c/pwned", .content = "x"}) ==
          "layer 2: entry \"c/pwned\": cannot open directory \"c\": No such file or directory");
  REQUIRE(box.nothing_outside());
  // Two hops that end inside the root write there.
  REQUIRE(with_links({.path = "e/in", .content = "e"}) == "");
  REQUIRE(with_links({.path = "g/in-too", .content = "g"}) == "");
  REQUIRE(names_in(box.root / "tmp") == std::vector<std::string>{"in", "in-too"});
  REQUIRE(slurp(box.root / "tmp/in") == "e");
  REQUIRE(names_in(box.root) == std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g", "tmp"});
  REQUIRE(box.nothing_outside());
}

TEST_CASE("a whiteout under a symlinked directory deletes nothing outside the root", "[unpack]") {
  Sandbox box;
  box.options.use_openat2 = use_openat2_or_walk();
  spit(box.outside / "file", "precious");
  fs::create_directory(box.outside / "dir");
  spit(box.outside / "dir/inner", "inner");
  auto victim_intact = [&] {
    return names_in(box.scratch.path) == std::vector<std::string>{"outside", "root"} &&
           names_in(box.outside) == std::vector<std::string>{"dir", "file"} &&
           slurp(box.outside / "file") == "precious" &&
           names_in(box.outside / "dir") == std::vector<std::string>{"inner"};
  };

  box.apply({
      {.path = "d", .type = 'l', .link = "../outside"},
      {.path = "deep", .type = 'l', .link = "../../../../../../outside"},
      {.path = "abs", .type = 'l', .link = box.outside.string()},
      {.path = "sys", .type = 'l', .link = "/etc"},
      {.path = "inner/", .type = 'd'},
      {.path = "inner/file", .content = "image's"},
      {.path = "inner/keep", .content = "keep"},
      {.path = "in", .type = 'l', .link = "/inner"},
  });
  box.apply(
      {
          {.path = "d/.wh.file"},
          {.path = "d/.wh.dir"},
          {.path = "d/.wh..wh..opq"},
          {.path = "deep/.wh.file"},
          {.path = "abs/.wh.file"},
          {.path = "abs/.wh..wh..opq"},
          {.path = "sys/.wh.hostname"},
          {.path = "sys/.wh..wh..opq"},
          {.path = "in/.wh.file"},
      },
      "layer 2");
  REQUIRE(victim_intact());
  // The one symlink that leads somewhere inside the image is followed there.
  REQUIRE(names_in(box.root / "inner") == std::vector<std::string>{"keep"});
  REQUIRE(names_in(box.root) == std::vector<std::string>{"abs", "d", "deep", "in", "inner", "sys"});
  // A whiteout of the symlink itself removes the symlink, not its target.
  box.apply({{.path = ".wh.d"}, {.path = ".wh.abs"}}, "layer 3");
  REQUIRE(names_in(box.root) == std::vector<std::string>{"deep", "in", "inner", "sys"});
  // "/etc" inside an image whose "etc" is that very symlink is a loop: an error.
  box.apply({{.path = "etc", .type = 'l', .link = "/etc"}}, "layer 4");
  REQUIRE(box.error({{.path = "etc/.wh.hostname"}}, "layer 5") ==
          "layer 5: entry \"etc/.wh.hostname\": cannot open directory \"etc\": Too many levels of symbolic links");
  REQUIRE(victim_intact());
}

TEST_CASE("a file replacing a symlink replaces the symlink, not its target", "[unpack]") {
  Sandbox box;
  box.options.use_openat2 = use_openat2_or_walk();
  spit(box.outside / "file", "victim");
  box.apply({
      {.path = "x", .type = 'l', .link = "../outside/file"},
      {.path = "y", .type = 'l', .link = box.outside.string() + "/file"},
      {.path = "z", .type = 'l', .link = "../outside"},
  });
  box.apply(
      {
          {.path = "x", .mode = 0600, .content = "new x"},
          {.path = "y", .content = "new y"},
          {.path = "z/", .type = 'd', .mode = 0700},
      },
      "layer 2");
  REQUIRE(fs::is_regular_file(fs::symlink_status(box.root / "x")));
  REQUIRE(slurp(box.root / "x") == "new x");
  REQUIRE(perm_of(box.root / "x") == 0600);
  REQUIRE(fs::is_regular_file(fs::symlink_status(box.root / "y")));
  REQUIRE(slurp(box.root / "y") == "new y");
  REQUIRE(fs::is_directory(fs::symlink_status(box.root / "z")));
  REQUIRE(perm_of(box.root / "z") == 0700);
  REQUIRE(names_in(box.outside) == std::vector<std::string>{"file"});
  REQUIRE(slurp(box.outside / "file") == "victim");
  REQUIRE(perm_of(box.outside / "file") != 0700);
  REQUIRE(names_in(box.scratch.path) == std::vector<std::string>{"outside", "root"});
}

TEST_CASE("out-of-range owners are errors naming the entry, whether or not owners are restored", "[unpack][root]") {
  Sandbox box;
  // Checked whether or not owners are restored.
  box.options.preserve_owners = GENERATE(false, true);
  REQUIRE(box.error({{.path = "f", .content = "x", .uid = int64_t{1} << 40}}) ==
          "layer 1: entry \"f\": uid 1099511627776 is out of range");
  REQUIRE(box.error({{.path = "g", .content = "x", .gid = int64_t{1} << 40}}) ==
          "layer 1: entry \"g\": gid 1099511627776 is out of range");
  REQUIRE(box.error({{.path = "d/", .type = 'd', .uid = 4294967295}}) ==
          "layer 1: entry \"d/\": uid 4294967295 is out of range");
  REQUIRE(box.error({{.path = "l", .type = 'l', .link = "x", .gid = 4294967295}}) ==
          "layer 1: entry \"l\": gid 4294967295 is out of range");
  REQUIRE(box.error({{.path = "ok", .content = "x", .uid = 4294967294, .gid = 4294967294}}) == "");
  REQUIRE(names_in(box.root) == std::vector<std::string>{"ok"});
  if (box.options.preserve_owners) REQUIRE(lstat_of(box.root / "ok").st_uid == 4294967294u);
  REQUIRE(box.nothing_outside());
}

TEST_CASE("a device number the kernel cannot hold is an error naming the entry", "[unpack][root]") {
  Sandbox box;
  // Checked before any node is made: refused alike with or without CAP_MKNOD.
  box.options.preserve_owners = GENERATE(false, true);
  REQUIRE(box.error({{.path = "dev/big-major", .type = 'c', .major = 1u << 20, .minor = 1}}) ==
          "layer 1: entry \"dev/big-major\": device number 1048576:1 is out of range (at most 4095:1048575)");
  REQUIRE(box.error({{.path = "dev/big-minor", .type = 'b', .major = 1, .minor = 1u << 20}}) ==
          "layer 1: entry \"dev/big-minor\": device number 1:1048576 is out of range (at most 4095:1048575)");
  REQUIRE(box.error({{.path = "dev/major-4096", .type = 'c', .major = 4096, .minor = 0}}) ==
          "layer 1: entry \"dev/major-4096\": device number 4096:0 is out of range (at most 4095:1048575)");
  // makedev() keeps 32 bits of each: this one would be 0:0, overlayfs's whiteout.
  REQUIRE(box.error({{.path = "dev/whiteout", .type = 'c', .major = uint64_t{1} << 32, .minor = 0}}) ==
          "layer 1: entry \"dev/whiteout\": device number 4294967296:0 is out of range (at most 4095:1048575)");
  REQUIRE(names_in(box.root / "dev").empty());
  // The largest numbers the kernel holds are still devices.
  REQUIRE(box.error({{.path = "dev/top", .type = 'c', .major = 4095, .minor = 1048575}}) == "");
  struct stat top {};
  if (::lstat((box.root / "dev/top").c_str(), &top) == 0) {
    CHECK(major(top.st_rdev) == 4095);
    CHECK(minor(top.st_rdev) == 1048575);
  }
  REQUIRE(box.nothing_outside());
}

TEST_CASE("a linked copy of a root takes a layer without changing the original", "[unpack]") {
  Sandbox box;
  box.apply({
      {.path = "bin/", .type = 'd', .mode = 0711},
      {.path = "bin/sh", .mode = 04755, .content = "#!shell"},
      {.path = "etc/", .type = 'd', .mode = 0755},
      {.path = "etc/hostname", .content = "box\n"},
      {.path = "etc/motd", .content = "hello\n"},
      {.path = "lib", .type = 'l', .link = "usr/lib"},
  });
  fs::path copy = box.scratch.path / "copy";
  imgbuild::link_tree(box.root, copy);
  REQUIRE(perm_of(copy / "bin") == 0711);
  REQUIRE(perm_of(copy / "bin/sh") == 04755);
  REQUIRE(fs::read_symlink(copy / "lib") == "usr/lib");
  REQUIRE(lstat_of(copy / "etc/motd").st_ino == lstat_of(box.root / "etc/motd").st_ino);
  REQUIRE(lstat_of(copy / "etc").st_ino != lstat_of(box.root / "etc").st_ino);

  imgbuild::apply_layer(copy,
                        bytes(make_tar({
                            {.path = "etc/hostname", .mode = 0600, .content = "changed\n"},
                            {.path = "etc/.wh.motd", .content = ""},
                            {.path = "bin/", .type = 'd', .mode = 0700},
                        })),
                        "layer 2", box.options);
  CHECK(slurp(copy / "etc/hostname") == "changed\n");
  CHECK(perm_of(copy / "etc/hostname") == 0600);
  CHECK_FALSE(fs::exists(copy / "etc/motd"));
  CHECK(perm_of(copy / "bin") == 0700);
  // The original root is as it was.
  CHECK(slurp(box.root / "etc/hostname") == "box\n");
  CHECK(perm_of(box.root / "etc/hostname") == 0644);
  CHECK(slurp(box.root / "etc/motd") == "hello\n");
  CHECK(perm_of(box.root / "bin") == 0711);
  CHECK_THROWS(imgbuild::link_tree(box.root, copy));
}

TEST_CASE("a root shares the files a root of the same step wrote alike, and nothing through a symlink", "[unpack]") {
  Sandbox box;  // box.root: the root of an earlier build
  const std::string big(20000, 'g');
  auto layer = [&](const std::string& main) {
    return std::vector<Entry>{
        {.path = "cache/", .type = 'd', .mode = 0755}, {.path = "cache/std.a", .content = big},
        {.path = "cache/main.a", .content = main},     {.path = "cache/private", .mode = 0600, .content = big},
        {.path = "etc/", .type = 'd', .mode = 0755},   {.path = "etc/passwd", .content = big},
    };
  };
  std::vector<Entry> earlier = layer("main 1");
  earlier[3].mode = 0644;  // same bytes, another mode
  box.apply(earlier);
  // The earlier root's etc is a symlink to a host folder holding the same file.
  fs::remove_all(box.root / "etc");
  imgbuild::apply_layer(box.outside, bytes(make_tar({earlier[4], earlier[5]})), "host", box.options);
  fs::create_directory_symlink(box.outside / "etc", box.root / "etc");

  fs::path tree = box.scratch.path / "new";
  fs::create_directory(tree);
  imgbuild::apply_layer(tree, bytes(make_tar(layer("main 2"))), "layer 1", box.options);
  uint64_t shared = imgbuild::share_identical_files(tree, box.root);
  CHECK(lstat_of(tree / "cache/std.a").st_ino == lstat_of(box.root / "cache/std.a").st_ino);
  CHECK(shared == static_cast<uint64_t>(lstat_of(tree / "cache/std.a").st_blocks) * 512);
  CHECK(slurp(tree / "cache/main.a") == "main 2");
  CHECK(lstat_of(tree / "cache/private").st_ino != lstat_of(box.root / "cache/private").st_ino);
  CHECK(perm_of(tree / "cache/private") == 0600);
  CHECK(lstat_of(tree / "etc/passwd").st_ino != lstat_of(box.outside / "etc/passwd").st_ino);
  CHECK(lstat_of(box.outside / "etc/passwd").st_nlink == 1);
  CHECK(names_in(tree / "cache") == std::vector<std::string>{"main.a", "private", "std.a"});
}

TEST_CASE("a root shares what its layers wrote, named by their listing, and nothing through a symlink", "[unpack]") {
  Sandbox box;  // box.root: the root of an earlier build
  const std::string big(20000, 'g');
  std::vector<Entry> layer{
      {.path = "cache/", .type = 'd', .mode = 0755}, {.path = "cache/std.a", .content = big},
      {.path = "cache/main.a", .content = "main 1"}, {.path = "etc/", .type = 'd', .mode = 0755},
      {.path = "etc/passwd", .content = big},        {.path = "base.txt", .content = big},
  };
  box.apply(layer);
  // The earlier root's etc is a symlink to a host folder holding the same file.
  fs::remove_all(box.root / "etc");
  imgbuild::apply_layer(box.outside, bytes(make_tar({layer[3], layer[4]})), "host", box.options);
  fs::create_directory_symlink(box.outside / "etc", box.root / "etc");

  fs::path tree = box.scratch.path / "new";
  fs::create_directory(tree);
  layer[2].content = "main 2";
  imgbuild::apply_layer(tree, bytes(make_tar(layer)), "layer 1", box.options);
  // In the new tree, "lib" is a symlink to the host folder: a listing that
  // names lib/passwd (a lying one) must not reach the host's file.
  fs::create_directory_symlink(box.outside / "etc", tree / "lib");
  const auto host_inode = lstat_of(box.outside / "etc/passwd").st_ino;

  uint64_t shared = imgbuild::share_identical_files(
      tree, box.root, {"/cache/std.a", "/cache/main.a", "/etc/passwd", "/lib/passwd", "/cache/../etc/passwd", "/gone"});
  CHECK(lstat_of(tree / "cache/std.a").st_ino == lstat_of(box.root / "cache/std.a").st_ino);
  CHECK(shared == static_cast<uint64_t>(lstat_of(tree / "cache/std.a").st_blocks) * 512);
  CHECK(slurp(tree / "cache/main.a") == "main 2");
  CHECK(lstat_of(tree / "etc/passwd").st_ino != host_inode);
  CHECK(lstat_of(box.outside / "etc/passwd").st_ino == host_inode);
  CHECK(lstat_of(box.outside / "etc/passwd").st_nlink == 1);
  // Not named: left as the layer wrote it, though the donor has it alike.
  CHECK(lstat_of(tree / "base.txt").st_ino != lstat_of(box.root / "base.txt").st_ino);
  CHECK(names_in(box.outside / "etc") == std::vector<std::string>{"passwd"});
}

TEST_CASE("an unpacked image's own files are read inside its root, never the host's", "[unpack]") {
  // What the sandbox reads /etc/passwd and /etc/group with: a hostile image
  // links them to host files, or makes them a fifo that would block the open.
  Sandbox box;
  const bool use_openat2 = use_openat2_or_walk();
  spit(box.outside / "secret", "host secret\n");
  box.apply({
      {.path = "etc/passwd-real", .content = "root:x:0:0::/:/bin/sh\n"},
      {.path = "etc/passwd", .type = 'l', .link = "/etc/passwd-real"},
      {.path = "etc/group", .type = 'l', .link = (box.outside / "secret").string()},
      {.path = "etc/climb", .type = 'l', .link = "../../../../outside/secret"},
      {.path = "etc/fifo", .type = 'p'},
      {.path = "etc/to-fifo", .type = 'l', .link = "fifo"},
      {.path = "etc/through-file", .type = 'l', .link = "passwd-real/."},
  });
  imgbuild::RootDir root(box.root, use_openat2);
  CHECK(root.read("/etc/passwd") == "root:x:0:0::/:/bin/sh\n");
  CHECK(root.read("etc/../etc/passwd") == "root:x:0:0::/:/bin/sh\n");
  CHECK(root.resolve("/etc/passwd")->str() == "/etc/passwd-real");
  CHECK_FALSE(root.read("/etc/group"));
  CHECK_FALSE(root.read("/etc/climb"));
  CHECK_FALSE(root.read("/etc/fifo"));
  CHECK_FALSE(root.read("/etc/to-fifo"));
  CHECK_FALSE(root.read("/etc"));
  CHECK_FALSE(root.read("/etc/missing"));
  CHECK_FALSE(root.resolve("/etc/through-file"));
  CHECK_FALSE(root.resolve("/etc/passwd-real/.."));
  CHECK(root.resolve("/..")->is_root());
  CHECK(names_in(box.outside) == std::vector<std::string>{"secret"});
}
