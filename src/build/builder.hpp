#pragma once
// Executes a build graph: builds the images the requested targets need into a
// layout, from the bottom of each chain up, reusing what is already built; or
// plans that build without running anything.
#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <tuple>

#include "base/fs.hpp"
#include "build/context.hpp"
#include "build/graph.hpp"
#include "build/progress.hpp"
#include "inspect/doctor.hpp"
#include "layer/unpack.hpp"
#include "oci/image.hpp"
#include "sandbox/sandbox.hpp"
#include "store/layout.hpp"
#include "store/step_cache.hpp"

namespace imgbuild {

/// An error in a build step, tied to the recipe line that described the step.
/// what() is "recipe.lua:7: copy: no such file in the build context: go.sm".
class BuildError : public std::runtime_error {
public:
  BuildError(const std::string& loc, const std::string& message)
      : std::runtime_error(loc.empty() ? message : loc + ": " + message) {}
};

/// The steps the builders of one build's platforms make at once. A step whose
/// result is the same for every platform (a copy of static files) reached by
/// two builders together is made by one while the other waits, then takes it
/// from the step cache: one computation, not one per platform writing the
/// same layer.
class SharedSteps {
public:
  /// Holds the step known by `key` (its copy's shape or key) against the other
  /// builders until the lock returned goes.
  std::unique_lock<std::mutex> hold(const Digest& key);

private:
  std::mutex mutex_;
  std::map<Digest, std::unique_ptr<std::mutex>> steps_;
};

struct BuildSettings {
  std::filesystem::path context;
  std::filesystem::path cache_dir;
  bool use_cache = true;
  /// Every layer entry's mtime (SOURCE_DATE_EPOCH, else 0); part of every
  /// step's key, so it changes only when the user says.
  int64_t source_date_epoch = 0;
  /// The images' creation time (`created`, and the history of this build's
  /// steps): SOURCE_DATE_EPOCH, else the commit time of the context's checkout.
  /// No step's key holds it: a new commit makes new images from cached steps.
  int64_t created = 0;
  /// Where the sources came from, for every image's manifest annotations
  /// (built_annotations); like `created`, in no step's key.
  ImageOrigin origin;
  /// How the layers this build writes are compressed (part of every step's key).
  Compression compression = Compression::Gzip;
  /// Processes and threads each RUN step may have at once.
  long max_processes = kDefaultMaxProcesses;
  /// How each RUN step is isolated (--isolation).
  Isolation isolation = Isolation::namespaces;
  /// The platform of the images built (a base's manifest is picked for it,
  /// `go.build` compiles for it); another than the machine's own makes
  /// RUN steps foreign (emulation.hpp).
  Platform platform = Platform::host();
  /// --emulate: RUN steps of a foreign platform run under binfmt_misc's
  /// emulator when one is registered.
  bool emulate = false;
  /// Step events (started, output, ended), serialised: the sink sees one
  /// event at a time even while stages build in parallel.
  ProgressSink progress = [](const ProgressEvent&) {};
  /// Provides a base image for `from` (the registry client, through the
  /// store): its config and layers, with the layer blobs in the store. Unset,
  /// a recipe with `from` fails at that line.
  /// Base image layers are fetched only when a step needs their files or an
  /// output needs their bytes: downloads `layers` from `source` (a registry
  /// reference) into the store, telling those in `incoming` how far they are
  /// written (fetch_layers), for an unpack that reads them as they come.
  std::function<Image(const PullOp&, const Platform&)> pull;
  std::function<void(const std::vector<LayerBlob>& layers, const std::string& source, const IncomingBlobs& incoming)>
      fetch;
  /// Downloads `url` (https with TLS verified, or http from loopback) into the
  /// new file `to`, for `:add` of a URL; the builder checks its checksum.
  /// Unset, such an `:add` fails at its line. The core knows no network.
  std::function<void(const std::string& url, const std::filesystem::path& to)> fetch_url;
  /// A step of `node` has put `layer` in the store, whole (made by the step or
  /// taken from the cache; a base's layers are not reported). An image built
  /// on `node` may push the layer before the build ends. Called from the
  /// threads that build stages: it must be quick and must not throw.
  std::function<void(size_t node, const LayerBlob& layer)> layer_stored;
  /// Shared by the builders of every platform of a build (copies of these
  /// settings share it).
  std::shared_ptr<SharedSteps> shared_steps = std::make_shared<SharedSteps>();
  /// Step results imported from registries (`--cache-from`), by key; their
  /// source names the registry cache.
  std::map<Digest, CachedStep> remote_cache;
  /// Fills the cache folder `folder` of the `:run` cache mounted at
  /// `image_path` from a registry cache (`--cache-from`) when this machine
  /// has none yet; called before each step that mounts it, from the threads
  /// that build stages. Unset: the folder starts empty.
  std::function<void(const std::string& image_path, const std::filesystem::path& folder)> seed_run_cache;
};

/// One step as `imgbuild plan` reports it.
struct PlannedStep {
  enum class Outcome {
    Config,    ///< a config change: nothing to run or cache
    From,      ///< a base image, resolved to its digest
    Local,     ///< found in the local cache
    Registry,  ///< found in a registry cache (--cache-from)
    Run,       ///< not cached: it would run
    AfterRun,  ///< its key depends on the result of a step that would run
  };
  size_t node = 0;
  std::string loc, description;
  std::optional<Digest> key;
  Outcome outcome = Outcome::Config;
};

/// The step that made a layer of an image: its recipe line ("recipe.lua:7")
/// and what it did ("copy . .", "from golang:1.22 (layer 2)").
struct LayerOrigin {
  std::string loc, description;
  /// "recipe.lua:7  copy . .": how messages name the step.
  std::string str() const { return loc + "  " + description; }
};

/// A built image and where its manifest is in the layout, with what the
/// doctor examines.
struct BuiltImage {
  Image image;
  Descriptor manifest;
  /// manifest + config + compressed layers
  uint64_t size = 0;
  /// The compressed layers alone: what a pull of the image downloads, and
  /// what `:budget { size = ... }` limits.
  uint64_t compressed = 0;
  /// The layers' tar streams: what the image takes unpacked.
  uint64_t uncompressed = 0;
  /// The pulled image this one is built on ("" for scratch) and its
  /// compressed layers, the first `base_layers` of this image.
  std::string base;
  size_t base_layers = 0;
  uint64_t base_compressed = 0;
  /// The image's files.
  std::shared_ptr<const ImageTree> tree;
  /// The recipe line that made each of image.layers.
  std::vector<std::string> layer_locs;
  /// The line of the :entrypoint (or :cmd) step that set the program; "" when
  /// no step of the recipe did.
  std::string entrypoint_loc;
  /// Doctor warnings the recipe silenced for this image (`:doctor { ignore = ... }`).
  std::set<std::string> ignore;
};

/// An image a build was made from, by digest: a base it resolved (`from`,
/// and a `cached()` builder the registry had) or a `cached()` builder it
/// built and pushes now.
struct BuildInput {
  /// The normalised reference ("docker.io/library/alpine:3.20").
  std::string reference;
  /// Its manifest digest ("sha256:..."; for a base, the one for this build's platform).
  std::string digest;
  bool operator<(const BuildInput& o) const { return std::tie(reference, digest) < std::tie(o.reference, o.digest); }
  bool operator==(const BuildInput&) const = default;
};

/// What the doctor is told of `built` besides the image. `loc` is the line
/// of the image() or push() that outputs it; `ignore` adds warnings to
/// silence to the recipe's own.
DoctorContext doctor_context(const BuiltImage& built, const std::string& loc, const std::set<std::string>& ignore = {});

/// Runs the doctor on `built` in doctor_context(built, loc, ignore): what
/// would make it fail at run time.
std::vector<Finding> examine_built(const BuiltImage& built, const std::string& loc,
                                   const std::set<std::string>& ignore = {});

/// Walks a build graph from the bottom of each chain up, one stage per node.
/// `imgbuild build` and `imgbuild plan` share the walk; what they do at each
/// step is a policy: building executes the step (or takes its result from a
/// cache) and writes the images into the layout, planning only works out each
/// step's key and where its result would come from.
class Builder {
public:
  /// Blobs are written into `store`.
  Builder(const Graph& graph, Layout& store, BuildSettings settings);
  ~Builder();

  /// Builds the image node `node` (and what it depends on) once. Fails when
  /// the image is larger than its `:budget`, naming its biggest layers.
  /// `annotations` (a target's or a push's) are set on its manifest over the
  /// defaults: one node under other annotations is another manifest of the
  /// same config and layers.
  const BuiltImage& build(size_t node, const std::map<std::string, std::string>& annotations = {});

  /// Builds the steps of all `nodes` at once, as far as they are independent
  /// (each chain on its own thread; a copy from another image builds that
  /// image beside its own chain). build() then finds them done. The first
  /// error is rethrown after every started step has ended.
  void prepare(const std::vector<size_t>& nodes);

  /// Said once the build succeeded: the RUN steps' scratch folders not removed
  /// yet when the builder ends are left in the cache's tmp/trash, for the next
  /// build (or `cache prune`) to remove, instead of being waited for. A failed
  /// or interrupted build leaves nothing behind.
  void leave_scratch_to_next_build() { scratch_remover_.leave_the_rest(); }

  /// Works out every step `nodes` need without running, writing or pushing
  /// anything: each step's cache key and where its result would come from.
  /// Only bases never pulled before are resolved (manifest and config).
  std::vector<PlannedStep> plan(const std::vector<size_t>& nodes);

  /// The images image `node` was built from, sorted, each once: every base
  /// it resolved and every `cached()` builder it copies from (building that
  /// builder's manifest when the registry lacked it). Call after build(node).
  std::vector<BuildInput> inputs_of(size_t node);

  /// Every step result this build used or made, for `--cache-to`: a layer
  /// kept uncompressed (a builder stage's) is compressed now, as the build's
  /// compression makes it, and the cache records the compressed one.
  std::vector<CachedStep> used_steps();

  /// Makes sure the store holds `layers`, fetching those it lacks from where
  /// the build learnt of them (a base image's registry, a registry cache).
  /// Those in `incoming` tell it there as they arrive.
  void ensure_local(const std::vector<LayerBlob>& layers, const IncomingBlobs& incoming = {});

private:
  /// `:budget { size = ... }` as it applies to an image.
  struct Budget {
    uint64_t bytes = 0;
    std::string text, loc;  ///< as the recipe wrote it, and where
  };

  /// An image being built, with what the doctor needs to know about it.
  struct Stage {
    Image image;
    /// Which step made each of image.layers: the budget's report of the
    /// biggest layers names them, the doctor's findings point at them.
    std::vector<LayerOrigin> layer_origins;
    /// How many of image.layers came with the pulled base.
    size_t base_layers = 0;
    /// The pulled base's labels: one the recipe did not change says nothing
    /// of the image's origin (built_annotations).
    std::map<std::string, std::string> base_labels;
    std::optional<Budget> budget;
    std::shared_ptr<const ImageTree> tree = std::make_shared<ImageTree>();
    std::string entrypoint_loc;
    std::set<std::string> ignore;
    /// The cmd came with the base image: setting an entrypoint drops it, as
    /// docker does, since a base's cmd was meant for the base's entrypoint.
    bool cmd_from_base = false;
    /// While planning: a step before would run, so the file system (and every
    /// later key) is not known.
    bool unknown = false;
    /// The larger of the image's config and manifest when last measured, and
    /// a bound on what the steps since then added (check_documents).
    uint64_t documents_measured = 0, documents_growth = 0;
  };

  /// What plan and build do differently at each kind of step (builder.cpp).
  class StepPolicy;
  class Building;
  class Planning;
  /// A step as the walk prepared it for the policy.
  struct CopyStep;
  struct RunStep;
  /// A step's result found in a cache, and in which.
  struct CacheHit {
    CachedStep step;
    PlannedStep::Outcome where = PlannedStep::Outcome::Local;  ///< Local or Registry
  };

  /// One walk over the graph under one policy. Stages and files are made
  /// once, whichever thread asks first; the others wait for that one's result
  /// (or its error).
  struct Walk {
    explicit Walk(StepPolicy& step_policy) : policy(step_policy) {}
    StepPolicy& policy;
    std::mutex mutex;
    std::map<size_t, std::shared_future<const Stage*>> stages;
    std::map<size_t, Stage> stage_storage;
    std::mutex files_mutex;
    std::map<size_t, CopyItem> files;
  };

  const Stage& stage(Walk& walk, size_t node);
  /// Applies `node`'s step to `parent`, its parent's stage (empty for a root).
  Stage make_stage(Walk& walk, size_t node, Stage parent);
  /// A copy source made on the host; empty while it would still have to be built.
  CopyItem build_file(Walk& walk, size_t node);
  void walk_pull(Walk& walk, Stage& stage, const PullOp& op, const Node& node);
  void walk_copy(Walk& walk, Stage& stage, const CopyOp& op, const Node& node);
  /// The file a remote `:add` names, in the build cache by its checksum:
  /// fetched when missing (or no longer matching), and checked either way.
  CopyItem fetched(const CopyOp::Remote& remote, const std::string& dest);
  /// The folder a local archive of `:add` is extracted into, in the build
  /// cache by the archive's digest; extracted with every defence a layer gets.
  std::filesystem::path extracted(const std::filesystem::path& archive);
  void walk_run(Walk& walk, Stage& stage, const RunOp& op, const Node& node);

  /// Takes base image `op` for `platform` into an empty stage; returns the
  /// step's description, the tag resolved to its digest.
  std::string resolve_base(Stage& stage, const PullOp& op, const Platform& platform, const Node& node);
  void change_config(Stage& stage, const ConfigOp& op, const Node& node);
  /// The digest of each file a copy from the build context reads, read again
  /// only where its stamp changed since the copy's shape was last built.
  FileDigests hash_copy(const CopyStep& step, size_t& files_read) const;
  /// The key of a copy whose files have `contents`.
  Digest copy_key(const CopyStep& step, const FileDigests& contents) const;
  /// The verified cached result of step `key`, or nullopt (it must run).
  std::optional<CacheHit> lookup(const Digest& key, StepPolicy& policy);
  /// The file system of a stage's image (of its first `layers` layers),
  /// unpacked read-only into the build cache under its layers' chain ID, so
  /// RUN steps and copies from it share it. Every layer under a root was verified to hash to its diff_id: the
  /// chain ID names what the root holds, whatever the config claims.
  std::filesystem::path image_root(const Stage& stage, std::optional<size_t> layers = std::nullopt);
  /// Where the root of the first `layers` layers of `stage` is kept.
  std::filesystem::path root_of(const Stage& stage, size_t layers) const;
  /// Applies layer `i` of `stage` to the folder `tree`, hashed as it is read
  /// unless the store knows its diff_id: a layer that lies is refused. Its
  /// listing, when not known yet, is made on the way. A layer in `incoming`
  /// is applied as it downloads.
  void apply_checked(const Stage& stage, size_t i, const std::filesystem::path& tree,
                     const IncomingBlobs& incoming = {});
  /// The base image `stage` just pulled for `node` will have RUN steps built
  /// on it: the first tree that needs a listing of its layers gets the root
  /// unpacked then, listing them in the same read (unpack_for_listing).
  void unpack_when_listed(const Stage& stage, const Node& node);
  /// LayerListings' before_reading hook: unpacks the root of the base image
  /// that `blob` is a layer of, when unpack_when_listed named one.
  void unpack_for_listing(const std::filesystem::path& blob);
  /// The folders of the root a RUN step of `stage` runs on, the upper first:
  /// its top layer, when a step of the stage made it (not the base image,
  /// whose root later builds take again), unpacked alone into `scratch` and
  /// stacked on the root of the layers below it, when the two plainly merge
  /// into the image's root (stacks_plainly) and the step will run on an
  /// overlay; else image_root() alone. What this costs is the top layer, not
  /// the image.
  std::vector<std::filesystem::path> step_root(const Stage& stage, const std::filesystem::path& scratch);
  /// The sources of `op`, a copy from `stage`, taken out of the layers this
  /// build keeps as plain tars (a builder stage's RUN and copy steps) into
  /// the empty folder `scratch`, one member each: what such a copy costs is
  /// the files it takes, not the stage's whole root unpacked. nullopt when a
  /// source is not one regular file of such a layer (a folder, a pattern, a
  /// base image's file), or its layer cannot give it: image_root() then.
  std::optional<std::vector<CopyItem>> items_from_tar_layers(const Stage& stage, const CopyOp& op,
                                                             const std::filesystem::path& scratch);
  void check_static(const std::vector<LayerEntry>& entries, const Platform& platform);
  /// Whether a copy of this shape (describe_shape in a step key) may have a
  /// cached result: never, when neither this cache nor a registry cache can
  /// hold one.
  bool could_be_cached(const Digest& shape) const;
  /// Records a finished step in the cache and in this build's list.
  void remember(const CachedStep& step);
  /// Makes sure the listing of each of a stage's layers can be had (kept
  /// from an earlier build, or its blob in the store): a copy asks the
  /// stage's tree where its destination is.
  void ensure_listed(const Stage& stage);
  /// Adds a step's layer (or its absence) to a stage, from the cache or just made.
  void add_layer(Stage& stage, const std::optional<LayerBlob>& layer, const std::string& description, const Node& node);
  /// Layer `i` of a stage's image checked against its diff_id (the store's
  /// record, or its blob read once), and its uncompressed size (a pulled
  /// layer's manifest gives only the compressed one). The blob is in the store.
  uint64_t check_layer(const Stage& stage, size_t i);
  /// Where the size of `layer`'s tar stream is kept once measured, by blob digest.
  std::filesystem::path tar_size_memo(const LayerBlob& layer) const;
  void note_tar_size(const LayerBlob& layer, uint64_t size) const;
  /// Throws when `compressed` layer bytes are over the budget of `stage`.
  void check_budget(const Stage& stage, uint64_t compressed) const;
  /// Throws DocumentTooLarge when the step that added `stage`'s history
  /// entries from `history_before` on made its config or manifest too large.
  static void check_documents(Stage& stage, size_t history_before);
  /// The node's number in the graph: steps' identity in progress events.
  size_t index_of(const Node& node) const;
  /// How this build writes layers.
  LayerOptions layer_options() const;
  /// How a step of `node` writes its layer: uncompressed when no output or
  /// push holds it (it only feeds other steps).
  LayerOptions layer_options(const Node& node) const;
  /// `layer` as the build's compression makes it: a layer kept uncompressed
  /// is compressed (fetched first if the store lacks it), and step `key` of
  /// this build, which made it, records the compressed one from now on.
  LayerBlob compressed(const LayerBlob& layer, const Digest& key);

  const Graph& graph_;
  Layout& store_;
  BuildSettings settings_;
  BuildContext context_;
  /// How many steps, targets and pushes use each node's result: a stage with
  /// one user is handed on rather than kept (see stage()).
  std::vector<unsigned> consumers_;
  /// Whether each node's image is an output's or a push's (its own, or one
  /// built on it): its steps' layers are compressed as they are written.
  std::vector<bool> exported_;
  /// Whether a RUN step is built on each node's image (in its own chain; a
  /// copy from it needs no root).
  std::vector<bool> run_above_;
  StepCache cache_;
  /// The listings of the layers this build's image trees hold, each made once
  /// and kept in the build cache for the next build.
  std::shared_ptr<LayerListings> listings_;
  /// Removes the RUN steps' scratch folders off the build's path, through the
  /// cache's tmp/trash. A build that failed waits for it when the builder
  /// ends; one that succeeded does not (leave_scratch_to_next_build()). Declared
  /// before the walk, so that a step still running when the walk is torn down
  /// hands its folder to a remover that is still there.
  BackgroundRemover scratch_remover_;
  /// The walk of build() and prepare(), and its policy.
  std::unique_ptr<Building> building_;
  Walk walk_;
  std::map<std::pair<size_t, std::map<std::string, std::string>>, BuiltImage> finished_;
  mutable std::mutex records_mutex_;
  std::map<Digest, CachedStep> used_;
  /// Each base image resolved, by its node: for provenance (inputs_of).
  std::map<size_t, BuildInput> resolved_bases_;
  /// Where layers not yet in the store can be fetched from (a registry reference).
  std::map<Digest, std::string> layer_sources_;
  /// unpack_when_listed's base images, by the blob file name of each layer;
  /// each unpacked once (its mutex held meanwhile), tried once.
  struct BaseToUnpack {
    Stage stage;
    std::mutex once;
    bool tried = false;
  };
  std::map<std::string, std::shared_ptr<BaseToUnpack>> bases_to_unpack_;
  /// What RUN steps run without on this host (no process limit...): told once.
  std::once_flag unconfined_told_;
  /// A step on stacked folders found no overlay here (NeedsOneFolder): the
  /// rest run on one folder.
  std::atomic<bool> stacks_refused_ = false;
};

/// Reads a size as people write it: "10MB", "500kB", "1.5G", "4096" (decimal
/// units, as human_size() prints them) or "2GiB" (binary ones). nullopt when
/// `text` is not a size.
std::optional<uint64_t> parse_size(const std::string& text);

}  // namespace imgbuild
