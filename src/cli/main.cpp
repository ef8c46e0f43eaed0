// imgbuild: the command line. Parses arguments, evaluates the recipe, hands the
// graph to the builder and prints what was made. Exit status: 0 success, 1 build
// or recipe error, 2 usage error, 128 + N after signal N (SIGINT, SIGTERM).
#include <signal.h>
#include <unistd.h>

#include <clocale>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "base/interrupt.hpp"
#include "base/text.hpp"
#include "build/builder.hpp"
#include "cli/progress.hpp"
#include "inspect/elf.hpp"
#include "inspect/elf_report.hpp"
#include "lua/recipe.hpp"
#include "registry/cache_transfer.hpp"
#include "registry/credentials.hpp"
#include "registry/registry.hpp"
#include "registry/transfer.hpp"
#include "store/docker_archive.hpp"
#include "store/layout.hpp"
#include "store/step_cache.hpp"

namespace fs = std::filesystem;
using namespace imgbuild;

namespace {

constexpr int kExitError = 1;
constexpr int kExitUsage = 2;

/// A mistake in how imgbuild was called (exit status 2).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

const char* kUsage = R"(usage: imgbuild [build] RECIPE [TARGET...] [options]
       imgbuild plan RECIPE [TARGET...] [options]
       imgbuild cache ls | prune [--keep-bytes SIZE] [--older-than AGE] [--cache-dir DIR]
       imgbuild images
       imgbuild push NAME REF
       imgbuild inspect NAME | oci:DIR[:NAME]
       imgbuild check [--json] FILE...

Build the images a Lua recipe describes (all of them when no TARGET is named)
into the local store. `plan` shows each step with its cache key and whether
it would come from the cache or run, building nothing. `cache prune` removes
every cached step (or the least recently used beyond SIZE, or those unused
for AGE such as 7d) and the store's blobs no stored image needs.

build options:
  -o, --output oci:DIR | docker-archive:FILE   also write each target there
  --set NAME=VALUE      set a recipe parameter (param("NAME", default))
  --context DIR         build context (default: the recipe's folder)
  --strict              doctor warnings are errors
  --ignore WARNING      do not report a doctor warning: entrypoint, root, tls, tzdata
  --compression gzip|zstd   how new layers are compressed (default gzip; zstd is
                        faster and smaller, for containerd, podman, docker 23+)
  --no-cache            run every step again, ignoring cached results
  --cache-dir DIR       build cache (default: $XDG_CACHE_HOME/imgbuild)
  --cache-from REF      reuse steps exported to this registry repository tag
                        (repeatable); only the layers needed are downloaded
  --cache-to REF        export this build's steps and their layers there
  --pull                resolve base image tags again (default: the digest pulled before)
  --push / --no-push    run the recipe's push() calls (default), or only say what they would push
  --progress MODE       auto (default: tty on a terminal, else plain), tty (live
                        lines), plain (a line per event, for CI logs) or json (an
                        object per event and result on stdout, for tools)
  --debug               tracebacks with recipe errors, one line per registry request

registry options (build and push):
  --insecure-registry HOST   allow plain HTTP and unverified TLS for HOST
                             (loopback registries may use plain HTTP anyway)
  --registry-mirror REG=HOST pull REG's images from HOST first (build only;
                             e.g. docker.io=mirror.example.com)

  -h, --help            this help
  --version             imgbuild's version

Environment: SOURCE_DATE_EPOCH (image and file times, default 0),
IMGBUILD_PATH (where `require` looks after the recipe's folder),
XDG_DATA_HOME (the store: $XDG_DATA_HOME/imgbuild),
IMGBUILD_REGISTRY_AUTH_<HOST>=user:password (credentials for CI; HOST in
capitals, other characters as '_': IMGBUILD_REGISTRY_AUTH_GHCR_IO),
IMGBUILD_INSECURE_REGISTRIES (comma-separated, as --insecure-registry),
IMGBUILD_REGISTRY_MIRRORS (comma-separated REG=HOST, as --registry-mirror),
SSL_CERT_FILE (CA bundle for registries; per registry: /etc/docker/certs.d/HOST/ca.crt),
DOCKER_CONFIG (where config.json and its credential helpers are found).
See imgbuild(1) and imgbuild-recipe(5).
)";

struct Output {
  enum class Kind { Oci, DockerArchive } kind;
  fs::path path;
};

struct BuildArgs {
  fs::path recipe;
  std::vector<std::string> targets;
  std::vector<Output> outputs;
  std::map<std::string, std::string> params;
  std::optional<fs::path> context, cache_dir;
  std::vector<Reference> cache_from;
  std::optional<Reference> cache_to;
  bool use_cache = true;
  bool debug = false;
  bool strict = false;
  bool pull = false;
  Compression compression = Compression::Gzip;
  bool push = true;
  ProgressMode progress = ProgressMode::Auto;
  std::set<std::string> ignore;  ///< doctor warnings not to report
  std::set<std::string> insecure;
  std::map<std::string, std::vector<std::string>> mirrors;
};

/// Hosts named insecure in the environment (IMGBUILD_INSECURE_REGISTRIES).
std::set<std::string> insecure_from_environment() {
  std::set<std::string> hosts;
  if (const char* v = std::getenv("IMGBUILD_INSECURE_REGISTRIES"))
    for (auto& h : split(v, ','))
      if (!h.empty()) hosts.insert(h);
  return hosts;
}

/// REGISTRY=MIRROR pairs (--registry-mirror, IMGBUILD_REGISTRY_MIRRORS).
void add_mirror(std::map<std::string, std::vector<std::string>>& mirrors, const std::string& spec) {
  size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw UsageError("registry mirror '" + spec + "': expected REGISTRY=MIRROR, e.g. docker.io=mirror.example.com");
  mirrors[spec.substr(0, eq)].push_back(spec.substr(eq + 1));
}

/// The registry client, made on first use: a build without `from` or `push`
/// reads no credentials and opens no connection.
class RegistryAccess {
public:
  RegistryAccess(std::set<std::string> insecure, std::map<std::string, std::vector<std::string>> mirrors, bool debug)
      : insecure_(std::move(insecure)), mirrors_(std::move(mirrors)), debug_(debug) {
    if (const char* env = std::getenv("IMGBUILD_REGISTRY_MIRRORS"))
      for (auto& spec : split(env, ','))
        if (!spec.empty()) add_mirror(mirrors_, spec);
  }

  RegistryClient& client() {
    // Stages pull in parallel: the first to ask makes the client.
    std::lock_guard lock(mutex_);
    if (!client_) {
      RegistryOptions options;
      options.insecure = insecure_;
      options.mirrors = mirrors_;
      // As Go programs (docker, skopeo) do: a CA bundle replacing the system's.
      if (const char* ca = std::getenv("SSL_CERT_FILE")) options.ca_file = ca;
      if (debug_) options.debug = [](const std::string& line) { std::cerr << "imgbuild: registry: " << line << "\n"; };
      client_ = std::make_unique<RegistryClient>(Credentials::load(), std::move(options));
    }
    return *client_;
  }

private:
  std::set<std::string> insecure_;
  std::map<std::string, std::vector<std::string>> mirrors_;
  bool debug_;
  std::mutex mutex_;
  std::unique_ptr<RegistryClient> client_;
};

/// A stored image by name: a built one, else a pulled base (recorded per
/// platform), the host's platform first.
std::optional<Descriptor> find_stored(const Layout& layout, const std::string& name) {
  if (auto d = layout.find_ref(name)) return d;
  if (auto d = layout.find_ref(name, Platform::host())) return d;
  for (auto& d : layout.refs()) {
    auto it = d.annotations.find(kRefNameAnnotation);
    if (it != d.annotations.end() && it->second == name) return d;
  }
  return std::nullopt;
}

Output parse_output(const std::string& spec) {
  if (spec.starts_with("oci:") && spec.size() > 4) return {Output::Kind::Oci, spec.substr(4)};
  if (spec.starts_with("docker-archive:") && spec.size() > 15) return {Output::Kind::DockerArchive, spec.substr(15)};
  throw UsageError("invalid output '" + spec + "' (expected oci:DIR or docker-archive:FILE)");
}

/// A registry reference for --cache-from/--cache-to: a tag, never a digest.
Reference parse_cache_ref(const std::string& flag, const std::string& text) {
  try {
    Reference r = Reference::parse(text);
    if (r.digest) throw UsageError(flag + " " + text + ": name a tag, not a digest");
    return r;
  } catch (const ReferenceError& e) {
    throw UsageError(flag + ": " + e.what());
  }
}

BuildArgs parse_build_args(const std::vector<std::string>& args) {
  BuildArgs b;
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const std::string& flag) -> std::string {
      if (i + 1 >= args.size()) throw UsageError(flag + " needs a value");
      return args[++i];
    };
    // --flag=value is accepted for every option that takes a value.
    std::string flag = a, inline_value;
    bool has_inline = false;
    if (a.starts_with("--") && a.find('=') != std::string::npos) {
      flag = a.substr(0, a.find('='));
      inline_value = a.substr(a.find('=') + 1);
      has_inline = true;
    }
    auto take = [&]() { return has_inline ? inline_value : value(flag); };
    if (flag == "-o" || flag == "--output")
      b.outputs.push_back(parse_output(take()));
    else if (flag == "--set") {
      std::string kv = take();
      size_t eq = kv.find('=');
      if (eq == std::string::npos || eq == 0) throw UsageError("--set expects NAME=VALUE, got '" + kv + "'");
      b.params[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else if (flag == "--context")
      b.context = take();
    else if (flag == "--cache-dir")
      b.cache_dir = take();
    else if (flag == "--cache-from")
      b.cache_from.push_back(parse_cache_ref(flag, take()));
    else if (flag == "--cache-to")
      b.cache_to = parse_cache_ref(flag, take());
    else if (flag == "--ignore") {
      std::string name = take();
      if (!kDoctorWarnings.count(name))
        throw UsageError("--ignore " + name + ": no such warning (known: " + join(kDoctorWarnings, ", ") + ")");
      b.ignore.insert(name);
    } else if (flag == "--compression") {
      std::string name = take();
      auto c = parse_compression(name);
      if (!c) throw UsageError("--compression " + name + ": expected gzip or zstd");
      b.compression = *c;
    } else if (flag == "--insecure-registry")
      b.insecure.insert(take());
    else if (flag == "--registry-mirror")
      add_mirror(b.mirrors, take());
    else if (flag == "--progress") {
      std::string mode = take();
      auto parsed = parse_progress_mode(mode);
      if (!parsed) throw UsageError("--progress " + mode + ": expected auto, tty, plain or json");
      b.progress = *parsed;
    } else if (a == "--strict")
      b.strict = true;
    else if (a == "--pull")
      b.pull = true;
    else if (a == "--push")
      b.push = true;
    else if (a == "--no-push")
      b.push = false;
    else if (a == "--no-cache")
      b.use_cache = false;
    else if (a == "--debug")
      b.debug = true;
    else if (a.starts_with("-") && a != "-")
      throw UsageError("unknown option '" + a + "'");
    else
      positional.push_back(a);
  }
  if (positional.empty()) throw UsageError("no recipe given");
  b.recipe = positional[0];
  b.targets.assign(positional.begin() + 1, positional.end());
  std::error_code ec;
  if (!fs::is_regular_file(b.recipe, ec))
    throw UsageError("cannot open recipe " + b.recipe.string() + ": no such file");
  return b;
}

int64_t source_date_epoch() {
  const char* v = std::getenv("SOURCE_DATE_EPOCH");
  if (!v || !*v) return 0;
  char* end = nullptr;
  long long n = std::strtoll(v, &end, 10);
  if (*end || n < 0) throw UsageError(std::string("SOURCE_DATE_EPOCH must be a number of seconds, got '") + v + "'");
  return n;
}

/// What a build and a plan share: the evaluated recipe, the chosen targets and
/// pushes, the store, the cache and the registry, and a builder over them.
/// Holding one keeps the store and the cache in use (prune waits for it).
class Session {
public:
  Session(BuildArgs args, bool planning) : b(std::move(args)) {
    epoch = source_date_epoch();
    fs::path context =
        b.context ? *b.context : (b.recipe.parent_path().empty() ? fs::path(".") : b.recipe.parent_path());
    b.insecure.merge(insecure_from_environment());
    registry = std::make_unique<RegistryAccess>(b.insecure, b.mirrors, b.debug);
    RecipeOptions ro{
        b.recipe, context,
        b.params, split(std::getenv("IMGBUILD_PATH") ? std::getenv("IMGBUILD_PATH") : "", ':'),
        b.debug,  [this](const std::string& ref) { return registry->client().has_manifest(Reference::parse(ref)); }};
    ev = evaluate_recipe(ro);
    for (auto& [name, value] : b.params)
      if (std::find(ev.params_used.begin(), ev.params_used.end(), name) == ev.params_used.end())
        std::cerr << "imgbuild: warning: --set " << name << ": the recipe never asks for param(\"" << name << "\")\n";
    choose_targets();

    fs::path cache_dir = b.cache_dir ? *b.cache_dir : default_cache_dir();
    fs::create_directories(cache_dir);
    auto waiting = [] { std::cerr << "imgbuild: waiting for `imgbuild cache prune` to finish\n"; };
    cache_lock = std::make_unique<FileLock>(usage_lock_path(cache_dir), FileLock::Mode::Shared, waiting);
    store = std::make_unique<Layout>(default_store_dir());
    store_lock = std::make_unique<FileLock>(usage_lock_path(store->root()), FileLock::Mode::Shared, waiting);

    BuildSettings settings;
    settings.context = context;
    settings.cache_dir = cache_dir;
    settings.use_cache = b.use_cache;
    settings.source_date_epoch = epoch;
    settings.compression = b.compression;
    if (!planning) {
      view = ProgressView::make(b.progress);
      settings.progress = view->sink();
    }
    settings.pull = [this](const PullOp& op, const Platform& platform) {
      return pull_image(registry->client(), *store, Reference::parse(op.reference), platform, b.pull).image;
    };
    settings.fetch = [this](const std::vector<LayerBlob>& layers, const std::string& source) {
      fetch_layers(registry->client(), *store, Reference::parse(source), layers, {},
                   meter(TransferDirection::Pull, source));
    };
    if (!planning && b.push && !pushes.empty()) push_early(settings);
    for (auto& ref : b.cache_from) {
      auto steps = import_step_cache(registry->client(), ref);
      if (steps.empty()) std::cerr << "imgbuild: --cache-from " << ref.str() << ": no cache there yet\n";
      settings.remote_cache.merge(steps);
    }
    builder = std::make_unique<Builder>(ev.graph, *store, std::move(settings));
  }

  /// Byte counts of blobs moving to or from `ref`, as the view's transfer events.
  BlobProgress meter(TransferDirection direction, const std::string& ref) {
    if (!view) return {};
    auto m = std::make_shared<TransferMeter>(view->sink(), direction, ref);
    return [m](const Digest& blob, uint64_t done, uint64_t total) { m->update(blob, done, total); };
  }

  /// The nodes the chosen targets and pushes need.
  std::vector<size_t> needed() const {
    std::vector<size_t> nodes;
    for (const Target* t : chosen) nodes.push_back(t->node);
    for (const Push* p : pushes) nodes.push_back(p->node);
    return nodes;
  }

  BuildArgs b;
  int64_t epoch = 0;
  Evaluation ev;
  std::vector<const Target*> chosen;
  std::vector<const Push*> pushes;
  std::unique_ptr<RegistryAccess> registry;
  std::unique_ptr<FileLock> cache_lock, store_lock;
  std::unique_ptr<Layout> store;
  /// Declared before the builder: it outlives the builder's threads that report to it.
  std::unique_ptr<ProgressView> view;
  /// Layers on their way to the registries this build pushes to, and each
  /// push's meter (shared by those uploads and the push); unset with --no-push.
  /// Between the view and the builder: its uploads report to the view, and the
  /// builder's threads add to it.
  std::unique_ptr<BlobUploader> uploads;
  std::map<std::string, BlobProgress> push_meters;
  std::unique_ptr<Builder> builder;

private:
  /// Sends each layer to the registries of the pushes whose image is built on
  /// its step as soon as the step has stored it, while later steps still run.
  void push_early(BuildSettings& settings) {
    // The steps of a pushed image: its own node and its parents (a copy's
    // source image is not part of it).
    std::map<size_t, std::vector<Reference>> destinations;
    for (const Push* p : pushes) {
      Reference dest = Reference::parse(p->reference);
      push_meters.emplace(dest.str(), meter(TransferDirection::Push, dest.str()));
      for (std::optional<size_t> n = p->node; n; n = ev.graph.nodes.at(*n).parent) destinations[*n].push_back(dest);
    }
    uploads = std::make_unique<BlobUploader>(registry->client(), *store);
    settings.layer_stored = [this, destinations = std::move(destinations)](size_t node, const LayerBlob& layer) {
      auto it = destinations.find(node);
      if (it == destinations.end()) return;
      for (const Reference& dest : it->second)
        uploads->add(dest, Descriptor{layer.media_type, layer.digest, layer.size, {}, {}}, push_meters.at(dest.str()));
    };
  }

  void choose_targets() {
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
    // Pushes follow the builds they need: all of them, or those of the named
    // targets; a cached() image's push, whenever a named target is built on it.
    for (const Push& p : ev.graph.pushes)
      if (b.targets.empty() || std::any_of(chosen.begin(), chosen.end(), [&](const Target* t) {
            return p.always ? ev.graph.needs(t->node, p.node) : t->node == p.node;
          }))
        pushes.push_back(&p);
  }
};

/// --cache-to: this build's steps, and the layers the registry lacks, to `dest`.
void export_cache(Session& s, const Reference& dest) {
  std::vector<CachedStep> steps = s.builder->used_steps();
  RegistryClient& client = s.registry->client();
  // Layers only known from another registry cache come through the store.
  std::vector<LayerBlob> missing;
  for (auto& step : steps)
    if (step.layer && !s.store->has_blob(step.layer->digest) && !client.has_blob(dest, step.layer->digest))
      missing.push_back(*step.layer);
  s.builder->ensure_local(missing);
  Descriptor manifest = store_cache_manifest(*s.store, steps);
  PushResult r = push_image(client, *s.store, manifest, dest, {}, s.meter(TransferDirection::Push, dest.str()));
  std::cerr << "imgbuild: exported " << steps.size() << " cached steps to " << dest.str() << "@" << r.digest.str()
            << " (" << r.uploaded << " layers uploaded, " << human_size(r.bytes) << ")\n";
}

int cmd_build(const std::vector<std::string>& args) {
  Session s(parse_build_args(args), false);
  BuildArgs& b = s.b;
  if (s.chosen.empty() && s.ev.graph.pushes.empty()) {
    std::cerr << "imgbuild: " << b.recipe.string()
              << " defines no image: call image(\"name\", img) or push(img, ref)\n";
    return kExitError;
  }
  Builder& builder = *s.builder;
  Layout& store = *s.store;

  // The doctor sees every image before it is stored, written or pushed.
  auto examine = [&](const BuiltImage& built, const Target& t, const char* refusal) {
    bool refused = false;
    for (const Finding& f : examine_built(built, t.loc, b.ignore)) {
      bool fatal = f.error || b.strict;
      refused = refused || fatal;
      std::cerr << "imgbuild: " << (fatal ? "" : "warning: ") << f.loc << ": " << f.message
                << (f.error ? "" : " [" + f.check + "]") << "\n";
    }
    if (refused)
      std::cerr << "imgbuild: " << t.name << refusal << (b.strict ? " (--strict makes warnings errors)" : "") << "\n";
    return !refused;
  };

  builder.prepare(s.needed());

  ProgressView& view = *s.view;
  std::set<size_t> shown;  ///< nodes with a row in the size table
  for (const Target* t : s.chosen) {
    const BuiltImage& built = builder.build(t->node);
    if (!examine(built, *t, " was not stored")) return kExitError;
    // What the name held before: the size table compares with it.
    std::optional<PreviousBuild> previous;
    if (auto before = store.find_ref(t->name))
      previous = PreviousBuild{before->digest, store.load(*before).layers_size()};
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
    const BuiltImage& built = builder.build(p.node);
    // An image stored above was examined there; say nothing twice.
    bool examined = std::any_of(s.chosen.begin(), s.chosen.end(), [&](const Target* t) { return t->node == p.node; });
    if (!examined && !examine(built, Target{p.reference, p.node, p.loc}, " was not pushed")) return kExitError;
    Reference dest = Reference::parse(p.reference);
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
      std::cerr << "imgbuild: would export the step cache to " << b.cache_to->str() << " (--no-push)\n";
  }
  view.finish();
  return 0;
}

/// imgbuild plan: each step the targets need, its key and where its result
/// would come from. Nothing is built, written or pushed.
int cmd_plan(const std::vector<std::string>& args) {
  Session s(parse_build_args(args), true);
  std::vector<PlannedStep> steps = s.builder->plan(s.needed());
  using Outcome = PlannedStep::Outcome;
  size_t loc_w = 0;
  for (auto& st : steps) loc_w = std::max(loc_w, st.loc.size());
  std::map<Outcome, size_t> counts;
  for (auto& st : steps) {
    ++counts[st.outcome];
    const char* outcome = st.outcome == Outcome::Local      ? "cached"
                          : st.outcome == Outcome::Registry ? "registry"
                          : st.outcome == Outcome::Run      ? "run"
                          : st.outcome == Outcome::AfterRun ? "run"
                                                            : "";
    std::string key = st.key ? std::string(st.key->short_hex()) : st.outcome == Outcome::AfterRun ? "?" : "";
    std::printf("%-*s  %-8s  %-12s  %s\n", static_cast<int>(loc_w), st.loc.c_str(), outcome, key.c_str(),
                st.description.c_str());
  }
  for (const Target* t : s.chosen) std::printf("image %s (%s)\n", t->name.c_str(), t->loc.c_str());
  for (const Push* p : s.pushes) std::printf("push %s (%s)\n", p->reference.c_str(), p->loc.c_str());
  size_t runs = counts[Outcome::Run] + counts[Outcome::AfterRun];
  std::printf("%zu cached, %zu from the registry cache, %zu to run\n", counts[Outcome::Local],
              counts[Outcome::Registry], runs);
  return 0;
}

/// --keep-bytes SIZE: "10GB", "500MB", "2GiB" (parse_size()).
uint64_t parse_bytes(const std::string& text) {
  if (auto bytes = parse_size(text)) return *bytes;
  throw UsageError("--keep-bytes: '" + text + "' is not a size (e.g. 10GB, 500MB, 2GiB)");
}

/// "7d", "12h", "30m", "2w", "90s".
int64_t parse_duration(const std::string& text) {
  size_t used = 0;
  long long value = -1;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  static const std::map<std::string, int64_t> units = {{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {"w", 604800}};
  auto it = units.find(text.substr(used));
  if (used == 0 || value < 0 || it == units.end())
    throw UsageError("--older-than: '" + text + "' is not a duration (e.g. 7d, 12h, 30m)");
  return value * it->second;
}

/// imgbuild cache ls | prune [--keep-bytes N] [--older-than D] [--cache-dir DIR]
int cmd_cache(const std::vector<std::string>& args) {
  if (args.empty()) throw UsageError("cache needs a command: ls or prune");
  fs::path cache_dir = default_cache_dir();
  PruneOptions options;
  for (size_t i = 1; i < args.size(); ++i) {
    const std::string& a = args[i];
    std::string flag = a.substr(0, a.find('='));
    auto value = [&]() -> std::string {
      if (a.find('=') != std::string::npos) return a.substr(a.find('=') + 1);
      if (i + 1 >= args.size()) throw UsageError(flag + " needs a value");
      return args[++i];
    };
    if (flag == "--cache-dir")
      cache_dir = value();
    else if (flag == "--keep-bytes" && args[0] == "prune")
      options.keep_bytes = parse_bytes(value());
    else if (flag == "--older-than" && args[0] == "prune")
      options.older_than = parse_duration(value());
    else
      throw UsageError("cache " + args[0] + ": unknown option '" + a + "'");
  }
  if (args[0] == "ls") {
    StepCache cache(cache_dir);
    auto when = [](int64_t t) {
      char buf[32];
      std::tm tm{};
      ::localtime_r(&t, &tm);
      std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
      return std::string(buf);
    };
    std::printf("%-12s  %9s  %-16s  %s\n", "KEY", "SIZE", "LAST USED", "STEP");
    uint64_t total = 0;
    auto entries = cache.list();
    for (auto& e : entries) {
      uint64_t size = e.layer ? e.layer->size : 0;
      total += size;
      std::printf("%-12s  %9s  %-16s  %s\n", std::string(e.key.short_hex()).c_str(), human_size(size).c_str(),
                  when(e.last_used).c_str(), e.step.c_str());
    }
    for (auto& t : cache_trees(cache_dir)) {
      total += t.bytes;
      std::printf("%-12s  %9s  %-16s  %s\n", t.kind.c_str(), human_size(t.bytes).c_str(), when(t.last_used).c_str(),
                  t.path.filename().c_str());
    }
    std::printf("%zu steps; %s in all\n", entries.size(), human_size(total).c_str());
    return 0;
  }
  if (args[0] == "prune") {
    Layout store(default_store_dir());
    PruneReport r =
        prune_cache(cache_dir, store, options, [] { std::cerr << "imgbuild: waiting for running builds to finish\n"; });
    std::printf("removed %zu steps, %zu unpacked trees and %zu blobs: %s freed\n", r.entries, r.trees, r.blobs,
                human_size(r.bytes).c_str());
    return 0;
  }
  throw UsageError("cache: unknown command '" + args[0] + "' (ls or prune)");
}

/// imgbuild push NAME REF: a stored image to a registry.
int cmd_push(const std::vector<std::string>& args) {
  std::vector<std::string> positional;
  std::set<std::string> insecure = insecure_from_environment();
  bool debug = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--insecure-registry") {
      if (i + 1 >= args.size()) throw UsageError("--insecure-registry needs a value");
      insecure.insert(args[++i]);
    } else if (a.starts_with("--insecure-registry=")) {
      insecure.insert(a.substr(a.find('=') + 1));
    } else if (a == "--debug") {
      debug = true;
    } else if (a.starts_with("-")) {
      throw UsageError("unknown option '" + a + "'");
    } else {
      positional.push_back(a);
    }
  }
  if (positional.size() != 2) throw UsageError("push takes a stored image and a reference: imgbuild push NAME REF");
  Reference dest;
  try {
    dest = Reference::parse(positional[1]);
  } catch (const ReferenceError& e) {
    throw UsageError(e.what());
  }
  if (dest.digest) throw UsageError("push: '" + positional[1] + "' names a digest; push to a tag");
  Layout store(default_store_dir());
  auto manifest = find_stored(store, positional[0]);
  if (!manifest) throw std::runtime_error("no image named '" + positional[0] + "' in the store (see imgbuild images)");
  RegistryAccess registry(insecure, {}, debug);
  // A pulled base is stored without the layers no build needed yet; they come
  // from the registry it was pulled from (its stored name).
  StoredImage stored = store.load(*manifest);
  Image image = image_from_documents(stored.manifest_json, stored.config_json);
  std::vector<LayerBlob> missing;
  for (auto& layer : image.layers)
    if (!store.has_blob(layer.digest)) missing.push_back(layer);
  if (!missing.empty() && manifest->platform)
    fetch_layers(registry.client(), store, Reference::parse(positional[0]), missing);
  print_push(dest.str(), push_image(registry.client(), store, *manifest, dest));
  return 0;
}

int cmd_images(const std::vector<std::string>& args) {
  if (!args.empty()) throw UsageError("images takes no arguments");
  Layout store(default_store_dir());
  struct Row {
    std::string name, platform, digest, size, created;
  };
  std::vector<Row> rows{{"NAME", "PLATFORM", "DIGEST", "SIZE", "CREATED"}};
  for (auto& d : store.refs()) {
    StoredImage img = store.load(d);
    auto text = [&](const char* key) {
      auto it = img.config_json.find(key);
      return it != img.config_json.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    Platform p{text("os"), text("architecture"), text("variant")};
    rows.push_back({d.annotations.count(kRefNameAnnotation) ? d.annotations.at(kRefNameAnnotation) : "<none>",
                    p.architecture.empty() ? "" : p.str(), "sha256:" + std::string(d.digest.short_hex()),
                    human_size(img.total_size()), text("created")});
  }
  // Columns as wide as their widest cell: base image names are long.
  size_t name_w = 0, platform_w = 0;
  for (auto& r : rows) {
    name_w = std::max(name_w, r.name.size());
    platform_w = std::max(platform_w, r.platform.size());
  }
  for (auto& r : rows)
    std::printf("%-*s  %-*s  %-19s %9s  %s\n", static_cast<int>(name_w), r.name.c_str(), static_cast<int>(platform_w),
                r.platform.c_str(), r.digest.c_str(), r.size.c_str(), r.created.c_str());
  return 0;
}

int cmd_inspect(const std::vector<std::string>& args) {
  if (args.size() != 1) throw UsageError("inspect takes one image: NAME or oci:DIR[:NAME]");
  std::string ref = args[0];
  fs::path layout_dir = default_store_dir();
  std::string name = ref;
  if (ref.starts_with("oci:")) {
    std::string rest = ref.substr(4);
    size_t colon = rest.rfind(':');
    layout_dir = colon == std::string::npos ? rest : rest.substr(0, colon);
    name = colon == std::string::npos ? "" : rest.substr(colon + 1);
    if (!fs::exists(layout_dir / "index.json")) throw UsageError(layout_dir.string() + " is not an OCI image layout");
  }
  Layout layout(layout_dir);
  std::optional<Descriptor> d;
  if (name.empty()) {
    auto refs = layout.refs();
    if (refs.size() != 1)
      throw UsageError(layout_dir.string() + " holds " + std::to_string(refs.size()) +
                       " images: name one as oci:DIR:NAME");
    d = refs[0];
  } else {
    d = find_stored(layout, name);
  }
  if (!d) throw std::runtime_error("no image named '" + name + "' in " + layout_dir.string());
  StoredImage img = layout.load(*d);
  auto ref_name = d->annotations.find(kRefNameAnnotation);
  nlohmann::json out = {{"name", ref_name != d->annotations.end() ? ref_name->second : name},
                        {"digest", d->digest.str()},
                        {"size", img.total_size()},
                        {"manifest", img.manifest_json},
                        {"config", img.config_json}};
  std::cout << out.dump(2) << "\n";
  return 0;
}

/// imgbuild check: the static-binary report of each file. Exit 1 when a file
/// cannot be read or is a malformed ELF file.
int cmd_check(const std::vector<std::string>& args) {
  bool as_json = false;
  std::vector<std::string> files;
  for (auto& a : args) {
    if (a == "--json")
      as_json = true;
    else if (a.starts_with("-"))
      throw UsageError("unknown option '" + a + "'");
    else
      files.push_back(a);
  }
  if (files.empty()) throw UsageError("check needs at least one file");
  int status = 0;
  nlohmann::json reports = nlohmann::json::array();
  for (auto& f : files) {
    try {
      ElfInfo info = inspect_elf(f);
      if (as_json) {
        nlohmann::json r = elf_json(info);
        r["file"] = f;
        reports.push_back(r);
      } else {
        std::cout << elf_text_report(f, info);
      }
    } catch (const std::exception& e) {
      std::cerr << "imgbuild: " << e.what() << "\n";
      if (as_json) reports.push_back({{"file", f}, {"error", e.what()}});
      status = kExitError;
    }
  }
  if (as_json) std::cout << reports.dump(2) << "\n";
  return status;
}

int run(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << kUsage;
    return kExitUsage;
  }
  const std::string& first = args[0];
  bool wants_help =
      first == "help" || std::any_of(args.begin(), args.end(), [](auto& a) { return a == "-h" || a == "--help"; });
  if (wants_help) {
    std::cout << kUsage;
    return 0;
  }
  if (first == "--version") {
    std::cout << "imgbuild " << IMGBUILD_VERSION << "\n";
    return 0;
  }
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (first == "build") return cmd_build(rest);
  if (first == "plan") return cmd_plan(rest);
  if (first == "cache") return cmd_cache(rest);
  if (first == "images") return cmd_images(rest);
  if (first == "push") return cmd_push(rest);
  if (first == "inspect") return cmd_inspect(rest);
  if (first == "check") return cmd_check(rest);
  return cmd_build(args);
}

/// Exit status 128 + N after signal N (130 for Ctrl-C, 143 for SIGTERM), as
/// shells report a process killed by it; the cleanup has run by then.
int interrupted() {
  int sig = interrupt_signal();
  std::cerr << "imgbuild: interrupted by "
            << (sig == SIGINT    ? "SIGINT"
                : sig == SIGTERM ? "SIGTERM"
                                 : "a signal")
            << "; temporary files removed\n";
  return 128 + sig;
}

}  // namespace

int main(int argc, char** argv) {
  // libarchive writes a PAX name as UTF-8 only when the locale says names are
  // UTF-8; under "C" every non-ASCII name would become hdrcharset=BINARY, which
  // GNU tar warns about. Only the character type changes: number formatting
  // stays "C".
  std::setlocale(LC_CTYPE, "C.UTF-8");
  install_interrupt_handlers();
  try {
    int status = run(argc, argv);
    return interrupt_signal() ? interrupted() : status;
  } catch (const Interrupted&) {
    return interrupted();
  } catch (const UsageError& e) {
    std::cerr << "imgbuild: " << e.what() << "\n(see imgbuild --help)\n";
    return kExitUsage;
  } catch (const std::exception& e) {
    // After a signal, an error is its consequence (an aborted transfer, a
    // killed step): the interrupt is what to report.
    if (interrupt_signal()) return interrupted();
    std::cerr << "imgbuild: " << e.what() << "\n";
    return kExitError;
  }
}
