// imgbuild build: every chosen target built, examined by the doctor, stored
// and written to each output; then the recipe's pushes and the cache export.
#include <algorithm>
#include <functional>
#include <optional>
#include <set>

#include "base/text.hpp"
#include "cli/commands.hpp"
#include "cli/report.hpp"
#include "cli/session.hpp"
#include "registry/cache_transfer.hpp"
#include "store/docker_archive.hpp"
#include "store/step_cache.hpp"

namespace imgbuild::cli {
namespace {

/// --cache-to: this build's steps, and the layers the registry lacks, to `dest`.
void export_cache(Session& s, const Reference& dest) {
  std::vector<CachedStep> steps;
  for (Builder* builder : s.builders()) {
    std::vector<CachedStep> used = builder->used_steps();
    steps.insert(steps.end(), used.begin(), used.end());
  }
  RegistryClient& client = s.registry->client();
  // Layers only known from another registry cache come through the store.
  std::vector<LayerBlob> missing;
  for (auto& step : steps)
    if (step.layer && !s.store->has_blob(step.layer->digest) && !client.has_blob(dest, step.layer->digest))
      missing.push_back(*step.layer);
  s.builder->ensure_local(missing);
  Descriptor manifest = store_cache_manifest(*s.store, steps);
  PushResult r = push_image(client, *s.store, manifest, dest, {}, s.meter(TransferDirection::Push, dest.str()));
  report("exported " + std::to_string(steps.size()) + " cached steps to " + dest.str() + "@" + r.digest.str() + " (" +
         std::to_string(r.uploaded) + " layers uploaded, " + human_size(r.bytes) + ")");
}

}  // namespace

int cmd_build(const std::vector<std::string>& args) {
  Session s(parse_build_args(args), false);
  BuildArgs& b = s.b;
  if (s.chosen.empty() && s.ev.graph.pushes.empty()) {
    report(b.recipe.string() + " defines no image: call image(\"name\", img) or push(img, ref)");
    return kExitError;
  }
  Layout& store = *s.store;

  // The doctor sees every image before it is stored, written or pushed, and
  // says what it found once: an image stored under two names or pushed to two
  // tags is one image. An image of several platforms is examined on each, and
  // what it says names the platform.
  std::set<std::pair<std::string, size_t>> examined;
  auto examine = [&](const BuiltImage& built, const Target& t, const char* refusal, const std::string& platform) {
    if (!examined.insert({platform, t.node}).second) return true;
    bool refused = false;
    std::string on = platform.empty() ? "" : platform + ": ";
    for (const Finding& f : examine_built(built, t.loc, b.ignore)) {
      bool fatal = f.error || b.strict;
      refused = refused || fatal;
      report((fatal ? "" : "warning: ") + f.loc + ": " + on + f.message + (f.error ? "" : " [" + f.check + "]"));
    }
    if (refused) report(t.name + refusal + (b.strict ? " (--strict makes warnings errors)" : ""));
    return !refused;
  };

  // A target's or a push's image for each of `platforms` (found by `same` in
  // that platform's evaluation), examined, shown and put under an index in
  // the store; nullopt when the doctor refused one.
  auto build_index = [&](const Target& t, const std::vector<Platform>& platforms, const char* refusal,
                         const std::function<std::optional<size_t>(const Graph&)>& same) -> std::optional<Descriptor> {
    std::vector<Descriptor> manifests;
    for (const Platform& platform : platforms) {
      auto [graph, platform_builder] = s.for_platform(platform);
      std::optional<size_t> node = same(*graph);
      if (!node)
        throw BuildError(t.loc, t.name + " is not described when the recipe is evaluated for " + platform.str() +
                                    " (platform.arch is " + platform.architecture + " then)");
      const BuiltImage& built = platform_builder->build(*node);
      if (!examine(built, Target{t.name, *node, t.loc}, refusal, platform.str())) return std::nullopt;
      s.view->image(OutputImage{t.name + "@" + platform.str(), built, std::nullopt});
      manifests.push_back(built.manifest);
      manifests.back().platform = platform;
    }
    return store.put_index(manifests);
  };

  // A refused credential fails now, not after the whole build: each
  // repository pushed to is asked once.
  if (b.push) {
    std::set<std::string> checked;
    for (const Push* p : s.pushes) {
      Reference dest = Reference::parse(p->reference);
      if (!checked.insert(dest.name()).second) continue;
      try {
        s.registry->client().check_push(dest);
      } catch (const std::exception& e) {
        throw BuildError(p->loc, std::string("push: ") + e.what() + " (checked before building)");
      }
    }
  }

  s.prepare();

  ProgressView& view = *s.view;
  std::set<size_t> shown;  ///< nodes with a row in the size table
  for (const Target* t : s.chosen) {
    std::vector<Platform> platforms = s.platforms_of(t->platforms);
    if (platforms.size() > 1) {
      std::optional<Descriptor> index = build_index(*t, platforms, " was not stored", [&](const Graph& g) {
        auto it = std::find_if(g.targets.begin(), g.targets.end(), [&](auto& other) { return other.name == t->name; });
        return it == g.targets.end() ? std::nullopt : std::optional(it->node);
      });
      if (!index) return kExitError;
      store.set_ref(t->name, *index);
      for (auto& out : b.outputs) Layout(out.path).import_image(store, *index, t->name);
      report(t->name + ": index " + index->digest.str() + " of " + std::to_string(platforms.size()) + " platforms");
      continue;
    }
    auto [graph, platform_builder] = s.for_platform(platforms.empty() ? Platform::host() : platforms[0]);
    auto same = std::find_if(graph->targets.begin(), graph->targets.end(), [&](auto& o) { return o.name == t->name; });
    if (same == graph->targets.end())
      throw BuildError(t->loc, t->name + " is not described when the recipe is evaluated for " + platforms[0].str());
    const BuiltImage& built = platform_builder->build(same->node);
    if (!examine(built, *same, " was not stored", platforms.empty() ? "" : platforms[0].str())) return kExitError;
    // What the name held before: the size table compares with it. A damaged
    // image of that name is replaced, not compared.
    std::optional<PreviousBuild> previous;
    if (auto before = store.find_ref(t->name)) try {
        previous = PreviousBuild{before->digest, store.load(*before).layers_size()};
      } catch (const DamagedImage&) {
        // nothing to compare with
      }
    store.set_ref(t->name, built.manifest);
    for (auto& out : b.outputs) {
      if (out.kind == Output::Kind::Oci) {
        Layout(out.path).import_image(store, built.manifest, t->name);
      } else {
        write_docker_archive(store, built.manifest, t->name + ":latest", out.path, s.epoch);
      }
    }
    view.image(OutputImage{t->name, built, previous});
    shown.insert(t->node);
  }

  for (const Push* push : s.pushes) {
    const Push& p = *push;
    Reference dest = Reference::parse(p.reference);
    std::vector<Platform> platforms = s.platforms_of(p.platforms);
    auto same = [&](const Graph& g) {
      auto it = std::find_if(g.pushes.begin(), g.pushes.end(), [&](auto& o) { return o.reference == p.reference; });
      return it == g.pushes.end() ? std::nullopt : std::optional(it->node);
    };
    if (platforms.size() > 1) {
      std::optional<Descriptor> index =
          build_index(Target{p.reference, p.node, p.loc}, platforms, " was not pushed", same);
      if (!index) return kExitError;
      if (!b.push) {
        view.pushed(dest.str(), index->digest, std::nullopt);
        continue;
      }
      try {
        view.pushed(
            dest.str(), index->digest,
            push_image(s.registry->client(), store, *index, dest, {}, s.push_meters.at(dest.str()), s.uploads.get()));
      } catch (const std::exception& e) {
        throw BuildError(p.loc, std::string("push: ") + e.what());
      }
      continue;
    }
    auto [graph, platform_builder] = s.for_platform(platforms.empty() ? Platform::host() : platforms[0]);
    std::optional<size_t> node = same(*graph);
    if (!node)
      throw BuildError(p.loc, p.reference + " is not pushed when the recipe is evaluated for " + platforms[0].str());
    const BuiltImage& built = platform_builder->build(*node);
    if (!examine(built, Target{p.reference, *node, p.loc}, " was not pushed",
                 platforms.empty() ? "" : platforms[0].str()))
      return kExitError;
    // An image only pushed has its own row in the size table, under its reference.
    if (shown.insert(p.node).second) view.image(OutputImage{dest.str(), built, std::nullopt});
    if (!b.push) {
      view.pushed(dest.str(), built.manifest.digest, std::nullopt);
      continue;
    }
    try {
      view.pushed(dest.str(), built.manifest.digest,
                  push_image(s.registry->client(), store, built.manifest, dest, {}, s.push_meters.at(dest.str()),
                             s.uploads.get()));
    } catch (const std::exception& e) {
      throw BuildError(p.loc, std::string("push: ") + e.what());
    }
  }
  if (b.cache_to) {
    if (b.push)
      export_cache(s, *b.cache_to);
    else
      report("would export the step cache to " + b.cache_to->str() + " (--no-push)");
  }
  view.finish();
  return 0;
}

}  // namespace imgbuild::cli
