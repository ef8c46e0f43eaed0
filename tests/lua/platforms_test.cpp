// Tier 2: images for several platforms. The recipe reads the platform it is
// evaluated for, image() and push() name the platforms, a foreign RUN step
// is refused at its line, and a copy shared by the platforms is made once,
// also when their builders reach it at the same time.
#include <algorithm>
#include <deque>
#include <mutex>
#include <thread>

#include <catch2/catch.hpp>

#include "recipe_harness.hpp"

using namespace imgbuild;
using imgbuild::test::RecipeRun;

namespace {

/// A platform this machine's programs are not built for.
Platform foreign_platform() {
  return Platform::parse(Platform::host().architecture == "arm64" ? "linux/amd64" : "linux/arm64");
}

/// `recipe` evaluated as the engine does for `platform`.
Evaluation evaluate_for(RecipeRun& r, const std::string& recipe, const Platform& platform) {
  r.file("recipe.lua", recipe);
  RecipeOptions options{r.dir() / "recipe.lua", r.dir(), {}, {}, false, {}};
  options.platform = platform;
  return evaluate_recipe(options);
}

}  // namespace

TEST_CASE("image() and push() name their platforms", "[recipe][platforms]") {
  RecipeRun r;
  Evaluation ev = r.evaluate(
      "local img = scratch:env { A = \"1\" }\n"
      "image(\"a\", img, { platforms = { \"linux/amd64\", \"linux/arm64\", \"linux/arm/v7\" } })\n"
      "image(\"b\", img)\n"
      "push(img, \"localhost:5000/a\", { platforms = { \"linux/arm64\" } })\n");
  REQUIRE(ev.graph.targets.size() == 2);
  const auto& platforms = ev.graph.targets[0].platforms;
  REQUIRE(platforms.size() == 3);
  CHECK(platforms[0].str() == "linux/amd64");
  CHECK(platforms[2].architecture == "arm");
  CHECK(platforms[2].variant == "v7");
  CHECK(ev.graph.targets[1].platforms.empty());
  REQUIRE(ev.graph.pushes.size() == 1);
  REQUIRE(ev.graph.pushes[0].platforms.size() == 1);
  CHECK(ev.graph.pushes[0].platforms[0].str() == "linux/arm64");
}

TEST_CASE("wrong platforms are refused at the recipe line", "[recipe][platforms][errors]") {
  RecipeRun r;
  CHECK(r.error_of("image(\"a\", scratch, { platforms = \"linux/amd64\" })\n") ==
        "recipe.lua:1: image: platforms: expected a list of strings such as { \"linux/amd64\", \"linux/arm64\" }, "
        "got string");
  CHECK(r.error_of("\nimage(\"a\", scratch, { platforms = { \"linux/amd64\", \"arm64\" } })\n") ==
        "recipe.lua:2: image: platforms: invalid platform 'arm64' (expected os/arch[/variant], e.g. linux/arm64)");
  CHECK(r.error_of("image(\"a\", scratch, { platforms = { \"linux/arm64\", \"linux/arm64\" } })\n") ==
        "recipe.lua:1: image: platforms: 'linux/arm64' is listed twice");
  CHECK(r.error_of("image(\"a\", scratch, { platfroms = { \"linux/arm64\" } })\n") ==
        "recipe.lua:1: image: unknown option 'platfroms' (did you mean 'platforms'?)");
  CHECK(r.error_of("push(scratch, \"localhost:5000/a\", { platforms = { \"linux\" } })\n") ==
        "recipe.lua:1: push: platforms: invalid platform 'linux' (expected os/arch[/variant], e.g. linux/arm64)");
  CHECK(r.error_of("image(\"a\", scratch:run(\"true\", { emulate = \"yes\" }))\n") ==
        "recipe.lua:1: run: emulate: expected true or false, got string");
  CHECK(r.error_of("platform.arch = \"riscv64\"\n") ==
        "recipe.lua:1: platform is read-only: it is the platform being built");
  CHECK(r.error_of("platform.build.os = \"windows\"\n") ==
        "recipe.lua:1: platform is read-only: it is the platform being built");
}

TEST_CASE("a recipe reads the platform it is evaluated for, and the machine's", "[recipe][platforms]") {
  RecipeRun r;
  const std::string recipe =
      "image(\"a\", scratch:env { OS = platform.os, ARCH = platform.arch, VARIANT = platform.variant,\n"
      "  BUILD = tostring(platform.build), SELF = tostring(platform) })\n";
  Evaluation ev = evaluate_for(r, recipe, Platform::parse("linux/arm/v7"));
  const auto& env = std::get<config::Env>(std::get<ConfigOp>(ev.graph.nodes[ev.graph.targets[0].node].op));
  CHECK(env.value.at("OS") == "linux");
  CHECK(env.value.at("ARCH") == "arm");
  CHECK(env.value.at("VARIANT") == "v7");
  CHECK(env.value.at("SELF") == "linux/arm/v7");
  CHECK(env.value.at("BUILD") == Platform::host().str());
  // Not told otherwise, a recipe describes the machine's own platform.
  Evaluation here = r.evaluate(recipe);
  const auto& own = std::get<config::Env>(std::get<ConfigOp>(here.graph.nodes[here.graph.targets[0].node].op));
  CHECK(own.value.at("SELF") == Platform::host().str());
}

TEST_CASE("a RUN step of a foreign platform fails at its line with the way out", "[recipe][platforms][errors]") {
  RecipeRun r;
  const Platform foreign = foreign_platform();
  Evaluation ev = evaluate_for(r, "local img = scratch\n  :run \"true\"\nimage(\"a\", img)\n", foreign);
  Layout store(r.cache_dir().parent_path() / "store");
  BuildSettings settings;
  settings.context = r.dir();
  settings.cache_dir = r.cache_dir();
  settings.platform = foreign;
  Builder builder(ev.graph, store, settings);
  std::string error;
  try {
    builder.build(ev.graph.targets[0].node);
  } catch (const std::exception& e) {
    error = r.relative(e.what());
  }
  CHECK(error == "recipe.lua:2: run: true: the image is " + foreign.str() + " and this machine is " +
                     Platform::host().str() +
                     ": its programs run here only under emulation; cross-compile on the build platform instead "
                     "(go.build does; the recipe reads it as platform.build, " +
                     Platform::host().str() + "), or allow emulation with --emulate or :run(..., { emulate = true })");
}

TEST_CASE("a copy shared by the platforms is one step, one layer", "[recipe][platforms]") {
  RecipeRun r;
  r.file("ca.pem", "certificates\n");
  const std::string recipe =
      "image(\"a\", scratch:copy(\"ca.pem\", \"/etc/ssl/ca.pem\"):env { ARCH = platform.arch })\n";
  Layout store(r.cache_dir().parent_path() / "store");
  std::vector<std::string> ends;
  std::vector<Digest> layers;
  for (const Platform& platform : {Platform::host(), foreign_platform()}) {
    Evaluation ev = evaluate_for(r, recipe, platform);
    BuildSettings settings;
    settings.context = r.dir();
    settings.cache_dir = r.cache_dir();
    settings.platform = platform;
    settings.progress = [&](const ProgressEvent& event) {
      if (auto* end = std::get_if<StepEnded>(&event); end && end->kind == StepKind::Copy)
        ends.push_back(end->description + ": " + (end->status == StepStatus::Cached ? "cached" : "done"));
    };
    Builder builder(ev.graph, store, settings);
    const BuiltImage& built = builder.build(ev.graph.targets[0].node);
    CHECK(built.image.platform == platform);
    REQUIRE(built.image.layers.size() == 1);
    layers.push_back(built.image.layers[0].digest);
  }
  CHECK(ends == std::vector<std::string>{"copy ca.pem /etc/ssl/ca.pem: done", "copy ca.pem /etc/ssl/ca.pem: cached"});
  CHECK(layers[0] == layers[1]);
}

TEST_CASE("platforms built at once make a shared copy once: the other waits, then takes it", "[recipe][platforms]") {
  RecipeRun r;
  r.file("ca.pem", "certificates\n");
  const std::string recipe =
      "image(\"a\", scratch:copy(\"ca.pem\", \"/etc/ssl/ca.pem\"):env { ARCH = platform.arch })\n";
  Layout store(r.cache_dir().parent_path() / "store");
  std::mutex mutex;
  std::vector<std::string> ends;
  // As a build's session makes them: one evaluation and builder per platform,
  // the settings of each a copy of one, so they share SharedSteps.
  BuildSettings settings;
  settings.context = r.dir();
  settings.cache_dir = r.cache_dir();
  settings.progress = [&](const ProgressEvent& event) {
    std::lock_guard lock(mutex);
    if (auto* end = std::get_if<StepEnded>(&event); end && end->kind == StepKind::Copy)
      ends.push_back(end->status == StepStatus::Cached ? "cached" : "done");
  };
  std::deque<Evaluation> evaluations;
  std::vector<std::unique_ptr<Builder>> builders;
  for (const Platform& platform : {Platform::host(), foreign_platform()}) {
    const Evaluation& ev = evaluations.emplace_back(evaluate_for(r, recipe, platform));
    BuildSettings platform_settings = settings;
    platform_settings.platform = platform;
    builders.push_back(std::make_unique<Builder>(ev.graph, store, std::move(platform_settings)));
  }
  std::vector<std::thread> threads;
  for (size_t i = 0; i < builders.size(); ++i)
    threads.emplace_back([&, i] { builders[i]->build(evaluations[i].graph.targets[0].node); });
  for (auto& t : threads) t.join();
  std::sort(ends.begin(), ends.end());
  CHECK(ends == std::vector<std::string>{"cached", "done"});
}
