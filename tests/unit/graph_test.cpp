// Tests for reading the build graph the recipe engine hands over.
#include "build/graph.hpp"

#include <catch2/catch.hpp>

#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

using imgbuild::config_name;
using imgbuild::ConfigOp;
namespace config = imgbuild::config;
using imgbuild::CopyOp;
using imgbuild::Graph;
using imgbuild::HealthConfig;
using imgbuild::HostBuildOp;
using imgbuild::ScratchOp;
using namespace imgbuild::test;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using json = nlohmann::json;

namespace {

json valid_description() {
  return json::parse(R"({
    "nodes": [
      {"kind": "scratch", "loc": "recipe.lua:1"},
      {"kind": "host", "loc": "recipe.lua:2", "description": "go build .",
       "argv": ["go", "build", "-o", "${OUT}", "."], "env": {"CGO_ENABLED": "0", "GOOS": "${TARGETOS}"},
       "dir": "cmd/server", "input_root": ".", "inputs": ["**/*.go", "go.mod"], "host_env": ["GO"],
       "output_name": "server", "tools": ["go"]},
      {"kind": "copy", "loc": "recipe.lua:3", "parent": 1, "sources": [2, "static/*.css"],
       "dest": "/srv/", "chown": {"uid": 1000, "gid": 1001}, "chmod": 493},
      {"kind": "config", "loc": "recipe.lua:4", "parent": 3, "key": "env", "value": {"PORT": "8080"}},
      {"kind": "copy", "loc": "recipe.lua:5", "parent": 4, "sources": ["a.txt"], "dest": "/a.txt"}
    ],
    "targets": [{"name": "app:latest", "node": 5, "loc": "recipe.lua:6"}, {"name": "base", "node": 1}]
  })");
}

// The message from_json throws for `d`, or "" when it accepts it.
std::string graph_error(const json& d) {
  return error_of([&] { Graph::from_json(d); });
}

}  // namespace

TEST_CASE("Graph::from_json reads a valid description", "[graph]") {
  Graph g = Graph::from_json(valid_description());
  REQUIRE(g.nodes.size() == 5);

  REQUIRE(std::holds_alternative<ScratchOp>(g.nodes[0].op));
  REQUIRE(g.nodes[0].loc == "recipe.lua:1");
  REQUIRE_FALSE(g.nodes[0].parent.has_value());
  REQUIRE_FALSE(g.nodes[0].is_file());

  REQUIRE(g.nodes[1].is_file());
  REQUIRE_FALSE(g.nodes[1].parent.has_value());
  const auto& host = std::get<HostBuildOp>(g.nodes[1].op);
  REQUIRE(host.description == "go build .");
  REQUIRE(host.argv == std::vector<std::string>{"go", "build", "-o", "${OUT}", "."});
  REQUIRE(host.env.size() == 2);
  REQUIRE(host.env.at("CGO_ENABLED") == "0");
  REQUIRE(host.env.at("GOOS") == "${TARGETOS}");
  REQUIRE(host.dir == "cmd/server");
  REQUIRE(host.input_root == ".");
  REQUIRE(host.inputs == std::vector<std::string>{"**/*.go", "go.mod"});
  REQUIRE(host.host_env == std::vector<std::string>{"GO"});
  REQUIRE(host.output_name == "server");
  REQUIRE(host.tools == std::vector<std::string>{"go"});

  // References are 1-based in the description and 0-based in the graph.
  REQUIRE(g.nodes[2].parent == std::optional<size_t>(0));
  const auto& copy = std::get<CopyOp>(g.nodes[2].op);
  REQUIRE(copy.sources.size() == 2);
  REQUIRE(copy.sources[0].file_node == std::optional<size_t>(1));
  REQUIRE(copy.sources[0].context_path.empty());
  REQUIRE_FALSE(copy.sources[1].file_node.has_value());
  REQUIRE(copy.sources[1].context_path == "static/*.css");
  REQUIRE(copy.dest == "/srv/");
  REQUIRE(copy.chown.has_value());
  REQUIRE(copy.chown->uid == 1000);
  REQUIRE(copy.chown->gid == 1001);
  REQUIRE(copy.chmod == std::optional<uint32_t>(0755));

  REQUIRE(g.nodes[3].parent == std::optional<size_t>(2));
  const auto& cfg = std::get<ConfigOp>(g.nodes[3].op);
  REQUIRE(config_name(cfg) == std::string("env"));
  REQUIRE(std::get<config::Env>(cfg).value == std::map<std::string, std::string>{{"PORT", "8080"}});

  const auto& plain = std::get<CopyOp>(g.nodes[4].op);
  REQUIRE_FALSE(plain.chown.has_value());
  REQUIRE_FALSE(plain.chmod.has_value());
  REQUIRE(plain.dest == "/a.txt");

  REQUIRE(g.targets.size() == 2);
  REQUIRE(g.targets[0].name == "app:latest");
  REQUIRE(g.targets[0].node == 4);
  REQUIRE(g.targets[0].loc == "recipe.lua:6");
  REQUIRE(g.targets[1].name == "base");
  REQUIRE(g.targets[1].node == 0);
  REQUIRE(g.targets[1].loc.empty());
}

TEST_CASE("Graph::from_json refuses malformed descriptions", "[graph]") {
  json d = valid_description();

  SECTION("no node list") {
    REQUIRE(graph_error(json::object()) == "malformed build graph: no node list");
    REQUIRE(graph_error(json::array()) == "malformed build graph: no node list");
    REQUIRE(graph_error(json{{"nodes", "x"}}) == "malformed build graph: no node list");
  }
  SECTION("a forward parent reference") {
    d["nodes"][2]["parent"] = 4;
    REQUIRE(graph_error(d) == "malformed build graph: node 3: bad node reference");
  }
  SECTION("a node as its own parent") {
    d["nodes"][2]["parent"] = 3;
    REQUIRE(graph_error(d) == "malformed build graph: node 3: bad node reference");
  }
  SECTION("a forward copy-source reference") {
    d["nodes"][2]["sources"][0] = 5;
    REQUIRE(graph_error(d) == "malformed build graph: node 3: bad node reference");
  }
  SECTION("a zero or negative reference") {
    d["nodes"][2]["parent"] = 0;
    REQUIRE(graph_error(d) == "malformed build graph: node 3: bad node reference");
    d["nodes"][2]["parent"] = -1;
    REQUIRE(graph_error(d) == "malformed build graph: node 3: bad node reference");
    d["nodes"][2]["parent"] = "1";
    REQUIRE(graph_error(d) == "malformed build graph: node 3: bad node reference");
  }
  SECTION("a file as a parent") {
    d["nodes"][2]["parent"] = 2;
    REQUIRE(graph_error(d) == "malformed build graph: node 3: parent is a file, not an image");
  }
  SECTION("a copy source that is an image") {
    d["nodes"][2]["sources"][0] = 1;
    REQUIRE(graph_error(d) == "malformed build graph: node 3: copy source is not a file");
  }
  SECTION("an unknown kind") {
    d["nodes"][3]["kind"] = "exec";
    REQUIRE(graph_error(d) == "malformed build graph: node 4: unknown kind 'exec'");
  }
  SECTION("missing and mistyped fields") {
    json a = d;
    a["nodes"][0].erase("kind");
    REQUIRE(graph_error(a) == "malformed build graph: node 1: missing kind");
    json b = d;
    b["nodes"][0]["loc"] = 7;
    REQUIRE(graph_error(b) == "malformed build graph: node 1: loc is not a string");
    json c = d;
    c["nodes"][4].erase("dest");
    REQUIRE(graph_error(c) == "malformed build graph: node 5: missing dest");
    json e = d;
    e["nodes"][4]["sources"] = json::array();
    REQUIRE(graph_error(e) == "malformed build graph: node 5: copy without sources");
    json f = d;
    f["nodes"][1]["argv"] = json::array();
    REQUIRE(graph_error(f) == "malformed build graph: node 2: host build without argv");
    json h = d;
    h["nodes"][1]["inputs"] = json::array({"ok", 3});
    REQUIRE(graph_error(h) == "malformed build graph: node 2: inputs holds a non-string");
    json i = d;
    i["nodes"][3]["key"] = nullptr;
    REQUIRE(graph_error(i) == "malformed build graph: node 4: missing key");
    json j = d;
    j["nodes"][1] = "host";
    REQUIRE(graph_error(j) == "malformed build graph: node 2: not an object");
  }
  SECTION("parents where they do not belong, or missing") {
    json a = d;
    a["nodes"][3].erase("parent");
    REQUIRE(graph_error(a) == "malformed build graph: node 4: missing parent");
    json b = d;
    b["nodes"][1]["parent"] = 1;
    REQUIRE(graph_error(b) == "malformed build graph: node 2: unexpected parent");
    json c = json{{"nodes", json::array({json{{"kind", "scratch"}, {"loc", "r:1"}},
                                         json{{"kind", "scratch"}, {"loc", "r:2"}, {"parent", 1}}})}};
    REQUIRE(graph_error(c) == "malformed build graph: node 2: unexpected parent");
  }
  SECTION("a target that is a file or out of range") {
    json a = d;
    a["targets"][0]["node"] = 2;
    REQUIRE(graph_error(a) == "malformed build graph: target is a file");
    json b = d;
    b["targets"][0]["node"] = 6;
    REQUIRE_THAT(graph_error(b), StartsWith("malformed build graph") && Contains("bad node reference"));
  }
  // Whatever is wrong, the message says it is a malformed graph.
  REQUIRE_THROWS_WITH(Graph::from_json(json{{"nodes", json::array({json{{"kind", "?"}, {"loc", "x"}}})}}),
                      StartsWith("malformed build graph"));
}

TEST_CASE("Graph::from_json reports mistyped values as a malformed graph", "[graph]") {
  // The header promises std::runtime_error for any malformed description; these
  // reach nlohmann's own exceptions (json::type_error / out_of_range) instead.
  auto check = [](const json& d) {
    std::string what;
    bool runtime = false;
    try {
      Graph::from_json(d);
    } catch (const std::runtime_error& e) {
      runtime = true;
      what = e.what();
    } catch (const std::exception& e) {
      what = e.what();
    }
    INFO("thrown: " << what);
    CHECK(runtime);
    CHECK_THAT(what, StartsWith("malformed build graph"));
  };
  json a = valid_description();
  a["nodes"][2]["chown"] = json{{"uid", "1000"}, {"gid", 1001}};
  check(a);
  json b = valid_description();
  b["nodes"][2]["chmod"] = "0755";
  check(b);
  json c = valid_description();
  c["nodes"][1]["env"]["GOOS"] = 1;
  check(c);
  json e = valid_description();
  e["targets"][0].erase("name");
  check(e);
}

TEST_CASE("Graph::from_json reads each config change into its type", "[graph]") {
  auto change = [](const std::string& key, const json& value) {
    json d = {{"nodes",
               json::array({json{{"kind", "scratch"}, {"loc", "r:1"}},
                            json{{"kind", "config"}, {"loc", "r:2"}, {"parent", 1}, {"key", key}, {"value", value}}})}};
    return std::get<ConfigOp>(Graph::from_json(d).nodes.at(1).op);
  };
  using Map = std::map<std::string, std::string>;
  using List = std::vector<std::string>;
  CHECK(std::get<config::Env>(change("env", {{"A", "1"}, {"B", "2"}})).value == Map{{"A", "1"}, {"B", "2"}});
  CHECK(std::get<config::Workdir>(change("workdir", "srv")).value == "srv");
  CHECK(std::get<config::User>(change("user", "65534")).value == "65534");
  CHECK(std::get<config::Entrypoint>(change("entrypoint", {"/app", "-v"})).value == List{"/app", "-v"});
  CHECK(std::get<config::Cmd>(change("cmd", json::array())).value.empty());
  CHECK(std::get<config::Expose>(change("expose", {"8080/tcp", "53/udp"})).value == List{"8080/tcp", "53/udp"});
  CHECK(std::get<config::Label>(change("label", {{"a.b", "c"}})).value == Map{{"a.b", "c"}});
  CHECK(std::get<config::Volume>(change("volume", {"/data"})).value == List{"/data"});
  CHECK(std::get<config::StopSignal>(change("stopsignal", "SIGINT")).value == "SIGINT");
  // Lua hands an empty table over as an empty list.
  CHECK(std::get<config::Env>(change("env", json::array())).value.empty());
  CHECK(std::get<config::Label>(change("label", json::object())).value.empty());
  CHECK(config_name(change("stopsignal", "9")) == std::string("stopsignal"));
  CHECK(std::get<config::Healthcheck>(change("healthcheck", {{"test", {"CMD", "/app", "health"}},
                                                             {"interval", 30000000000},
                                                             {"timeout", 3000000000},
                                                             {"start_period", 5000000000},
                                                             {"retries", 4}}))
            .value == HealthConfig{{"CMD", "/app", "health"}, 30000000000, 3000000000, 5000000000, 4});
  CHECK(std::get<config::Healthcheck>(change("healthcheck", {{"test", {"NONE"}}})).value == HealthConfig{{"NONE"}});
}

TEST_CASE("Graph::from_json refuses a config change it cannot type", "[graph]") {
  json d = valid_description();
  json& cfg = d["nodes"][3];
  SECTION("an unknown key") {
    cfg["key"] = "onbuild";
    REQUIRE(graph_error(d) == "malformed build graph: node 4: unknown config key 'onbuild'");
  }
  SECTION("no value") {
    cfg.erase("value");
    REQUIRE(graph_error(d) == "malformed build graph: node 4: missing value");
    cfg["value"] = nullptr;
    REQUIRE(graph_error(d) == "malformed build graph: node 4: missing value");
  }
  SECTION("a value of another shape") {
    cfg["value"] = "PORT=8080";
    REQUIRE(graph_error(d) == "malformed build graph: node 4: value is not a map");
    cfg["value"] = json{{"PORT", 8080}};
    REQUIRE(graph_error(d) == "malformed build graph: node 4: value holds a non-string");
    cfg["key"] = "user";
    REQUIRE(graph_error(d) == "malformed build graph: node 4: value is not a string");
    cfg["key"] = "entrypoint";
    cfg["value"] = "/app";
    REQUIRE(graph_error(d) == "malformed build graph: node 4: value is not a list");
    cfg["value"] = json::array({"/app", 1});
    REQUIRE(graph_error(d) == "malformed build graph: node 4: value holds a non-string");
    cfg["key"] = "healthcheck";
    REQUIRE(graph_error(d) == "malformed build graph: node 4: healthcheck is not a table");
    cfg["value"] = json{{"interval", 1}};
    REQUIRE(graph_error(d) == "malformed build graph: node 4: healthcheck without a test");
    cfg["value"] = json{{"test", {"CMD", "/app"}}, {"retries", -1}};
    REQUIRE(graph_error(d) == "malformed build graph: node 4: healthcheck retries");
  }
}

TEST_CASE("Graph::needs follows parents and copy-from images; pushes keep always", "[graph]") {
  Graph g = Graph::from_json(json::parse(R"({
    "nodes": [
      {"kind": "from", "loc": "recipe.lua:1", "ref": "docker.io/library/golang:1.22-alpine"},
      {"kind": "run", "loc": "recipe.lua:2", "parent": 1, "argv": ["go", "mod", "download"]},
      {"kind": "scratch", "loc": "scratch"},
      {"kind": "copy", "loc": "recipe.lua:4", "parent": 3, "sources": ["/out/app"], "dest": "/app", "from": 2},
      {"kind": "config", "loc": "recipe.lua:5", "parent": 4, "key": "user", "value": "65534"},
      {"kind": "config", "loc": "recipe.lua:6", "parent": 1, "key": "user", "value": "0"}
    ],
    "pushes": [{"node": 2, "ref": "localhost:5000/b:1", "loc": "recipe.lua:3", "always": true},
               {"node": 5, "ref": "localhost:5000/a:1", "loc": "recipe.lua:7"}]
  })"));
  CHECK(g.needs(4, 4));
  CHECK(g.needs(4, 3));
  CHECK(g.needs(4, 1));  // through the copy's from image
  CHECK(g.needs(4, 0));
  CHECK(g.needs(4, 2));
  CHECK_FALSE(g.needs(4, 5));  // a sibling stage on the same base
  CHECK_FALSE(g.needs(5, 1));
  CHECK_FALSE(g.needs(1, 4));
  REQUIRE(g.pushes.size() == 2);
  CHECK(g.pushes[0].always);
  CHECK_FALSE(g.pushes[1].always);
}
