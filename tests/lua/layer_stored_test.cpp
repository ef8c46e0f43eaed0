// Tier 2: BuildSettings::layer_stored, the hook that lets a push send a layer
// while the build goes on: each step's layer is reported once, by its step,
// when its blob is whole in the store, whether the step ran or came from the
// cache; config steps and a pulled base's layers are not reported.
#include <catch2/catch.hpp>

#include <mutex>

#include "recipe_harness.hpp"

using namespace imgbuild;
using imgbuild::test::RecipeRun;

namespace {

/// One report of the hook: the step's recipe line, the layer, and whether the
/// store held the whole blob at that moment.
struct Stored {
  std::string loc;
  Digest digest;
  bool whole = false;
};

/// Builds every target of `ev` into `state`'s store and cache; the hook's reports in order.
struct StoredRun {
  std::vector<Stored> reports;
  std::vector<BuiltImage> built;

  StoredRun(RecipeRun& r, const Evaluation& ev, const std::filesystem::path& state,
            std::function<Image(const PullOp&, const Platform&)> pull = {}) {
    Layout store(state / "store");
    BuildSettings settings;
    settings.context = r.dir();
    settings.cache_dir = state / "cache";
    settings.pull = std::move(pull);
    std::mutex mutex;
    settings.layer_stored = [&](size_t node, const LayerBlob& layer) {
      std::lock_guard lock(mutex);
      reports.push_back(
          {r.relative(ev.graph.nodes.at(node).loc), layer.digest, store.verify_blob(layer.digest, layer.size)});
    };
    Builder builder(ev.graph, store, settings);
    for (auto& t : ev.graph.targets) built.push_back(builder.build(t.node));
  }

  /// The reports of the step at `loc`.
  std::vector<Stored> at(const std::string& loc) const {
    std::vector<Stored> out;
    for (auto& s : reports)
      if (s.loc == loc) out.push_back(s);
    return out;
  }
};

}  // namespace

TEST_CASE("each step's layer is reported once, whole, by its step; config steps report none",
          "[recipe][layer_stored]") {
  RecipeRun r;
  r.file("a", "from the builder");
  r.file("b", "the app's own");
  TempDir state(std::filesystem::temp_directory_path(), "imgbuild-lua-state-");
  Evaluation ev = r.evaluate(
      "local builder = scratch:copy(\"a\", \"/a\")\n"
      "local app = scratch\n"
      "  :copy(\"b\", \"/b\")\n"
      "  :env { X = \"1\" }\n"
      "  :copy(\"/a\", \"/from-builder\", { from = builder })\n"
      "image(\"app\", app)\n");
  StoredRun run(r, ev, state.path());
  REQUIRE(run.built.size() == 1);
  const auto& layers = run.built[0].image.layers;
  REQUIRE(layers.size() == 2);
  // The builder's step reports too: which pushes a node feeds is the caller's to know.
  REQUIRE(run.reports.size() == 3);
  CHECK(run.at("recipe.lua:1").size() == 1);
  REQUIRE(run.at("recipe.lua:3").size() == 1);
  REQUIRE(run.at("recipe.lua:5").size() == 1);
  CHECK(run.at("recipe.lua:4").empty());
  CHECK(run.at("recipe.lua:3")[0].digest == layers[0].digest);
  CHECK(run.at("recipe.lua:5")[0].digest == layers[1].digest);
  for (auto& s : run.reports) CHECK(s.whole);

  SECTION("a rebuild from the cache reports the same layers") {
    StoredRun again(r, ev, state.path());
    REQUIRE(again.reports.size() == 3);
    CHECK(again.at("recipe.lua:3")[0].digest == layers[0].digest);
    CHECK(again.at("recipe.lua:5")[0].digest == layers[1].digest);
    for (auto& s : again.reports) CHECK(s.whole);
  }
}

TEST_CASE("a pulled base's layers are not reported, the steps on it are", "[recipe][layer_stored]") {
  RecipeRun r;
  r.file("b", "base content");
  r.file("c", "the app's own");
  TempDir state(std::filesystem::temp_directory_path(), "imgbuild-lua-state-");
  // The base: an image built here first, its layer in the store as a pulled one would be.
  StoredRun base(r, r.evaluate("image(\"base\", scratch:copy(\"b\", \"/b\"))\n"), state.path());
  REQUIRE(base.built.size() == 1);
  Image pulled = base.built[0].image;
  Evaluation ev = r.evaluate("image(\"app\", from(\"example.com/base:1\")\n  :copy(\"c\", \"/c\"))\n");
  StoredRun run(r, ev, state.path(), [&](const PullOp&, const Platform&) { return pulled; });
  REQUIRE(run.built.size() == 1);
  REQUIRE(run.built[0].image.layers.size() == 2);
  REQUIRE(run.reports.size() == 1);
  CHECK(run.reports[0].loc == "recipe.lua:2");
  CHECK(run.reports[0].digest == run.built[0].image.layers[1].digest);
}
