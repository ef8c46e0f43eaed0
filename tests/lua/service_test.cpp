// Tier 2: imgbuild.service, the stdlib module written as a user's library: the
// image it describes, the doctor's verdict on it, and its option errors at the
// caller's line.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <optional>

#include "recipe_harness.hpp"

using imgbuild::test::RecipeRun;
using namespace imgbuild;
using Lines = std::vector<std::string>;

namespace {

/// The steps from a target back to scratch, "kind key=value" for config steps
/// and "copy SOURCES -> DEST" for copies, last step first.
Lines steps_of(const Evaluation& ev) {
  Lines out;
  for (std::optional<size_t> n = ev.graph.targets.at(0).node; n; n = ev.graph.nodes[*n].parent) {
    const Node& node = ev.graph.nodes[*n];
    if (auto* c = std::get_if<ConfigOp>(&node.op)) {
      out.push_back(std::visit(
          [](const auto& change) { return std::string(change.name) + " " + nlohmann::json(change.value).dump(); }, *c));
    } else if (auto* copy = std::get_if<CopyOp>(&node.op)) {
      std::string what = "copy ";
      for (auto& s : copy->sources) {
        if (s.file_node) {
          const Node& f = ev.graph.nodes[*s.file_node];
          if (auto* host = std::get_if<HostBuildOp>(&f.op))
            what += "[" + host->description + " -> " + host->output_name + "]";
          else
            what += "[host file]";
        } else {
          what += s.context_path;
        }
      }
      out.push_back(what + " " + copy->dest + (copy->static_only ? " static" : ""));
    }
  }
  return out;
}

/// Sets GITHUB_* variables for a push to main for its lifetime.
struct FakeGithub {
  FakeGithub() {
    ::setenv("GITHUB_ACTIONS", "true", 1);
    ::setenv("GITHUB_REF_NAME", "main", 1);
    ::setenv("GITHUB_SHA", "0123456789abcdef0123456789abcdef01234567", 1);
    ::setenv("GITHUB_SERVER_URL", "https://github.com", 1);
    ::setenv("GITHUB_REPOSITORY", "team/api", 1);
  }
  ~FakeGithub() {
    for (const char* v : {"GITHUB_ACTIONS", "GITHUB_REF_NAME", "GITHUB_SHA", "GITHUB_SERVER_URL", "GITHUB_REPOSITORY"})
      ::unsetenv(v);
  }
};

}  // namespace

TEST_CASE("service.image: binary, certificates, labels from ci, a non-root user", "[recipe][service]") {
  RecipeRun r;
  FakeGithub github;
  Evaluation ev = r.evaluate(
      "local service = require \"imgbuild.service\"\n"
      "image(\"api\", service.image { main = \"cmd/api\", port = 8080, tzdata = true,\n"
      "  env = { GIN_MODE = \"release\" }, args = { \"--quiet\" }, go = { tags = { \"netgo\" } } })\n");
  CHECK(steps_of(ev) ==
        Lines{"cmd [\"--quiet\"]", "entrypoint [\"/usr/local/bin/api\"]", "user \"65534\"", "expose [\"8080/tcp\"]",
              "label {\"org.opencontainers.image.revision\":\"0123456789abcdef0123456789abcdef01234567\","
              "\"org.opencontainers.image.source\":\"https://github.com/team/api\","
              "\"org.opencontainers.image.title\":\"api\"}",
              "env {\"GIN_MODE\":\"release\"}", "copy [host file] /usr/share/zoneinfo/",
              "copy [host file] /etc/ssl/certs/ca-certificates.crt",
              "copy [go build cmd/api -> api] /usr/local/bin/api static"});
  // Every step is the recipe's line: the module's own lines are not the user's.
  for (std::optional<size_t> n = ev.graph.targets.at(0).node; ev.graph.nodes[*n].parent; n = ev.graph.nodes[*n].parent)
    CHECK(ev.graph.nodes[*n].loc.ends_with("recipe.lua:2"));
  const HostBuildOp* build = nullptr;
  for (auto& node : ev.graph.nodes)
    if (auto* b = std::get_if<HostBuildOp>(&node.op)) build = b;
  REQUIRE(build);
  CHECK(build->argv == std::vector<std::string>{"go", "build", "-buildvcs=false", "-ldflags=-s -w", "-trimpath",
                                                "-tags=netgo", "-o", "${OUT}", "."});
}

TEST_CASE("service.image: defaults, and given labels win", "[recipe][service]") {
  RecipeRun r;
  Evaluation ev = r.evaluate(
      "local service = require \"imgbuild.service\"\n"
      "image(\"api\", service.image { source = \"https://example.com/x\", version = \"1.0\", user = 10001,\n"
      "  labels = { [\"org.opencontainers.image.title\"] = \"X\" } })\n");
  // Outside CI and a repository, ci gives no revision.
  CHECK(steps_of(ev) == Lines{"entrypoint [\"/usr/local/bin/app\"]", "user \"10001\"",
                              "label {\"org.opencontainers.image.source\":\"https://example.com/x\","
                              "\"org.opencontainers.image.title\":\"X\",\"org.opencontainers.image.version\":\"1.0\"}",
                              "copy [host file] /etc/ssl/certs/ca-certificates.crt",
                              "copy [go build . -> app] /usr/local/bin/app static"});
}

TEST_CASE("service.image: bad options fail at the caller's line", "[recipe][service]") {
  RecipeRun r;
  const std::string req = "local service = require \"imgbuild.service\"\n";
  CHECK(r.error_of(req + "local img = service.image { mian = \"cmd/api\" }\n") ==
        "recipe.lua:2: service.image: unknown option 'mian' (known: args, env, go, labels, main, name, port, "
        "source, tzdata, user, version)");
  CHECK(r.error_of(req + "local img = service.image \"cmd/api\"\n") ==
        "recipe.lua:2: service.image: expected a table of options such as { main = \"cmd/api\" }, got string");
  CHECK(r.error_of(req + "local img = service.image { port = 70000 }\n") ==
        "recipe.lua:2: service.image: port: expected a port number or a list of them, got 70000");
  CHECK(r.error_of(req + "local img = service.image { port = { 8080, true } }\n") ==
        "recipe.lua:2: service.image: port: expected a port number or a list of them, got table");
  CHECK(r.error_of(req + "local img = service.image { name = \"bin/api\" }\n") ==
        "recipe.lua:2: service.image: name: expected a file name such as \"api\", got 'bin/api'");
  CHECK(r.error_of(req + "local img = service.image { tzdata = \"yes\" }\n") ==
        "recipe.lua:2: service.image: tzdata: expected true or false, got 'yes'");
  CHECK(r.error_of(req + "local img = service.image { args = \"--quiet\" }\n") ==
        "recipe.lua:2: service.image: args: expected a list of strings, got '--quiet'");
  CHECK(r.error_of(req + "local img = service.image { user = -1 }\n") ==
        "recipe.lua:2: service.image: user: expected a user such as \"65534\" or \"10001:10001\", got -1");
  CHECK(r.error_of(req + "local img = service.image { go = { main = \"x\" } }\n") ==
        "recipe.lua:2: service.image: go: give main and name as options of service.image, not of go");
  // What the API methods and go.build check is reported at the same line.
  CHECK(r.error_of(req + "local img = service.image { go = { tagz = {} } }\n") ==
        "recipe.lua:2: go.build: unknown option 'tagz' (did you mean 'tags'?)");
  CHECK(r.error_of(req + "local img = service.image { env = { [\"A B\"] = \"1\" } }\n") ==
        "recipe.lua:2: env: invalid name 'A B' (letters, digits and _)");
  CHECK(r.error_of(req + "local img = service.image { port = \"http\" }\n") ==
        "recipe.lua:2: expose: invalid port 'http' (expected 1-65535, optionally /tcp, /udp or /sctp)");
}

TEST_CASE("service.image called from a user's module reports the module's line", "[recipe][service]") {
  RecipeRun r;
  // Not a tail call: `return service.image {...}` leaves no frame of team.lua
  // on the stack, and error(msg, 2) names the recipe's line, as in any Lua.
  r.file("team.lua",
         "local service = require \"imgbuild.service\"\n"
         "return function(port)\n"
         "  local img = service.image { port = port, prot = 1 }\n"
         "  return img\n"
         "end\n");
  CHECK(r.error_of("local team = require \"team\"\nimage(\"a\", team(8080))\n") ==
        "team.lua:3: service.image: unknown option 'prot' (known: args, env, go, labels, main, name, port, source, "
        "tzdata, user, version)");
}

TEST_CASE("service.image: a TLS and time zone client passes the doctor", "[recipe][service]") {
  RecipeRun r;
  r.file("go.mod", "module example.com/svc\n\ngo 1.19\n");
  r.file("main.go",
         "package main\n\nimport (\"fmt\"; \"net/http\"; \"time\")\n\n"
         "func main() { l, _ := time.LoadLocation(\"Europe/Berlin\"); fmt.Println(l); "
         "http.Get(\"https://example.com\") }\n");
  CHECK(r.findings_of("local service = require \"imgbuild.service\"\n"
                      "image(\"a\", service.image { port = 8080 })\n") ==
        Lines{"warning[tzdata] recipe.lua:2: entrypoint /usr/local/bin/app loads time zones but the image has no "
              "/usr/share/zoneinfo and the binary embeds no tzdata (copy in require(\"imgbuild.tzdata\").zoneinfo, "
              "or import _ \"time/tzdata\")"});
  CHECK(r.findings_of("local service = require \"imgbuild.service\"\n"
                      "image(\"a\", service.image { port = 8080, tzdata = true })\n")
            .empty());
}
