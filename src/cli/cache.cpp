// imgbuild cache ls | prune: the build cache listed, or emptied (with the
// store's blobs no image needs).
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <map>

#include "base/text.hpp"
#include "build/builder.hpp"
#include "cli/commands.hpp"
#include "cli/local_store.hpp"
#include "cli/options.hpp"
#include "cli/report.hpp"
#include "store/step_cache.hpp"

namespace fs = std::filesystem;

namespace imgbuild::cli {
namespace {

/// What `cache ls` takes; `cache prune` takes these and its limits.
constexpr OptionSet kListOptions = kCacheOptions;
constexpr OptionSet kPruneOptions = kCacheOptions | OptionSet{Opt::KeepBytes, Opt::OlderThan};

/// "KEY  SIZE  LAST USED  STEP": a line per step entry, then per tree (its
/// own bytes, and those it shares with other trees), then the total, which
/// counts each layer and each file once.
int list(const fs::path& cache_dir) {
  StepCache cache(cache_dir);
  auto when = [](int64_t t) {
    char buf[32];
    std::tm tm{};
    ::localtime_r(&t, &tm);
    std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M", &tm);
    return std::string(buf);
  };
  std::printf("%-12s  %9s  %-16s  %s\n", "KEY", "SIZE", "LAST USED", "STEP");
  std::map<Digest, uint64_t> layers;
  auto entries = cache.list();
  for (auto& e : entries) {
    uint64_t size = e.layer ? e.layer->size : 0;
    if (e.layer) layers[e.layer->digest] = size;
    std::printf("%-12s  %9s  %-16s  %s\n", std::string(e.key.short_hex()).c_str(), human_size(size).c_str(),
                when(e.last_used).c_str(), e.step.c_str());
  }
  CacheTrees trees = cache_trees(cache_dir);
  uint64_t own = 0;
  for (auto& t : trees.trees) {
    own += t.bytes;
    std::string shared = t.shared_bytes ? " (and " + human_size(t.shared_bytes) + " shared with other trees)" : "";
    std::printf("%-12s  %9s  %-16s  %s%s\n", t.kind.c_str(), human_size(t.bytes).c_str(), when(t.last_used).c_str(),
                t.path.filename().c_str(), shared.c_str());
  }
  uint64_t layer_bytes = 0;
  for (auto& [digest, size] : layers) layer_bytes += size;
  std::printf("%zu steps; %s in all: %s of layers, %s of trees (%s of it shared between trees)\n", entries.size(),
              human_size(layer_bytes + trees.bytes).c_str(), human_size(layer_bytes).c_str(),
              human_size(trees.bytes).c_str(), human_size(trees.bytes - own).c_str());
  return 0;
}

int prune(const fs::path& cache_dir, const PruneOptions& options) {
  Layout store = open_store();
  PruneReport r = prune_cache(cache_dir, store, options, [] { report("waiting for running builds to finish"); });
  std::printf("removed %zu steps, %zu unpacked trees and %zu blobs: %s freed\n", r.entries, r.trees, r.blobs,
              human_size(r.bytes).c_str());
  return 0;
}

}  // namespace

int cmd_cache(const std::vector<std::string>& args) {
  if (args.empty()) throw UsageError("cache needs a command: ls or prune");
  const std::string& command = args[0];
  fs::path cache_dir = default_cache_dir();
  // The words after the subcommand are read first, with the options of `ls`
  // unless it is `prune`: a mistake there is reported before an unknown
  // subcommand is.
  Options options;
  parse_options({args.begin() + 1, args.end()},
                {command == "prune" ? kPruneOptions : kListOptions, Operands::None, "cache " + command + ": "},
                options);
  if (options.cache_dir) cache_dir = *options.cache_dir;
  if (command == "ls") return list(cache_dir);
  if (command == "prune") return prune(cache_dir, options.prune);
  throw UsageError("cache: unknown command '" + command + "' (ls or prune)");
}

}  // namespace imgbuild::cli
