// Tests that what a step did to a file's extended attributes reaches its
// layer, as Docker and containerd read them (PAX SCHILY.xattr.<name> records,
// sorted by name), and comes back when that layer is a base image's: file
// capabilities set by `setcap` survive. And that the attributes a layer must
// not carry (overlayfs's state, imgbuild's marks, trusted.*) never reach it,
// however a hostile step plants them.
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layer/layer.hpp"
#include "layer/unpack.hpp"
#include "sandbox/sandbox.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using imgbuild::LayerEntry;
using imgbuild::Xattr;
using namespace imgbuild::test;

namespace {

/// security.capability for cap_net_raw+ep (struct vfs_cap_data, revision 2).
const std::string kCapV2("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00", 20);
/// The same capability as setcap makes it in a user namespace whose root is
/// host uid 1000 (struct vfs_ns_cap_data, revision 3).
const std::string kCapV3(
    "\x01\x00\x00\x03\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xe8\x03\x00\x00", 24);

void set(const fs::path& p, const char* name, const std::string& value) {
  INFO(p.string() << " " << name);
  REQUIRE(::lsetxattr(p.c_str(), name, value.data(), value.size(), 0) == 0);
}

/// The value of xattr `name` of `p`, or "<error>" when it has none.
std::string xattr_of(const fs::path& p, const char* name) {
  char buf[256];
  ssize_t n = ::lgetxattr(p.c_str(), name, buf, sizeof buf);
  return n < 0 ? "<" + std::string(std::strerror(errno)) + ">" : std::string(buf, static_cast<size_t>(n));
}

void make_dir(const fs::path& p) {
  fs::create_directory(p);
  fs::permissions(p, fs::perms(0755));
}

void make_file(const fs::path& p, const std::string& content) {
  spit(p, content);
  fs::permissions(p, fs::perms(0644));
}

/// Each entry's path and xattrs, as libarchive reads them back from `tar`.
std::vector<std::pair<std::string, std::vector<Xattr>>> read_xattrs(const std::string& tar) {
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), &archive_read_free);
  archive_read_support_format_tar(a.get());
  REQUIRE(archive_read_open_memory(a.get(), tar.data(), tar.size()) == ARCHIVE_OK);
  std::vector<std::pair<std::string, std::vector<Xattr>>> out;
  archive_entry* e = nullptr;
  while (archive_read_next_header(a.get(), &e) == ARCHIVE_OK) {
    std::vector<Xattr> xattrs;
    const char* name;
    const void* value;
    size_t size;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK)
      xattrs.emplace_back(name, std::string(static_cast<const char*>(value), size));
    // libarchive lists them backwards from the tar's order, checked above.
    std::sort(xattrs.begin(), xattrs.end());
    std::string path = archive_entry_pathname(e);
    if (path.ends_with('/')) path.pop_back();
    out.emplace_back(std::move(path), std::move(xattrs));
  }
  return out;
}

}  // namespace

TEST_CASE("a step's file capabilities and user xattrs reach its layer and come back from it", "[sandbox][root]") {
  if (::geteuid() != 0) {
    WARN("not root: security.capability and trusted.* cannot be set here");
    return;
  }
  ScratchDir dir;
  fs::path lower = dir.path / "lower", upper = dir.path / "upper", root = dir.path / "root";
  for (const fs::path& p : {lower, lower / "bin", lower / "data", upper, upper / "bin", upper / "data", root})
    make_dir(p);
  make_file(lower / "bin/ping", "ELF ping");
  make_file(lower / "data/same.txt", "same\n");
  make_file(lower / "data/noted.txt", "noted\n");
  set(lower / "data/noted.txt", "user.note", "kept");
  spit(dir.path / "empty", "");

  // What the step left in its upper folder: `setcap cap_net_raw+ep` on the
  // image's ping (copied up, same bytes); a new file with a namespaced
  // capability and user xattrs; a symlink to it; files copied up unchanged.
  make_file(upper / "bin/ping", "ELF ping");
  set(upper / "bin/ping", "security.capability", kCapV2);
  make_file(upper / "bin/x", "ELF x");
  set(upper / "bin/x", "user.b", "2");
  set(upper / "bin/x", "security.capability", kCapV3);
  set(upper / "bin/x", "user.a", std::string("\0\xff", 2));
  // What a layer must never carry, planted by a hostile step or left by overlay.
  set(upper / "bin/x", "user.overlay.redirect", "/etc");
  set(upper / "bin/x", "user.imgbuild.snapshot", "1");
  set(upper / "bin/x", "trusted.evil", "x");
  set(upper / "bin", "trusted.overlay.origin", "o");
  fs::create_symlink("x", upper / "bin/l");
  make_file(upper / "data/same.txt", "same\n");
  make_file(upper / "data/noted.txt", "noted\n");
  set(upper / "data/noted.txt", "user.note", "kept");

  std::vector<LayerEntry> entries = imgbuild::overlay_diff(upper, lower, {}, dir.path / "empty");
  std::vector<std::pair<std::string, std::vector<Xattr>>> found;
  for (auto& e : entries) found.emplace_back(e.path, e.xattrs);
  std::string v3_as_v2 = kCapV3.substr(0, 20);
  v3_as_v2[3] = '\x02';
  CHECK(v3_as_v2 == kCapV2);
  const std::vector<std::pair<std::string, std::vector<Xattr>>> expected = {
      {"bin", {}},
      {"bin/l", {}},
      {"bin/ping", {{"security.capability", kCapV2}}},
      {"bin/x", {{"security.capability", kCapV2}, {"user.a", std::string("\0\xff", 2)}, {"user.b", "2"}}},
  };
  CHECK(found == expected);

  std::string tar;
  imgbuild::write_tar(
      entries, [&](const void* data, size_t size) { tar.append(static_cast<const char*>(data), size); }, 0);
  // The records Docker and containerd read, and no second copy of each.
  CHECK(tar.find("SCHILY.xattr.security.capability=") != std::string::npos);
  CHECK(tar.find("LIBARCHIVE.xattr") == std::string::npos);
  CHECK(tar.find("overlay") == std::string::npos);
  CHECK(tar.find("evil") == std::string::npos);
  size_t x = tar.find("bin/PaxHeader/x");
  REQUIRE(x != std::string::npos);
  size_t cap = tar.find("SCHILY.xattr.security.capability=", x), a = tar.find("SCHILY.xattr.user.a=", x),
         b = tar.find("SCHILY.xattr.user.b=", x);
  CHECK((cap < a && a < b && b != std::string::npos));
  CHECK(read_xattrs(tar) == expected);

  // The layer as a base image's: the capabilities are back, for a step to use.
  imgbuild::apply_layer(root, {reinterpret_cast<const unsigned char*>(tar.data()), tar.size()}, "layer 1", {});
  CHECK(xattr_of(root / "bin/ping", "security.capability") == kCapV2);
  CHECK(xattr_of(root / "bin/x", "security.capability") == kCapV2);
  CHECK(xattr_of(root / "bin/x", "user.a") == std::string("\0\xff", 2));
  CHECK(xattr_of(root / "bin/x", "user.b") == "2");
  CHECK(xattr_of(root / "bin/x", "trusted.evil") == "<No data available>");
}

TEST_CASE("xattrs are read from a symlink itself, never from what it names", "[sandbox]") {
  ScratchDir dir;
  make_file(dir.path / "target", "t");
  if (::setxattr((dir.path / "target").c_str(), "user.t", "1", 1, 0) != 0) {
    WARN("no user xattrs on /tmp: " << std::strerror(errno));
    return;
  }
  fs::create_symlink("target", dir.path / "link");
  CHECK(imgbuild::kept_xattrs(dir.path / "link").empty());
  CHECK(imgbuild::kept_xattrs(dir.path / "target") == std::vector<Xattr>{{"user.t", "1"}});
}
