// imgbuild build: every chosen target built, examined by the doctor, stored
// and written to each output; then the recipe's pushes and the cache export.
#include <algorithm>
#include <exception>
#include <functional>
#include <mutex>
#include <optional>
#include <set>

#include "base/fs.hpp"
#include "base/text.hpp"
#include "base/threads.hpp"
#include "build/provenance.hpp"
#include "cli/attachments.hpp"
#include "cli/commands.hpp"
#include "cli/doctor_record.hpp"
#include "cli/report.hpp"
#include "cli/session.hpp"
#include "registry/cache_transfer.hpp"
#include "store/docker_archive.hpp"
#include "store/run_cache.hpp"
#include "store/step_cache.hpp"

namespace imgbuild::cli {
namespace {

/// The archives of the `:run` cache mounts the recipe names, for --cache-to:
/// of this machine's folder, else the one --cache-from offered (a build
/// whose steps were all cached keeps the cache it was given). Archives that
/// are only in another registry are fetched into the store.
RunCacheBlobs cache_mount_archives(Session& s, const Reference& dest) {
  std::set<std::string> paths;
  auto named = [&](const Graph& graph) {
    for (const Node& node : graph.nodes)
      if (auto* run = std::get_if<RunOp>(&node.op)) paths.insert(run->cache.begin(), run->cache.end());
  };
  named(s.ev.graph);
  for (auto& [platform, pb] : s.platform_builds) named(pb.ev.graph);
  RunCacheBlobs archives;
  for (const std::string& path : paths) {
    RunCacheArchive made;
    try {
      made = archive_run_cache(run_cache_folder(s.cache_dir, path), s.store->blob_dir());
    } catch (const std::exception& e) {
      // A folder a step left unreadable, or one a running build writes to:
      // the steps are exported all the same.
      made.skipped = e.what();
    }
    if (made.blob) {
      archives.emplace(path, *made.blob);
      continue;
    }
    auto offered = s.cache_mount_archives.find(path);
    if (!made.skipped.empty()) {
      report("--cache-to " + dest.str() + ": the cache mounted at " + path + " is not exported: " + made.skipped);
    } else if (offered != s.cache_mount_archives.end()) {
      const auto& [blob, source] = offered->second;
      if (!s.store->has_blob(blob.digest) && !s.registry->client().has_blob(dest, blob.digest))
        fetch_layers(s.registry->client(), *s.store, source, {blob}, {},
                     s.meter(TransferDirection::Pull, source.str()));
      archives.emplace(path, blob);
    }
  }
  return archives;
}

/// --cache-to: this build's steps and cache mounts, and the blobs the
/// registry lacks, to `dest`.
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
  RunCacheBlobs mounts = cache_mount_archives(s, dest);
  Descriptor manifest = store_cache_manifest(*s.store, steps, mounts);
  PushResult r = push_image(client, *s.store, manifest, dest, {}, s.meter(TransferDirection::Push, dest.str()));
  report("exported " + std::to_string(steps.size()) + " cached steps" +
         (mounts.empty()
              ? ""
              : " and " + std::to_string(mounts.size()) + (mounts.size() == 1 ? " cache mount" : " cache mounts")) +
         " to " + dest.str() + "@" + r.digest.str() + " (" + std::to_string(r.uploaded) + " layers uploaded, " +
         human_size(r.bytes) + ")");
}

/// What the provenance of every image of this build says alike: the recipe,
/// targets, parameters, the context's commit, the --cache-from sources.
BuildFacts build_facts(const Session& s) {
  namespace fs = std::filesystem;
  std::vector<std::string> cache_from;
  for (const Reference& ref : s.b.cache_from) cache_from.push_back(ref.str());
  return {
      .recipe = fs::weakly_canonical(s.b.recipe).lexically_relative(fs::weakly_canonical(s.context)).generic_string(),
      .recipe_digest = sha256_of(read_file(s.b.recipe)),
      .targets = s.b.targets,
      .parameters = s.b.params,
      .checkout = s.checkout,
      .cache_from = std::move(cache_from),
      .version = IMGBUILD_VERSION};
}

/// Keeps the provenance of `built`, image `node` of `builder`, output as
/// `name`, beside it in the local store (provenance_path), where attaching it
/// to the image finds it.
void keep_provenance(Session& s, Builder& builder, const BuildFacts& build, size_t node, const BuiltImage& built,
                     const std::string& name) {
  const ProvenanceFacts facts{.name = name,
                              .manifest = built.manifest.digest,
                              .platform = built.image.platform.str(),
                              .images = builder.inputs_of(node),
                              .build = build};
  std::filesystem::path path = provenance_path(s.store->root(), facts.manifest);
  const std::string statement = provenance_json(facts);
  // A rebuild that changed nothing finds it there already: not written (and
  // synced) again.
  try {
    if (read_file(path) == statement) return;
  } catch (const std::exception&) {
    // none yet, or unreadable: written
  }
  std::filesystem::create_directories(path.parent_path());
  write_file_atomic(path, statement);
}

}  // namespace

int cmd_build(const std::vector<std::string>& args) {
  BuildArgs parsed = parse_build_args(args);
  // A wrong key fails before the recipe is even read.
  std::optional<EcKey> key = signing_key(parsed);
  Session s(std::move(parsed), false);
  BuildArgs& b = s.b;
  if (s.chosen.empty() && s.ev.graph.pushes.empty()) {
    report(b.recipe.string() + " defines no image: call image(\"name\", img) or push(img, ref)");
    return kExitError;
  }
  Layout& store = *s.store;

  // The doctor sees every image before it is stored, written or pushed, and
  // says what it found once: an image stored under two names or pushed to two
  // tags is one image. An image of several platforms is examined on each, and
  // what it says names the platform. The examining may run on several threads
  // (one per platform); what it found is said afterwards, in order.
  struct Examined {
    const BuiltImage* built = nullptr;  ///< null when the doctor refused it
    std::vector<std::string> said;      ///< the doctor's findings, and its refusal
    std::exception_ptr error;           ///< what stopped an examination made early, to be thrown in turn
  };
  std::mutex examining;
  std::set<std::pair<std::string, size_t>> examined;  ///< (platform, node): under `examining`
  auto examine = [&](const BuiltImage& built, const Target& t, const char* refusal, const std::string& platform,
                     Examined& out) {
    {
      std::lock_guard lock(examining);
      if (!examined.insert({platform, t.node}).second) return true;
    }
    std::vector<Finding> findings;
    try {
      findings = examine_kept(store, built, t.loc, b.ignore);
    } catch (...) {
      std::lock_guard lock(examining);
      examined.erase({platform, t.node});
      throw;
    }
    bool refused = false;
    std::string on = platform.empty() ? "" : platform + ": ";
    for (const Finding& f : findings) {
      bool fatal = f.error || b.strict;
      refused = refused || fatal;
      out.said.push_back((fatal ? "" : "warning: ") + f.loc + ": " + on + f.message +
                         (f.error ? "" : " [" + f.check + "]"));
    }
    if (refused) out.said.push_back(t.name + refusal + (b.strict ? " (--strict makes warnings errors)" : ""));
    return !refused;
  };

  const BuildFacts facts = build_facts(s);
  std::set<std::string> attested;  ///< manifest digests whose provenance is kept, once per image: under `examining`
  auto attest = [&](Builder& builder, size_t node, const BuiltImage& built, const std::string& name) {
    {
      std::lock_guard lock(examining);
      if (!attested.insert(built.manifest.digest.str()).second) return;
    }
    keep_provenance(s, builder, facts, node, built, name);
  };

  // The image `t` names, on `platform` (the machine's when none is given):
  // found by `same` in that platform's evaluation, built, examined and its
  // provenance kept under `name` (into `out`, whose findings stand should
  // the provenance fail); nothing said yet. Platforms' images are examined
  // side by side: each has its own builder.
  using Finder = std::function<std::optional<size_t>(const Graph&)>;
  auto examine_on = [&](const Target& t, const std::optional<Platform>& platform, const char* refusal,
                        const Finder& same, const std::string& name, Examined& out) {
    const Platform on = platform.value_or(Platform::host());
    auto [graph, platform_builder] = s.for_platform(on);
    std::optional<size_t> node = same(*graph);
    if (!node)
      throw BuildError(t.loc, t.name + " is not described when the recipe is evaluated for " + on.str() +
                                  " (platform.arch is " + on.architecture + " then)");
    const BuiltImage& built = platform_builder->build(*node, t.annotations);
    if (!examine(built, Target{t.name, *node, t.loc, {}, {}}, refusal, platform ? platform->str() : "", out)) return;
    attest(*platform_builder, *node, built, name);
    out.built = &built;
  };
  auto target_named = [](const std::string& name) -> Finder {
    return [name](const Graph& g) { return g.target_node(name); };
  };

  // The chosen targets' images are examined as soon as their platform's
  // steps are done, on its thread, while other platforms still build (the
  // machine's platform and a cross-compiled one rarely finish together);
  // in the order of the chosen targets, as they are said, so that an image
  // two of them name is examined for the first, as it would be in turn.
  // What an -o oci: output attaches to them is made there too.
  struct Early {
    const Target* target;
    std::optional<Platform> platform;
    std::string name;  ///< what its provenance names it
    Builder* builder;  ///< its platform's
    Examined examined{};
    bool done = false;
    std::optional<Documents> documents{};  ///< for the outputs, when there are oci ones
  };
  const bool oci_output =
      std::any_of(b.outputs.begin(), b.outputs.end(), [](const Output& o) { return o.kind == Output::Kind::Oci; });
  std::vector<Early> early;
  for (const Target* t : s.chosen) {
    std::vector<Platform> platforms = s.platforms_of(t->platforms);
    if (platforms.size() > 1) {
      for (const Platform& p : platforms)
        early.push_back(
            {.target = t, .platform = p, .name = t->name + "@" + p.str(), .builder = s.for_platform(p).second});
    } else {
      std::optional<Platform> platform;
      if (!platforms.empty()) platform = platforms[0];
      early.push_back({.target = t,
                       .platform = platform,
                       .name = t->name,
                       .builder = s.for_platform(platform.value_or(Platform::host())).second});
    }
  }
  auto examine_early = [&](Builder& builder) {
    for (Early& e : early) {
      if (e.builder != &builder) continue;
      try {
        examine_on(*e.target, e.platform, " was not stored", target_named(e.target->name), e.name, e.examined);
      } catch (...) {
        e.examined.error = std::current_exception();
      }
      e.done = true;
      if (oci_output && e.examined.built && !e.examined.error) try {
          e.documents = documents_of(store, e.examined.built->manifest, e.target->name);
        } catch (const std::exception&) {
          // Made again when the output is written, and fails in its turn.
        }
    }
  };
  // The documents made early of `t`'s images, for its outputs.
  auto documents_made = [&](const Target& t) {
    std::map<Digest, Documents> made;
    for (const Early& e : early)
      if (e.target == &t && e.documents) made.emplace(e.examined.built->manifest.digest, *e.documents);
    return made;
  };
  // What the doctor found of `t` on `platform`: examined early, or now.
  auto examination = [&](const Target& t, const std::optional<Platform>& platform, const char* refusal,
                         const Finder& same, const std::string& name) {
    for (Early& e : early)
      if (e.done && e.target == &t && e.platform == platform) return e.examined;
    Examined out;
    examine_on(t, platform, refusal, same, name, out);
    return out;
  };
  // Says what the doctor found; the image, or nullptr when it refused it.
  auto said = [](const Examined& found) {
    for (const std::string& line : found.said) report(line);
    if (found.error) std::rethrow_exception(found.error);
    return found.built;
  };
  auto build_on = [&](const Target& t, const std::optional<Platform>& platform, const char* refusal, const Finder& same,
                      const std::string& name) { return said(examination(t, platform, refusal, same, name)); };
  auto pushed_to = [](const std::string& reference) -> Finder {
    return [reference](const Graph& g) { return g.push_node(reference); };
  };

  // `t`'s image for each of `platforms`, shown and put under an index in the
  // store; nullopt when the doctor refused one (what it found on the
  // platforms after that one is not said).
  auto build_index = [&](const Target& t, const std::vector<Platform>& platforms, const char* refusal,
                         const Finder& same) -> std::optional<Descriptor> {
    std::vector<Examined> examinations(platforms.size());
    run_side_by_side(platforms.size(), [&](size_t i) {
      examinations[i] = examination(t, platforms[i], refusal, same, t.name + "@" + platforms[i].str());
    });
    std::vector<Descriptor> manifests;
    std::vector<std::map<std::string, std::string>> annotations;
    for (size_t i = 0; i < platforms.size(); ++i) {
      const BuiltImage* built = said(examinations[i]);
      if (!built) return std::nullopt;
      s.view->image(OutputImage{t.name + "@" + platforms[i].str(), *built, std::nullopt});
      manifests.push_back(built->manifest);
      manifests.back().platform = platforms[i];
      annotations.push_back(built->image.annotations);
    }
    return store.put_index(manifests, index_annotations(annotations));
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

  s.prepare(examine_early);

  ProgressView& view = *s.view;
  std::set<size_t> shown;  ///< nodes with a row in the size table
  for (const Target* t : s.chosen) {
    std::vector<Platform> platforms = s.platforms_of(t->platforms);
    if (platforms.size() > 1) {
      std::optional<Descriptor> index = build_index(*t, platforms, " was not stored", target_named(t->name));
      if (!index) return kExitError;
      store.set_ref(t->name, *index);
      const std::map<Digest, Documents> made = documents_made(*t);
      for (auto& out : b.outputs) write_oci_output(store, out.path, *index, t->name, key ? &*key : nullptr, made);
      report(t->name + ": index " + index->digest.str() + " of " + std::to_string(platforms.size()) + " platforms");
      continue;
    }
    std::optional<Platform> platform;
    if (!platforms.empty()) platform = platforms[0];
    const BuiltImage* made = build_on(*t, platform, " was not stored", target_named(t->name), t->name);
    if (!made) return kExitError;
    const BuiltImage& built = *made;
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
        write_oci_output(store, out.path, built.manifest, t->name, key ? &*key : nullptr, documents_made(*t));
      } else {
        write_docker_archive(store, built.manifest, t->name + ":latest", out.path, s.epoch);
      }
    }
    view.image(OutputImage{t->name, built, previous});
    shown.insert(t->node);
  }

  // The pushes of one image go out together: each blob once per registry,
  // then the manifest (or index) under every tag (push(img, { ref, ref... })
  // makes several, as do several push() calls of one image with the same
  // annotations: other annotations make another manifest).
  std::vector<std::vector<const Push*>> groups;
  for (const Push* p : s.pushes) {
    auto same = std::find_if(groups.begin(), groups.end(), [&](auto& g) {
      return g.front()->node == p->node && g.front()->annotations == p->annotations;
    });
    if (same == groups.end())
      groups.push_back({p});
    else
      same->push_back(p);
  }
  for (const auto& group : groups) {
    const Push& first = *group.front();
    std::vector<Reference> dests;
    std::vector<std::string> refs;
    for (const Push* p : group) {
      dests.push_back(Reference::parse(p->reference));
      refs.push_back(dests.back().str());
    }
    std::vector<Platform> platforms = s.platforms_of(first.platforms);
    const Target pushed_target{first.reference, first.node, first.loc, {}, first.annotations};
    std::optional<Descriptor> pushed;
    if (platforms.size() > 1) {
      pushed = build_index(pushed_target, platforms, " was not pushed", pushed_to(first.reference));
      if (!pushed) return kExitError;
    } else {
      std::optional<Platform> platform;
      if (!platforms.empty()) platform = platforms[0];
      const BuiltImage* built =
          build_on(pushed_target, platform, " was not pushed", pushed_to(first.reference), refs.front());
      if (!built) return kExitError;
      // An image only pushed has its own row in the size table, under its reference.
      if (shown.insert(first.node).second) view.image(OutputImage{refs.front(), *built, std::nullopt});
      pushed = built->manifest;
    }
    if (!b.push) {
      view.pushed(refs, pushed->digest, std::nullopt);
      continue;
    }
    DocumentsAhead ahead(store, *pushed, dests.front().str());
    PushResult result = push_tags(
        s.registry->client(), store, *pushed, dests, {},
        [&s](const Reference& dest) { return s.push_meters.at(dest.str()); }, s.uploads.get());
    view.pushed(refs, pushed->digest, result);
    try {
      attach_pushed(s.registry->client(), store, *pushed, result.pushed(), key ? &*key : nullptr, &ahead);
    } catch (const std::exception& e) {
      throw BuildError(first.loc, std::string("push: ") + e.what());
    }
    for (size_t i = 0; i < group.size(); ++i)
      if (!result.tags[i].error.empty())
        throw BuildError(group[i]->loc,
                         "push: " + (result.tags.size() == 1 ? result.tags[i].error : result.failures()));
  }
  if (b.cache_to) {
    if (b.push)
      export_cache(s, *b.cache_to);
    else
      report("would export the step cache to " + b.cache_to->str() + " (--no-push)");
  }
  for (Builder* builder : s.builders()) builder->leave_scratch_to_next_build();
  view.finish();
  return 0;
}

}  // namespace imgbuild::cli
