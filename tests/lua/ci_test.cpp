// Tier 2: the `ci` table as a recipe sees it, from the variables GitHub
// Actions, GitLab CI (current and pre-9.0 names) and Travis set for pushes,
// pull requests and tags, and outside CI from a git folder read directly.
#include <catch2/catch.hpp>

#include <cstdlib>

#include "recipe_harness.hpp"

using imgbuild::test::RecipeRun;
using namespace imgbuild;

namespace {

// Every variable imgbuild.ci reads: a test sets the ones of its scenario on a
// clean slate, so a suite that itself runs on a CI service is not misled.
const char* const kCiVariables[] = {
    "GITHUB_ACTIONS",
    "GITHUB_REF",
    "GITHUB_REF_TYPE",
    "GITHUB_REF_NAME",
    "GITHUB_HEAD_REF",
    "GITHUB_SHA",
    "GITHUB_SERVER_URL",
    "GITHUB_REPOSITORY",
    "CI_PROJECT_URL",
    "TRAVIS_REPO_SLUG",
    "GITLAB_CI",
    "CI_COMMIT_SHA",
    "CI_COMMIT_BRANCH",
    "CI_COMMIT_REF_NAME",
    "CI_COMMIT_TAG",
    "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME",
    "CI_MERGE_REQUEST_IID",
    "CI_BUILD_REF",
    "CI_BUILD_REF_NAME",
    "CI_BUILD_TAG",
    "CI_REPOSITORY_URL",
    "CI_BUILD_REPO",
    "TRAVIS",
    "TRAVIS_BRANCH",
    "TRAVIS_COMMIT",
    "TRAVIS_TAG",
    "TRAVIS_PULL_REQUEST",
    "TRAVIS_PULL_REQUEST_BRANCH",
};

/// Clears the CI variables for its lifetime, then puts back what was there.
class CleanCiEnvironment {
public:
  CleanCiEnvironment() {
    for (const char* name : kCiVariables) {
      if (const char* v = std::getenv(name)) saved_.emplace_back(name, v);
      ::unsetenv(name);
    }
  }
  ~CleanCiEnvironment() {
    for (const char* name : kCiVariables) ::unsetenv(name);
    for (auto& [name, value] : saved_) ::setenv(name.c_str(), value.c_str(), 1);
  }
  CleanCiEnvironment(const CleanCiEnvironment&) = delete;
  CleanCiEnvironment& operator=(const CleanCiEnvironment&) = delete;

private:
  std::vector<std::pair<std::string, std::string>> saved_;
};

const std::string kSha = "8d1f5c7a9b2e4f6081a3c5e7f9b1d3e5a7c9e1f3";

/// The fields of `ci` as the recipe in `r` sees them with `vars` set, one
/// string: "name=github is_ci=true branch=main sha=... short_sha=... tag=nil pr=nil repository=nil".
std::string ci_of(RecipeRun& r, const std::map<std::string, std::string>& vars) {
  CleanCiEnvironment clean;
  for (auto& [k, v] : vars) ::setenv(k.c_str(), v.c_str(), 1);
  Evaluation ev = r.evaluate(
      "local out = {}\n"
      "for _, k in ipairs { \"name\", \"is_ci\", \"branch\", \"sha\", \"short_sha\", \"tag\", \"pr\", \"repository\" } "
      "do\n"
      "  out[#out + 1] = k .. \"=\" .. tostring(ci[k])\n"
      "end\n"
      "image(\"a\", scratch:label { ci = table.concat(out, \" \") })\n");
  return std::get<config::Label>(std::get<ConfigOp>(ev.graph.nodes.at(ev.graph.targets.at(0).node).op)).value.at("ci");
}

}  // namespace

TEST_CASE("ci on GitHub Actions: push, pull request, tag", "[recipe][ci]") {
  RecipeRun r;
  CHECK(ci_of(r, {{"GITHUB_ACTIONS", "true"},
                  {"GITHUB_REF", "refs/heads/main"},
                  {"GITHUB_REF_NAME", "main"},
                  {"GITHUB_REF_TYPE", "branch"},
                  {"GITHUB_SHA", kSha},
                  {"GITHUB_SERVER_URL", "https://github.com"},
                  {"GITHUB_REPOSITORY", "team/api"}}) ==
        "name=github is_ci=true branch=main sha=" + kSha +
            " short_sha=8d1f5c7a tag=nil pr=nil repository=https://github.com/team/api");
  // A pull request builds GitHub's merge commit; the branch is the PR's own.
  CHECK(ci_of(r, {{"GITHUB_ACTIONS", "true"},
                  {"GITHUB_REF", "refs/pull/42/merge"},
                  {"GITHUB_REF_NAME", "42/merge"},
                  {"GITHUB_REF_TYPE", "branch"},
                  {"GITHUB_HEAD_REF", "feature/login"},
                  {"GITHUB_SHA", kSha}}) ==
        "name=github is_ci=true branch=feature/login sha=" + kSha + " short_sha=8d1f5c7a tag=nil pr=42 repository=nil");
  CHECK(ci_of(r, {{"GITHUB_ACTIONS", "true"},
                  {"GITHUB_REF", "refs/tags/v1.2.0"},
                  {"GITHUB_REF_NAME", "v1.2.0"},
                  {"GITHUB_REF_TYPE", "tag"},
                  {"GITHUB_HEAD_REF", ""},
                  {"GITHUB_SHA", kSha}}) ==
        "name=github is_ci=true branch=nil sha=" + kSha + " short_sha=8d1f5c7a tag=v1.2.0 pr=nil repository=nil");
}

TEST_CASE("ci on GitLab CI: current variable names", "[recipe][ci]") {
  RecipeRun r;
  CHECK(ci_of(r, {{"GITLAB_CI", "true"},
                  {"CI_COMMIT_SHA", kSha},
                  {"CI_COMMIT_REF_NAME", "main"},
                  {"CI_COMMIT_BRANCH", "main"},
                  {"CI_PROJECT_URL", "https://gitlab.example.com/team/api"},
                  {"CI_REPOSITORY_URL", "https://gitlab-ci-token:canary-token@gitlab.example.com/team/api.git"}}) ==
        "name=gitlab is_ci=true branch=main sha=" + kSha +
            " short_sha=8d1f5c7a tag=nil pr=nil repository=https://gitlab.example.com/team/api");
  // A merge request pipeline has no CI_COMMIT_BRANCH.
  CHECK(ci_of(r, {{"GITLAB_CI", "true"},
                  {"CI_COMMIT_SHA", kSha},
                  {"CI_COMMIT_REF_NAME", "feature"},
                  {"CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "feature"},
                  {"CI_MERGE_REQUEST_IID", "7"}}) ==
        "name=gitlab is_ci=true branch=feature sha=" + kSha + " short_sha=8d1f5c7a tag=nil pr=7 repository=nil");
  // On a tag pipeline CI_COMMIT_REF_NAME is the tag, not a branch.
  CHECK(ci_of(r, {{"GITLAB_CI", "true"},
                  {"CI_COMMIT_SHA", kSha},
                  {"CI_COMMIT_REF_NAME", "v2.0.0"},
                  {"CI_COMMIT_TAG", "v2.0.0"}}) ==
        "name=gitlab is_ci=true branch=nil sha=" + kSha + " short_sha=8d1f5c7a tag=v2.0.0 pr=nil repository=nil");
}

TEST_CASE("ci on GitLab CI before 9.0: the CI_BUILD_* names", "[recipe][ci]") {
  RecipeRun r;
  CHECK(ci_of(r, {{"GITLAB_CI", "true"},
                  {"CI_BUILD_REF", kSha},
                  {"CI_BUILD_REF_NAME", "master"},
                  {"CI_BUILD_REPO", "https://gitlab-ci-token:canary-token@gitlab.example.com/team/api.git"}}) ==
        "name=gitlab is_ci=true branch=master sha=" + kSha + " short_sha=8d1f5c7a tag=nil pr=nil repository=nil");
  CHECK(
      ci_of(r,
            {{"GITLAB_CI", "true"}, {"CI_BUILD_REF", kSha}, {"CI_BUILD_REF_NAME", "v0.9"}, {"CI_BUILD_TAG", "v0.9"}}) ==
      "name=gitlab is_ci=true branch=nil sha=" + kSha + " short_sha=8d1f5c7a tag=v0.9 pr=nil repository=nil");
  // The current names win where a runner sets both.
  CHECK(ci_of(r, {{"GITLAB_CI", "true"},
                  {"CI_COMMIT_SHA", kSha},
                  {"CI_BUILD_REF", "0000000000"},
                  {"CI_COMMIT_REF_NAME", "main"},
                  {"CI_BUILD_REF_NAME", "old"}}) ==
        "name=gitlab is_ci=true branch=main sha=" + kSha + " short_sha=8d1f5c7a tag=nil pr=nil repository=nil");
}

TEST_CASE("ci on Travis: push, pull request, tag", "[recipe][ci]") {
  RecipeRun r;
  // Travis sets the variables it has no value for to "" (and PULL_REQUEST to "false").
  CHECK(ci_of(r, {{"TRAVIS", "true"},
                  {"TRAVIS_BRANCH", "master"},
                  {"TRAVIS_COMMIT", kSha},
                  {"TRAVIS_PULL_REQUEST", "false"},
                  {"TRAVIS_PULL_REQUEST_BRANCH", ""},
                  {"TRAVIS_TAG", ""},
                  {"TRAVIS_REPO_SLUG", "team/api"}}) ==
        "name=travis is_ci=true branch=master sha=" + kSha +
            " short_sha=8d1f5c7a tag=nil pr=nil repository=https://github.com/team/api");
  // On a pull request TRAVIS_BRANCH is the target branch: not the one built.
  CHECK(ci_of(r, {{"TRAVIS", "true"},
                  {"TRAVIS_BRANCH", "master"},
                  {"TRAVIS_COMMIT", kSha},
                  {"TRAVIS_PULL_REQUEST", "12"},
                  {"TRAVIS_PULL_REQUEST_BRANCH", "feature"},
                  {"TRAVIS_TAG", ""}}) ==
        "name=travis is_ci=true branch=feature sha=" + kSha + " short_sha=8d1f5c7a tag=nil pr=12 repository=nil");
  CHECK(ci_of(r, {{"TRAVIS", "true"},
                  {"TRAVIS_BRANCH", "v3.1"},
                  {"TRAVIS_COMMIT", kSha},
                  {"TRAVIS_PULL_REQUEST", "false"},
                  {"TRAVIS_TAG", "v3.1"}}) ==
        "name=travis is_ci=true branch=nil sha=" + kSha + " short_sha=8d1f5c7a tag=v3.1 pr=nil repository=nil");
}

TEST_CASE("ci outside CI reads the context's git folder without git", "[recipe][ci]") {
  RecipeRun r;
  SECTION("a plain folder gives nils, not errors") {
    CHECK(ci_of(r, {}) == "name=git is_ci=false branch=nil sha=nil short_sha=nil tag=nil pr=nil repository=nil");
  }
  SECTION("a branch with a loose ref") {
    r.file(".git/HEAD", "ref: refs/heads/feature/x\n");
    r.file(".git/refs/heads/feature/x", kSha + "\n");
    CHECK(ci_of(r, {}) ==
          "name=git is_ci=false branch=feature/x sha=" + kSha + " short_sha=8d1f5c7a tag=nil pr=nil repository=nil");
  }
  SECTION("a branch in packed-refs") {
    r.file(".git/HEAD", "ref: refs/heads/main\n");
    r.file(".git/packed-refs",
           "# pack-refs with: peeled fully-peeled sorted \n"
           "1111111111111111111111111111111111111111 refs/heads/other\n" +
               kSha + " refs/heads/main\n");
    CHECK(ci_of(r, {}) ==
          "name=git is_ci=false branch=main sha=" + kSha + " short_sha=8d1f5c7a tag=nil pr=nil repository=nil");
  }
  SECTION("a detached HEAD has a commit and no branch") {
    r.file(".git/HEAD", kSha + "\n");
    CHECK(ci_of(r, {}) ==
          "name=git is_ci=false branch=nil sha=" + kSha + " short_sha=8d1f5c7a tag=nil pr=nil repository=nil");
  }
  SECTION("a worktree: a .git file, the branch in the common folder") {
    r.file("main/.git/packed-refs", kSha + " refs/heads/wt\n");
    r.file("main/.git/worktrees/w/HEAD", "ref: refs/heads/wt\n");
    r.file("main/.git/worktrees/w/commondir", "../..\n");
    r.file(".git", "gitdir: main/.git/worktrees/w\n");
    CHECK(ci_of(r, {}) ==
          "name=git is_ci=false branch=wt sha=" + kSha + " short_sha=8d1f5c7a tag=nil pr=nil repository=nil");
  }
  SECTION("a CI service's variables win over the repository; empty ones count as unset") {
    r.file(".git/HEAD", "ref: refs/heads/main\n");
    r.file(".git/refs/heads/main", kSha + "\n");
    CHECK(ci_of(r, {{"GITHUB_ACTIONS", ""}, {"TRAVIS", ""}}) ==
          "name=git is_ci=false branch=main sha=" + kSha + " short_sha=8d1f5c7a tag=nil pr=nil repository=nil");
    CHECK(ci_of(r, {{"TRAVIS", "true"}, {"TRAVIS_BRANCH", "release"}, {"TRAVIS_COMMIT", "abc"}}) ==
          "name=travis is_ci=true branch=release sha=abc short_sha=abc tag=nil pr=nil repository=nil");
  }
}

TEST_CASE("require \"imgbuild.ci\" is the global ci", "[recipe][ci]") {
  RecipeRun r;
  CleanCiEnvironment clean;
  CHECK(r.error_of("local c = require \"imgbuild.ci\"\nassert(c == ci)\n"
                   "image(\"a\", scratch:doctor { ignore = { \"entrypoint\", \"root\" } })\n") == "");
}

TEST_CASE("the evaluation hands on ci.tag, for the image's version annotation", "[recipe][ci]") {
  RecipeRun r;
  const std::string recipe = "image(\"a\", scratch:doctor { ignore = { \"entrypoint\", \"root\" } })\n";
  {
    CleanCiEnvironment clean;
    CHECK(r.evaluate(recipe).ci_tag.empty());
  }
  CleanCiEnvironment clean;
  ::setenv("GITHUB_ACTIONS", "true", 1);
  ::setenv("GITHUB_REF_TYPE", "tag", 1);
  ::setenv("GITHUB_REF_NAME", "v1.2.3", 1);
  CHECK(r.evaluate(recipe).ci_tag == "v1.2.3");
}
