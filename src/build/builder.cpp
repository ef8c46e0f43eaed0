#include "build/builder.hpp"
#include "oci/image_path.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <new>

#include "base/fs.hpp"
#include "base/text.hpp"
#include "base/threads.hpp"
#include "build/emulation.hpp"
#include "build/hostbuild.hpp"
#include "inspect/elf.hpp"
#include "layer/resolve.hpp"
#include "layer/unpack.hpp"
#include "sandbox/sandbox.hpp"
#include "store/run_cache.hpp"

namespace imgbuild {

using json = nlohmann::json;

namespace {

/// The wall clock in nanoseconds, as file ctimes are written.
int64_t now_ns() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return nanoseconds(ts);
}

/// The OCI chain ID of a layer stack: the identity of the file system it makes.
Digest chain_id(const std::vector<LayerBlob>& layers) {
  Digest chain = layers.front().diff_id;
  for (size_t i = 1; i < layers.size(); ++i) chain = sha256_of(chain.str() + " " + layers[i].diff_id.str());
  return chain;
}

/// The error for a layer whose uncompressed content is `actual`, not the
/// diff_id its image's config gives: an image that lies about its layers,
/// whose files must never pass for those of the image it copied them from.
std::runtime_error lying_layer(const std::string& step, const LayerBlob& layer, const Digest& actual) {
  return std::runtime_error(step + ": layer " + layer.digest.str() + " is not what the image's config says: diff_id " +
                            layer.diff_id.str() + " in the config, " + actual.str() +
                            " in the layer; the image is refused (imgbuild rmi removes it from the store)");
}

/// The identity of an image's file system in step keys: its layers' chain ID.
std::string filesystem_id(const Image& image) {
  return image.layers.empty() ? std::string("empty") : chain_id(image.layers).str();
}

/// How the history names the image a copy reads from. Not by recipe line (the
/// digest would depend on where the recipe lies) nor by the other image's
/// layers: a builder stage's layers differ from build to build (compiler
/// caches, timestamps) while the files copied out of it do not, and the image
/// must come out the same.
std::string from_name(const Image& source) { return source.layers.empty() ? "--from=scratch" : "--from=stage"; }

/// The words after a config change's name in its history line, written the
/// way docker shows its instructions: argv lists in JSON (their exact words
/// matter), other lists and maps as plain words.
std::string words(const std::string& value) { return value; }
std::string words(const std::vector<std::string>& list) { return join(list, " "); }
std::string words(const std::map<std::string, std::string>& map) {
  std::vector<std::string> pairs;
  for (auto& [k, v] : map) pairs.push_back(k + "=" + v);
  return join(pairs, " ");
}
/// "30s", "1500ms": a healthcheck's durations as docker's options take them.
std::string duration_words(int64_t ns) {
  if (ns % 1000000000 == 0) return std::to_string(ns / 1000000000) + "s";
  if (ns % 1000000 == 0) return std::to_string(ns / 1000000) + "ms";
  return std::to_string(ns) + "ns";
}
std::string words(const HealthConfig& check) {
  std::string out = json(check.test).dump();
  for (auto [name, ns] :
       {std::pair{"interval", check.interval}, {"timeout", check.timeout}, {"start_period", check.start_period}})
    if (ns) out += std::string(" ") + name + "=" + duration_words(ns);
  if (check.retries) out += " retries=" + std::to_string(check.retries);
  return out;
}
template <class Change>
std::string change_words(const Change& change) {
  return words(change.value);
}
std::string change_words(const config::Entrypoint& change) { return json(change.value).dump(); }
std::string change_words(const config::Cmd& change) { return json(change.value).dump(); }

/// The history line of a config change: "env A=1 B=2", "cmd [\"--quiet\"]".
std::string describe_config(const ConfigOp& op) {
  return std::visit([](const auto& change) { return std::string(change.name) + " " + change_words(change); }, op);
}

}  // namespace

/// A copy as the walk prepared it: everything but the digests of its files.
struct Builder::CopyStep {
  const CopyOp& op;
  std::string description;
  /// What the key covers besides the files' contents.
  json inputs{};
  /// From the build context (planned before any file is read) at the
  /// destination as the recipe writes it: what the key covers. The image's
  /// own folders and symlinks decide where they land (Docker's rules), but
  /// they are a function of the image's layers, which the key names by chain
  /// ID: a cached copy never needs the base's listing, and a fresh runner
  /// with a registry cache downloads none of its layers.
  std::vector<LayerEntry> entries{};
  /// What entries' files are (for planning them again into the image).
  std::vector<CopyItem> files{};
  /// The image copied from, or null for a copy from the build context.
  const Stage* source = nullptr;
  /// The key of the copy's shape (paths, types, sizes, stamps), for a copy
  /// from the build context.
  std::optional<Digest> shape{};
};

/// A command to run, with its key.
struct Builder::RunStep {
  const RunOp& op;
  std::string shown, description;
  SandboxSpec spec;
  Digest key;
};

/// What plan and build do differently at each kind of step, once the walk
/// has worked out what the step is: Building executes it or takes its result
/// from a cache; Planning only looks its result up and notes where it would
/// come from.
class Builder::StepPolicy {
public:
  virtual ~StepPolicy() = default;
  /// `from`: a base image for `platform` into the empty `stage` (resolve_base).
  virtual void pull(Stage& stage, const PullOp& op, const Platform& platform, const Node& node) = 0;
  /// A config change, applied to `stage` (change_config).
  virtual void config(Stage& stage, const ConfigOp& op, const Node& node) = 0;
  virtual void copy(Stage& stage, CopyStep& step, const Node& node) = 0;
  virtual void run(Stage& stage, RunStep& step, const Node& node) = 0;
  /// The file a host build makes; empty when it is not known without building it.
  virtual std::filesystem::path host_build(const HostBuildOp& op, const Node& node) = 0;
  /// A step whose key cannot be known because a step before it would run.
  virtual void after_run(const Node& node, const std::string& description) = 0;
  /// Whether the store holds `layer` whole, as sure as this policy must be
  /// of it (the store has the blob).
  virtual bool whole(const LayerBlob& layer) = 0;
};

/// `imgbuild build`: every step is taken from a cache or run, its layer
/// written into the store, its start and end reported as progress events.
class Builder::Building final : public StepPolicy {
public:
  explicit Building(Builder& builder) : b_(builder) {}

  void pull(Stage& st, const PullOp& op, const Platform& platform, const Node& node) override;
  void config(Stage& st, const ConfigOp& op, const Node& node) override;
  void copy(Stage& st, CopyStep& step, const Node& node) override;
  void run(Stage& st, RunStep& step, const Node& node) override;
  std::filesystem::path host_build(const HostBuildOp& op, const Node& node) override;
  void after_run(const Node&, const std::string&) override {
    throw std::logic_error("a build runs every step it cannot take from a cache");
  }
  bool whole(const LayerBlob& layer) override { return b_.store_.verify_blob(layer.digest, layer.size); }

private:
  /// Reports one step from its start to its end; a step left without an end
  /// (an exception) ends as failed.
  class StepReport;

  /// Adds a cached step result to `st` and records where its layer is.
  void take(Stage& st, CacheHit& hit, const std::string& description, StepKind kind, const Node& node);
  /// Offers a step's layer to settings.layer_stored once it is in the store.
  void stored(const Node& node, const std::optional<LayerBlob>& layer);

  Builder& b_;
};

class Builder::Building::StepReport {
public:
  StepReport(Building& building, const Node& node, std::string description, StepKind kind, bool cached = false)
      : builder_(building.b_), node_(node), description_(std::move(description)), kind_(kind) {
    builder_.settings_.progress(StepStarted{builder_.index_of(node_), node_.loc, description_, kind_, cached});
  }
  StepReport(const StepReport&) = delete;
  StepReport& operator=(const StepReport&) = delete;
  ~StepReport() {
    if (!ended_) end(StepStatus::Failed);
  }

  /// The description the end reports (a base image's tag resolved to its digest).
  void describe(std::string description) { description_ = std::move(description); }

  void end(StepStatus status, std::optional<uint64_t> layer_size = std::nullopt) {
    if (ended_) return;
    ended_ = true;
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    builder_.settings_.progress(
        StepEnded{builder_.index_of(node_), node_.loc, description_, kind_, status, seconds, layer_size});
  }

private:
  Builder& builder_;
  const Node& node_;
  std::string description_;
  StepKind kind_;
  bool ended_ = false;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

void Builder::Building::pull(Stage& st, const PullOp& op, const Platform& platform, const Node& node) {
  StepReport report(*this, node, "from " + op.reference, StepKind::From);
  report.describe(b_.resolve_base(st, op, platform, node));
  b_.unpack_when_listed(st, node);
  report.end(StepStatus::Done);
}

void Builder::Building::config(Stage& st, const ConfigOp& op, const Node& node) {
  StepReport report(*this, node, describe_config(op), StepKind::Config);
  b_.change_config(st, op, node);
  report.end(StepStatus::Done);
}

std::filesystem::path Builder::Building::host_build(const HostBuildOp& op, const Node& node) {
  StepReport report(*this, node, op.description, StepKind::Build);
  HostBuildResult result =
      run_host_build(op, b_.context_, b_.settings_.platform, b_.settings_.cache_dir, b_.settings_.use_cache);
  report.end(result.cached ? StepStatus::Cached : StepStatus::Done);
  return result.file;
}

void Builder::Building::take(Stage& st, CacheHit& hit, const std::string& description, StepKind kind,
                             const Node& node) {
  std::optional<LayerBlob>& layer = hit.step.layer;
  if (layer && !hit.step.source.empty()) {
    // Fetched from there while the store lacks it, or when its copy proves damaged.
    std::lock_guard lock(b_.records_mutex_);
    b_.layer_sources_[layer->digest] = hit.step.source;
  }
  if (hit.where == PlannedStep::Outcome::Local) {
    std::lock_guard lock(b_.records_mutex_);
    b_.used_.emplace(hit.step.key, hit.step);
  } else {
    hit.step.created = std::time(nullptr);
    b_.remember(hit.step);
  }
  StepReport report(*this, node, description, kind, true);
  // Kept uncompressed by a build in which this step fed only other steps.
  if (layer && b_.exported_[b_.index_of(node)]) layer = b_.compressed(*layer, hit.step.key);
  b_.add_layer(st, layer, description, node);
  report.end(StepStatus::Cached, layer ? std::optional(layer->size) : std::nullopt);
  stored(node, layer);
}

void Builder::Building::stored(const Node& node, const std::optional<LayerBlob>& layer) {
  // A layer only a registry cache has comes to the store later, for the push itself.
  if (b_.settings_.layer_stored && layer && b_.store_.has_blob(layer->digest))
    b_.settings_.layer_stored(b_.index_of(node), *layer);
}

/// `imgbuild plan`: nothing runs, nothing is written; each step is noted with
/// its key and where its result would come from. After a step that would
/// run, the file system is not known, nor any later key.
class Builder::Planning final : public StepPolicy {
public:
  explicit Planning(Builder& builder) : b_(builder) {}

  void pull(Stage& st, const PullOp& op, const Platform& platform, const Node& node) override {
    note(node, b_.resolve_base(st, op, platform, node), std::nullopt, PlannedStep::Outcome::From);
  }
  void config(Stage& st, const ConfigOp& op, const Node& node) override {
    b_.change_config(st, op, node);
    note(node, describe_config(op), std::nullopt, PlannedStep::Outcome::Config);
  }
  void copy(Stage& st, CopyStep& step, const Node& node) override {
    FileDigests contents;
    if (!step.source) {
      size_t files_read = 0;
      contents = b_.hash_copy(step, files_read);
    }
    settle(st, b_.copy_key(step, contents), step.description, node);
  }
  void run(Stage& st, RunStep& step, const Node& node) override { settle(st, step.key, step.description, node); }
  std::filesystem::path host_build(const HostBuildOp& op, const Node& node) override {
    std::filesystem::path file =
        run_host_build(op, b_.context_, b_.settings_.platform, b_.settings_.cache_dir, b_.settings_.use_cache, true)
            .file;
    // Listed like a step: a compile is often the longest part of a build.
    note(node, op.description, std::nullopt, file.empty() ? PlannedStep::Outcome::Run : PlannedStep::Outcome::Local);
    return file;
  }
  void after_run(const Node& node, const std::string& description) override {
    note(node, description, std::nullopt, PlannedStep::Outcome::AfterRun);
  }
  bool whole(const LayerBlob& layer) override {
    // Reading the whole layer to verify it is the build's work; its size is enough here.
    return std::filesystem::file_size(b_.store_.blob_path(layer.digest)) == layer.size;
  }

  /// The steps noted, in graph order.
  std::vector<PlannedStep> steps() const {
    std::lock_guard lock(mutex_);
    std::vector<PlannedStep> out;
    for (auto& [id, step] : planned_) out.push_back(step);
    return out;
  }

private:
  /// A step with key `key`: its result from a cache, or it would run.
  void settle(Stage& st, const Digest& key, const std::string& description, const Node& node) {
    if (auto hit = b_.lookup(key, *this)) {
      note(node, description, key, hit->where);
      b_.add_layer(st, hit->step.layer, description, node);
      return;
    }
    note(node, description, key, PlannedStep::Outcome::Run);
    st.unknown = true;
  }
  void note(const Node& node, const std::string& description, std::optional<Digest> key, PlannedStep::Outcome outcome) {
    size_t id = b_.index_of(node);
    std::lock_guard lock(mutex_);
    planned_[id] = PlannedStep{id, node.loc, description, std::move(key), outcome};
  }

  Builder& b_;
  mutable std::mutex mutex_;
  std::map<size_t, PlannedStep> planned_;
};

std::optional<uint64_t> parse_size(const std::string& text) {
  size_t used = 0;
  double value = 0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  static const std::map<std::string, double> units = {{"", 1},
                                                      {"B", 1},
                                                      {"k", 1e3},
                                                      {"kB", 1e3},
                                                      {"K", 1e3},
                                                      {"KB", 1e3},
                                                      {"M", 1e6},
                                                      {"MB", 1e6},
                                                      {"G", 1e9},
                                                      {"GB", 1e9},
                                                      {"T", 1e12},
                                                      {"TB", 1e12},
                                                      {"KiB", 1024.0},
                                                      {"MiB", 1048576.0},
                                                      {"GiB", 1073741824.0},
                                                      {"TiB", 1099511627776.0}};
  auto it = units.find(text.substr(used));
  // Only digits start a size: stod would also take "inf", "nan", "0x1p3" and leading blanks.
  if (text.empty() || !(std::isdigit(static_cast<unsigned char>(text[0])) || text[0] == '.') || value < 0 ||
      it == units.end())
    return std::nullopt;
  return static_cast<uint64_t>(value * it->second);
}

Builder::Builder(const Graph& graph, Layout& store, BuildSettings settings)
    : graph_(graph),
      store_(store),
      settings_(std::move(settings)),
      context_(settings_.context),
      cache_(settings_.cache_dir),
      listings_(std::make_shared<LayerListings>(settings_.cache_dir.empty() ? std::filesystem::path()
                                                                            : settings_.cache_dir / "layer-listings")),
      scratch_remover_(settings_.cache_dir.empty() ? std::filesystem::path() : settings_.cache_dir / "tmp" / "trash"),
      building_(std::make_unique<Building>(*this)),
      walk_(*building_) {
  consumers_.resize(graph_.nodes.size());
  for (auto& node : graph_.nodes) {
    if (node.parent) ++consumers_.at(*node.parent);
    if (auto* copy = std::get_if<CopyOp>(&node.op); copy && copy->from_node) ++consumers_.at(*copy->from_node);
  }
  exported_.resize(graph_.nodes.size());
  auto exported = [&](size_t top) {
    for (std::optional<size_t> n = top; n && !exported_[*n]; n = graph_.nodes.at(*n).parent) exported_[*n] = true;
  };
  for (auto& t : graph_.targets) {
    ++consumers_.at(t.node);
    exported(t.node);
  }
  for (auto& p : graph_.pushes) {
    ++consumers_.at(p.node);
    exported(p.node);
  }
  run_above_.resize(graph_.nodes.size());
  for (size_t i = 0; i < graph_.nodes.size(); ++i)
    if (std::holds_alternative<RunOp>(graph_.nodes[i].op))
      for (std::optional<size_t> n = graph_.nodes[i].parent; n && !run_above_[*n]; n = graph_.nodes.at(*n).parent)
        run_above_[*n] = true;
  listings_->before_reading([this](const std::filesystem::path& blob) { unpack_for_listing(blob); });
  // Steps of independent stages report from several threads: one event at a time.
  auto report = std::make_shared<std::mutex>();
  settings_.progress = [report, inner = std::move(settings_.progress)](const ProgressEvent& event) {
    std::lock_guard lock(*report);
    inner(event);
  };
}

// The listings outlive the builder in the trees it made: its hook must not.
Builder::~Builder() { listings_->before_reading(nullptr); }

void Builder::prepare(const std::vector<size_t>& nodes) {
  run_side_by_side(nodes.size(), [&](size_t i) { stage(walk_, nodes[i]); });
}

const BuiltImage& Builder::build(size_t node, const std::map<std::string, std::string>& annotations) {
  auto key = std::pair{node, annotations};
  if (auto it = finished_.find(key); it != finished_.end()) return it->second;
  const Stage& st = stage(walk_, node);
  uint64_t compressed = 0, base_compressed = 0, uncompressed = 0;
  for (size_t i = 0; i < st.image.layers.size(); ++i) {
    compressed += st.image.layers[i].size;
    if (i < st.base_layers) base_compressed += st.image.layers[i].size;
  }
  // Before any base layer is downloaded: an image over its budget goes nowhere.
  check_budget(st, compressed);
  ensure_local(st.image.layers);
  for (size_t i = 0; i < st.image.layers.size(); ++i) uncompressed += check_layer(st, i);
  // The store refuses a document over the limit; the walk has named the step
  // that made it so, and this names the image's last line should it not have.
  auto put = [&](const std::string& document, const MediaType& type) {
    try {
      return store_.put_document(document, type);
    } catch (const DocumentTooLarge& e) {
      throw BuildError(graph_.nodes.at(node).loc, e.what());
    }
  };
  Image image = st.image;
  image.annotations = built_annotations(st.image, settings_.origin, st.base_labels, annotations);
  std::string config = image.config_document();
  Descriptor config_desc = put(config, media_type::kConfig);
  std::string manifest = image.manifest_document(config_desc);
  Descriptor manifest_desc = put(manifest, media_type::kManifest);
  auto base = st.image.annotations.find(kBaseNameAnnotation);
  std::vector<std::string> layer_locs;
  for (auto& origin : st.layer_origins) layer_locs.push_back(origin.loc);
  BuiltImage built{.image = std::move(image),
                   .manifest = manifest_desc,
                   .size = manifest_desc.size + config_desc.size + compressed,
                   .compressed = compressed,
                   .uncompressed = uncompressed,
                   .base = base != st.image.annotations.end() ? base->second : std::string(),
                   .base_layers = st.base_layers,
                   .base_compressed = base_compressed,
                   .tree = st.tree,
                   .layer_locs = layer_locs,
                   .entrypoint_loc = st.entrypoint_loc,
                   .ignore = st.ignore};
  return finished_.emplace(std::move(key), std::move(built)).first->second;
}

std::vector<BuildInput> Builder::inputs_of(size_t node) {
  std::set<BuildInput> inputs;
  {
    std::lock_guard lock(records_mutex_);
    for (const auto& [base, input] : resolved_bases_)
      if (graph_.needs(node, base)) inputs.insert(input);
  }
  // A cached() builder the registry lacked is built by this build (its
  // steps are, by now) and pushed with `always`: by the digest it gets.
  for (const Push& p : graph_.pushes)
    if (p.always && p.node != node && graph_.needs(node, p.node))
      inputs.insert({p.reference, build(p.node).manifest.digest.str()});
  return {inputs.begin(), inputs.end()};
}

std::filesystem::path Builder::tar_size_memo(const LayerBlob& layer) const {
  return settings_.cache_dir / "tar-sizes" / layer.digest.hex();
}

void Builder::note_tar_size(const LayerBlob& layer, uint64_t size) const {
  std::filesystem::path memo = tar_size_memo(layer);
  std::filesystem::create_directories(memo.parent_path());
  write_file_atomic(memo, std::to_string(size));
}

uint64_t Builder::check_layer(const Stage& st, size_t i) {
  const LayerBlob& layer = st.image.layers[i];
  // Once per blob, so a large base costs nothing on rebuilds: the tar's size
  // is kept in the cache, its digest in the store (with the blob it is of).
  std::optional<uint64_t> size;
  if (layer.uncompressed_size) size = layer.uncompressed_size;
  try {
    if (!size) size = std::stoull(read_file(tar_size_memo(layer)));
  } catch (const std::exception&) {
    // Not measured yet (or a torn memo): measure again.
  }
  std::optional<Digest> diff_id = store_.known_diff_id(layer.digest);
  if (!diff_id || !size) {
    TarStream tar = read_tar_stream(store_.blob_path(layer.digest));
    store_.note_diff_id(layer.digest, tar.digest);
    note_tar_size(layer, tar.size);
    diff_id = tar.digest;
    if (!size) size = tar.size;
  }
  if (*diff_id != layer.diff_id) throw lying_layer(st.layer_origins.at(i).str(), layer, *diff_id);
  return *size;
}

void Builder::check_budget(const Stage& st, uint64_t compressed) const {
  if (!st.budget || compressed <= st.budget->bytes) return;
  std::vector<size_t> order(st.image.layers.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return st.image.layers[a].size > st.image.layers[b].size; });
  std::string biggest;
  for (size_t i = 0; i < std::min<size_t>(order.size(), 3); ++i)
    biggest += "\n    " + human_size(st.image.layers[order[i]].size) + "  " + st.layer_origins[order[i]].str();
  throw BuildError(st.budget->loc, "budget: the image is " + human_size(compressed) +
                                       " (compressed layers), over its budget of " + st.budget->text +
                                       "; biggest layers:" + biggest);
}

void Builder::check_documents(Stage& st, size_t history_before) {
  // Serialising the documents at every step would make a long chain
  // quadratic. A step adds its history line to the config (its text and
  // under 128 bytes of keys and time), the values of a config change at most
  // a few times over (a label "k=" in its line is "\"k\":\"\"," in the
  // config), and a layer a diff ID and a manifest entry (under 512 bytes
  // with its history keys): the documents are measured again only when that
  // bound could cross the limit, so the step that crosses it is named. The
  // closer the bound, the fewer times a long chain near the limit measures.
  for (size_t i = history_before; i < st.image.history.size(); ++i) {
    const HistoryEntry& line = st.image.history[i];
    st.documents_growth += 5 * json(line.created_by).dump().size() + (line.empty_layer ? 128 : 512);
  }
  if (st.documents_measured + st.documents_growth <= kMaxDocumentSize) return;
  std::string config = st.image.config_document();
  check_document_size("the image config (its env, labels and a history line per step)", config.size());
  // Any digest measures the same: they all have one length.
  Descriptor config_desc{media_type::kConfig, sha256_of(""), config.size(), {}};
  size_t manifest = st.image.manifest_document(config_desc).size();
  check_document_size("the image manifest (an entry per layer)", manifest);
  st.documents_measured = std::max<uint64_t>(config.size(), manifest);
  st.documents_growth = 0;
}

size_t Builder::index_of(const Node& node) const { return static_cast<size_t>(&node - graph_.nodes.data()); }

DoctorContext doctor_context(const BuiltImage& built, const std::string& loc, const std::set<std::string>& ignore) {
  DoctorContext ctx{built.entrypoint_loc.empty() ? loc : built.entrypoint_loc, loc, built.ignore, built.layer_locs,
                    built.base_layers};
  ctx.ignore.insert(ignore.begin(), ignore.end());
  return ctx;
}

std::vector<Finding> examine_built(const BuiltImage& built, const std::string& loc,
                                   const std::set<std::string>& ignore) {
  return examine_image(built.image, *built.tree, doctor_context(built, loc, ignore));
}

std::vector<PlannedStep> Builder::plan(const std::vector<size_t>& nodes) {
  Planning planning(*this);
  Walk walk(planning);
  for (size_t n : nodes) stage(walk, n);
  return planning.steps();
}

std::vector<CachedStep> Builder::used_steps() {
  std::vector<CachedStep> out;
  {
    std::lock_guard lock(records_mutex_);
    for (auto& [key, step] : used_) out.push_back(step);
  }
  // A registry cache is read by other machines' builds, whose stages may be outputs.
  for (auto& step : out)
    if (step.layer && step.layer->media_type == media_type::kLayerTar) step.layer = compressed(*step.layer, step.key);
  return out;
}

LayerBlob Builder::compressed(const LayerBlob& layer, const Digest& key) {
  if (layer.media_type != media_type::kLayerTar) return layer;
  ensure_local({layer});
  LayerBlob blob = compress_layer(layer, store_.blob_dir(), layer_options(), listings_.get());
  store_.note_layer(blob);
  CachedStep step = [&] {
    std::lock_guard lock(records_mutex_);
    return used_.at(key);
  }();
  step.layer = blob;
  remember(step);
  return blob;
}

void Builder::ensure_local(const std::vector<LayerBlob>& layers, const IncomingBlobs& incoming) {
  std::map<std::string, std::vector<LayerBlob>> missing;
  for (auto& layer : layers) {
    // A damaged blob is removed here: fetched again like a missing one.
    if (store_.verify_blob(layer.digest, layer.size)) continue;
    std::string source;
    {
      std::lock_guard lock(records_mutex_);
      if (auto it = layer_sources_.find(layer.digest); it != layer_sources_.end()) source = it->second;
    }
    if (source.empty())
      throw std::runtime_error("layer " + layer.digest.str() + " is missing from the store " + store_.root().string() +
                               " (removed while the build ran, or damaged: see the warning above; build again)");
    missing[source].push_back(layer);
  }
  for (auto& [source, list] : missing) {
    if (!settings_.fetch) throw std::runtime_error(source + ": this build has no registry access");
    settings_.fetch(list, source, incoming);
  }
}

std::optional<Builder::CacheHit> Builder::lookup(const Digest& key, StepPolicy& policy) {
  if (!settings_.use_cache) return std::nullopt;
  // A result first taken from a registry cache may still have its layer there.
  auto local = cache_.find(key);
  if (local && (!local->layer || (store_.has_blob(local->layer->digest) && policy.whole(*local->layer)) ||
                !local->source.empty()))
    return CacheHit{*local, PlannedStep::Outcome::Local};
  if (auto remote = settings_.remote_cache.find(key); remote != settings_.remote_cache.end())
    return CacheHit{remote->second, PlannedStep::Outcome::Registry};
  return std::nullopt;
}

void Builder::remember(const CachedStep& step) {
  cache_.put(step);
  std::lock_guard lock(records_mutex_);
  used_.insert_or_assign(step.key, step);
}

void Builder::ensure_listed(const Stage& st) {
  auto unlisted = [&] {
    std::vector<LayerBlob> out;
    for (auto& layer : st.image.layers)
      if (!listings_->known(store_.blob_path(layer.digest))) out.push_back(layer);
    return out;
  };
  std::vector<LayerBlob> missing = unlisted();
  if (missing.empty()) return;
  // A base whose root RUN steps will need is unpacked now, its layers listed
  // on the way and fetched as they are unpacked (image_root), not fetched
  // whole first.
  unpack_for_listing(store_.blob_path(missing.front().digest));
  ensure_local(unlisted());
}

void Builder::add_layer(Stage& st, const std::optional<LayerBlob>& layer, const std::string& description,
                        const Node& node) {
  st.image.history.push_back({description, !layer});
  if (!layer) return;
  st.layer_origins.push_back({node.loc, description});
  auto tree = std::make_shared<ImageTree>(*st.tree);
  tree->apply_layer_blob(store_.blob_path(layer->digest));
  st.tree = std::move(tree);
  st.image.layers.push_back(*layer);
}

const Builder::Stage& Builder::stage(Walk& walk, size_t id) {
  // Claims `id` and every ancestor no thread has claimed yet in one walk up the
  // parent chain, then builds them oldest first. A loop, not recursion: a
  // recipe may chain 100 000 steps.
  std::vector<std::pair<size_t, std::promise<const Stage*>>> claimed;
  std::shared_future<const Stage*> claimed_elsewhere;  // the nearest ancestor another thread builds
  {
    std::lock_guard lock(walk.mutex);
    for (std::optional<size_t> n = id; n; n = graph_.nodes.at(*n).parent) {
      auto [it, first] = walk.stages.try_emplace(*n);
      if (!first) {
        claimed_elsewhere = it->second;
        break;
      }
      claimed.emplace_back(*n, std::promise<const Stage*>());
      it->second = claimed.back().second.get_future().share();
    }
  }
  if (claimed.empty()) return *claimed_elsewhere.get();

  // Images copied from are built beside this chain, not after it.
  std::vector<std::future<void>> others;
  for (auto& [n, promise] : claimed)
    if (auto* copy = std::get_if<CopyOp>(&graph_.nodes.at(n).op); copy && copy->from_node)
      others.push_back(std::async(std::launch::async, [this, &walk, from = *copy->from_node] { stage(walk, from); }));

  size_t next = claimed.size();
  try {
    const Stage* parent = claimed_elsewhere.valid() ? claimed_elsewhere.get() : nullptr;
    // A step whose only consumer is the next step of this chain hands its stage
    // on instead of keeping a copy: a long chain would otherwise hold every
    // intermediate image (and its growing history) at once.
    std::optional<Stage> handed_on;
    for (; next-- > 0;) {
      auto& [n, promise] = claimed[next];
      Stage built = make_stage(walk, n,
                               handed_on ? std::move(*handed_on)
                               : parent  ? *parent
                                         : Stage{.tree = std::make_shared<ImageTree>(listings_)});
      handed_on.reset();
      if (next > 0 && consumers_[n] == 1) {
        handed_on = std::move(built);
        promise.set_exception(
            std::make_exception_ptr(std::logic_error("stage of a step with one consumer is not kept")));
        continue;
      }
      {
        std::lock_guard lock(walk.mutex);
        parent = &walk.stage_storage.emplace(n, std::move(built)).first->second;
      }
      promise.set_value(parent);
    }
    return *parent;
  } catch (...) {
    // This step and the later ones of the chain fail with it.
    for (size_t i = 0; i < claimed.size() && i <= next; ++i) claimed[i].second.set_exception(std::current_exception());
    throw;
  }
}

Builder::Stage Builder::make_stage(Walk& walk, size_t id, Stage st) {
  const Node& node = graph_.nodes.at(id);
  if (!node.parent) {
    st.image.platform = settings_.platform;
    st.image.created = settings_.created;
  }
  size_t history_before = st.image.history.size();
  try {
    if (auto* copy = std::get_if<CopyOp>(&node.op))
      walk_copy(walk, st, *copy, node);
    else if (auto* pull = std::get_if<PullOp>(&node.op))
      walk_pull(walk, st, *pull, node);
    else if (auto* run = std::get_if<RunOp>(&node.op))
      walk_run(walk, st, *run, node);
    else if (auto* cfg = std::get_if<ConfigOp>(&node.op))
      walk.policy.config(st, *cfg, node);
    else if (auto* doctor = std::get_if<DoctorOp>(&node.op))
      st.ignore.insert(doctor->ignore.begin(), doctor->ignore.end());
    else if (auto* budget = std::get_if<BudgetOp>(&node.op))
      st.budget = Budget{budget->bytes, budget->size, node.loc};
    // A base replaces the whole image: measured from its first entry on.
    check_documents(st, std::holds_alternative<PullOp>(node.op) ? 0 : history_before);
  } catch (const BuildError&) {
    throw;
  } catch (const std::exception& e) {
    auto* cfg = std::get_if<ConfigOp>(&node.op);
    std::string step = cfg                                                                           ? config_name(*cfg)
                       : std::holds_alternative<PullOp>(node.op)                                     ? "from"
                       : std::holds_alternative<RunOp>(node.op)                                      ? "run"
                       : std::get_if<CopyOp>(&node.op) && std::get<CopyOp>(node.op).extract_archives ? "add"
                                                                                                     : "copy";
    // Memory runs out as an exception, not a kill, for what a step holds per
    // file; "std::bad_alloc" would say nothing to a user.
    bool memory = dynamic_cast<const std::bad_alloc*>(&e) != nullptr;
    throw BuildError(node.loc, step + ": " + (memory ? std::string("out of memory") : e.what()));
  }
  return st;
}

CopyItem Builder::build_file(Walk& walk, size_t id) {
  // One host build at a time: they use every core already, and share a cache.
  std::lock_guard lock(walk.files_mutex);
  if (auto it = walk.files.find(id); it != walk.files.end()) return it->second;
  const Node& node = graph_.nodes.at(id);
  if (auto* host_path = std::get_if<HostPathOp>(&node.op)) {
    for (auto& candidate : host_path->candidates)
      if (std::filesystem::exists(candidate))
        // The real file, not a symlink to it: a link to a host path would dangle in the image.
        return walk.files
            .emplace(id, CopyItem{std::filesystem::canonical(candidate),
                                  std::filesystem::path(candidate).filename().string(), false})
            .first->second;
    throw BuildError(node.loc, host_path->description + ": not on this machine (looked for " +
                                   join(host_path->candidates, ", ") + ")");
  }
  const auto& op = std::get<HostBuildOp>(node.op);
  std::filesystem::path file;
  try {
    file = walk.policy.host_build(op, node);
  } catch (const std::exception& e) {
    throw BuildError(node.loc, op.description + ": " + e.what());
  }
  if (file.empty()) return CopyItem{};  // it would have to be built
  return walk.files.emplace(id, CopyItem{file, file.filename().string()}).first->second;
}

void Builder::check_static(const std::vector<LayerEntry>& entries, const Platform& platform) {
  for (auto& e : entries) {
    if (e.type != LayerEntry::Type::File) continue;
    std::string what = "/" + e.path;
    ElfInfo info = inspect_elf_named(e.source, what);
    if (!info.is_elf) continue;
    if (info.linking == ElfInfo::Linking::Dynamic) {
      std::string why = !info.interpreter.empty() ? "interpreter " + info.interpreter
                        : info.needed.empty()     ? "dynamically linked"
                                                  : "needs " + info.needed.front();
      if (info.go && info.go->setting("CGO_ENABLED") == "1") why += ", CGO_ENABLED=1";
      throw std::runtime_error(what + ": not a static ELF binary (" + why + ")");
    }
    if (architecture_or_machine(info) != platform.architecture)
      throw std::runtime_error(what + ": built for " + info.machine + ", image is " + platform.str());
  }
}

namespace {

/// What every layer's bytes depend on besides its files.
json layer_settings(const LayerOptions& o) {
  return {{"mtime", o.mtime}, {"compression", compression_name(o.compression)}};
}

/// Where a step's writes to the volume `volume` land: its path with the
/// image's symlinks followed as far as it exists (a /data that links to
/// /srv/data is written at /srv/data).
ImagePath volume_in(const RootStack& root, const std::string& volume) {
  std::vector<std::string> rest;
  for (ImagePath at(volume);; at = at.parent()) {
    if (auto real = root.resolve(at.str())) {
      ImagePath out = *real;
      for (auto it = rest.rbegin(); it != rest.rend(); ++it) out = out.join(*it);
      return out;
    }
    if (at.is_root()) return ImagePath(volume);
    rest.emplace_back(at.name());
  }
}

/// Drops what a RUN step changed inside the image's volumes, as docker's
/// legacy builder and buildah discard it (a volume is mounted over the path
/// while RUN steps run): files written, changed or deleted below a volume,
/// and the volume's own removal or replacement. The folder itself stays when
/// the step made it: the mount point docker makes.
void drop_volume_writes(std::vector<LayerEntry>& entries, const RootStack& root, const std::set<std::string>& volumes) {
  for (auto& volume : volumes) {
    ImagePath at = volume_in(root, volume);
    if (at.is_root()) continue;
    std::string inside = std::string(at.relative()) + "/";
    std::string removed(at.parent().join(".wh." + std::string(at.name())).relative());
    std::erase_if(entries, [&](const LayerEntry& e) {
      return e.path.starts_with(inside) || e.path == removed ||
             (e.path == at.relative() && e.type != LayerEntry::Type::Directory);
    });
  }
}

}  // namespace

LayerOptions Builder::layer_options() const { return LayerOptions{settings_.source_date_epoch, settings_.compression}; }

LayerOptions Builder::layer_options(const Node& node) const {
  LayerOptions options = layer_options();
  options.deferred = !exported_[index_of(node)];
  return options;
}

CopyItem Builder::fetched(const CopyOp::Remote& remote, const std::string& dest) {
  namespace fs = std::filesystem;
  std::string path = remote.url.substr(0, remote.url.find_first_of("?#"));
  path = path.substr(path.find("://") + 3);
  std::string name = path.find('/') == std::string::npos ? "" : path.substr(path.rfind('/') + 1);
  if (name.empty() && dest.ends_with("/"))
    throw std::runtime_error(remote.url + ": the URL names no file: give the destination's file name");
  const Digest want = Digest::parse(remote.checksum);
  const fs::path file = settings_.cache_dir / "downloads" / std::string(want.hex());
  // Cached by its checksum, and checked again: a file of the cache is no more trusted than the network.
  if (fs::exists(file) && sha256_file(file.string()) == want) {
    mark_used(file);
    return {file, name, false};
  }
  if (!settings_.fetch_url) throw std::runtime_error(remote.url + ": this build fetches nothing from the network");
  fs::create_directories(settings_.cache_dir / "tmp");
  TempDir tmp(settings_.cache_dir / "tmp", "add-");
  settings_.fetch_url(remote.url, tmp.path() / "file");
  const Digest got = sha256_file((tmp.path() / "file").string());
  if (got != want)
    throw std::runtime_error(remote.url + ": the file fetched is " + got.str() + ", not " + want.str() +
                             " as the recipe's checksum says: nothing was added (check the URL, or the checksum)");
  fs::create_directories(file.parent_path());
  fs::rename(tmp.path() / "file", file);
  return {file, name, false};
}

std::filesystem::path Builder::extracted(const std::filesystem::path& archive) {
  namespace fs = std::filesystem;
  const fs::path dir = settings_.cache_dir / "archives" / std::string(sha256_file(archive.string()).hex());
  // Renamed into place only once whole: a folder there is a whole extraction.
  if (fs::is_directory(dir)) {
    mark_used(dir);
    return dir;
  }
  fs::create_directories(settings_.cache_dir / "tmp");
  TempDir tmp(settings_.cache_dir / "tmp", "add-");
  const fs::path root = tmp.path() / "root";
  fs::create_directory(root);
  UnpackOptions options;
  options.nodes = false;
  extract_archive(root, archive, archive.filename().string(), options);
  fs::create_directories(dir.parent_path());
  std::error_code ec;
  fs::rename(root, dir, ec);  // another build may have put the same one there first
  if (ec && !fs::is_directory(dir)) throw std::runtime_error("cannot keep " + dir.string() + ": " + ec.message());
  return dir;
}

void Builder::walk_copy(Walk& walk, Stage& st, const CopyOp& op, const Node& node) {
  std::vector<CopyItem> files;
  std::vector<std::string> names;
  bool unknown = st.unknown;
  if (op.remote) {
    files.push_back(fetched(*op.remote, op.dest));
    names.push_back(op.remote->url);
  }
  for (auto& s : op.sources) {
    if (s.file_node) {
      files.push_back(build_file(walk, *s.file_node));
      unknown = unknown || files.back().host_path.empty();
      const Node& file = graph_.nodes[*s.file_node];
      auto* built = std::get_if<HostBuildOp>(&file.op);
      names.push_back(built ? built->description : std::get<HostPathOp>(file.op).description);
    } else {
      names.push_back(s.context_path);
    }
  }
  const Stage* source = op.from_node ? &stage(walk, *op.from_node) : nullptr;
  if (source) {
    unknown = unknown || source->unknown;
    names.insert(names.begin(), from_name(source->image));
  }
  CopyStep step{op, (op.extract_archives ? "add " : "copy ") + join(names, " ") + " " + op.dest};
  if (unknown) {
    walk.policy.after_run(node, step.description);
    st.unknown = true;
    return;
  }

  // The platform is not in the key: a copy's layer is the same bytes for
  // every platform, so the images of one recipe built for several share it
  // (made once, taken from the cache by the others). Only `static = true`
  // checks the copied files against the platform.
  step.inputs = {{"op", op.extract_archives ? "add" : "copy"},
                 {"filesystem", filesystem_id(st.image)},
                 {"static", op.static_only},
                 {"layer", layer_settings(layer_options())}};
  if (op.static_only) step.inputs["platform"] = st.image.platform.str();
  if (source) {
    // The other image's file system is known by its chain ID: no need to
    // unpack it to know whether this copy is cached.
    json paths = json::array();
    for (auto& s : op.sources) paths.push_back(s.context_path);
    step.inputs["from"] = {
        {"filesystem", filesystem_id(source->image)}, {"workdir", source->image.config.workdir}, {"paths", paths}};
    step.inputs["dest"] = op.dest;
    step.inputs["workdir"] = st.image.config.workdir;
    step.inputs["chown"] = op.chown ? json{op.chown->uid, op.chown->gid} : json(nullptr);
    step.inputs["chmod"] = op.chmod ? json(*op.chmod) : json(nullptr);
    step.source = source;
  } else {
    step.entries = plan_copy(op, context_, st.image.config.workdir, ImageTree(), files,
                             [this](const std::filesystem::path& archive) { return extracted(archive); });
    step.files = std::move(files);
    // Known before any file is read.
    json shape_inputs = step.inputs;
    shape_inputs["shape"] = describe_shape(step.entries).str();
    step.shape = step_key(std::move(shape_inputs));
  }
  walk.policy.copy(st, step, node);
}

FileDigests Builder::hash_copy(const CopyStep& step, size_t& files_read) const {
  return hash_files(step.entries, cache_.shape_files(*step.shape, step.entries.size()), &files_read);
}

Digest Builder::copy_key(const CopyStep& step, const FileDigests& contents) const {
  if (step.source) return step_key(step.inputs);
  // Everything that reaches the layer, each file by its content.
  json inputs = step.inputs;
  inputs["entries"] = describe_entries(step.entries, contents).str();
  return step_key(std::move(inputs));
}

std::unique_lock<std::mutex> SharedSteps::hold(const Digest& key) {
  std::unique_lock lock(mutex_);
  std::unique_ptr<std::mutex>& step = steps_[key];
  if (!step) step = std::make_unique<std::mutex>();
  std::mutex& held = *step;
  lock.unlock();
  return std::unique_lock(held);
}

void Builder::Building::copy(Stage& st, CopyStep& step, const Node& node) {
  // Another platform's builder may be at this very step: the first makes it,
  // the others wait and take it from the cache (its files then read already).
  std::unique_lock shared = b_.settings_.shared_steps->hold(step.shape ? *step.shape : b_.copy_key(step, {}));
  // The key covers each file's contents: a known shape brings the digests of
  // its files as last read, so only files whose stamp changed since are read.
  // A shape never built cannot be cached, so it is not looked up.
  const bool first_of_shape = step.shape && !b_.could_be_cached(*step.shape);
  // Nor is its key needed before its layer is made. Into an image without
  // layers, the entries the key lists are the layer's (only the image's
  // folders and symlinks could move them): the layer is written from them,
  // without planning the copy again, and its writer hashes each file as it
  // reads it, so the files are read once, not once for the key and again
  // for the layer. The key then names the very bytes the layer holds, even
  // of a file written to meanwhile: there is no second read to differ from.
  const bool keyed_by_layer = first_of_shape && st.image.layers.empty();
  FileDigests contents;
  const int64_t read_since = now_ns();
  std::optional<Digest> key;
  if (!keyed_by_layer) {
    if (!step.source) {
      size_t files_read = 0;
      contents = b_.hash_copy(step, files_read);
      if (files_read > 0) b_.cache_.add_shape(*step.shape, contents, read_since);
    }
    key = b_.copy_key(step, contents);
    if (!first_of_shape)
      if (auto hit = b_.lookup(*key, *this)) return take(st, *hit, step.description, StepKind::Copy, node);
    // The key is known: the entries at the recipe's destination go before
    // those placed in the image are made (a context of a million files is
    // listed once in memory, not twice).
    std::vector<LayerEntry>().swap(step.entries);
    FileDigests().swap(contents);
  }
  StepReport report(*this, node, step.description, StepKind::Copy);
  const CopyOp& op = step.op;
  b_.ensure_listed(st);
  std::optional<TempDir> taken;  // what a copy from a stage took out of its layers, until the layer is written
  std::vector<LayerEntry> placed;
  if (step.source) {
    const Stage& source = *step.source;
    b_.ensure_listed(source);
    std::filesystem::create_directories(b_.settings_.cache_dir / "tmp");
    taken.emplace(b_.settings_.cache_dir / "tmp", "copy-from-");
    std::optional<std::vector<CopyItem>> items = b_.items_from_tar_layers(source, op, taken->path());
    if (!items) items = copy_from_items(op, b_.image_root(source), source.image.config.workdir);
    placed = plan_copy_from(op, *items, st.image.config.workdir, *st.tree);
  } else if (!keyed_by_layer) {
    placed = plan_copy(op, b_.context_, st.image.config.workdir, *st.tree, step.files,
                       [this](const std::filesystem::path& archive) { return b_.extracted(archive); });
  }
  const std::vector<LayerEntry>& entries = keyed_by_layer ? step.entries : placed;
  if (op.static_only) b_.check_static(entries, st.image.platform);
  std::function<void(const LayerBlob&)> record_contents;
  if (keyed_by_layer)
    record_contents = [&](const LayerBlob&) {
      // Recorded as hash_copy would have: the next build reads only the files changed since.
      b_.cache_.add_shape(*step.shape, contents, read_since);
      key = b_.copy_key(step, contents);
    };
  LayerBlob blob = write_sorted_layer(entries, b_.store_.blob_dir(), b_.layer_options(node),
                                      keyed_by_layer ? &contents : nullptr, b_.listings_.get(), record_contents);
  FileDigests().swap(contents);
  std::vector<LayerEntry>().swap(step.entries);  // gone before the image's tree takes the layer in
  std::vector<LayerEntry>().swap(placed);
  b_.store_.note_layer(blob);
  b_.remember(CachedStep{*key, step.description, blob, std::time(nullptr)});
  b_.add_layer(st, blob, step.description, node);
  report.end(StepStatus::Done, blob.size);
  stored(node, blob);
}

bool Builder::could_be_cached(const Digest& shape) const {
  // A registry cache's entries come without shapes.
  return settings_.use_cache && (cache_.knows_shape(shape) || !settings_.remote_cache.empty());
}

void Builder::walk_pull(Walk& walk, Stage& st, const PullOp& op, const Node& node) {
  if (!settings_.pull) throw std::runtime_error(op.reference + ": this build has no registry access");
  walk.policy.pull(st, op, op.platform ? Platform::parse(*op.platform) : settings_.platform, node);
}

std::string Builder::resolve_base(Stage& st, const PullOp& op, const Platform& platform, const Node& node) {
  st.image = settings_.pull(op, platform);
  auto digest = st.image.annotations.find(kBaseDigestAnnotation);
  st.base_layers = st.image.layers.size();
  st.base_labels = st.image.config.labels;
  for (size_t i = 0; i < st.image.layers.size(); ++i)
    st.layer_origins.push_back({node.loc, "from " + op.reference + " (layer " + std::to_string(i + 1) + ")"});
  st.image.created = settings_.created;
  auto tree = std::make_shared<ImageTree>(listings_);
  {
    // The layers come when a step or an output needs them (most cached builds
    // never do), and again from there if the store's copy proves damaged.
    std::lock_guard lock(records_mutex_);
    for (auto& layer : st.image.layers) layer_sources_[layer.digest] = op.reference;
    if (digest != st.image.annotations.end()) resolved_bases_[index_of(node)] = {op.reference, digest->second};
  }
  for (auto& layer : st.image.layers) tree->apply_layer_blob(store_.blob_path(layer.digest));
  st.tree = std::move(tree);
  st.cmd_from_base = st.image.config.cmd.has_value();
  return "from " + op.reference + (digest != st.image.annotations.end() ? "@" + digest->second : "");
}

void Builder::unpack_when_listed(const Stage& st, const Node& node) {
  if (!run_above_[index_of(node)] || settings_.cache_dir.empty()) return;
  auto base = std::make_shared<BaseToUnpack>();
  base->stage = st;
  std::lock_guard lock(records_mutex_);
  for (auto& layer : st.image.layers)
    bases_to_unpack_.try_emplace(store_.blob_path(layer.digest).filename().string(), base);
}

void Builder::unpack_for_listing(const std::filesystem::path& blob) {
  std::shared_ptr<BaseToUnpack> base;
  {
    std::lock_guard lock(records_mutex_);
    auto it = bases_to_unpack_.find(blob.filename().string());
    if (it == bases_to_unpack_.end()) return;
    base = it->second;
  }
  // A tree asks what the base holds, so a step builds on it: most likely
  // the copy of edited sources before the RUN steps, which then run and
  // need the root anyway (also after a RUN step a cache had: `go mod
  // download`, then the copy, then `go build`). Unpacked now, the listings
  // come from that same read, where listing them first would decode every
  // layer twice. Only a tree asked after the last RUN step was taken from a
  // cache (the doctor's, on a fresh machine) leaves the root unused.
  std::lock_guard once(base->once);
  if (std::exchange(base->tried, true)) return;
  try {
    image_root(base->stage);
  } catch (const std::exception&) {
    // The listing is read from the blob instead; the RUN step that needs
    // the root makes it again, and says what went wrong.
  }
}

std::filesystem::path Builder::root_of(const Stage& st, size_t layers) const {
  // Named by the chain ID with a mark older engines never wrote: their roots
  // were unpacked without checking the diff_ids, so they name nothing.
  return settings_.cache_dir / "roots" /
         (layers == 0
              ? std::string("empty")
              : std::string(chain_id({st.image.layers.begin(), st.image.layers.begin() + layers}).hex()) + ".v");
}

void Builder::apply_checked(const Stage& st, size_t i, const std::filesystem::path& tree,
                            const IncomingBlobs& incoming) {
  const LayerBlob& layer = st.image.layers[i];
  std::optional<Digest> known = store_.known_diff_id(layer.digest);
  if (known && *known != layer.diff_id) throw lying_layer(st.layer_origins.at(i).str(), layer, *known);
  const std::filesystem::path blob = store_.blob_path(layer.digest);
  std::optional<LayerListings::Recording> listing;
  UnpackOptions options;
  if (!listings_->known(blob)) {
    listing.emplace(*listings_, blob);
    options.on_member = [&listing](archive_entry* header) { listing->member(header); };
  }
  auto arriving = incoming.find(layer.digest);
  uint64_t size = 0;
  try {
    size = apply_layer(
        tree,
        {blob, "layer " + std::to_string(i + 1) + " (" + layer.digest.str() + ")",
         known ? std::nullopt : std::optional(layer.diff_id), arriving == incoming.end() ? nullptr : arriving->second},
        options);
  } catch (const DiffIdMismatch& lie) {
    store_.note_diff_id(layer.digest, lie.actual);
    throw lying_layer(st.layer_origins.at(i).str(), layer, lie.actual);
  }
  store_.note_diff_id(layer.digest, layer.diff_id);
  if (listing) listing->keep();
  // The image's size needs it later (check_layer): not a second read of the blob.
  if (!layer.uncompressed_size && !std::filesystem::exists(tar_size_memo(layer))) note_tar_size(layer, size);
}

std::filesystem::path Builder::image_root(const Stage& st, std::optional<size_t> count) {
  namespace fs = std::filesystem;
  const std::vector<LayerBlob> layers(st.image.layers.begin(),
                                      st.image.layers.begin() + count.value_or(st.image.layers.size()));
  fs::path roots = settings_.cache_dir / "roots";
  fs::create_directories(roots);
  // A root is used only for layers checked against their diff_ids: those the
  // store has a record of, those read now when a root stands for them
  // already, and those hashed below as they are unpacked.
  std::vector<bool> checked(layers.size());
  for (size_t i = 0; i < layers.size(); ++i) {
    const LayerBlob& layer = layers[i];
    std::optional<Digest> known = store_.known_diff_id(layer.digest);
    if (known && *known != layer.diff_id) throw lying_layer(st.layer_origins.at(i).str(), layer, *known);
    checked[i] = known.has_value();
  }
  auto read_unchecked = [&](size_t below) {
    for (size_t i = 0; i < below; ++i)
      if (!checked[i]) check_layer(st, i);
  };
  fs::path root = root_of(st, layers.size());
  if (fs::exists(root)) {
    if (std::find(checked.begin(), checked.end(), false) != checked.end()) {
      ensure_local(layers);
      read_unchecked(layers.size());
    }
    mark_used(root);
    return root;
  }
  // The root of the longest prefix of these layers unpacked before (a base's,
  // an earlier step's) is the start: only the layers above it are applied.
  auto longest_below = [&] {
    for (size_t n = layers.empty() ? 0 : layers.size() - 1; n > 0; --n)
      if (fs::exists(root_of(st, n))) return n;
    return size_t{0};
  };
  size_t start = longest_below();
  // From nothing (a base image on a fresh machine), the layers the store
  // lacks are fetched while they are applied, each read as it arrives: the
  // pull and the unpack overlap. Each is still checked whole, its digest and
  // its diff_id, before its root is put in place. Above a root, the layers
  // below it are read whole to be checked, and fetched first.
  IncomingBlobs incoming;
  if (start == 0 && settings_.fetch)
    for (auto& layer : layers)
      if (!store_.has_blob(layer.digest)) incoming.try_emplace(layer.digest, std::make_shared<GrowingFile>(layer.size));
  std::future<void> fetching;
  if (incoming.empty()) {
    ensure_local(layers);
  } else {
    fetching = std::async(std::launch::async, [&] {
      try {
        ensure_local(layers, incoming);
      } catch (...) {
        // Whatever stopped it (an interrupt too), no reader may wait on.
        for (auto& [digest, file] : incoming) file->failed("its download failed");
        throw;
      }
      // One the store had after all (another build's) is read from there.
      for (auto& [digest, file] : incoming) file->failed("not downloaded by this build");
    });
  }
  read_unchecked(start);
  // The root of layers [from, to) on the root `base` of those below `from`
  // (none: from nothing). Unpacked beside its final name and renamed when
  // whole: a build killed half-way, or a layer found to lie, leaves no root
  // that looks complete.
  auto make_root = [&](const fs::path& base, size_t from, size_t to, const IncomingBlobs& arriving) {
    TempDir scratch(roots, ".unpack-");
    fs::path tree = scratch.path() / "root";
    if (base.empty()) {
      unpack_image(tree, {});  // an empty root
    } else {
      mark_used(base);
      link_tree(base, tree);
    }
    for (size_t i = from; i < to; ++i) apply_checked(st, i, tree, arriving);
    // The same step of an earlier build wrote many of the same files (Go's
    // build cache in a `go build` layer): shared, they take their disk once.
    if (auto donor = root_like(roots, to)) {
      // What the layers wrote, when their listings are known: the rest of the tree is links to `base`.
      std::vector<std::string> written;
      bool listed = true;
      for (size_t i = from; i < to; ++i) {
        fs::path blob = store_.blob_path(layers[i].digest);
        listed = listings_->known(blob);
        if (!listed) break;
        std::shared_ptr<const ImageTree::Listing> listing = listings_->of(blob);
        for (auto& [path, file] : listing->added)
          if (file.type == LayerEntry::Type::File) written.push_back(path);
      }
      listed ? share_identical_files(tree, *donor, written) : share_identical_files(tree, *donor);
    }
    // What it adds to `base`: all prune needs to know of it, without a walk.
    uint64_t added = own_bytes(tree);
    fs::path made = root_of(st, to);
    std::error_code ec;
    fs::rename(tree, made, ec);
    if (!ec) {
      record_tree_bytes(made, added, to);
    } else if (!fs::exists(made)) {
      throw std::runtime_error("cannot store the unpacked image at " + made.string() + ": " + ec.message());
    }
  };
  // With more than one layer to apply, the root below the top layer is kept
  // too: the next build whose top layer differs (a copy of edited sources on
  // `go mod download`) starts there and links what lies below, instead of
  // applying those layers again as files of its own.
  const size_t top = layers.size();
  auto make_roots = [&](size_t from, const IncomingBlobs& arriving) {
    fs::path base = from == 0 ? fs::path() : root_of(st, from);
    if (top - from >= 2) {
      make_root(base, from, top - 1, arriving);
      from = top - 1;
      base = root_of(st, from);
    }
    make_root(base, from, top, arriving);
  };
  if (!fetching.valid()) {
    make_roots(start, {});
    return root;
  }
  try {
    make_roots(start, incoming);
  } catch (const UnpackError&) {
    // A failed download fails its reader: its own error is the one to tell.
    fetching.get();
    // A download that started over (or left a failing mirror) is whole now,
    // and read again from the store, as is one another build stored first;
    // what its reader took of the first answer counts for nothing. Any other
    // error is the layer's own.
    if (std::none_of(incoming.begin(), incoming.end(), [](auto& blob) { return blob.second->abandoned(); })) throw;
    make_roots(longest_below(), {});
    return root;
  }
  fetching.get();
  return root;
}

std::vector<std::filesystem::path> Builder::step_root(const Stage& st, const std::filesystem::path& scratch) {
  namespace fs = std::filesystem;
  size_t top = st.image.layers.size();
  // One folder where no overlay will stack it (chroot isolation, or none
  // here), where a root of all the layers is made already, and for a base
  // image's layers, whose root later builds take again as it is.
  if (top <= st.base_layers || settings_.isolation != Isolation::namespaces || stacks_refused_ ||
      fs::exists(root_of(st, top)))
    return {image_root(st)};
  fs::path below = image_root(st, top - 1);
  const LayerBlob& layer = st.image.layers[top - 1];
  ensure_local({layer});
  fs::path folder = scratch / "top";
  fs::create_directory(folder);
  apply_checked(st, top - 1, folder);
  if (stacks_plainly(folder, below, *listings_->of(store_.blob_path(layer.digest)))) return {folder, below};
  remove_tree(folder);
  return {image_root(st)};
}

std::optional<std::vector<CopyItem>> Builder::items_from_tar_layers(const Stage& st, const CopyOp& op,
                                                                    const std::filesystem::path& scratch) {
  namespace fs = std::filesystem;
  // Two stages copying from one builder at once share its tree: the tree
  // settles itself under its own lock.
  std::optional<std::vector<TreeSource>> files = copy_from_files(op, *st.tree, st.image.config.workdir);
  if (!files) return std::nullopt;
  // Which layer holds each file, by its blob: only a plain tar is cheap to take one member from.
  std::map<fs::path, size_t> tar_layers;
  for (size_t i = 0; i < st.image.layers.size(); ++i)
    if (st.image.layers[i].media_type == media_type::kLayerTar)
      tar_layers[store_.blob_path(st.image.layers[i].digest)] = i;
  std::map<size_t, std::set<std::string>> members;
  for (const TreeSource& source : *files) {
    auto layer = tar_layers.find(st.tree->blob_of(*source.file));
    if (layer == tar_layers.end()) return std::nullopt;
    members[layer->second].insert(source.file->where);
  }
  // Each layer's members in a folder of its own: two layers may hold the same path.
  auto taken_from = [&](size_t layer) { return scratch / std::to_string(layer); };
  try {
    for (auto& [i, names] : members) {
      const LayerBlob& layer = st.image.layers[i];
      ensure_local({layer});
      fs::create_directory(taken_from(i));
      UnpackOptions options;
      options.only = &names;
      // Hashed as it is read: a damaged blob gives nothing, and image_root() says why.
      apply_layer(taken_from(i),
                  {store_.blob_path(layer.digest), "layer " + std::to_string(i + 1) + " (" + layer.digest.str() + ")",
                   layer.diff_id},
                  options);
    }
  } catch (const UnpackError&) {
    return std::nullopt;
  }
  std::vector<CopyItem> items;
  for (const TreeSource& source : *files) {
    size_t layer = tar_layers.at(st.tree->blob_of(*source.file));
    // Where the member landed, found as copy_from_items finds a file in a root.
    std::optional<ImagePath> at = RootDir(taken_from(layer)).resolve(ImagePath(source.file->where).str());
    if (!at || at->is_root()) return std::nullopt;
    fs::path host = taken_from(layer) / at->relative();
    struct stat st_host {};
    if (::lstat(host.c_str(), &st_host) != 0 || !S_ISREG(st_host.st_mode)) return std::nullopt;
    items.push_back({host, source.name, false});
  }
  return items;
}

void Builder::walk_run(Walk& walk, Stage& st, const RunOp& op, const Node& node) {
  std::string shown = op.shell.empty() ? nlohmann::json(op.argv).dump() : op.shell;
  std::string description = "run " + shown;
  if (st.unknown) return walk.policy.after_run(node, description);
  SandboxSpec spec;
  spec.argv = op.argv;
  RuntimeConfig env = st.image.config;
  for (auto& [k, v] : op.env) env.set_env(k, v);
  if (!env.get_env("PATH")) env.set_env("PATH", kDefaultPath);
  spec.env = env.env;
  spec.workdir = op.workdir ? ImagePath::from(st.image.config.workdir, *op.workdir).str()
                            : (st.image.config.workdir.empty() ? "/" : st.image.config.workdir);
  spec.user = op.user.value_or(st.image.config.user);
  spec.network = op.network;

  // A secret is a credential, not an input: the step's result must not depend
  // on it, and not even a hash of it may reach a key shared through a registry.
  json secret_ids = json::array();
  for (auto& [id, path] : op.secrets) secret_ids.push_back(id);
  json inputs = {{"op", "run"},
                 {"filesystem", filesystem_id(st.image)},
                 {"platform", st.image.platform.str()},
                 {"argv", spec.argv},
                 {"env", spec.env},
                 {"workdir", spec.workdir},
                 {"user", spec.user},
                 // Whether it has a network, as before steps got one of their own:
                 // the keys of steps cached then stay.
                 {"network", spec.network != StepNetwork::none},
                 {"cache", op.cache},
                 {"secrets", secret_ids},
                 {"layer", layer_settings(layer_options())}};
  // What lands in the volumes is dropped; the keys of steps on images
  // without volumes stay those cached before volumes were honoured.
  if (!st.image.config.volumes.empty()) inputs["volumes"] = st.image.config.volumes;
  RunStep step{op, shown, description, std::move(spec), step_key(std::move(inputs))};
  walk.policy.run(st, step, node);
}

void Builder::Building::run(Stage& st, RunStep& run, const Node& node) {
  namespace fs = std::filesystem;
  if (auto hit = b_.lookup(run.key, *this)) return take(st, *hit, run.description, StepKind::Run, node);
  ForeignRun foreign = plan_foreign_run(st.image.platform, Platform::host(), b_.settings_.emulate || run.op.emulate);
  if (!foreign.refusal.empty()) throw BuildError(node.loc, "run: " + run.shown + ": " + foreign.refusal);
  StepReport report(*this, node, run.description, StepKind::Run);
  const RunOp& op = run.op;
  SandboxSpec& spec = run.spec;
  const BuildSettings& settings = b_.settings_;

  TempDir step(settings.cache_dir / "tmp", "run-");
  std::vector<fs::path> root = b_.step_root(st, step.path());
  spec.lower = root.back();
  spec.stacked.assign(root.begin(), root.end() - 1);
  spec.upper = step.path() / "upper";
  spec.work = step.path() / "work";
  fs::create_directory(spec.upper);
  fs::create_directory(spec.work);
  // Everything mounted into the step, and the folders made to mount on, stays
  // out of its layer.
  std::vector<std::string> mount_points = {"/proc", "/dev", "/etc", "/etc/hosts", "/etc/resolv.conf"};
  auto mount_point = [&](const std::string& target) {
    for (std::string p = target; p != "/" && !p.empty(); p = fs::path(p).parent_path().string())
      mount_points.push_back(p);
  };
  for (auto& dir : op.cache) {
    fs::path host = run_cache_folder(settings.cache_dir, dir);
    if (settings.seed_run_cache) settings.seed_run_cache(dir, host);
    fs::create_directories(host);
    if (!op.secrets.empty()) mark_secret_exposed(host);
    mark_used(host);
    spec.mounts.push_back({host, dir, false});
    mount_point(dir);
  }
  for (auto& [id, path] : op.secrets) {
    fs::path host = fs::path(path).is_absolute() ? fs::path(path) : b_.context_.root() / path;
    if (!fs::is_regular_file(host)) throw std::runtime_error("secret '" + id + "': no such file " + host.string());
    std::string target = "/run/secrets/" + id;
    spec.mounts.push_back({host, target, true});
    mount_point(target);
  }
  spec.max_processes = settings.max_processes;
  spec.isolation = settings.isolation;
  spec.emulator = foreign.emulator;
  spec.output = [&](std::string_view line) {
    settings.progress(StepOutput{b_.index_of(node), node.loc, std::string(line)});
  };
  SandboxResult result;
  try {
    result = run_in_sandbox(spec);
  } catch (const NeedsOneFolder&) {
    // No overlay here: the root as one folder, for this step and the rest of the build.
    b_.stacks_refused_ = true;
    spec.stacked.clear();
    spec.lower = b_.image_root(st);
    result = run_in_sandbox(spec);
  }
  // The caches are not measured here: a Go module cache holds tens of
  // thousands of files, and walking them after every step cost each build
  // time in proportion to the cache, not to what changed. mark_used above
  // made their records stale; `cache ls` and prune measure them when they look.
  if (result.exit_code != 0) {
    std::string tail;
    for (auto& l : result.last_lines) tail += "\n    " + printable_text(l);
    throw BuildError(node.loc, "run: " + run.shown + ": exited with status " + std::to_string(result.exit_code) +
                                   (tail.empty() ? "" : ":" + tail));
  }
  // The whiteouts' empty source: a scratch file, gone with the folder, so not synced.
  const fs::path empty = step.path() / "empty";
  if (!Fd(::open(empty.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644))) throw_errno(empty.string());
  if (!result.unconfined.empty())
    std::call_once(b_.unconfined_told_, [&] {
      settings.progress(
          StepNotice{b_.index_of(node), node.loc,
                     "run: this host lets RUN steps run with " + result.unconfined + ": told once for the build"});
    });
  if (!result.overlay_error.empty())
    settings.progress(StepNotice{b_.index_of(node), node.loc,
                                 "run: no overlay here (" + result.overlay_error + "): ran on a copy of the image"});
  std::vector<LayerEntry> entries = step_changes(spec, result, mount_points, empty);
  drop_volume_writes(entries, image_root_of(spec), st.image.config.volumes);
  if (::geteuid() != 0)
    // Rootless: the step's root is the invoking user on disk; in the image it is root.
    for (auto& e : entries) {
      if (e.uid == ::geteuid()) e.uid = 0;
      if (e.gid == ::getegid()) e.gid = 0;
    }
  std::optional<LayerBlob> layer;
  if (!entries.empty()) {
    layer = write_layer(std::move(entries), b_.store_.blob_dir(), b_.layer_options(node), b_.listings_.get());
    b_.store_.note_layer(*layer);
  }
  // The layer holds what the step made: its scratch folder (tens of MB for a
  // compiler's cache) is removed beside the rest of the build.
  step.remove_later(b_.scratch_remover_);
  b_.remember(CachedStep{run.key, run.description, layer, std::time(nullptr)});
  b_.add_layer(st, layer, run.description, node);
  report.end(StepStatus::Done, layer ? std::optional(layer->size) : std::nullopt);
  stored(node, layer);
}

void Builder::change_config(Stage& st, const ConfigOp& op, const Node& node) {
  RuntimeConfig& c = st.image.config;
  auto apply = [&](const auto& change) {
    using Change = std::decay_t<decltype(change)>;
    const auto& v = change.value;
    if constexpr (std::is_same_v<Change, config::Env>) {
      for (auto& [k, val] : v) c.set_env(k, val);
    } else if constexpr (std::is_same_v<Change, config::Workdir>) {
      // Like WORKDIR, a relative directory is taken from the current one.
      c.workdir = ImagePath::from(c.workdir, v).str();
    } else if constexpr (std::is_same_v<Change, config::User>) {
      c.user = v;
    } else if constexpr (std::is_same_v<Change, config::Entrypoint>) {
      c.entrypoint = v;
      st.entrypoint_loc = node.loc;
      if (st.cmd_from_base) c.cmd.reset();
    } else if constexpr (std::is_same_v<Change, config::Cmd>) {
      c.cmd = v;
      st.cmd_from_base = false;
      // Without an entrypoint the cmd is the program, so its line is the one to blame.
      if (!c.entrypoint) st.entrypoint_loc = node.loc;
    } else if constexpr (std::is_same_v<Change, config::Expose>) {
      c.exposed_ports.insert(v.begin(), v.end());
    } else if constexpr (std::is_same_v<Change, config::Label>) {
      for (auto& [k, val] : v) c.labels[k] = val;
    } else if constexpr (std::is_same_v<Change, config::Volume>) {
      c.volumes.insert(v.begin(), v.end());
    } else if constexpr (std::is_same_v<Change, config::Healthcheck>) {
      // Replaces the base's check, as a later HEALTHCHECK replaces an earlier one.
      c.healthcheck = v;
      st.image.inherited_config.erase("Healthcheck");
    } else {
      static_assert(std::is_same_v<Change, config::StopSignal>, "a config change without its effect");
      c.stop_signal = v;
    }
  };
  std::visit(apply, op);
  st.image.history.push_back({describe_config(op), true});
}

}  // namespace imgbuild
