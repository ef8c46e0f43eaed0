// Tier 2: what evaluation describes. Nothing is built here: these check the
// graph a recipe hands the engine.
#include <catch2/catch.hpp>

#include "recipe_harness.hpp"

using imgbuild::test::RecipeRun;
using namespace imgbuild;

namespace {
const ConfigOp& config_of(const Evaluation& ev, size_t node) { return std::get<ConfigOp>(ev.graph.nodes.at(node).op); }
}  // namespace

TEST_CASE("every step of a method chain records its own line", "[recipe][describe]") {
  RecipeRun r;
  Evaluation ev = r.evaluate(
      "image(\"svc\", scratch\n"
      "  :env { MODE = \"release\" }\n"
      "  :expose(8080)\n"
      "  :entrypoint { \"/app\" })\n");
  REQUIRE(ev.graph.targets.size() == 1);
  const Target& t = ev.graph.targets[0];
  CHECK(t.name == "svc");
  CHECK(t.loc.ends_with("recipe.lua:1"));
  std::vector<std::string> lines;
  for (std::optional<size_t> n = t.node; n; n = ev.graph.nodes[*n].parent) {
    const std::string& loc = ev.graph.nodes[*n].loc;
    lines.push_back(loc.substr(loc.rfind(':') + 1));
  }
  CHECK(lines == std::vector<std::string>{"4", "3", "2", "scratch"});
}

TEST_CASE("images are immutable values: deriving leaves the original unchanged", "[recipe][describe]") {
  RecipeRun r;
  Evaluation ev = r.evaluate(
      "local base = scratch:env { A = \"1\" }\n"
      "local one = base:env { B = \"2\" }\n"
      "local two = base:user \"65534\"\n"
      "image(\"one\", one)\nimage(\"two\", two)\n");
  REQUIRE(ev.graph.targets.size() == 2);
  size_t one = ev.graph.targets[0].node, two = ev.graph.targets[1].node;
  CHECK(config_name(config_of(ev, one)) == std::string("env"));
  CHECK(config_name(config_of(ev, two)) == std::string("user"));
  // Both share the one `base` node: it was described once.
  REQUIRE(ev.graph.nodes[one].parent == ev.graph.nodes[two].parent);
  CHECK(std::get<config::Env>(config_of(ev, *ev.graph.nodes[one].parent)).value ==
        std::map<std::string, std::string>{{"A", "1"}});
}

TEST_CASE("only what the targets need is described", "[recipe][describe]") {
  RecipeRun r;
  Evaluation ev = r.evaluate("local unused = scratch:copy(\"missing\", \"/m\")\nimage(\"a\", scratch:user \"1\")\n");
  CHECK(ev.graph.nodes.size() == 2);
}

TEST_CASE("params come from --set, env from the environment", "[recipe][describe]") {
  RecipeRun r;
  ::setenv("IMGBUILD_TEST_VALUE", "from-env", 1);
  Evaluation ev = r.evaluate(
      "image(\"a\", scratch:label { version = param(\"VERSION\", \"dev\"), e = env(\"IMGBUILD_TEST_VALUE\"),"
      " d = env(\"IMGBUILD_TEST_UNSET\", \"fallback\") })\n",
      {{"VERSION", "1.4.2"}});
  ::unsetenv("IMGBUILD_TEST_VALUE");
  CHECK(std::get<config::Label>(config_of(ev, ev.graph.targets[0].node)).value ==
        std::map<std::string, std::string>{{"version", "1.4.2"}, {"e", "from-env"}, {"d", "fallback"}});
  CHECK(ev.params_used == std::vector<std::string>{"VERSION"});
}

TEST_CASE("require finds modules next to the recipe, then in IMGBUILD_PATH, then the stdlib", "[recipe][describe]") {
  RecipeRun r;
  TempDir shared(std::filesystem::temp_directory_path(), "imgbuild-lua-path-");
  write_file_atomic(shared.path() / "team.lua", "return { port = 9090 }\n");
  r.file("local_lib.lua", "return { user = \"10001\" }\n");
  Evaluation ev = r.evaluate(
      "local team = require \"team\"\nlocal lib = require \"local_lib\"\nlocal go = require \"imgbuild.go\"\n"
      "image(\"a\", scratch:expose(team.port):user(lib.user))\n",
      {}, {shared.path().string()});
  size_t user = ev.graph.targets[0].node;
  CHECK(std::get<config::User>(config_of(ev, user)).value == "10001");
  CHECK(std::get<config::Expose>(config_of(ev, *ev.graph.nodes[user].parent)).value ==
        std::vector<std::string>{"9090/tcp"});
}

TEST_CASE("the engine's own Lua cannot be loaded by a recipe", "[recipe][describe]") {
  RecipeRun r;
  CHECK(r.error_of("require \"imgbuild.dsl\"\n").starts_with("recipe.lua:1: module 'imgbuild.dsl' not found:"));
}

TEST_CASE("go.build describes a host build for the image's platform", "[recipe][describe]") {
  RecipeRun r;
  Evaluation ev = r.evaluate(
      "local go = require \"imgbuild.go\"\n"
      "image(\"a\", scratch:copy(go.build { main = \"cmd/api\", tags = { \"netgo\" } }, \"/api\"))\n");
  const auto& copy = std::get<CopyOp>(ev.graph.nodes[ev.graph.targets[0].node].op);
  REQUIRE(copy.sources.size() == 1);
  REQUIRE(copy.sources[0].file_node);
  const Node& host = ev.graph.nodes[*copy.sources[0].file_node];
  CHECK(host.loc.ends_with("recipe.lua:2"));
  const auto& op = std::get<HostBuildOp>(host.op);
  CHECK(op.dir == "cmd/api");
  CHECK(op.env.at("CGO_ENABLED") == "0");
  CHECK(op.env.at("GOARCH") == "${TARGETARCH}");
  CHECK(op.argv == std::vector<std::string>{"go", "build", "-buildvcs=false", "-ldflags=-s -w", "-trimpath",
                                            "-tags=netgo", "-o", "${OUT}", "."});
}

TEST_CASE("go.caches mounts Go's build and module caches where the env puts them", "[recipe][describe]") {
  RecipeRun r;
  Evaluation ev = r.evaluate(
      "local go = require \"imgbuild.go\"\n"
      "local b = scratch:run(\"go build\", go.caches())\n"
      "image(\"a\", b:run(\"go vet\", go.caches { network = \"host\", env = { GOCACHE = \"/c/go\", X = \"1\" },"
      " cache = { \"/root/.npm\", \"/go/pkg/mod\" } }))\n");
  const Node& moved = ev.graph.nodes[ev.graph.targets[0].node];
  const auto& plain = std::get<RunOp>(ev.graph.nodes[*moved.parent].op);
  CHECK(plain.cache == std::vector<std::string>{"/root/.cache/go-build", "/go/pkg/mod"});
  CHECK(plain.env ==
        std::map<std::string, std::string>{{"GOCACHE", "/root/.cache/go-build"}, {"GOMODCACHE", "/go/pkg/mod"}});
  const auto& op = std::get<RunOp>(moved.op);
  CHECK(op.cache == std::vector<std::string>{"/c/go", "/go/pkg/mod", "/root/.npm"});
  CHECK(op.env.at("GOCACHE") == "/c/go");
  CHECK(op.env.at("X") == "1");
  CHECK(op.network == StepNetwork::host);
  CHECK(r.error_of("local go = require \"imgbuild.go\"\n"
                   "image(\"a\", scratch:run(\"go build\", go.caches { env = { GOMODCACHE = \"mod\" } }))\n") ==
        "recipe.lua:2: go.caches: env.GOMODCACHE: 'mod' must be an absolute path in the image");
}

TEST_CASE("from describes a normalised reference; push a normalised target", "[recipe][describe]") {
  RecipeRun r;
  Evaluation ev = r.evaluate(
      "local base = from \"alpine:3.20\"\n"
      "local arm = from(\"ghcr.io/o/r:1\", { platform = \"linux/arm64\" })\n"
      "image(\"a\", base:user \"1\")\n"
      "push(arm, \"localhost:5000/team/arm\")\n");
  REQUIRE(ev.graph.targets.size() == 1);
  const Node& user = ev.graph.nodes[ev.graph.targets[0].node];
  const auto& pull = std::get<PullOp>(ev.graph.nodes[*user.parent].op);
  CHECK(pull.reference == "docker.io/library/alpine:3.20");
  CHECK(!pull.platform);
  REQUIRE(ev.graph.pushes.size() == 1);
  const Push& push = ev.graph.pushes[0];
  CHECK(push.reference == "localhost:5000/team/arm:latest");
  CHECK(push.loc.ends_with("recipe.lua:4"));
  const auto& arm = std::get<PullOp>(ev.graph.nodes[push.node].op);
  CHECK(arm.reference == "ghcr.io/o/r:1");
  CHECK(arm.platform == "linux/arm64");
}

TEST_CASE("push to a list of references: one push per tag, normalised, each tag once", "[recipe][describe]") {
  RecipeRun r;
  Evaluation ev = r.evaluate(
      "local app = scratch:user \"1\"\n"
      "push(app, { \"localhost:5000/team/app\", \"localhost:5000/team/app:v1\",\n"
      "  \"localhost:5000/other/app:v1\", \"localhost:5000/team/app:latest\", \"127.0.0.1:5001/app:v1\" })\n");
  std::vector<std::string> refs;
  for (const Push& p : ev.graph.pushes) {
    refs.push_back(p.reference);
    CHECK(p.node == ev.graph.pushes[0].node);
    CHECK(p.loc.ends_with("recipe.lua:2"));
  }
  CHECK(refs == std::vector<std::string>{"localhost:5000/team/app:latest", "localhost:5000/team/app:v1",
                                         "localhost:5000/other/app:v1", "127.0.0.1:5001/app:v1"});
}

TEST_CASE("run's network: its own by default or when named \"default\", the host's or none when asked",
          "[recipe][describe]") {
  RecipeRun r;
  Evaluation ev = r.evaluate(
      "image(\"a\", scratch:run \"a\":run(\"b\", { network = \"default\" }):run(\"c\", { network = \"host\" })\n"
      "  :run(\"d\", { network = \"none\" }))\n");
  std::vector<StepNetwork> networks;
  for (auto& node : ev.graph.nodes)
    if (auto* run = std::get_if<RunOp>(&node.op)) networks.push_back(run->network);
  CHECK(networks == std::vector<StepNetwork>{StepNetwork::own, StepNetwork::own, StepNetwork::host, StepNetwork::none});
}
