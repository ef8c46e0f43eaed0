// Tests for reading a build context's git checkout: HEAD's time and commit,
// the remote the sources are published at, and what is no checkout at all.
#include "build/checkout.hpp"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "test_support.hpp"

using imgbuild::reachable_remote;
using imgbuild::read_checkout;
using namespace imgbuild::test;

namespace {

/// Runs a shell command in `dir` with a fixed identity and commit time; the
/// test fails when it does.
void sh(const std::filesystem::path& dir, const std::string& command) {
  std::string full = "cd '" + dir.string() +
                     "' && export GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com "
                     "GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@example.com "
                     "GIT_AUTHOR_DATE='1700000000 +0000' GIT_COMMITTER_DATE='1700000000 +0000' && " +
                     command + " >/dev/null 2>&1";
  REQUIRE(std::system(full.c_str()) == 0);
}

}  // namespace

TEST_CASE("read_checkout: HEAD's commit time and id, and origin's URL as configured", "[checkout]") {
  ScratchDir d;
  std::filesystem::create_directories(d.path / "sub/dir");
  spit(d.path / "sub/dir/file", "x");
  sh(d.path, "git init -q . && git add -A && git commit -q -m one");
  auto none = read_checkout(d.path / "sub/dir");
  REQUIRE(none);
  CHECK(none->commit_time == 1700000000);
  CHECK(none->revision.size() == 40);
  CHECK(none->remote.empty());

  // The token stays in the Checkout: stripping it is the caller's job (redact_url).
  sh(d.path, "git remote add origin https://user:secret-token@git.example.com/team/app.git");
  sh(d.path, "git remote add another https://other.example.com/app.git");
  auto c = read_checkout(d.path / "sub");
  REQUIRE(c);
  CHECK(c->revision == none->revision);
  CHECK(c->remote == "https://user:secret-token@git.example.com/team/app.git");

  SECTION("uncommitted changes do not count") {
    spit(d.path / "sub/dir/file", "changed");
    CHECK(read_checkout(d.path)->revision == c->revision);
  }
}

TEST_CASE("read_checkout: nothing outside a checkout; an error for a checkout git cannot read", "[checkout]") {
  ScratchDir d;
  CHECK(!read_checkout(d.path));
  sh(d.path, "git init -q .");
  CHECK_THROWS_WITH(read_checkout(d.path), Catch::Matchers::Contains("the git checkout " + d.path.string()) &&
                                               Catch::Matchers::Contains("git log -1"));
}

TEST_CASE("reachable_remote: a repository on this machine names nothing elsewhere", "[checkout]") {
  CHECK(reachable_remote("https://git.example.com/team/app.git") == "https://git.example.com/team/app.git");
  CHECK(reachable_remote("ssh://git@git.example.com/team/app.git") == "ssh://git@git.example.com/team/app.git");
  CHECK(reachable_remote("git@git.example.com:team/app.git") == "git@git.example.com:team/app.git");
  CHECK(reachable_remote("/work/main").empty());
  CHECK(reachable_remote("../app").empty());
  CHECK(reachable_remote("./dir:with-colon").empty());
  CHECK(reachable_remote("file:///srv/git/app.git").empty());
  CHECK(reachable_remote("").empty());
}
