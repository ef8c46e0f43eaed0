// Tier 2: hash, exists and cached, the seed's lockfile-builder pattern. The
// registry is a callback here (RecipeRun::exists); tests/e2e/lockfile_builder.sh
// asks a real one.
#include <catch2/catch.hpp>

#include <set>
#include <stdexcept>

#include "recipe_harness.hpp"

using imgbuild::test::RecipeRun;
using namespace imgbuild;

namespace {

constexpr const char* kSha256Abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr const char* kMd5Abc = "900150983cd24fb0d6963f7d28e17f72";

/// The string `expr` evaluates to in a recipe, read back from a label.
std::string value_of(RecipeRun& r, const std::string& expr) {
  Evaluation ev = r.evaluate("image(\"v\", scratch:label { v = tostring(" + expr + ") })\n");
  return std::get<config::Label>(std::get<ConfigOp>(ev.graph.nodes.at(ev.graph.targets.at(0).node).op)).value.at("v");
}

/// The message evaluating `recipe` fails with, relative to the context; "" if it succeeds.
std::string evaluation_error(RecipeRun& r, const std::string& recipe) {
  try {
    r.evaluate(recipe);
  } catch (const std::exception& e) {
    return r.relative(e.what());
  }
  return "";
}

}  // namespace

TEST_CASE("hash: the hex digest of context files, concatenated in order", "[recipe][hash]") {
  RecipeRun r;
  r.file("glide.lock", "abc");
  r.file("a", "ab");
  r.file("b", "c");
  r.file("sub/empty", "");
  CHECK(value_of(r, "hash \"glide.lock\"") == kSha256Abc);
  CHECK(value_of(r, "hash { \"glide.lock\", algorithm = \"md5\" }") == kMd5Abc);
  CHECK(value_of(r, "hash { \"glide.lock\", algorithm = \"sha256\" }") == kSha256Abc);
  CHECK(value_of(r, "hash(\"a\", \"b\")") == kSha256Abc);
  CHECK(value_of(r, "hash { \"a\", \"b\", algorithm = \"md5\" }") == kMd5Abc);
  CHECK(value_of(r, "hash(\"b\", \"a\")") == "6548d955790a22925c1e23508ec4e2bffb8e45d80261b4b2c1f9d8c9b0d152b6");
  CHECK(value_of(r, "hash { \"./sub/../a\", \"b\" }") == kSha256Abc);
  CHECK(value_of(r, "hash { \"sub/empty\", algorithm = \"md5\" }") == "d41d8cd98f00b204e9800998ecf8427e");
}

TEST_CASE("hash: each mistake is reported at the recipe line", "[recipe][hash][errors]") {
  RecipeRun r;
  r.file("glide.lock", "abc");
  r.file("one.lock", "1");
  r.file("vendor/x", "x");
  r.file(".dockerignore", "secret.lock\n");
  r.file("secret.lock", "s");
  std::filesystem::create_symlink("/etc/hostname", r.dir() / "escape");
  CHECK(evaluation_error(r, "local a = 1\n\nlocal tag = hash \"glide.lok\"\n") ==
        "recipe.lua:3: hash: no such file in the build context: glide.lok");
  CHECK(evaluation_error(r, "local tag = hash(\"glide.lock\", \"vendor\")\n") ==
        "recipe.lua:1: hash: vendor: is a directory, not a file");
  CHECK(evaluation_error(r, "local tag = hash \"../glide.lock\"\n") ==
        "recipe.lua:1: hash: '../glide.lock' is outside the build context");
  CHECK(evaluation_error(r, "local tag = hash \"vendor/../../x\"\n") ==
        "recipe.lua:1: hash: 'vendor/../../x' is outside the build context");
  CHECK(evaluation_error(r, "local tag = hash \"/etc/hostname\"\n") ==
        "recipe.lua:1: hash: '/etc/hostname' must be relative to the build context");
  CHECK(evaluation_error(r, "local tag = hash \"escape\"\n") ==
        "recipe.lua:1: hash: escape: symlink points outside the build context");
  CHECK(evaluation_error(r, "local tag = hash \"secret.lock\"\n") ==
        "recipe.lua:1: hash: no such file in the build context: secret.lock");
  CHECK(evaluation_error(r, "local tag = hash \"*.lock\"\n") ==
        "recipe.lua:1: hash: *.lock: matches 2 files; name each one");
  CHECK(evaluation_error(r, "local tag = hash { \"glide.lock\", algorithm = \"sha512\" }\n") ==
        "recipe.lua:1: hash: unknown algorithm 'sha512' (known: md5, sha1, sha256)");
  CHECK(evaluation_error(r, "local tag = hash { \"glide.lock\", algoritm = \"md5\" }\n") ==
        "recipe.lua:1: hash: unknown option 'algoritm' (did you mean 'algorithm'?)");
  CHECK(evaluation_error(r, "local tag = hash { \"glide.lock\", algorithm = 5 }\n") ==
        "recipe.lua:1: hash: algorithm: expected a non-empty string, got number");
  CHECK(evaluation_error(r, "local tag = hash()\n") == "recipe.lua:1: hash: expected at least one file");
  CHECK(evaluation_error(r, "local tag = hash {}\n") == "recipe.lua:1: hash: expected at least one file");
  CHECK(evaluation_error(r, "local tag = hash(\"glide.lock\", 5)\n") ==
        "recipe.lua:1: hash: item 2 is number, not a string");
}

TEST_CASE("exists: one question to the registry, about the normalised reference", "[recipe][exists]") {
  RecipeRun r;
  std::vector<std::string> asked;
  r.exists = [&](const std::string& ref) {
    asked.push_back(ref);
    return ref.ends_with(":present");
  };
  CHECK(value_of(r, "exists \"localhost:5000/app:present\"") == "true");
  CHECK(value_of(r, "exists \"alpine\"") == "false");
  CHECK(asked == std::vector<std::string>{"localhost:5000/app:present", "docker.io/library/alpine:latest"});

  r.exists = [](const std::string&) -> bool {
    throw std::runtime_error("localhost:5000/app:1: registry said: UNAUTHORIZED: authentication required");
  };
  CHECK(evaluation_error(r, "\nlocal found = exists \"localhost:5000/app:1\"\n") ==
        "recipe.lua:2: exists: localhost:5000/app:1: registry said: UNAUTHORIZED: authentication required");
  CHECK(evaluation_error(r, "local found = exists \"Alpine\"\n")
            .starts_with("recipe.lua:1: exists: invalid image reference \"Alpine\": "));
}

TEST_CASE("exists and cached fail without registry access", "[recipe][exists][cached][errors]") {
  RecipeRun r;
  CHECK(evaluation_error(r, "local found = exists \"localhost:5000/app:1\"\n") ==
        "recipe.lua:1: exists: this evaluation has no registry access");
  CHECK(evaluation_error(r, "local b = cached(\"localhost:5000/app:1\", function() return scratch end)\n") ==
        "recipe.lua:1: cached: this evaluation has no registry access");
}

TEST_CASE("cached: reuses the registry's image, or builds and pushes it", "[recipe][cached]") {
  RecipeRun r;
  std::vector<std::string> asked;
  bool present = true;
  r.exists = [&](const std::string& ref) {
    asked.push_back(ref);
    return present;
  };
  const std::string recipe =
      "local calls = 0\n"
      "local builder = cached(\"localhost:5000/app:builder-1\", function()\n"
      "  calls = calls + 1\n"
      "  return scratch:env { STAGE = \"builder\" }\n"
      "end)\n"
      "image(\"app\", scratch:copy(\"/x\", \"/x\", { from = builder }):label { calls = tostring(calls) })\n";

  SECTION("the registry has it: from(ref) at the cached() line, the function never runs, nothing to push") {
    Evaluation ev = r.evaluate(recipe);
    CHECK(asked == std::vector<std::string>{"localhost:5000/app:builder-1"});
    const Node& label = ev.graph.nodes.at(ev.graph.targets.at(0).node);
    CHECK(std::get<config::Label>(std::get<ConfigOp>(label.op)).value.at("calls") == "0");
    const Node& copy = ev.graph.nodes.at(*label.parent);
    const Node& from = ev.graph.nodes.at(*std::get<CopyOp>(copy.op).from_node);
    CHECK(std::get<PullOp>(from.op).reference == "localhost:5000/app:builder-1");
    CHECK(r.relative(from.loc) == "recipe.lua:2");
    CHECK(ev.graph.pushes.empty());
  }

  SECTION("the registry lacks it: the function's image, pushed to ref whenever it is built") {
    present = false;
    Evaluation ev = r.evaluate(recipe);
    const Node& label = ev.graph.nodes.at(ev.graph.targets.at(0).node);
    CHECK(std::get<config::Label>(std::get<ConfigOp>(label.op)).value.at("calls") == "1");
    size_t builder = *std::get<CopyOp>(ev.graph.nodes.at(*label.parent).op).from_node;
    CHECK(config_name(std::get<ConfigOp>(ev.graph.nodes.at(builder).op)) == std::string("env"));
    REQUIRE(ev.graph.pushes.size() == 1);
    const Push& push = ev.graph.pushes[0];
    CHECK(push.node == builder);
    CHECK(push.reference == "localhost:5000/app:builder-1");
    CHECK(r.relative(push.loc) == "recipe.lua:2");
    CHECK(push.always);
    CHECK(ev.graph.needs(ev.graph.targets[0].node, push.node));
  }
}

TEST_CASE("cached: params a skipped function names count as asked; others do not", "[recipe][cached]") {
  RecipeRun r;
  bool present = true;
  r.exists = [&](const std::string&) { return present; };
  // Read in the function itself, in a local helper it calls, in a global
  // function and in a module table's function.
  const std::string recipe =
      "local function proxy_env() return { GOPROXY = param(\"helper_proxy\", \"direct\") } end\n"
      "function global_tags() return param(\"global_tags\", \"\") end\n"
      "local lib = { flags = function() return param(\"lib_flags\", \"\") end }\n"
      "local builder = cached(\"localhost:5000/app:builder-1\", function()\n"
      "  return scratch:env(proxy_env()):env { GOFLAGS = param(\"goflags\", \"\"), T = global_tags(),\n"
      "    F = lib.flags() }\n"
      "end)\n"
      "image(\"app\", builder)\n";
  const std::map<std::string, std::string> params = {
      {"helper_proxy", "x"}, {"global_tags", "x"}, {"lib_flags", "x"}, {"goflags", "x"}, {"goprxy", "x"}};
  auto asked = [&] {
    Evaluation ev = r.evaluate(recipe, params);
    return std::set<std::string>(ev.params_used.begin(), ev.params_used.end());
  };
  // Skipped, the function ran not: its names count, a typo stays unasked.
  CHECK(asked() == std::set<std::string>{"global_tags", "goflags", "helper_proxy", "lib_flags"});
  // Run, it asks them itself: the same answer either way.
  present = false;
  CHECK(asked() == std::set<std::string>{"global_tags", "goflags", "helper_proxy", "lib_flags"});
}

TEST_CASE("cached: mistakes in its arguments and in the function", "[recipe][cached][errors]") {
  RecipeRun r;
  r.exists = [](const std::string&) { return false; };
  CHECK(evaluation_error(r, "local b = cached(\"localhost:5000/app:1\", scratch)\n") ==
        "recipe.lua:1: cached: expected a function returning the image as second argument, got image");
  CHECK(evaluation_error(r, "local b = cached(\"localhost:5000/app:1\")\n") ==
        "recipe.lua:1: cached: expected a function returning the image as second argument, got nil");
  CHECK(evaluation_error(r, "local b = cached(\"localhost:5000/app@sha256:" + std::string(64, 'a') +
                                "\", function() return scratch end)\n") ==
        "recipe.lua:1: cached: 'localhost:5000/app@sha256:" + std::string(64, 'a') + "' names a digest; push to a tag");
  CHECK(evaluation_error(r,
                         "local b = cached(\"localhost:5000/app:1\", function()\n"
                         "  return \"golang:1.22\"\n"
                         "end)\n") == "recipe.lua:1: cached: the function returned string, not an image");
  CHECK(evaluation_error(r, "local b = cached(\"localhost:5000/app:1\", function() end)\n") ==
        "recipe.lua:1: cached: the function returned nil, not an image");
  // An error inside the function keeps its own line.
  CHECK(evaluation_error(r,
                         "local b = cached(\"localhost:5000/app:1\", function()\n"
                         "  return scratch\n"
                         "    :env(5)\n"
                         "end)\n") == "recipe.lua:3: env: expected a table of NAME = value, got number");
  CHECK(evaluation_error(r,
                         "local b = cached(\"localhost:5000/app:1\", function()\n"
                         "  error(\"no builder today\")\n"
                         "end)\n") == "recipe.lua:2: no builder today");
}
