#pragma once
// What `build` and `plan` share: their options, the evaluated recipe, the
// chosen targets and pushes, the store, the cache and the registry, and a
// builder over them.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/fs.hpp"
#include "build/builder.hpp"
#include "build/checkout.hpp"
#include "cli/options.hpp"
#include "cli/progress.hpp"
#include "cli/registry_access.hpp"
#include "lua/recipe.hpp"
#include "registry/transfer.hpp"
#include "store/layout.hpp"

namespace imgbuild::cli {

/// What `build` and `plan` are asked: a recipe, its targets and the options.
struct BuildArgs : Options {
  std::filesystem::path recipe;
  std::vector<std::string> targets;
};

/// The words after `build` or `plan`: the options they take, anywhere, then
/// an existing recipe file and the targets (a UsageError otherwise).
BuildArgs parse_build_args(const std::vector<std::string>& args);

/// A build or a plan under way. Holding one keeps the store and the cache in
/// use (prune waits for it).
class Session {
public:
  /// Evaluates the recipe, chooses the targets and pushes, and makes the
  /// builder. `planning`: no progress view and no early pushes.
  Session(BuildArgs args, bool planning);

  /// Byte counts of blobs moving to or from `ref`, as the view's transfer events.
  BlobProgress meter(TransferDirection direction, const std::string& ref);

  BuildArgs b;                    ///< what was asked
  int64_t epoch = 0;              ///< SOURCE_DATE_EPOCH, 0 when unset
  std::filesystem::path context;  ///< the build context
  /// The git checkout holding the context, when it is one.
  std::optional<Checkout> checkout;
  Evaluation ev;                      ///< the recipe's graph
  std::vector<const Target*> chosen;  ///< the targets named, or all, in order
  std::vector<const Push*> pushes;    ///< the pushes that go with them
  std::unique_ptr<RegistryAccess> registry;
  /// Shared while the session lives: `cache prune` takes them exclusively.
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

  /// The recipe evaluated for a platform other than the build machine's (its
  /// `platform` reads that one), and the builder of its images.
  struct PlatformBuild {
    Evaluation ev;
    std::unique_ptr<Builder> builder;
  };
  /// By platform ("linux/arm64"): one for each platform a chosen target or
  /// push is built for besides the machine's own, which `ev` and `builder` serve.
  std::map<std::string, PlatformBuild> platform_builds;
  /// The cache's folder (--cache-dir or the default).
  std::filesystem::path cache_dir;
  /// An archive of a `:run` cache mount that --cache-from offers, and the
  /// registry cache it is in.
  struct CacheMountArchive {
    LayerBlob blob;
    Reference source;
  };
  /// By the image path the cache is mounted at; the first --cache-from that
  /// has one wins, as for steps.
  std::map<std::string, CacheMountArchive> cache_mount_archives;

  /// The platforms an image the recipe gives `recipe_platforms` is built
  /// for: --platform, else those; empty: one image for the machine's own.
  std::vector<Platform> platforms_of(const std::vector<Platform>& recipe_platforms) const;
  /// The graph and builder of `platform`'s evaluation.
  std::pair<const Graph*, Builder*> for_platform(const Platform& platform);
  /// Every builder: the machine's platform's, then the others'.
  std::vector<Builder*> builders();
  /// One platform's part of the build: its evaluation's graph, its builder,
  /// and the nodes of that graph the chosen targets and pushes need there.
  struct PlatformNodes {
    Platform platform;
    const Graph* graph = nullptr;
    Builder* builder = nullptr;
    std::vector<size_t> nodes;
  };
  /// Every platform built for, in the order first asked for (the machine's
  /// when none is), with what it builds.
  std::vector<PlatformNodes> by_platform();
  /// Builds every platform's chosen targets and pushes, and what they need,
  /// the platforms at once (Builder::prepare and Builder::build each); then,
  /// on that platform's thread, `built` with its builder, while the other
  /// platforms may still be building.
  void prepare(const std::function<void(Builder&)>& built);

private:
  /// Makes the uploader that early_uploads() feeds, and each push's meter.
  void push_early();
  /// For the builder of `graph`, `platform`'s evaluation: sends each layer to
  /// the registries of the pushes whose image on that platform is built on
  /// its step as soon as the step has stored it, while later steps still run.
  std::function<void(size_t, const LayerBlob&)> early_uploads(const Graph& graph, const Platform& platform);
  /// Seeds each `:run` cache folder this machine lacks from the archive
  /// --cache-from offers, before the first step that mounts it.
  void seed_cache_mounts(BuildSettings& settings);
  void choose_targets();
};

}  // namespace imgbuild::cli
