// Tests for a RUN step's root stacked as overlay stacks it (a layer unpacked
// alone on the root of the layers below it): that it reads as the root that
// applying the layer makes, that no path through it leads out of the root,
// and that whatever would make the two differ refuses the stack.
#include "sandbox/root_stack.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "layer/image_tree.hpp"
#include "layer/layer.hpp"
#include "layer/unpack.hpp"
#include "sandbox/sandbox.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using imgbuild::LayerEntry;
using imgbuild::RootStack;
using imgbuild::SandboxSpec;
using imgbuild::stacks_plainly;
using namespace imgbuild::test;

namespace {

/// The root of the layers below: an /etc with passwd and group, a /lib that
/// links to /usr/lib, a folder with extended attributes' worth of nothing,
/// and files of several kinds.
void make_below(const fs::path& root) {
  fs::create_directories(root / "etc");
  spit(root / "etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n");
  spit(root / "etc/group", "root:x:0:\napp:x:1000:\n");
  fs::create_directories(root / "usr/lib");
  spit(root / "usr/lib/libc.so", "libc\n");
  fs::create_symlink("usr/lib", root / "lib");
  fs::create_directories(root / "go/src/app");
  fs::permissions(root / "go", fs::perms(0777));
  spit(root / "go/src/app/main.go", "package main // old\n");
  spit(root / "go/src/app/keep.go", "package main // kept\n");
  spit(root / "file", "a file\n");
  fs::create_directories(root / "dir");
}

/// The bytes, type, mode, owner and link target of everything `root` shows,
/// each path looked up through it: what a step on it would see (but times).
std::string view_of(const RootStack& root, const std::set<std::string>& paths) {
  std::ostringstream out;
  for (auto& rel : paths) {
    std::optional<fs::path> at = root.find(rel);
    if (!at) {
      out << rel << " missing\n";
      continue;
    }
    struct stat st {};
    REQUIRE(::lstat(at->c_str(), &st) == 0);
    out << rel << " " << std::oct << st.st_mode << std::dec << " " << st.st_uid << ":" << st.st_gid;
    if (S_ISREG(st.st_mode)) out << " " << slurp(*at);
    if (S_ISLNK(st.st_mode)) out << " -> " << fs::read_symlink(*at).string();
    out << "\n";
  }
  return out.str();
}

/// Every path below `root`, relative.
std::set<std::string> paths_in(const fs::path& root) {
  std::set<std::string> out;
  for (auto& e : fs::recursive_directory_iterator(root)) out.insert(e.path().lexically_relative(root).generic_string());
  return out;
}

/// A layer written by imgbuild from `entries`, applied to a copy of `below`
/// (the root as linking makes it) and unpacked alone (the stack's upper
/// folder).
struct Stacked {
  ScratchDir dir;
  fs::path below, top, linked;
  std::shared_ptr<const imgbuild::ImageTree::Listing> listing;

  Stacked(std::vector<LayerEntry> entries, const std::function<void(const fs::path&)>& make = make_below)
      : below(dir.path / "below"), top(dir.path / "top"), linked(dir.path / "linked") {
    make(below);
    fs::create_directories(dir.path / "blobs");
    imgbuild::LayerBlob blob = imgbuild::write_layer(std::move(entries), dir.path / "blobs", {});
    fs::path path = dir.path / "blobs" / blob.digest.hex();
    imgbuild::link_tree(below, linked);
    imgbuild::apply_layer(linked, path, "the layer");
    fs::create_directory(top);
    imgbuild::apply_layer(top, path, "the layer");
    listing = imgbuild::LayerListings().of(path);
  }

  bool plain() const { return stacks_plainly(top, below, *listing); }

  /// What the stack shows and what the linked root shows, path for path.
  std::pair<std::string, std::string> views() const {
    std::set<std::string> paths = paths_in(below), more = paths_in(top), linked_paths = paths_in(linked);
    paths.insert(more.begin(), more.end());
    paths.insert(linked_paths.begin(), linked_paths.end());
    return {view_of(RootStack({top, below}), paths), view_of(RootStack(linked), paths)};
  }
};

LayerEntry dir_entry(const std::string& path, uint32_t mode = 0755) {
  return {path, LayerEntry::Type::Directory, mode, 0, 0, {}, 0, ""};
}

LayerEntry file_entry(const fs::path& source, const std::string& path, uint32_t mode = 0644) {
  return {path, LayerEntry::Type::File, mode, 0, 0, source, fs::file_size(source), ""};
}

LayerEntry link_entry(const std::string& path, const std::string& target) {
  return {path, LayerEntry::Type::Symlink, 0777, 0, 0, {}, 0, target};
}

LayerEntry whiteout_entry(const fs::path& empty, const std::string& path) {
  return {path, LayerEntry::Type::File, 0644, 0, 0, empty, 0, ""};
}

}  // namespace

TEST_CASE("a copy layer stacked on the root below reads as the root that applying it makes", "[sandbox]") {
  ScratchDir src;
  spit(src.path / "main.go", "package main // new\n");
  spit(src.path / "passwd", "root:x:0:0:root:/root:/bin/sh\ncopied:x:77:77::/home/copied:/bin/sh\n");
  spit(src.path / "lib.so", "mine\n");
  // The layer names go/src/app but not go or go/src: the unpack makes those,
  // and they must show what `below` has there (go is 0777).
  Stacked s({dir_entry("go/src/app", 0750), file_entry(src.path / "main.go", "go/src/app/main.go"),
             file_entry(src.path / "passwd", "etc/passwd"), dir_entry("usr/lib"),
             file_entry(src.path / "lib.so", "usr/lib/mine.so"), link_entry("go/src/app/abs", "/etc/passwd"),
             link_entry("dir/up", "../../../../../../etc/shadow"), dir_entry("new/deep")});
  REQUIRE(s.plain());
  auto [stacked, linked] = s.views();
  CHECK(stacked == linked);
  CHECK(stacked.find("\ngo 40777 ") != std::string::npos);

  RootStack root({s.top, s.below});
  // /etc/passwd replaced by the layer: the step's users are the layer's.
  CHECK(imgbuild::resolve_user(root, "copied").uid == 77);
  CHECK(error_of([&] { imgbuild::resolve_user(root, "app"); }) == "user 'app' is not in the image's /etc/passwd");
  // Symlinks of either folder are followed inside the stack: /lib of the
  // root below leads to the layer's file in /usr/lib.
  CHECK(root.read("/lib/mine.so") == "mine\n");
  CHECK(root.read("/lib/libc.so") == "libc\n");
  CHECK(root.resolve("/lib/mine.so")->str() == "/usr/lib/mine.so");
  CHECK(root.read("/go/src/app/abs") == slurp(src.path / "passwd"));
  CHECK(root.read("/go/src/app/keep.go") == "package main // kept\n");
  CHECK(root.lacks(imgbuild::ImagePath("/go/src/app"), "absent"));
  CHECK_FALSE(root.lacks(imgbuild::ImagePath("/go/src/app"), "keep.go"));
  CHECK_FALSE(root.lacks(imgbuild::ImagePath("/file"), "x"));
}

TEST_CASE("no path through a stack leads out of it", "[sandbox]") {
  ScratchDir host;
  spit(host.path / "secret", "hostuser:x:4242:4242::/:/bin/sh\n");
  Stacked s({link_entry("etc/passwd", (host.path / "secret").string()),
             link_entry("escape", "../../../../../../../../" + host.path.relative_path().string()),
             link_entry("dir/hop", "/escape")});
  REQUIRE(s.plain());
  RootStack root({s.top, s.below});
  // The host's file by an absolute symlink is the image's path of that name: none.
  CHECK(error_of([&] { imgbuild::resolve_user(root, "hostuser"); }) ==
        "user 'hostuser' is not in the image's /etc/passwd");
  CHECK_FALSE(root.read("/etc/passwd"));
  CHECK_FALSE(root.read("/escape/secret"));
  CHECK_FALSE(root.read("/dir/hop/secret"));
  // ".." stops at the root: /escape is /<host folder> inside the image.
  CHECK(root.resolve("/escape/secret") == std::nullopt);
  CHECK_FALSE(root.lacks(imgbuild::ImagePath("/escape"), "secret"));
  // find() takes a path as it is: through a symlink, nothing.
  CHECK_FALSE(root.find("escape/secret"));
  CHECK_FALSE(root.find("dir/hop/secret"));
  auto [stacked, linked] = s.views();
  CHECK(stacked == linked);
}

TEST_CASE("what would make a stack differ from the applied layer refuses it", "[sandbox]") {
  ScratchDir src;
  spit(src.path / "f", "f\n");
  spit(src.path / "empty", "");
  SECTION("a whiteout") {
    Stacked s({dir_entry("etc"), whiteout_entry(src.path / "empty", "etc/.wh.group")});
    CHECK_FALSE(s.plain());
  }
  SECTION("an opaque folder") {
    Stacked s({dir_entry("go/src/app"), whiteout_entry(src.path / "empty", "go/src/app/.wh..wh..opq"),
               file_entry(src.path / "f", "go/src/app/f")});
    CHECK_FALSE(s.plain());
  }
  SECTION("a hard link") {
    LayerEntry link = file_entry(src.path / "f", "dir/f");
    Stacked s({dir_entry("dir"), link});
    // write_layer links nothing: a hard link to a file below, as a pulled layer has it.
    auto listing = std::make_shared<imgbuild::ImageTree::Listing>(*s.listing);
    listing->hardlinks.emplace_back("/dir/g", "/file");
    CHECK(s.plain());
    CHECK_FALSE(stacks_plainly(s.top, s.below, *listing));
  }
  SECTION("a folder over a file") {
    Stacked s({dir_entry("file"), file_entry(src.path / "f", "file/f")});
    CHECK_FALSE(s.plain());
  }
  SECTION("a file over a folder") {
    Stacked s({file_entry(src.path / "f", "dir")});
    CHECK_FALSE(s.plain());
  }
  SECTION("a folder on the way over a symlink below") {
    // Applied, lib/x lands in /usr/lib; stacked, the folder lib the unpack
    // made on the way would hide the link.
    Stacked s({file_entry(src.path / "f", "lib/x")});
    CHECK_FALSE(s.plain());
    CHECK(slurp(s.linked / "usr/lib/x") == "f\n");
  }
  SECTION("a device, which overlay could take for a whiteout") {
    if (::geteuid() != 0) return;  // making a device node needs root
    LayerEntry null = dir_entry("dir/null", 0644);
    null.type = LayerEntry::Type::CharDevice;
    null.device_major = 1;
    null.device_minor = 3;
    Stacked s({dir_entry("dir"), null});
    CHECK_FALSE(s.plain());
  }
  SECTION("a folder below with extended attributes, which applying the layer keeps") {
    Stacked s({dir_entry("dir"), file_entry(src.path / "f", "dir/f")}, [](const fs::path& root) {
      make_below(root);
      REQUIRE(::setxattr((root / "dir").c_str(), "user.kept", "1", 1, 0) == 0);
    });
    CHECK_FALSE(s.plain());
  }
  SECTION("what the walk cannot read, without privileges") {
    if (::geteuid() != 0) return;  // dropping to another user needs root
    Stacked s({dir_entry("dir/shut", 0755), file_entry(src.path / "f", "dir/shut/f")});
    REQUIRE(s.plain());
    for (auto& e : fs::recursive_directory_iterator(s.dir.path)) REQUIRE(::lchown(e.path().c_str(), 65534, 65534) == 0);
    REQUIRE(::chown(s.dir.path.c_str(), 65534, 65534) == 0);
    // A folder of the layer, and the same folder below, that the user cannot read.
    for (const fs::path& shut : {s.top / "dir/shut", s.below / "dir"}) {
      fs::permissions(shut, fs::perms::none);
      pid_t child = ::fork();
      if (child == 0) {
        bool plain = ::setgid(65534) == 0 && ::setuid(65534) == 0 && stacks_plainly(s.top, s.below, *s.listing);
        ::_exit(plain ? 1 : 0);
      }
      int status = 0;
      REQUIRE(::waitpid(child, &status, 0) == child);
      CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
      fs::permissions(shut, fs::perms(0755));
    }
  }
  SECTION("a non-folder over a non-folder stacks") {
    Stacked s({link_entry("file", "dir")});
    CHECK(s.plain());
    auto [stacked, linked] = s.views();
    CHECK(stacked == linked);
  }
}

TEST_CASE("a step on a stack runs on an overlay or not at all", "[sandbox][root]") {
  ScratchDir dir;
  fs::create_directories(dir.path / "top/bin");
  fs::copy_file("/bin/busybox", dir.path / "top/bin/busybox");
  fs::create_directories(dir.path / "below/etc");
  SandboxSpec spec;
  spec.lower = dir.path / "below";
  spec.stacked = {dir.path / "top"};
  spec.upper = dir.path / "upper";
  spec.work = dir.path / "work";
  fs::create_directory(spec.upper);
  fs::create_directory(spec.work);
  spec.argv = {"/bin/busybox", "true"};
  spec.network = imgbuild::StepNetwork::none;
  SECTION("a snapshot") {
    spec.force_snapshot = true;
    CHECK(error_of([&] { imgbuild::run_in_sandbox(spec); }) == "a snapshot step was asked for");
  }
  SECTION("chroot isolation") {
    spec.isolation = imgbuild::Isolation::chroot;
    CHECK(error_of([&] { imgbuild::run_in_sandbox(spec); }) == "chroot isolation mounts no overlay");
  }
  CHECK(names_in(spec.upper).empty());
  CHECK(names_in(dir.path / "below") == std::vector<std::string>{"etc"});
}

TEST_CASE("a step on a stack changes what it changes on the linked root, as the layer's user", "[sandbox][root]") {
  ScratchDir src;
  spit(src.path / "main.go", "package main // new\n");
  spit(src.path / "passwd", "root:x:0:0:root:/root:/bin/sh\nbuilder:x:4321:4321::/home/builder:/bin/sh\n");
  spit(src.path / "mine", "mine\n");
  Stacked s({dir_entry("go/src/app", 0777), file_entry(src.path / "main.go", "go/src/app/main.go"),
             file_entry(src.path / "passwd", "etc/passwd"), file_entry(src.path / "mine", "usr/lib/mine.so")},
            [](const fs::path& root) {
              make_below(root);
              fs::create_directories(root / "bin");
              fs::copy_file("/bin/busybox", root / "bin/busybox");
              for (const char* applet : {"sh", "cat", "rm", "mkdir", "chmod", "id"})
                fs::create_symlink("busybox", root / "bin" / applet);
            });
  REQUIRE(s.plain());
  // What a step changes, one line per entry, on the root of `folders` (the upper first).
  auto changes = [&](std::vector<fs::path> folders, const std::string& user, const std::string& script) {
    ScratchDir step;
    SandboxSpec spec;
    spec.lower = folders.back();
    spec.stacked.assign(folders.begin(), folders.end() - 1);
    spec.upper = step.path / "upper";
    spec.work = step.path / "work";
    fs::create_directory(spec.upper);
    fs::create_directory(spec.work);
    spec.argv = {"/bin/sh", "-c", "set -e; umask 022; " + script};
    spec.env = {"PATH=/bin"};
    spec.user = user;
    spec.network = imgbuild::StepNetwork::none;
    imgbuild::SandboxResult result = imgbuild::run_in_sandbox(spec);
    REQUIRE(result.exit_code == 0);
    CHECK(result.overlay_error.empty());
    spit(step.path / "empty", "");
    std::vector<std::string> out;
    for (auto& e : imgbuild::step_changes(spec, result, {"/proc", "/dev", "/etc/hosts"}, step.path / "empty")) {
      std::ostringstream line;
      line << e.path << " " << static_cast<int>(e.type) << " " << std::oct << e.mode << std::dec << " " << e.uid << ":"
           << e.gid << " " << e.link_target;
      if (e.type == LayerEntry::Type::File) line << " " << slurp(e.source);
      out.push_back(line.str());
    }
    return out;
  };
  const std::string as_root =
      "cat /go/src/app/main.go /go/src/app/keep.go /lib/mine.so >/go/src/app/out; rm /go/src/app/keep.go; "
      "echo x >/lib/new.so; mkdir -p /new/dir; echo y >>/go/src/app/main.go; chmod 600 /go/src/app/main.go; "
      "cat /etc/passwd >/passwd.seen; rm /usr/lib/libc.so";
  std::vector<std::string> stacked = changes({s.top, s.below}, "", as_root);
  CHECK(stacked == changes({s.linked}, "", as_root));
  CHECK(std::find(stacked.begin(), stacked.end(), "go/src/app/.wh.keep.go 0 644 0:0  ") != stacked.end());
  CHECK(std::find(stacked.begin(), stacked.end(), "passwd.seen 0 644 0:0  " + slurp(src.path / "passwd")) !=
        stacked.end());
  const std::string as_builder = "id -u >/go/src/app/uid";
  std::vector<std::string> by_builder = changes({s.top, s.below}, "builder", as_builder);
  CHECK(by_builder == changes({s.linked}, "builder", as_builder));
  CHECK(by_builder.back() == "go/src/app/uid 0 644 4321:4321  4321\n");
  // The folders of the stack are read, never written.
  CHECK(slurp(s.top / "go/src/app/main.go") == "package main // new\n");
  CHECK(slurp(s.below / "go/src/app/keep.go") == "package main // kept\n");
}
