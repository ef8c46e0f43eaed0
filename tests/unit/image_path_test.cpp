// Tests for ImagePath, the one lexical path inside an image: how it cleans,
// takes a path from a workdir, refuses a path that leaves its root, and
// splits and joins.
#include "oci/image_path.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using imgbuild::ImagePath;

namespace {

std::string clean_image_path(const std::string& path) { return ImagePath(path).str(); }

}  // namespace

TEST_CASE("clean_image_path", "[image_path]") {
  REQUIRE(clean_image_path("/a/./b/../c/") == "/a/c");
  REQUIRE(clean_image_path("/../..") == "/");
  REQUIRE(clean_image_path("/") == "/");
  REQUIRE(clean_image_path("") == "/");
  REQUIRE(clean_image_path("//usr///local//bin/") == "/usr/local/bin");
  REQUIRE(clean_image_path("/a/b/../../../c") == "/c");
  REQUIRE(clean_image_path("/..a/b..") == "/..a/b..");
  REQUIRE(clean_image_path("/a/.") == "/a");
  REQUIRE(clean_image_path("rel/x") == "/rel/x");
}

TEST_CASE("a path from a workdir: relative ones from there, absolute ones as they are", "[image_path]") {
  CHECK(ImagePath::from("/app", "bin/../lib").str() == "/app/lib");
  CHECK(ImagePath::from("/app", "/etc/x").str() == "/etc/x");
  CHECK(ImagePath::from("", "x").str() == "/x");
  CHECK(ImagePath::from("/app", "../../..").str() == "/");
  CHECK(ImagePath::from("/app", ".").str() == "/app");
  CHECK(ImagePath::from("rel//dir/", "x").str() == "/rel/dir/x");
}

TEST_CASE("a path inside a root may not climb out of it", "[image_path]") {
  CHECK(ImagePath::inside("./a//b/")->relative() == "a/b");
  CHECK(ImagePath::inside("/a")->relative() == "a");
  CHECK(ImagePath::inside("a/../b")->relative() == "b");
  CHECK(ImagePath::inside("a/..")->is_root());
  CHECK(ImagePath::inside("")->is_root());
  CHECK_FALSE(ImagePath::inside(".."));
  CHECK_FALSE(ImagePath::inside("a/../../b"));
  CHECK_FALSE(ImagePath::inside("/../etc/passwd"));
  CHECK(ImagePath::inside("..a/b..")->relative() == "..a/b..");
}

TEST_CASE("segments, name, parent and the relative form", "[image_path]") {
  ImagePath p("/usr/local/bin");
  CHECK(p.segments() == std::vector<std::string>{"usr", "local", "bin"});
  CHECK(p.name() == "bin");
  CHECK(p.parent().str() == "/usr/local");
  CHECK(p.relative() == "usr/local/bin");
  CHECK(ImagePath("/a").parent().is_root());
  ImagePath root;
  CHECK(root.str() == "/");
  CHECK(root.segments().empty());
  CHECK(root.name() == "");
  CHECK(root.parent().is_root());
  CHECK(root.relative() == "");
}

TEST_CASE("join appends a name and cleans anything else, never above /", "[image_path]") {
  CHECK(ImagePath().join("etc").str() == "/etc");
  CHECK(ImagePath("/etc").join("passwd").str() == "/etc/passwd");
  CHECK(ImagePath("/etc").join("a/./b/").str() == "/etc/a/b");
  CHECK(ImagePath("/etc").join("/x").str() == "/etc/x");
  CHECK(ImagePath("/etc").join("../../x").str() == "/x");
  CHECK(ImagePath("/etc").join("..").is_root());
  CHECK(ImagePath("/etc").join(".").str() == "/etc");
  CHECK(ImagePath("/etc").join("").str() == "/etc");
  CHECK(ImagePath("/a") < ImagePath("/a/b"));
  CHECK(ImagePath("a/b") == ImagePath("/a/./b"));
}
