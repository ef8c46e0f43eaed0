// Tests for the builder on graphs made by hand, without Lua: plan and build
// walk the same steps, config changes reach the image, a second build takes
// every step from the cache and the image comes out byte for byte the same.
#include "build/builder.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "test_support.hpp"

using namespace imgbuild;
using imgbuild::test::ScratchDir;
using imgbuild::test::slurp;
using imgbuild::test::spit;
using Lines = std::vector<std::string>;
using Outcome = PlannedStep::Outcome;

namespace {

/// Appends a node to `graph` and returns its index.
size_t add(Graph& graph, const std::string& loc, std::optional<size_t> parent, decltype(Node::op) op) {
  graph.nodes.push_back(Node{loc, parent, std::move(op)});
  return graph.nodes.size() - 1;
}

CopyOp copy_of(const std::string& source, const std::string& dest) {
  CopyOp op;
  op.sources.push_back({source, std::nullopt});
  op.dest = dest;
  return op;
}

/// scratch, a copy, workdir, env, a copy into the workdir, entrypoint: what
/// `image("app", scratch:copy(...):workdir(...):env{...}:copy(...):entrypoint{...})` describes.
Graph app_graph() {
  Graph g;
  size_t n = add(g, "recipe.lua:1", std::nullopt, ScratchOp{});
  n = add(g, "recipe.lua:2", n, copy_of("hello.txt", "/hello.txt"));
  n = add(g, "recipe.lua:3", n, ConfigOp{config::Workdir{"/srv"}});
  n = add(g, "recipe.lua:4", n, ConfigOp{config::Env{{{"MODE", "release"}}}});
  CopyOp app = copy_of("app.sh", "app");
  app.chmod = 0755;
  n = add(g, "recipe.lua:5", n, app);
  n = add(g, "recipe.lua:6", n, ConfigOp{config::Entrypoint{{"/srv/app"}}});
  g.targets.push_back(Target{"app", n, "recipe.lua:7", {}});
  return g;
}

/// A build context with the files app_graph() copies, and a place for stores
/// and caches.
struct Site {
  ScratchDir context, state;
  /// The steps that ended, "LOC DESCRIPTION: cached|done", in order.
  Lines ended;

  Site() {
    spit(context.path / "hello.txt", "hello\n");
    spit(context.path / "app.sh", "#!/bin/sh\necho hi\n");
  }

  /// Settings for a build with the cache `cache` (a folder in `state`).
  BuildSettings settings(const std::string& cache = "cache") {
    BuildSettings s;
    s.context = context.path;
    s.cache_dir = state.path / cache;
    s.source_date_epoch = 1700000000;
    s.progress = [this](const ProgressEvent& event) {
      if (auto* end = std::get_if<StepEnded>(&event))
        ended.push_back(end->loc + " " + end->description + ": " +
                        (end->status == StepStatus::Cached ? "cached" : "done"));
    };
    return s;
  }
};

/// "LOC DESCRIPTION" of each planned step, in graph order.
Lines described(const std::vector<PlannedStep>& steps) {
  Lines out;
  for (auto& s : steps) out.push_back(s.loc + " " + s.description);
  return out;
}

std::vector<Outcome> outcomes(const std::vector<PlannedStep>& steps) {
  std::vector<Outcome> out;
  for (auto& s : steps) out.push_back(s.outcome);
  return out;
}

}  // namespace

TEST_CASE("plan lists a host build, to run or cached, before the copy that uses it", "[builder]") {
  Site site;
  Graph g;
  size_t n = add(g, "recipe.lua:1", std::nullopt, ScratchOp{});
  HostBuildOp tool;
  tool.description = "make tool";
  tool.argv = {"sh", "-c", "cat hello.txt >\"$0\"", "${OUT}"};
  tool.dir = ".";
  tool.input_root = ".";
  tool.inputs = {"hello.txt"};
  tool.output_name = "tool";
  tool.tools = {"sh"};
  size_t file = add(g, "recipe.lua:2", std::nullopt, tool);
  CopyOp copy;
  copy.sources.push_back({"", file});
  copy.dest = "/tool";
  n = add(g, "recipe.lua:3", n, copy);
  g.targets.push_back(Target{"tool", n, "recipe.lua:4", {}});
  Layout store(site.state.path / "store");

  std::vector<PlannedStep> first = Builder(g, store, site.settings()).plan({n});
  CHECK(described(first) == Lines{"recipe.lua:2 make tool", "recipe.lua:3 copy make tool /tool"});
  CHECK(outcomes(first) == std::vector<Outcome>{Outcome::Run, Outcome::AfterRun});
  Builder(g, store, site.settings()).build(n);
  std::vector<PlannedStep> second = Builder(g, store, site.settings()).plan({n});
  CHECK(outcomes(second) == std::vector<Outcome>{Outcome::Local, Outcome::Local});
}

TEST_CASE("created is the images' time; layer times and step keys keep to SOURCE_DATE_EPOCH", "[builder]") {
  Site site;
  Graph g = app_graph();
  const size_t target = g.targets[0].node;
  Layout store(site.state.path / "store");
  BuildSettings committed = site.settings();
  committed.created = 1750000000;
  const BuiltImage first = Builder(g, store, site.settings()).build(target);
  site.ended.clear();
  const BuiltImage later = Builder(g, store, committed).build(target);
  CHECK(later.image.created == 1750000000);
  CHECK(nlohmann::json::parse(later.image.config_document())["created"] == "2025-06-15T15:06:40Z");
  // A new commit: the same layers, every step taken from the cache.
  CHECK(later.image.layers.size() == first.image.layers.size());
  for (size_t i = 0; i < first.image.layers.size(); ++i)
    CHECK(later.image.layers[i].digest == first.image.layers[i].digest);
  CHECK(site.ended[0] == "recipe.lua:2 copy hello.txt /hello.txt: cached");
  CHECK(later.manifest.digest != first.manifest.digest);
  CHECK(Builder(g, store, committed).build(target).manifest.digest == later.manifest.digest);
}

TEST_CASE("plan and build walk the same steps; a second build takes them from the cache", "[builder]") {
  Site site;
  Graph g = app_graph();
  const size_t target = g.targets[0].node;
  Layout store(site.state.path / "store");
  const Lines steps = {"recipe.lua:2 copy hello.txt /hello.txt", "recipe.lua:3 workdir /srv",
                       "recipe.lua:4 env MODE=release", "recipe.lua:5 copy app.sh app",
                       "recipe.lua:6 entrypoint [\"/srv/app\"]"};

  // Nothing built yet: the first copy would run, so the second one's key is not known.
  std::vector<PlannedStep> first_plan = Builder(g, store, site.settings()).plan({target});
  CHECK(described(first_plan) == steps);
  CHECK(outcomes(first_plan) ==
        std::vector<Outcome>{Outcome::Run, Outcome::Config, Outcome::Config, Outcome::AfterRun, Outcome::Config});
  REQUIRE(first_plan[0].key);
  CHECK_FALSE(first_plan[3].key);
  CHECK(site.ended.empty());  // planning reports no progress

  Builder builder(g, store, site.settings());
  const BuiltImage built = builder.build(target);
  CHECK(site.ended ==
        Lines{steps[0] + ": done", steps[1] + ": done", steps[2] + ": done", steps[3] + ": done", steps[4] + ": done"});
  REQUIRE(built.image.layers.size() == 2);
  CHECK(built.image.config.workdir == "/srv");
  CHECK(built.image.config.env == Lines{"MODE=release"});
  CHECK(built.image.config.entrypoint == Lines{"/srv/app"});
  Lines history;
  std::vector<bool> empty;
  for (auto& h : built.image.history) {
    history.push_back(h.created_by);
    empty.push_back(h.empty_layer);
  }
  CHECK(history == Lines{"copy hello.txt /hello.txt", "workdir /srv", "env MODE=release", "copy app.sh app",
                         "entrypoint [\"/srv/app\"]"});
  CHECK(empty == std::vector<bool>{false, true, true, false, true});
  // The tree the doctor examines holds the files, the relative copy in the workdir.
  REQUIRE(built.tree);
  CHECK(built.tree->resolve("/hello.txt"));
  auto app = built.tree->resolve("/srv/app");
  REQUIRE(app);
  REQUIRE(app->file);
  CHECK(app->file->mode == 0755);
  CHECK(built.entrypoint_loc == "recipe.lua:6");
  CHECK(built.compressed == built.image.layers[0].size + built.image.layers[1].size);
  std::vector<CachedStep> used = builder.used_steps();
  REQUIRE(used.size() == 2);

  // The keys the plan works out are those the build made, and it now finds them.
  std::vector<PlannedStep> second_plan = Builder(g, store, site.settings()).plan({target});
  CHECK(described(second_plan) == steps);
  CHECK(outcomes(second_plan) ==
        std::vector<Outcome>{Outcome::Local, Outcome::Config, Outcome::Config, Outcome::Local, Outcome::Config});
  CHECK(second_plan[0].key == first_plan[0].key);
  std::map<std::string, Digest> used_keys;
  for (auto& step : used) used_keys.emplace(step.step, step.key);
  CHECK(used_keys.at("copy hello.txt /hello.txt") == *second_plan[0].key);
  CHECK(used_keys.at("copy app.sh app") == *second_plan[3].key);

  site.ended.clear();
  const BuiltImage again = Builder(g, store, site.settings()).build(target);
  CHECK(site.ended == Lines{steps[0] + ": cached", steps[1] + ": done", steps[2] + ": done", steps[3] + ": cached",
                            steps[4] + ": done"});
  CHECK(again.manifest.digest == built.manifest.digest);

  // A build with a fresh store and cache makes the same bytes.
  Layout other_store(site.state.path / "other-store");
  const BuiltImage fresh = Builder(g, other_store, site.settings("other-cache")).build(target);
  CHECK(fresh.manifest.digest == built.manifest.digest);
}

TEST_CASE("every config change reaches the image and its history", "[builder]") {
  Site site;
  Graph g;
  size_t n = add(g, "recipe.lua:1", std::nullopt, ScratchOp{});
  const std::vector<ConfigOp> changes = {
      config::Env{{{"B", "2"}, {"A", "1"}}},
      config::Workdir{"srv"},
      config::Workdir{"www"},
      config::User{"65534"},
      config::Cmd{{"--quiet"}},
      config::Entrypoint{{"/app"}},
      config::Expose{{"8080/tcp", "53/udp"}},
      config::Label{{{"org.example", "x"}}},
      config::Volume{{"/data"}},
      config::StopSignal{"SIGINT"},
      config::Healthcheck{{{"CMD", "/app", "health"}, 30000000000, 1500000000, 0, 3}},
      config::Env{{}}};
  for (size_t i = 0; i < changes.size(); ++i) n = add(g, "recipe.lua:" + std::to_string(i + 2), n, changes[i]);
  g.targets.push_back(Target{"cfg", n, "recipe.lua:99", {}});
  const Lines lines = {"env A=1 B=2",
                       "workdir srv",
                       "workdir www",
                       "user 65534",
                       "cmd [\"--quiet\"]",
                       "entrypoint [\"/app\"]",
                       "expose 8080/tcp 53/udp",
                       "label org.example=x",
                       "volume /data",
                       "stopsignal SIGINT",
                       "healthcheck [\"CMD\",\"/app\",\"health\"] interval=30s timeout=1500ms retries=3",
                       "env "};

  Layout store(site.state.path / "store");
  std::vector<PlannedStep> plan = Builder(g, store, site.settings()).plan({n});
  Lines planned;
  for (auto& step : plan) {
    CHECK(step.outcome == Outcome::Config);
    planned.push_back(step.description);
  }
  CHECK(planned == lines);

  const BuiltImage built = Builder(g, store, site.settings()).build(n);
  const RuntimeConfig& c = built.image.config;
  CHECK(c.env == Lines{"A=1", "B=2"});
  CHECK(c.workdir == "/srv/www");  // a relative workdir is taken from the current one
  CHECK(c.user == "65534");
  CHECK(c.cmd == Lines{"--quiet"});  // the recipe's own cmd stays beside an entrypoint
  CHECK(c.entrypoint == Lines{"/app"});
  CHECK(c.exposed_ports == std::set<std::string>{"53/udp", "8080/tcp"});
  CHECK(c.labels == std::map<std::string, std::string>{{"org.example", "x"}});
  CHECK(c.volumes == std::set<std::string>{"/data"});
  CHECK(c.stop_signal == "SIGINT");
  REQUIRE(c.healthcheck);
  CHECK(nlohmann::json::parse(built.image.config_document())["config"]["Healthcheck"] ==
        nlohmann::json::parse(
            R"({"Test":["CMD","/app","health"],"Interval":30000000000,"Timeout":1500000000,"Retries":3})"));
  Lines history;
  for (auto& h : built.image.history) {
    CHECK(h.empty_layer);
    history.push_back(h.created_by);
  }
  CHECK(history == lines);
  CHECK(built.image.layers.empty());
  CHECK(built.entrypoint_loc == "recipe.lua:7");
}

TEST_CASE("a base's cmd gives way to an entrypoint; plan and build resolve the base alike", "[builder]") {
  Site site;
  Graph g;
  PullOp base{"localhost:5000/base:1", std::nullopt};
  size_t n = add(g, "recipe.lua:1", std::nullopt, base);
  n = add(g, "recipe.lua:2", n, ConfigOp{config::Entrypoint{{"/app"}}});
  int pulls = 0;
  BuildSettings settings = site.settings();
  settings.pull = [&](const PullOp& op, const Platform& platform) {
    ++pulls;
    CHECK(op.reference == "localhost:5000/base:1");
    Image image;
    image.platform = platform;
    image.config.cmd = Lines{"sh"};
    image.annotations[kBaseDigestAnnotation] = "sha256:" + std::string(64, 'a');
    return image;
  };
  Layout store(site.state.path / "store");
  std::vector<PlannedStep> plan = Builder(g, store, settings).plan({n});
  CHECK(described(plan) == Lines{"recipe.lua:1 from localhost:5000/base:1@sha256:" + std::string(64, 'a'),
                                 "recipe.lua:2 entrypoint [\"/app\"]"});
  CHECK(outcomes(plan) == std::vector<Outcome>{Outcome::From, Outcome::Config});

  const BuiltImage built = Builder(g, store, settings).build(n);
  CHECK(pulls == 2);
  CHECK(built.image.config.entrypoint == Lines{"/app"});
  CHECK_FALSE(built.image.config.cmd);
  CHECK(site.ended == Lines{"recipe.lua:1 from localhost:5000/base:1@sha256:" + std::string(64, 'a') + ": done",
                            "recipe.lua:2 entrypoint [\"/app\"]: done"});
}

TEST_CASE("the doctor examines the built image: its files and the line that set its program", "[builder]") {
  Site site;
  Graph g = app_graph();
  Layout store(site.state.path / "store");
  const BuiltImage built = Builder(g, store, site.settings()).build(g.targets[0].node);

  std::vector<Finding> findings = examine_built(built, "recipe.lua:7");
  std::vector<Finding> errors;
  for (auto& f : findings)
    if (f.error) errors.push_back(f);
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].loc == "recipe.lua:6");
  CHECK(errors[0].message == "entrypoint /srv/app: its interpreter /bin/sh is not in the image");

  // Warnings silenced by the caller are not reported; the image's own line is the fallback.
  for (auto& f : examine_built(built, "recipe.lua:7", kDoctorWarnings)) CHECK(f.error);
  BuiltImage no_entrypoint = built;
  no_entrypoint.entrypoint_loc.clear();
  for (auto& f : examine_built(no_entrypoint, "recipe.lua:7"))
    if (f.error) CHECK(f.loc == "recipe.lua:7");
}

namespace {

/// A builder stage (scratch, a copy of hello.txt) and an app copying its
/// file out; with `builder_is_output`, the builder stage is an image too.
Graph builder_graph(bool builder_is_output) {
  Graph g;
  size_t builder = add(g, "recipe.lua:1", std::nullopt, ScratchOp{});
  builder = add(g, "recipe.lua:2", builder, copy_of("hello.txt", "/hello.txt"));
  size_t app = add(g, "recipe.lua:3", std::nullopt, ScratchOp{});
  CopyOp out = copy_of("/hello.txt", "/copied.txt");
  out.from_node = builder;
  app = add(g, "recipe.lua:4", app, out);
  g.targets.push_back(Target{"app", app, "recipe.lua:5", {}});
  if (builder_is_output) g.targets.push_back(Target{"builder", builder, "recipe.lua:6", {}});
  return g;
}

}  // namespace

TEST_CASE("a builder stage's layer stays an uncompressed tar until an output or a cache export needs it", "[builder]") {
  Site site;
  // What an eager build makes: there the builder stage is an output.
  Graph both = builder_graph(true);
  Layout eager_store(site.state.path / "eager");
  Builder eager(both, eager_store, site.settings("eager-cache"));
  const LayerBlob eager_layer = eager.build(both.targets[1].node).image.layers.at(0);
  const Digest eager_app = eager.build(both.targets[0].node).manifest.digest;
  REQUIRE(eager_layer.media_type == media_type::kLayerGzip);
  const std::string eager_bytes = slurp(eager_store.blob_path(eager_layer.digest));

  Graph lazy = builder_graph(false);
  Layout store(site.state.path / "store");
  Builder first(lazy, store, site.settings());
  CHECK(first.build(lazy.targets[0].node).manifest.digest == eager_app);
  // Only the tar: no one needed it compressed.
  CHECK_FALSE(store.has_blob(eager_layer.digest));
  CHECK(store.has_blob(eager_layer.diff_id));

  SECTION("a cache export compresses it, byte for byte the eager blob, and the cache records that one") {
    std::vector<CachedStep> used = first.used_steps();
    auto step = std::find_if(used.begin(), used.end(), [](auto& s) { return s.step == "copy hello.txt /hello.txt"; });
    REQUIRE(step != used.end());
    REQUIRE(step->layer);
    CHECK(step->layer->digest == eager_layer.digest);
    CHECK(step->layer->media_type == media_type::kLayerGzip);
    CHECK(step->layer->diff_id == eager_layer.diff_id);
    CHECK(slurp(store.blob_path(eager_layer.digest)) == eager_bytes);
    std::optional<CachedStep> recorded = StepCache(site.state.path / "cache").find(step->key);
    REQUIRE(recorded);
    REQUIRE(recorded->layer);
    CHECK(recorded->layer->digest == eager_layer.digest);
  }
  SECTION("a later build that outputs the builder stage takes the cached step, compressed then") {
    site.ended.clear();
    Builder second(both, store, site.settings());
    const BuiltImage& builder = second.build(both.targets[1].node);
    CHECK(builder.image.layers.at(0).digest == eager_layer.digest);
    CHECK(builder.image.layers.at(0).media_type == media_type::kLayerGzip);
    CHECK(slurp(store.blob_path(eager_layer.digest)) == eager_bytes);
    CHECK(site.ended == Lines{"recipe.lua:2 copy hello.txt /hello.txt: cached"});
    CHECK(second.build(both.targets[0].node).manifest.digest == eager_app);
  }
}

namespace {

/// `image("tree", scratch:copy("tree", "/"))` over a context folder with a
/// small file, one read in pieces, an empty one and a symlink.
struct TreeCopy {
  Site site;
  Graph graph;
  size_t target = 0;

  TreeCopy() {
    std::filesystem::create_directories(site.context.path / "tree" / "sub");
    spit(site.context.path / "tree" / "a.txt", "one\n");
    spit(site.context.path / "tree" / "sub" / "big", std::string(3 << 20, 'x') + "end");
    spit(site.context.path / "tree" / "sub" / "empty", "");
    std::filesystem::create_symlink("a.txt", site.context.path / "tree" / "link");
    size_t n = add(graph, "recipe.lua:1", std::nullopt, ScratchOp{});
    target = add(graph, "recipe.lua:2", n, copy_of("tree", "/"));
    graph.targets.push_back(Target{"tree", target, "recipe.lua:3", {}});
  }

  /// The key a plan works out for the copy: each file read and hashed first.
  Digest planned_key(Layout& store) {
    std::vector<PlannedStep> plan = Builder(graph, store, site.settings()).plan({target});
    REQUIRE(plan.size() == 1);
    REQUIRE(plan[0].key);
    return *plan[0].key;
  }
};

/// The key the build recorded for its only step.
Digest recorded_key(Builder& builder) {
  std::vector<CachedStep> used = builder.used_steps();
  REQUIRE(used.size() == 1);
  return used[0].key;
}

std::string contents_of(const BuiltImage& built, const std::string& path) {
  REQUIRE(built.tree);
  auto found = built.tree->resolve(path);
  REQUIRE(found);
  REQUIRE(found->file);
  return built.tree->contents(*found->file, 1 << 10);
}

}  // namespace

TEST_CASE("a first copy into an empty image is keyed by its layer's reading: the key hashing first gives",
          "[builder]") {
  TreeCopy copy;
  Layout store(copy.site.state.path / "store");
  const Digest planned = copy.planned_key(store);

  // --no-cache: no lookup, so the files are read once, by the layer writer.
  BuildSettings no_cache = copy.site.settings();
  no_cache.use_cache = false;
  Builder first(copy.graph, store, no_cache);
  const BuiltImage built = first.build(copy.target);
  CHECK(recorded_key(first) == planned);
  CHECK(copy.site.ended == Lines{"recipe.lua:2 copy tree /: done"});

  // The shape was recorded too: the next build looks the key up and finds it.
  copy.site.ended.clear();
  CHECK(Builder(copy.graph, store, copy.site.settings()).build(copy.target).manifest.digest == built.manifest.digest);
  CHECK(copy.site.ended == Lines{"recipe.lua:2 copy tree /: cached"});

  // A file written again with the same bytes is read again for the key (its
  // stamp changed), through the lookup's path: the same key, still cached.
  spit(copy.site.context.path / "tree" / "sub" / "big", std::string(3 << 20, 'x') + "end");
  copy.site.ended.clear();
  Builder later(copy.graph, store, copy.site.settings());
  CHECK(later.build(copy.target).manifest.digest == built.manifest.digest);
  CHECK(recorded_key(later) == planned);
  CHECK(copy.site.ended == Lines{"recipe.lua:2 copy tree /: cached"});
}

TEST_CASE("a file rewritten while a first copy's layer is made: the key names the bytes the layer holds", "[builder]") {
  TreeCopy copy;
  Layout store(copy.site.state.path / "store");
  BuildSettings settings = copy.site.settings();
  // The attack: once the copy is planned and starts, a file changes (same
  // size), before its layer is written.
  settings.progress = [&, report = settings.progress](const ProgressEvent& event) {
    report(event);
    if (auto* start = std::get_if<StepStarted>(&event); start && !start->cached)
      spit(copy.site.context.path / "tree" / "a.txt", "two\n");
  };
  Builder first(copy.graph, store, settings);
  const BuiltImage built = first.build(copy.target);
  CHECK(contents_of(built, "/a.txt") == "two\n");
  // Recorded under the key of what the layer holds, not of what was there when the copy was planned ...
  CHECK(recorded_key(first) == copy.planned_key(store));

  // ... so the old bytes back are not taken for the layer that holds the new ones.
  spit(copy.site.context.path / "tree" / "a.txt", "one\n");
  copy.site.ended.clear();
  const BuiltImage again = Builder(copy.graph, store, copy.site.settings()).build(copy.target);
  CHECK(copy.site.ended == Lines{"recipe.lua:2 copy tree /: done"});
  CHECK(contents_of(again, "/a.txt") == "one\n");
}
