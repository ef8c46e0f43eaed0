// imgbuild cache ls | prune: the build cache listed, or emptied (with the
// store's blobs no image needs).
#include <cstdio>
#include <ctime>
#include <filesystem>

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

/// "KEY  SIZE  LAST USED  STEP": a line per step entry, then per tree.
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
