#include "cli/session.hpp"

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <set>

#include "base/text.hpp"
#include "base/threads.hpp"
#include "build/checkout.hpp"
#include "cli/local_store.hpp"
#include "cli/report.hpp"
#include "cli/url_fetch.hpp"
#include "registry/cache_transfer.hpp"
#include "registry/http.hpp"
#include "store/run_cache.hpp"
#include "store/step_cache.hpp"

namespace fs = std::filesystem;

namespace imgbuild::cli {
namespace {

/// What `build` and `plan` take (`plan` accepts every option of `build`).
const Syntax kBuildSyntax = {
    OptionSet{Opt::Output, Opt::Set, Opt::Context, Opt::Strict, Opt::Ignore, Opt::Compression, Opt::MaxProcesses,
              Opt::Isolation, Opt::NoCache, Opt::CacheFrom, Opt::CacheTo, Opt::Pull, Opt::Push, Opt::NoPush,
              Opt::Progress, Opt::RegistryMirror, Opt::SignKey, Opt::Platform, Opt::Emulate} |
        kCacheOptions | kRegistryOptions,
    Operands::Any};

std::optional<int64_t> source_date_epoch() {
  const char* v = std::getenv("SOURCE_DATE_EPOCH");
  if (!v || !*v) return std::nullopt;
  char* end = nullptr;
  long long n = std::strtoll(v, &end, 10);
  if (*end || n < 0) throw UsageError(std::string("SOURCE_DATE_EPOCH must be a number of seconds, got '") + v + "'");
  return n;
}

}  // namespace

BuildArgs parse_build_args(const std::vector<std::string>& args) {
  BuildArgs b;
  std::vector<std::string> operands = parse_options(args, kBuildSyntax, b);
  if (operands.empty()) throw UsageError("no recipe given");
  b.recipe = operands[0];
  b.targets.assign(operands.begin() + 1, operands.end());
  std::error_code ec;
  if (!fs::is_regular_file(b.recipe, ec))
    throw UsageError("cannot open recipe " + b.recipe.string() + ": no such file");
  return b;
}

Session::Session(BuildArgs args, bool planning) : b(std::move(args)) {
  std::optional<int64_t> given_epoch = source_date_epoch();
  epoch = given_epoch.value_or(0);
  context = b.context ? *b.context : (b.recipe.parent_path().empty() ? fs::path(".") : b.recipe.parent_path());
  try {
    checkout = read_checkout(context);
    // A remote's URL may carry a password or token: images and their
    // provenance get its address only, and only when it is not on this machine.
    if (checkout) checkout->remote = reachable_remote(redact_url(checkout->remote));
  } catch (const std::exception& e) {
    report(std::string("warning: ") + e.what() +
           (given_epoch ? ": images and their provenance say nothing of their source and revision"
                        : ": images are created at 1970-01-01 (set SOURCE_DATE_EPOCH)"));
  }
  const int64_t created = given_epoch ? epoch : checkout ? checkout->commit_time : 0;
  registry = std::make_unique<RegistryAccess>(b);
  RecipeOptions ro{
      b.recipe, context,
      b.params, split(std::getenv("IMGBUILD_PATH") ? std::getenv("IMGBUILD_PATH") : "", ':'),
      b.debug,  [this](const std::string& ref) { return registry->client().has_manifest(Reference::parse(ref)); }};
  ev = evaluate_recipe(ro);
  for (auto& [name, value] : b.params)
    if (std::find(ev.params_used.begin(), ev.params_used.end(), name) == ev.params_used.end())
      report("warning: --set " + name + ": the recipe never asks for param(\"" + name + "\")");
  choose_targets();

  cache_dir = b.cache_dir ? *b.cache_dir : default_cache_dir();
  fs::create_directories(cache_dir);
  auto waiting = [] { report("waiting for `imgbuild cache prune` to finish"); };
  cache_lock = std::make_unique<FileLock>(usage_lock_path(cache_dir), FileLock::Mode::Shared, waiting);
  store = std::make_unique<Layout>(open_store());
  store_lock = std::make_unique<FileLock>(usage_lock_path(store->root()), FileLock::Mode::Shared, waiting);

  BuildSettings settings;
  settings.context = context;
  settings.cache_dir = cache_dir;
  settings.use_cache = b.use_cache;
  settings.source_date_epoch = epoch;
  settings.created = created;
  settings.origin.version = ev.ci_tag;
  if (checkout) {
    settings.origin.source = checkout->remote;
    settings.origin.revision = checkout->revision;
  }
  settings.compression = b.compression;
  settings.max_processes = b.max_processes;
  settings.isolation = isolation_of(b);
  settings.emulate = b.emulate;
  if (!planning) {
    view = ProgressView::make(b.progress);
    settings.progress = view->sink();
  }
  settings.pull = [this](const PullOp& op, const Platform& platform) {
    return pull_image(registry->client(), *store, Reference::parse(op.reference), platform, b.pull).image;
  };
  settings.fetch = [this](const std::vector<LayerBlob>& layers, const std::string& source,
                          const IncomingBlobs& incoming) {
    fetch_layers(registry->client(), *store, Reference::parse(source), layers, {},
                 meter(TransferDirection::Pull, source), incoming);
  };
  settings.fetch_url = fetch_url;
  if (!planning && b.push && !pushes.empty()) {
    push_early();
    settings.layer_stored = early_uploads(ev.graph, settings.platform);
  }
  for (auto& ref : b.cache_from) {
    RegistryCache cache = import_step_cache(registry->client(), ref);
    if (cache.steps.empty() && cache.run_caches.empty()) report("--cache-from " + ref.str() + ": no cache there yet");
    settings.remote_cache.merge(cache.steps);
    for (auto& [path, blob] : cache.run_caches) cache_mount_archives.try_emplace(path, CacheMountArchive{blob, ref});
  }
  if (!cache_mount_archives.empty()) seed_cache_mounts(settings);
  // Each other platform: the recipe evaluated again, so that what it reads
  // of `platform` describes that platform's image, and a builder of its own
  // (its layers pushed early too; the index goes after its manifests). Both
  // share the store and the step cache, so a step whose key does not hold
  // the platform is done once (see docs/architecture.md).
  std::set<std::string> others;
  auto want = [&](const std::vector<Platform>& recipe_platforms) {
    for (const Platform& p : platforms_of(recipe_platforms))
      if (p != settings.platform) others.insert(p.str());
  };
  for (const Target* t : chosen) want(t->platforms);
  for (const Push* p : pushes) want(p->platforms);
  // Their steps are numbered after the machine's and one another's, and
  // named by platform.
  size_t first_step = ev.graph.nodes.size();
  for (const std::string& name : others) {
    RecipeOptions for_platform = ro;
    for_platform.platform = Platform::parse(name);
    PlatformBuild& pb = platform_builds[name];
    pb.ev = evaluate_recipe(for_platform);
    BuildSettings platform_settings = settings;
    platform_settings.platform = for_platform.platform;
    if (uploads) platform_settings.layer_stored = early_uploads(pb.ev.graph, for_platform.platform);
    if (view) platform_settings.progress = platform_steps(view->sink(), first_step, name);
    first_step += pb.ev.graph.nodes.size();
    pb.builder = std::make_unique<Builder>(pb.ev.graph, *store, std::move(platform_settings));
  }
  if (view && !platform_builds.empty()) settings.progress = platform_steps(view->sink(), 0, settings.platform.str());
  builder = std::make_unique<Builder>(ev.graph, *store, std::move(settings));
}

std::vector<Platform> Session::platforms_of(const std::vector<Platform>& recipe_platforms) const {
  return b.platforms.empty() ? recipe_platforms : b.platforms;
}

std::pair<const Graph*, Builder*> Session::for_platform(const Platform& platform) {
  auto it = platform_builds.find(platform.str());
  if (it == platform_builds.end()) return {&ev.graph, builder.get()};
  return {&it->second.ev.graph, it->second.builder.get()};
}

std::vector<Session::PlatformNodes> Session::by_platform() {
  // Each platform's nodes: its evaluation's targets and pushes of the same
  // name and reference as those chosen, when built for it; the platforms in
  // the order first asked for.
  std::vector<PlatformNodes> all;
  auto add = [&](const std::vector<Platform>& recipe_platforms, auto&& node_in) {
    std::vector<Platform> platforms = platforms_of(recipe_platforms);
    if (platforms.empty()) platforms.push_back(Platform::host());
    for (const Platform& p : platforms) {
      auto [graph, platform_builder] = for_platform(p);
      auto it =
          std::find_if(all.begin(), all.end(), [&](const PlatformNodes& w) { return w.builder == platform_builder; });
      if (it == all.end()) it = all.insert(all.end(), PlatformNodes{p, graph, platform_builder, {}});
      if (std::optional<size_t> node = node_in(*graph);
          node && std::find(it->nodes.begin(), it->nodes.end(), *node) == it->nodes.end())
        it->nodes.push_back(*node);
    }
  };
  for (const Target* t : chosen) add(t->platforms, [&](const Graph& g) { return g.target_node(t->name); });
  for (const Push* p : pushes) add(p->platforms, [&](const Graph& g) { return g.push_node(p->reference); });
  return all;
}

void Session::prepare(const std::function<void(Builder&)>& built) {
  std::vector<PlatformNodes> work = by_platform();
  // Each platform's images are also finished there (layers checked, config
  // and manifest stored), the platforms at once rather than one after the
  // other when the build shows them.
  run_side_by_side(work.size(), [&](size_t i) {
    work[i].builder->prepare(work[i].nodes);
    for (size_t node : work[i].nodes) work[i].builder->build(node);
    built(*work[i].builder);
  });
}

std::vector<Builder*> Session::builders() {
  std::vector<Builder*> all{builder.get()};
  for (auto& [name, pb] : platform_builds) all.push_back(pb.builder.get());
  return all;
}

BlobProgress Session::meter(TransferDirection direction, const std::string& ref) {
  if (!view) return {};
  auto m = std::make_shared<TransferMeter>(view->sink(), direction, ref);
  return [m](const Digest& blob, uint64_t done, uint64_t total) { m->update(blob, done, total); };
}

void Session::seed_cache_mounts(BuildSettings& settings) {
  // One seeding at a time: two stages that mount the same cache at once
  // fetch and unpack it once.
  settings.seed_run_cache = [this, once = std::make_shared<std::mutex>()](const std::string& path,
                                                                          const fs::path& folder) {
    auto it = cache_mount_archives.find(path);
    if (it == cache_mount_archives.end()) return;
    std::lock_guard lock(*once);
    if (!run_cache_needs_seed(folder)) return;
    const auto& [blob, source] = it->second;
    fetch_layers(registry->client(), *store, source, {blob}, {}, meter(TransferDirection::Pull, source.str()));
    seed_run_cache(store->blob_path(blob.digest), folder,
                   "--cache-from " + source.str() + ": the cache mounted at " + path + " (" + blob.digest.str() + ")");
  };
}

void Session::push_early() {
  for (const Push* p : pushes) {
    Reference dest = Reference::parse(p->reference);
    push_meters.emplace(dest.str(), meter(TransferDirection::Push, dest.str()));
  }
  uploads = std::make_unique<BlobUploader>(registry->client(), *store);
}

std::function<void(size_t, const LayerBlob&)> Session::early_uploads(const Graph& graph, const Platform& platform) {
  // The steps of a pushed image on `platform`: its own node and its parents
  // (a copy's source image is not part of it). An image pushed to several
  // repositories of one registry sends its layers to the first of them only:
  // push_tags() mounts them into the others. A layer two platforms share is
  // sent once (the uploader ignores a second add).
  std::map<size_t, std::vector<Reference>> destinations;
  std::set<std::pair<size_t, std::string>> sent;  ///< (pushed node, registry)
  for (const Push* p : pushes) {
    std::vector<Platform> platforms = platforms_of(p->platforms);
    if (platforms.empty() ? platform != Platform::host()
                          : std::find(platforms.begin(), platforms.end(), platform) == platforms.end())
      continue;
    std::optional<size_t> node = graph.push_node(p->reference);
    Reference dest = Reference::parse(p->reference);
    if (!node || !sent.emplace(*node, dest.registry).second) continue;
    for (std::optional<size_t> n = node; n; n = graph.nodes.at(*n).parent) destinations[*n].push_back(dest);
  }
  return [this, destinations = std::move(destinations)](size_t node, const LayerBlob& layer) {
    auto it = destinations.find(node);
    if (it == destinations.end()) return;
    for (const Reference& dest : it->second)
      uploads->add(dest, Descriptor{layer.media_type, layer.digest, layer.size, {}, {}}, push_meters.at(dest.str()));
  };
}

void Session::choose_targets() {
  for (auto& name : b.targets) {
    auto it = std::find_if(ev.graph.targets.begin(), ev.graph.targets.end(), [&](auto& t) { return t.name == name; });
    if (it == ev.graph.targets.end()) {
      std::vector<std::string> names;
      for (auto& t : ev.graph.targets) names.push_back(t.name);
      std::string known = join(names, ", ");
      throw UsageError("no image named '" + name + "' in " + b.recipe.string() +
                       (known.empty() ? " (it defines none)" : " (it defines: " + known + ")"));
    }
    chosen.push_back(&*it);
  }
  if (b.targets.empty())
    for (auto& t : ev.graph.targets) chosen.push_back(&t);
  bool to_archive =
      std::any_of(b.outputs.begin(), b.outputs.end(), [](auto& o) { return o.kind == Output::Kind::DockerArchive; });
  if (to_archive && chosen.size() > 1)
    throw UsageError("-o docker-archive: holds one image; name one target (the recipe defines " +
                     std::to_string(chosen.size()) + ")");
  if (to_archive)
    for (const Target* t : chosen)
      if (std::vector<Platform> platforms = platforms_of(t->platforms); platforms.size() > 1) {
        std::vector<std::string> names;
        for (auto& p : platforms) names.push_back(p.str());
        throw UsageError("-o docker-archive: holds one platform's image, and '" + t->name + "' is built for " +
                         join(names, ", ") + " (" + t->loc + "): write the index with -o oci:DIR, or choose one " +
                         "platform with --platform");
      }
  // Pushes follow the builds they need: all of them, or those of the named
  // targets; a cached() image's push, whenever a named target is built on it.
  for (const Push& p : ev.graph.pushes)
    if (b.targets.empty() || std::any_of(chosen.begin(), chosen.end(), [&](const Target* t) {
          return p.always ? ev.graph.needs(t->node, p.node) : t->node == p.node;
        }))
      pushes.push_back(&p);
}

}  // namespace imgbuild::cli
