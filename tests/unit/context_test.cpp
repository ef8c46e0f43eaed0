// Tests for the build context and the copy planner: Docker's COPY rules,
// .dockerignore filtering, the context boundary, and copies from another
// image's unpacked root.
#include "build/context.hpp"

#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/fs.hpp"
#include "build/hostbuild.hpp"
#include "layer/layer.hpp"
#include "oci/digest.hpp"
#include "store/step_cache.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using imgbuild::BuildContext;
using imgbuild::copy_from_items;
using imgbuild::CopyItem;
using imgbuild::CopyOp;
using imgbuild::LayerEntry;
using imgbuild::Owner;
using imgbuild::plan_copy;
using imgbuild::plan_copy_from;
using namespace imgbuild::test;
using Catch::Matchers::Contains;

namespace {

void put(const fs::path& p, const std::string& data, mode_t mode = 0644) {
  fs::create_directories(p.parent_path());
  spit(p, data);
  if (::chmod(p.c_str(), mode) != 0) throw std::runtime_error("chmod failed");
}

// A build context on disk:
//   app.py go.mod notes.txt readme.txt run.sh(0755) private.key(0600) group.conf(0640)
//   src/{main.go, lib/util.go, bin/tool(0700), link-to-main -> main.go, abs-link -> /etc/passwd}
//   secretdir(0700)/inner.txt   link-to-app -> app.py   link-out -> ../outside.txt
struct Ctx {
  ScratchDir scratch;
  fs::path root = scratch.path / "ctx";
  explicit Ctx(const std::string& dockerignore = "") {
    put(scratch.path / "outside.txt", "outside\n");
    put(root / "app.py", "print('hi')\n");
    put(root / "go.mod", "module example\n");
    put(root / "notes.txt", "notes\n");
    put(root / "readme.txt", "readme\n");
    put(root / "run.sh", "#!/bin/sh\n", 0755);
    put(root / "private.key", "key\n", 0600);
    put(root / "group.conf", "conf\n", 0640);
    put(root / "src" / "main.go", "package main\n");
    put(root / "src" / "lib" / "util.go", "package lib\n");
    put(root / "src" / "bin" / "tool", "#!/bin/sh\n", 0700);
    fs::create_symlink("main.go", root / "src" / "link-to-main");
    fs::create_symlink("/etc/passwd", root / "src" / "abs-link");
    put(root / "secretdir" / "inner.txt", "inner\n");
    ::chmod((root / "secretdir").c_str(), 0700);
    fs::create_symlink("app.py", root / "link-to-app");
    fs::create_symlink("../outside.txt", root / "link-out");
    if (!dockerignore.empty()) put(root / ".dockerignore", dockerignore);
  }
  BuildContext context() const { return BuildContext(root); }
};

CopyOp make_op(std::vector<std::string> sources, std::string dest, std::optional<Owner> chown = std::nullopt,
               std::optional<uint32_t> chmod = std::nullopt) {
  CopyOp op;
  for (auto& s : sources) op.sources.push_back({s, std::nullopt});
  op.dest = std::move(dest);
  op.chown = chown;
  op.chmod = chmod;
  return op;
}

std::vector<LayerEntry> plan(const Ctx& c, std::vector<std::string> sources, std::string dest,
                             const std::string& workdir = "/", std::optional<Owner> chown = std::nullopt,
                             std::optional<uint32_t> chmod = std::nullopt) {
  BuildContext ctx = c.context();
  return plan_copy(make_op(std::move(sources), std::move(dest), chown, chmod), ctx, workdir, imgbuild::ImageTree(), {});
}

// The message plan_copy throws, or "" when it does not.
std::string plan_error(const Ctx& c, std::vector<std::string> sources, std::string dest) {
  return error_of([&] { plan(c, std::move(sources), std::move(dest)); });
}

std::vector<std::string> paths_of(const std::vector<LayerEntry>& entries) {
  std::vector<std::string> out;
  for (auto& e : entries) out.push_back(e.path);
  return out;
}

const LayerEntry& entry(const std::vector<LayerEntry>& entries, const std::string& path) {
  for (auto& e : entries)
    if (e.path == path) return e;
  throw std::runtime_error("no entry " + path);
}

bool has(const std::vector<LayerEntry>& entries, const std::string& path) {
  for (auto& e : entries)
    if (e.path == path) return true;
  return false;
}

}  // namespace

TEST_CASE("copy a file to a file path", "[context]") {
  Ctx c;
  auto entries = plan(c, {"app.py"}, "/app");
  REQUIRE(entries.size() == 1);
  const LayerEntry& e = entries[0];
  REQUIRE(e.path == "app");
  REQUIRE(e.type == LayerEntry::Type::File);
  REQUIRE(e.mode == 0644);
  REQUIRE(e.uid == 0);
  REQUIRE(e.gid == 0);
  REQUIRE(e.size == fs::file_size(c.root / "app.py"));
  REQUIRE(fs::equivalent(e.source, c.root / "app.py"));

  // A source given with "./" or a leading "/" is still a context path.
  REQUIRE(paths_of(plan(c, {"./app.py"}, "/x")) == std::vector<std::string>{"x"});
  REQUIRE(fs::equivalent(plan(c, {"/app.py"}, "/x")[0].source, c.root / "app.py"));
}

TEST_CASE("copy a file into a directory keeps its base name", "[context]") {
  Ctx c;
  auto entries = plan(c, {"app.py"}, "/bin/");
  REQUIRE(paths_of(entries) == std::vector<std::string>{"bin", "bin/app.py"});
  REQUIRE(entry(entries, "bin").type == LayerEntry::Type::Directory);
  REQUIRE(entry(entries, "bin").mode == 0755);
  REQUIRE(entry(entries, "bin/app.py").type == LayerEntry::Type::File);

  auto nested = plan(c, {"src/main.go"}, "/usr/local/src/");
  REQUIRE(paths_of(nested) == std::vector<std::string>{"usr", "usr/local", "usr/local/src", "usr/local/src/main.go"});
  // "/" itself is never an entry.
  REQUIRE(paths_of(plan(c, {"app.py"}, "/")) == std::vector<std::string>{"app.py"});
}

TEST_CASE("copy a directory copies its contents", "[context]") {
  Ctx c;
  auto entries = plan(c, {"src"}, "/opt/code");
  REQUIRE(paths_of(entries) == std::vector<std::string>{"opt", "opt/code", "opt/code/abs-link", "opt/code/bin",
                                                        "opt/code/bin/tool", "opt/code/lib", "opt/code/lib/util.go",
                                                        "opt/code/link-to-main", "opt/code/main.go"});
  REQUIRE(entry(entries, "opt/code/lib").type == LayerEntry::Type::Directory);
  REQUIRE(entry(entries, "opt/code/lib/util.go").type == LayerEntry::Type::File);
  REQUIRE(fs::equivalent(entry(entries, "opt/code/lib/util.go").source, c.root / "src" / "lib" / "util.go"));
  // The same with a trailing slash on either side.
  REQUIRE(paths_of(plan(c, {"src/"}, "/opt/code/")) == paths_of(entries));
}

TEST_CASE("copy . copies the whole context", "[context]") {
  Ctx c;
  auto entries = plan(c, {"."}, "/srv/");
  for (const char* p : {"srv", "srv/app.py", "srv/go.mod", "srv/run.sh", "srv/src", "srv/src/main.go",
                        "srv/src/lib/util.go", "srv/secretdir/inner.txt", "srv/link-to-app", "srv/link-out"}) {
    INFO(p);
    REQUIRE(has(entries, p));
  }
  REQUIRE_FALSE(has(entries, "srv/ctx"));  // contents, not the directory itself
  // Inside a copied directory a symlink is a symlink, even one pointing out.
  REQUIRE(entry(entries, "srv/link-out").type == LayerEntry::Type::Symlink);
  REQUIRE(entry(entries, "srv/link-out").link_target == "../outside.txt");

  auto at_root = plan(c, {"."}, "/");
  REQUIRE(has(at_root, "app.py"));
  REQUIRE(has(at_root, "src/lib/util.go"));
  REQUIRE_FALSE(has(at_root, ""));
}

TEST_CASE("several sources need a directory destination", "[context]") {
  Ctx c;
  REQUIRE(plan_error(c, {"app.py", "go.mod"}, "/dest") ==
          "copying 2 sources to /dest: the destination must be a directory ending in /");
  // A glob naming several files counts as several sources.
  REQUIRE(plan_error(c, {"*.txt"}, "/docs") ==
          "copying 2 sources to /docs: the destination must be a directory ending in /");
  auto ok = plan(c, {"app.py", "go.mod"}, "/dest/");
  REQUIRE(paths_of(ok) == std::vector<std::string>{"dest", "dest/app.py", "dest/go.mod"});
  auto dot = plan(c, {"app.py", "go.mod"}, ".", "/w");
  REQUIRE(paths_of(dot) == std::vector<std::string>{"w", "w/app.py", "w/go.mod"});
}

TEST_CASE("globs match within one directory level", "[context]") {
  Ctx c;
  auto entries = plan(c, {"*.txt"}, "/docs/");
  REQUIRE(paths_of(entries) == std::vector<std::string>{"docs", "docs/notes.txt", "docs/readme.txt"});

  auto go = plan(c, {"src/*.go"}, "/code/");
  REQUIRE(paths_of(go) == std::vector<std::string>{"code", "code/main.go"});

  auto q = plan(c, {"go.mo?"}, "/m");
  REQUIRE(paths_of(q) == std::vector<std::string>{"m"});

  REQUIRE(plan_error(c, {"*.nothing"}, "/x/") == "no such file in the build context: *.nothing");
}

TEST_CASE("a relative destination is resolved against the workdir", "[context]") {
  Ctx c;
  auto entries = plan(c, {"app.py"}, "conf/", "/srv/app");
  REQUIRE(paths_of(entries) == std::vector<std::string>{"srv", "srv/app", "srv/app/conf", "srv/app/conf/app.py"});
  REQUIRE(paths_of(plan(c, {"app.py"}, "main.py", "/srv")) == std::vector<std::string>{"srv", "srv/main.py"});
  REQUIRE(paths_of(plan(c, {"app.py"}, ".", "/w")) == std::vector<std::string>{"w", "w/app.py"});
  REQUIRE(paths_of(plan(c, {"app.py"}, "x", "")) == std::vector<std::string>{"x"});
  REQUIRE(paths_of(plan(c, {"app.py"}, "../up", "/a/b")) == std::vector<std::string>{"a", "a/up"});
  // An absolute destination ignores the workdir.
  REQUIRE(paths_of(plan(c, {"app.py"}, "/abs", "/srv")) == std::vector<std::string>{"abs"});
}

TEST_CASE("implied parent directories are 0755 and owned by root", "[context]") {
  Ctx c;
  auto entries = plan(c, {"app.py"}, "/etc/ssl/cert.pem", "/", Owner{1000, 2000});
  REQUIRE(paths_of(entries) == std::vector<std::string>{"etc", "etc/ssl", "etc/ssl/cert.pem"});
  for (const char* dir : {"etc", "etc/ssl"}) {
    INFO(dir);
    const LayerEntry& d = entry(entries, dir);
    REQUIRE(d.type == LayerEntry::Type::Directory);
    REQUIRE(d.mode == 0755);
    REQUIRE(d.uid == 0);
    REQUIRE(d.gid == 0);
  }
  REQUIRE(entry(entries, "etc/ssl/cert.pem").uid == 1000);
  REQUIRE(entry(entries, "etc/ssl/cert.pem").gid == 2000);
}

TEST_CASE("chown applies to copied entries and the destination directory", "[context]") {
  Ctx c;
  auto entries = plan(c, {"src"}, "/home/app/code/", "/", Owner{1000, 1001});
  for (const char* p : {"home/app/code", "home/app/code/main.go", "home/app/code/lib", "home/app/code/lib/util.go",
                        "home/app/code/link-to-main", "home/app/code/bin/tool"}) {
    INFO(p);
    REQUIRE(entry(entries, p).uid == 1000);
    REQUIRE(entry(entries, p).gid == 1001);
  }
  for (const char* p : {"home", "home/app"}) {
    INFO(p);
    REQUIRE(entry(entries, p).uid == 0);
    REQUIRE(entry(entries, p).gid == 0);
  }
  // File into a directory: the directory takes the owner too.
  auto file = plan(c, {"app.py"}, "/data/", "/", Owner{7, 8});
  REQUIRE(entry(file, "data").uid == 7);
  REQUIRE(entry(file, "data").gid == 8);
  REQUIRE(entry(file, "data/app.py").uid == 7);
  // Without chown everything is root's.
  auto plain = plan(c, {"src"}, "/home/app/code/");
  for (auto& e : plain) {
    INFO(e.path);
    REQUIRE(e.uid == 0);
    REQUIRE(e.gid == 0);
  }
}

TEST_CASE("chmod applies to files and directories but not symlinks", "[context]") {
  Ctx c;
  auto entries = plan(c, {"src"}, "/code/", "/", std::nullopt, 0750u);
  REQUIRE(entry(entries, "code/main.go").mode == 0750);
  REQUIRE(entry(entries, "code/bin/tool").mode == 0750);
  REQUIRE(entry(entries, "code/lib").mode == 0750);
  REQUIRE(entry(entries, "code/lib/util.go").mode == 0750);
  REQUIRE(entry(entries, "code/link-to-main").type == LayerEntry::Type::Symlink);
  REQUIRE(entry(entries, "code/link-to-main").mode == 0777);
  REQUIRE(entry(entries, "code/abs-link").mode == 0777);

  auto single = plan(c, {"run.sh"}, "/bin/run", "/", std::nullopt, 04711u);
  REQUIRE(entry(single, "bin/run").mode == 04711);
  REQUIRE(entry(single, "bin").mode == 0755);  // implied parent keeps 0755
}

TEST_CASE("modes are normalised by the exec bit", "[context]") {
  Ctx c;
  put(c.root / "suid", "x", 04755);
  auto entries = plan(c, {"."}, "/r/");
  REQUIRE(entry(entries, "r/app.py").mode == 0644);
  REQUIRE(entry(entries, "r/run.sh").mode == 0755);
  REQUIRE(entry(entries, "r/private.key").mode == 0644);
  REQUIRE(entry(entries, "r/group.conf").mode == 0644);
  REQUIRE(entry(entries, "r/src/bin/tool").mode == 0755);
  REQUIRE(entry(entries, "r/secretdir").mode == 0755);
  REQUIRE(entry(entries, "r/suid").mode == 0755);
  REQUIRE(entry(entries, "r/src/link-to-main").mode == 0777);
}

TEST_CASE("missing sources and the context boundary", "[context]") {
  Ctx c;
  REQUIRE(plan_error(c, {"go.sm"}, "/x") == "no such file in the build context: go.sm");
  REQUIRE(plan_error(c, {"../x"}, "/x") == "../x: outside the build context");
  REQUIRE(plan_error(c, {"src/../../outside.txt"}, "/x") == "src/../../outside.txt: outside the build context");
  // ".." that stays inside is fine.
  REQUIRE(paths_of(plan(c, {"src/../app.py"}, "/x")) == std::vector<std::string>{"x"});

  REQUIRE(plan_error(c, {"link-out"}, "/x") == "link-out: symlink points outside the build context");
  fs::create_symlink("/etc/hostname", c.root / "abs-out");
  REQUIRE(plan_error(c, {"abs-out"}, "/x") == "abs-out: symlink points outside the build context");
  fs::create_symlink(c.scratch.path, c.root / "dir-out");
  REQUIRE(plan_error(c, {"dir-out"}, "/x/") == "dir-out: symlink points outside the build context");
  // A glob that matches an outward symlink is refused too.
  REQUIRE_THAT(plan_error(c, {"link-o*"}, "/x/"), Contains("symlink points outside the build context"));
}

TEST_CASE("a named symlink inside the context is followed", "[context]") {
  Ctx c;
  auto entries = plan(c, {"link-to-app"}, "/bin/");
  REQUIRE(paths_of(entries) == std::vector<std::string>{"bin", "bin/link-to-app"});
  const LayerEntry& e = entry(entries, "bin/link-to-app");
  REQUIRE(e.type == LayerEntry::Type::File);
  REQUIRE(fs::equivalent(e.source, c.root / "app.py"));
  REQUIRE(e.size == fs::file_size(c.root / "app.py"));

  fs::create_symlink("src", c.root / "src-link");
  auto dir = plan(c, {"src-link"}, "/code/");
  REQUIRE(has(dir, "code/main.go"));
  REQUIRE(has(dir, "code/lib/util.go"));
}

TEST_CASE("a symlink inside a copied directory stays a symlink", "[context]") {
  Ctx c;
  auto entries = plan(c, {"src"}, "/code/");
  const LayerEntry& rel = entry(entries, "code/link-to-main");
  REQUIRE(rel.type == LayerEntry::Type::Symlink);
  REQUIRE(rel.link_target == "main.go");
  REQUIRE(rel.source.empty());
  const LayerEntry& abs = entry(entries, "code/abs-link");
  REQUIRE(abs.type == LayerEntry::Type::Symlink);
  REQUIRE(abs.link_target == "/etc/passwd");
}

TEST_CASE(".dockerignore exclusions", "[context]") {
  Ctx c("secret.txt\nlogs\n!logs/keep.txt\nsrc/lib\n*.key\n");
  put(c.root / "secret.txt", "secret\n");
  put(c.root / "logs" / "old.log", "old\n");
  put(c.root / "logs" / "keep.txt", "keep\n");

  SECTION("an excluded file is not found when named") {
    REQUIRE(plan_error(c, {"secret.txt"}, "/x") == "no such file in the build context: secret.txt");
    REQUIRE(plan_error(c, {"private.key"}, "/x") == "no such file in the build context: private.key");
    REQUIRE(plan_error(c, {"src/lib/util.go"}, "/x") == "no such file in the build context: src/lib/util.go");
    REQUIRE(plan_error(c, {"logs/old.log"}, "/x") == "no such file in the build context: logs/old.log");
  }
  SECTION("an exception can be named directly") {
    auto entries = plan(c, {"logs/keep.txt"}, "/x");
    REQUIRE(paths_of(entries) == std::vector<std::string>{"x"});
  }
  SECTION("a glob skips excluded files") {
    auto entries = plan(c, {"*.txt"}, "/d/");
    REQUIRE(paths_of(entries) == std::vector<std::string>{"d", "d/notes.txt", "d/readme.txt"});
  }
  SECTION("excluded entries inside a copied directory are skipped") {
    auto entries = plan(c, {"."}, "/r/");
    REQUIRE_FALSE(has(entries, "r/secret.txt"));
    REQUIRE_FALSE(has(entries, "r/private.key"));
    REQUIRE_FALSE(has(entries, "r/src/lib"));
    REQUIRE_FALSE(has(entries, "r/src/lib/util.go"));
    REQUIRE_FALSE(has(entries, "r/logs/old.log"));
    REQUIRE(has(entries, "r/src/main.go"));
    REQUIRE(has(entries, "r/app.py"));
    // The exception re-includes a file inside the excluded directory.
    REQUIRE(has(entries, "r/logs/keep.txt"));

    auto src = plan(c, {"src"}, "/s/");
    REQUIRE(has(src, "s/main.go"));
    REQUIRE_FALSE(has(src, "s/lib"));
    REQUIRE_FALSE(has(src, "s/lib/util.go"));
  }
}

TEST_CASE("a pipe in a copied directory fails, the first one in path order, unless excluded", "[context]") {
  Ctx c("pipes/c\n");
  fs::create_directories(c.root / "pipes" / "a");
  REQUIRE(::mkfifo((c.root / "pipes/a/fifo").c_str(), 0644) == 0);
  REQUIRE(::mkfifo((c.root / "pipes/b").c_str(), 0644) == 0);
  REQUIRE(::mkfifo((c.root / "pipes/c").c_str(), 0644) == 0);
  // The same tree always fails on the same pipe: the one inside a/ comes
  // before b, whatever order the walk visits them in. Named relative to the
  // context, as the recipe names files.
  CHECK(plan_error(c, {"pipes"}, "/p/") ==
        "pipes/a/fifo is a named pipe: a build context holds only files, folders and symlinks");
  fs::remove(c.root / "pipes/a/fifo");
  CHECK(plan_error(c, {"pipes"}, "/p/") ==
        "pipes/b is a named pipe: a build context holds only files, folders and symlinks");
  fs::remove(c.root / "pipes/b");
  CHECK(paths_of(plan(c, {"pipes"}, "/p/")) == std::vector<std::string>{"p", "p/a"});
}

TEST_CASE("a tree of many folders is planned as it is on disk, exclusions and exceptions included", "[context]") {
  // Enough folders for the walk and the thread reading ahead of it to
  // share them; what comes out must not depend on which read which.
  Ctx c("tree/*/s2\n!tree/d07/s2/f3\n");
  fs::path tree = c.root / "tree";
  std::vector<std::string> expected{"t"};
  for (int d = 0; d < 30; ++d) {
    std::string dn = (d < 10 ? "d0" : "d") + std::to_string(d);
    expected.push_back("t/" + dn);
    for (int sub = 0; sub < 4; ++sub) {
      std::string sn = dn + "/s" + std::to_string(sub);
      bool excluded = sub == 2;
      if (!excluded || dn == "d07") expected.push_back("t/" + sn);
      for (int f = 0; f < 6; ++f) {
        std::string fn = sn + "/f" + std::to_string(f);
        put(tree / fn, fn);
        if (!excluded || (dn == "d07" && f == 3)) expected.push_back("t/" + fn);
      }
    }
    put(tree / dn / "z-file", "z");
    expected.push_back("t/" + dn + "/z-file");
  }
  std::sort(expected.begin(), expected.end());
  CHECK(paths_of(plan(c, {"tree"}, "/t/")) == expected);
}

TEST_CASE("a file re-included from an excluded directory has its directory in the plan", "[context]") {
  // Docker (BuildKit's context walker) sends the parent directory of a file an
  // exception re-includes, so the image gets it with its real metadata and the
  // copy's owner. Without an entry, the directory appears only implicitly when
  // the layer is unpacked: root-owned whatever --chown said.
  Ctx c("logs\n!logs/keep.txt\n");
  put(c.root / "logs" / "keep.txt", "keep\n");
  put(c.root / "logs" / "old.log", "old\n");
  auto entries = plan(c, {"."}, "/r/", "/", Owner{1000, 1000});
  REQUIRE(has(entries, "r/logs/keep.txt"));
  REQUIRE(has(entries, "r/logs"));
  if (has(entries, "r/logs")) {
    REQUIRE(entry(entries, "r/logs").type == LayerEntry::Type::Directory);
    REQUIRE(entry(entries, "r/logs").uid == 1000);
  }
}

TEST_CASE("file-valued sources come from the files list", "[context]") {
  Ctx c;
  put(c.scratch.path / "built" / "server", "ELF", 0755);
  CopyOp op;
  op.sources = {{"app.py", std::nullopt}, {"", size_t{4}}};
  op.dest = "/usr/local/bin/";
  std::vector<CopyItem> files{{c.scratch.path / "built" / "server", "server"}};
  auto entries = plan_copy(op, c.context(), "/", imgbuild::ImageTree(), files);
  REQUIRE(paths_of(entries) == std::vector<std::string>{"usr", "usr/local", "usr/local/bin", "usr/local/bin/app.py",
                                                        "usr/local/bin/server"});
  const LayerEntry& s = entry(entries, "usr/local/bin/server");
  REQUIRE(s.source == c.scratch.path / "built" / "server");
  REQUIRE(s.mode == 0755);
  REQUIRE(s.size == 3);

  CopyOp single;
  single.sources = {{"", size_t{2}}};
  single.dest = "/app";
  REQUIRE(paths_of(plan_copy(single, c.context(), "/", imgbuild::ImageTree(), files)) ==
          std::vector<std::string>{"app"});
}

TEST_CASE("a file and a directory at the same path is an error", "[context]") {
  Ctx c;
  // d/sub is a directory with a file in it; sub is a file; d2/sub is an empty directory.
  put(c.root / "d" / "sub" / "inner", "inner\n");
  put(c.root / "sub", "I am a file\n");
  fs::create_directories(c.root / "d2" / "sub");

  SECTION("directory first, then the file") {
    REQUIRE_THAT(plan_error(c, {"d", "sub"}, "/out/"),
                 Contains("/out/sub") && Contains("as a file and as a directory"));
  }
  SECTION("file first, then the directory") {
    REQUIRE_THAT(plan_error(c, {"sub", "d"}, "/out/"),
                 Contains("/out/sub") && Contains("as a file and as a directory"));
  }
  SECTION("file and an empty directory") {
    CHECK_THAT(plan_error(c, {"sub", "d2"}, "/out/"), Contains("/out/sub") && Contains("as a file and as a directory"));
    CHECK_THAT(plan_error(c, {"d2", "sub"}, "/out/"), Contains("/out/sub") && Contains("as a file and as a directory"));
  }
}

TEST_CASE("a path through a symlinked directory cannot leave the context", "[context]") {
  Ctx c;
  // dir-out -> the directory holding the context, where outside.txt lives.
  fs::create_symlink(c.scratch.path, c.root / "dir-out");
  std::string err = plan_error(c, {"dir-out/outside.txt"}, "/x");
  CHECK_THAT(err, Contains("outside the build context"));
  if (err.empty()) {
    auto entries = plan(c, {"dir-out/outside.txt"}, "/x");
    INFO("planned source: " << entries.at(0).source);
    CHECK_FALSE(fs::equivalent(entries.at(0).source, c.scratch.path / "outside.txt"));
  }
}

TEST_CASE("a symlink does not make an excluded file readable", "[context]") {
  // .dockerignore keeps secret.txt out of the context, as if it were not there
  // (docker never sends it), so no path may reach it.
  Ctx c("secret.txt\nsrc/lib\n");
  put(c.root / "secret.txt", "secret\n");
  fs::create_symlink("secret.txt", c.root / "alias");
  fs::create_symlink("src", c.root / "srclink");
  REQUIRE(plan_error(c, {"secret.txt"}, "/x") == "no such file in the build context: secret.txt");
  CHECK_FALSE(plan_error(c, {"alias"}, "/x").empty());
  CHECK_FALSE(plan_error(c, {"srclink/lib/util.go"}, "/x").empty());
  // A symlink to an excluded directory leads nowhere either.
  fs::create_symlink("src/lib", c.root / "libalias");
  CHECK(plan_error(c, {"libalias"}, "/l/") == "no such file in the build context: libalias");
}

TEST_CASE("an excluded directory with a re-included file can be named", "[context]") {
  // Docker sends logs/keep.txt (and so the logs directory) to the builder, so
  // `COPY logs /x/` copies keep.txt there; it is not "no such file".
  Ctx c("logs\n!logs/keep.txt\n");
  put(c.root / "logs" / "keep.txt", "keep\n");
  put(c.root / "logs" / "old.log", "old\n");
  std::string err = plan_error(c, {"logs"}, "/x/");
  CHECK(err == "");
  if (err.empty()) {
    auto entries = plan(c, {"logs"}, "/x/");
    CHECK(has(entries, "x/keep.txt"));
    CHECK_FALSE(has(entries, "x/old.log"));
  }
}

TEST_CASE("a file cannot replace /", "[context]") {
  Ctx c;
  REQUIRE(plan_error(c, {"app.py"}, "/..") == "cannot copy a file over /");
}

TEST_CASE("BuildContext needs a directory", "[context]") {
  Ctx c;
  REQUIRE_THROWS_WITH(BuildContext(c.root / "app.py"), Contains("is not a directory"));
  REQUIRE_THROWS_WITH(BuildContext(c.root / "missing"), Contains("is not a directory"));
  BuildContext ctx(c.root / "src" / "..");
  REQUIRE(ctx.root() == fs::canonical(c.root));
  auto items = ctx.resolve(".");
  REQUIRE(items.size() == 1);
  REQUIRE(items[0].name == "ctx");
  REQUIRE(fs::equivalent(items[0].host_path, c.root));
}

TEST_CASE("a copy from another image resolves its symlinks inside that image's root", "[context]") {
  ScratchDir s;
  fs::path root = s.path / "root";
  put(root / "etc" / "passwd", "root\n");
  put(s.path / "secret", "host\n");
  fs::create_symlink("/etc", root / "etc-abs");
  fs::create_symlink("../../../../etc/passwd", root / "climb");
  fs::create_symlink(s.path / "secret", root / "host");
  fs::create_symlink("passwd/.", root / "etc" / "dot");
  fs::create_symlink("passwd/..", root / "etc" / "up");
  auto from = [&](const std::string& source) {
    CopyOp op = make_op({source}, "/x");
    return plan_copy_from(op, copy_from_items(op, root, "/"), "/", imgbuild::ImageTree());
  };
  auto source_of = [&](const std::string& path) { return fs::path(entry(from(path), "x").source); };
  CHECK(source_of("/etc-abs/passwd") == root / "etc" / "passwd");
  CHECK(source_of("climb") == root / "etc" / "passwd");
  // An absolute target is a path in the image, where the host's file is not.
  CHECK(error_of([&] { from("/host"); }) == "no such file in the source image: /host");
  // These were the file and /etc: a file is no folder to walk through, as
  // the kernel and the unpacker say.
  CHECK(error_of([&] { from("/etc/dot"); }) == "no such file in the source image: /etc/dot");
  CHECK(error_of([&] { from("/etc/up"); }) == "no such file in the source image: /etc/up");
}

namespace {

constexpr const char* kOnlyFiles = ": a build context holds only files, folders and symlinks";

/// Makes a listening Unix socket's file at `path`; the descriptor is closed
/// (the file stays).
void make_socket(const fs::path& path) {
  imgbuild::Fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  REQUIRE(fd);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  REQUIRE(path.string().size() < sizeof addr.sun_path);
  std::strcpy(addr.sun_path, path.c_str());
  REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
}

}  // namespace

TEST_CASE("special files in the context are refused at once by name, glob, folder and hash, unless ignored",
          "[context]") {
  Ctx c;
  fs::create_directories(c.root / "examples/x");
  REQUIRE(::mkfifo((c.root / "examples/x/pipe").c_str(), 0644) == 0);
  fs::create_symlink("examples/x/pipe", c.root / "link-to-pipe");
  std::string pipe = std::string("examples/x/pipe is a named pipe") + kOnlyFiles;
  // No pipe is ever opened: a test that hangs here has failed.
  CHECK(plan_error(c, {"examples/x/pipe"}, "/p") == pipe);
  CHECK(plan_error(c, {"examples/x/*"}, "/p/") == pipe);
  CHECK(plan_error(c, {"examples/*/pipe"}, "/p/") == pipe);
  CHECK(plan_error(c, {"examples"}, "/p/") == pipe);
  CHECK(plan_error(c, {"."}, "/p/") == pipe);
  // Through a symlink, the pipe is named where it is.
  CHECK(plan_error(c, {"link-to-pipe"}, "/p") == pipe);
  // What hash() and inspect() resolve a name with.
  CHECK(error_of([&] { c.context().resolve("examples/x/pipe"); }) == pipe);
  fs::remove(c.root / "examples/x/pipe");

  fs::create_directories(c.root / "s");
  make_socket(c.root / "s/agent.sock");
  CHECK(plan_error(c, {"s"}, "/p/") == std::string("s/agent.sock is a socket") + kOnlyFiles);
  CHECK(plan_error(c, {"s/agent.sock"}, "/p") == std::string("s/agent.sock is a socket") + kOnlyFiles);
  fs::remove(c.root / "s/agent.sock");

  if (::geteuid() == 0) {
    REQUIRE(::mknod((c.root / "s/null").c_str(), S_IFCHR | 0666, ::makedev(1, 3)) == 0);
    CHECK(plan_error(c, {"."}, "/p/") == std::string("s/null is a character device") + kOnlyFiles);
    fs::remove(c.root / "s/null");
    REQUIRE(::mknod((c.root / "s/loop").c_str(), S_IFBLK | 0660, ::makedev(7, 9)) == 0);
    CHECK(plan_error(c, {"s/*"}, "/p/") == std::string("s/loop is a block device") + kOnlyFiles);
    fs::remove(c.root / "s/loop");
  }
  CHECK(has(plan(c, {"."}, "/p/"), "p/s"));
}

TEST_CASE("a special file .dockerignore excludes is no error: it is not part of the context", "[context]") {
  Ctx c("ignored\n**/*.sock\n");
  fs::create_directories(c.root / "ignored");
  REQUIRE(::mkfifo((c.root / "ignored/pipe").c_str(), 0644) == 0);
  fs::create_directories(c.root / "run");
  make_socket(c.root / "run/agent.sock");
  auto entries = plan(c, {"."}, "/p/");
  CHECK_FALSE(has(entries, "p/ignored"));
  CHECK_FALSE(has(entries, "p/ignored/pipe"));
  CHECK_FALSE(has(entries, "p/run/agent.sock"));
  CHECK(has(entries, "p/app.py"));
  CHECK(plan_error(c, {"run/*"}, "/p/") == "no such file in the build context: run/*");
  CHECK(plan_error(c, {"ignored/pipe"}, "/p") == "no such file in the build context: ignored/pipe");
}

TEST_CASE("a .dockerignore that is a named pipe is refused, not waited on", "[context]") {
  Ctx c;
  REQUIRE(::mkfifo((c.root / ".dockerignore").c_str(), 0644) == 0);
  CHECK(error_of([&] { c.context(); }) ==
        ".dockerignore: " + (fs::canonical(c.root) / ".dockerignore").string() + ": is a named pipe, not a file");
}

TEST_CASE("a file replaced by a pipe or a symlink after the walk is refused when read, never waited on", "[context]") {
  Ctx c;
  std::vector<LayerEntry> entries = plan(c, {"app.py"}, "/app.py");
  REQUIRE(entries.size() == 1);
  std::string host = entries[0].source;
  ScratchDir blobs;
  // A FIFO created where the file was, with no writer: opening it to read
  // would wait for one for ever.
  fs::remove(host);
  REQUIRE(::mkfifo(host.c_str(), 0644) == 0);
  std::string pipe = host + ": is a named pipe, not a file";
  CHECK(error_of([&] { imgbuild::write_layer(entries, blobs.path, {}); }) == pipe);
  CHECK(error_of([&] { imgbuild::hash_files(entries); }) == pipe);
  CHECK(error_of([&] { imgbuild::sha256_file(host); }) == pipe);
  CHECK(names_in(blobs.path).empty());
  // A symlink to a file outside the context: never followed.
  fs::remove(host);
  fs::create_symlink(c.scratch.path / "outside.txt", host);
  CHECK(error_of([&] { imgbuild::write_layer(entries, blobs.path, {}); }) == host + ": is a symlink, not a file");
  CHECK(names_in(blobs.path).empty());
  // A socket does not even open.
  fs::remove(host);
  make_socket(host);
  CHECK(error_of([&] { imgbuild::write_layer(entries, blobs.path, {}); }) == host + ": is a socket, not a file");
}

TEST_CASE("a host build's walk refuses an input that is a named pipe, and ignores one that is no input", "[context]") {
  Ctx c;
  fs::create_directories(c.root / "mod/sub");
  REQUIRE(::mkfifo((c.root / "mod/sub/gen.go").c_str(), 0644) == 0);
  REQUIRE(::mkfifo((c.root / "mod/notes.fifo").c_str(), 0644) == 0);
  imgbuild::HostBuildOp op;
  op.argv = {"true"};
  op.dir = "mod";
  op.input_root = "mod";
  op.inputs = {"**/*.go"};
  op.output_name = "out";
  ScratchDir cache;
  BuildContext context = c.context();
  auto build = [&] { imgbuild::run_host_build(op, context, imgbuild::Platform::host(), cache.path, true, true); };
  CHECK(error_of(build) == std::string("mod/sub/gen.go is a named pipe") + kOnlyFiles);
  fs::remove(c.root / "mod/sub/gen.go");
  CHECK(error_of(build).empty());
}

TEST_CASE("a host build's result published meanwhile by another build is kept, not removed from under it",
          "[context]") {
  Ctx c;
  fs::create_directories(c.root / "mod");
  // PUBLISH_TO is no part of the key: the command plays another build that
  // publishes the same key while this one runs.
  imgbuild::HostBuildOp op;
  op.argv = {"sh", "-c",
             "if [ -n \"$PUBLISH_TO\" ]; then mkdir -p \"$PUBLISH_TO\" && echo theirs >\"$PUBLISH_TO/out\"; fi; "
             "echo mine >\"$0\"",
             "${OUT}"};
  op.dir = "mod";
  op.input_root = "mod";
  op.output_name = "out";
  ScratchDir cache;
  BuildContext context = c.context();
  auto build = [&](bool use_cache) {
    return imgbuild::run_host_build(op, context, imgbuild::Platform::host(), cache.path, use_cache).file;
  };
  ::unsetenv("PUBLISH_TO");
  const fs::path published = build(true);
  CHECK(slurp(published) == "mine\n");
  fs::remove_all(published.parent_path());
  ::setenv("PUBLISH_TO", published.parent_path().c_str(), 1);
  CHECK(build(true) == published);
  CHECK(slurp(published) == "theirs\n");
  // --no-cache: this build's own, swapped in.
  ::unsetenv("PUBLISH_TO");
  CHECK(build(false) == published);
  CHECK(slurp(published) == "mine\n");
  CHECK(names_in(published.parent_path()) == std::vector<std::string>{"out"});
}

namespace {

/// The image a copy goes into: one layer of `entries`, handed over as the
/// layer writer hands them (no blob is read).
imgbuild::ImageTree image_of(const std::vector<LayerEntry>& entries) {
  auto listings = std::make_shared<imgbuild::LayerListings>();
  listings->put("/nonexistent/layer", entries);
  imgbuild::ImageTree tree(listings);
  tree.apply_layer_blob("/nonexistent/layer");
  return tree;
}

LayerEntry folder(const std::string& path, uint32_t mode = 0755) {
  return {.path = path, .type = LayerEntry::Type::Directory, .mode = mode};
}
LayerEntry symlink_entry(const std::string& path, const std::string& target) {
  return {.path = path, .type = LayerEntry::Type::Symlink, .mode = 0777, .link_target = target};
}

}  // namespace

TEST_CASE("the destination is found in the image: an existing folder receives the file, symlinks lead", "[context]") {
  Ctx c;
  imgbuild::ImageTree image =
      image_of({folder("app", 0750), symlink_entry("lnk", "app"), folder("tmp", 01777), folder("usr"),
                folder("usr/bin"), symlink_entry("bin", "usr/bin"), LayerEntry{.path = "etc/passwd"}});
  auto copy = [&](std::vector<std::string> sources, std::string dest, const std::string& workdir = "/") {
    return plan_copy(make_op(std::move(sources), std::move(dest)), c.context(), workdir, image, {});
  };
  // Row 4: onto a folder the image has, or a symlink to one.
  auto onto = copy({"app.py"}, "/app");
  CHECK(paths_of(onto) == std::vector<std::string>{"app", "app/app.py"});
  CHECK(entry(onto, "app").mode == 0750);  // the folder keeps its mode
  CHECK(paths_of(copy({"app.py"}, "/lnk")) == std::vector<std::string>{"app", "app/app.py"});
  CHECK(paths_of(copy({"app.py"}, "app", "/")) == std::vector<std::string>{"app", "app/app.py"});
  // Row 5: anything else is the file's own path.
  CHECK(paths_of(copy({"app.py"}, "/etc/passwd")) == std::vector<std::string>{"etc", "etc/passwd"});
  CHECK(paths_of(copy({"app.py"}, "/new")) == std::vector<std::string>{"new"});
  // Row 7: an existing parent keeps its mode (a /tmp stays 1777).
  CHECK(entry(copy({"app.py"}, "/tmp/x"), "tmp").mode == 01777);
  // Row 8: /bin links to usr/bin: the file lands there and /bin stays a link.
  CHECK(paths_of(copy({"src/bin/tool"}, "/bin/tool")) == std::vector<std::string>{"usr", "usr/bin", "usr/bin/tool"});
  CHECK(paths_of(copy({"src/lib"}, "/lnk/lib")) == std::vector<std::string>{"app", "app/lib", "app/lib/util.go"});
  // Row 6 holds even onto a folder the image has.
  CHECK(error_of([&] {
          copy({"app.py", "go.mod"}, "/app");
        }) == "copying 2 sources to /app: the destination must be a directory ending in /");
  CHECK(error_of([&] { copy({"app.py"}, "/etc/passwd/x"); }) ==
        "copying to /etc/passwd/x: /etc/passwd: a file in the image stands on the way");
}
