// Tier 2: the Dockerfile instructions a recipe translates into, as docker
// writes them (`:healthcheck`), and their mistakes at the recipe line.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "recipe_harness.hpp"

using imgbuild::test::RecipeRun;
using json = nlohmann::json;

namespace {

/// The config's Healthcheck of the image a recipe's last target builds.
json healthcheck_of(RecipeRun& r, const std::string& recipe) {
  imgbuild::Evaluation ev = r.evaluate(recipe);
  imgbuild::TempDir state(std::filesystem::temp_directory_path(), "imgbuild-lua-state-");
  imgbuild::Layout store(state.path() / "store");
  imgbuild::BuildSettings settings;
  settings.context = r.dir();
  settings.cache_dir = state.path() / "cache";
  imgbuild::Builder builder(ev.graph, store, settings);
  json config = json::parse(builder.build(ev.graph.targets.back().node).image.config_document());
  return config["config"].value("Healthcheck", json());
}

}  // namespace

TEST_CASE("healthcheck writes docker's Healthcheck: exec, shell and none", "[recipe][healthcheck]") {
  RecipeRun r;
  // What `buildah bud --format docker` writes for
  // HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=4 CMD ["/app", "health"]
  CHECK(healthcheck_of(r,
                       "image(\"a\", scratch:healthcheck { \"/app\", \"health\", interval = \"30s\",\n"
                       "  timeout = \"3s\", start_period = \"5s\", retries = 4 })\n") ==
        json::parse(R"({"Test":["CMD","/app","health"],"Interval":30000000000,"Timeout":3000000000,)"
                    R"("StartPeriod":5000000000,"Retries":4})"));
  // HEALTHCHECK CMD /app health || exit 1
  CHECK(healthcheck_of(r, "image(\"a\", scratch:healthcheck \"/app health || exit 1\")\n") ==
        json::parse(R"({"Test":["CMD-SHELL","/app health || exit 1"]})"));
  CHECK(healthcheck_of(r,
                       "image(\"a\", scratch:healthcheck(\"true\", { interval = \"1m30s\", timeout = \"1.5s\" }))\n") ==
        json::parse(R"({"Test":["CMD-SHELL","true"],"Interval":90000000000,"Timeout":1500000000})"));
  // Zero is the runtime's default, left out as docker leaves it out.
  CHECK(healthcheck_of(r, "image(\"a\", scratch:healthcheck { \"/app\", interval = \"0s\", retries = 0 })\n") ==
        json::parse(R"({"Test":["CMD","/app"]})"));
  // HEALTHCHECK NONE, replacing an earlier check as a later instruction does.
  CHECK(healthcheck_of(r, "image(\"a\", scratch:healthcheck \"true\":healthcheck(false))\n") ==
        json::parse(R"({"Test":["NONE"]})"));
  CHECK(healthcheck_of(r, "image(\"a\", scratch:env { A = \"1\" })\n").is_null());
}

TEST_CASE("healthcheck's mistakes are errors at the recipe line", "[recipe][healthcheck][errors]") {
  RecipeRun r;
  auto error_of = [&](const std::string& call) {
    return r.error_of("local img = scratch\nimage(\"a\", img" + call + ")\n");
  };
  CHECK(error_of(":healthcheck()") ==
        "recipe.lua:2: healthcheck: expected a shell command string, an argv table or false, got nil");
  CHECK(error_of(":healthcheck(true)") ==
        "recipe.lua:2: healthcheck: expected a shell command string, an argv table or false, got boolean");
  CHECK(error_of(":healthcheck \"\"") == "recipe.lua:2: healthcheck: the command is empty");
  CHECK(error_of(":healthcheck {}") == "recipe.lua:2: healthcheck: the argv list is empty");
  CHECK(error_of(":healthcheck { interval = \"5s\" }") == "recipe.lua:2: healthcheck: the argv list is empty");
  CHECK(error_of(":healthcheck { \"/app\", 7 }") ==
        "recipe.lua:2: healthcheck: argv[2]: expected a string, got number");
  CHECK(error_of(":healthcheck(false, { retries = 1 })") ==
        "recipe.lua:2: healthcheck: false (no check) takes no options");
  CHECK(error_of(":healthcheck({ \"/app\" }, { retries = 1 })") ==
        "recipe.lua:2: healthcheck: give options inside the argv table, or use healthcheck(\"command\", { ... })");
  CHECK(error_of(":healthcheck { \"/app\", intervall = \"5s\" }") ==
        "recipe.lua:2: healthcheck: unknown option 'intervall' (did you mean 'interval'?)");
  CHECK(error_of(":healthcheck { \"/app\", start_interval = \"5s\" }") ==
        "recipe.lua:2: healthcheck: unknown option 'start_interval'");
  CHECK(error_of(":healthcheck { \"/app\", interval = 30 }") ==
        "recipe.lua:2: healthcheck: interval: expected a duration such as \"30s\" or \"1m30s\", got number");
  CHECK(error_of(":healthcheck { \"/app\", timeout = \"30\" }") ==
        "recipe.lua:2: healthcheck: timeout: '30' is not a duration (a number and a unit of ns, us, ms, s, m, h, "
        "such as \"30s\" or \"1m30s\")");
  CHECK(error_of(":healthcheck { \"/app\", timeout = \"3 s\" }") ==
        "recipe.lua:2: healthcheck: timeout: '3 s' is not a duration (a number and a unit of ns, us, ms, s, m, h, "
        "such as \"30s\" or \"1m30s\")");
  CHECK(error_of(":healthcheck { \"/app\", timeout = \"3d\" }") ==
        "recipe.lua:2: healthcheck: timeout: '3d' is not a duration (a number and a unit of ns, us, ms, s, m, h, "
        "such as \"30s\" or \"1m30s\")");
  CHECK(error_of(":healthcheck { \"/app\", start_period = \"500us\" }") ==
        "recipe.lua:2: healthcheck: start_period: '500us' is shorter than 1ms, which docker refuses");
  CHECK(error_of(":healthcheck { \"/app\", interval = \"1000000000h\" }") ==
        "recipe.lua:2: healthcheck: interval: '1000000000h' is longer than a hundred years");
  CHECK(error_of(":healthcheck { \"/app\", retries = -1 }") ==
        "recipe.lua:2: healthcheck: retries: expected a whole number of 0 or more, got -1");
  CHECK(error_of(":healthcheck { \"/app\", retries = 1.5 }") ==
        "recipe.lua:2: healthcheck: retries: expected a whole number of 0 or more, got 1.5");
  CHECK(error_of(":healthchek \"true\"") ==
        "recipe.lua:2: image has no method 'healthchek' (did you mean 'healthcheck'?)");
}
