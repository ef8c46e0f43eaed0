// imgbuild rmi IMAGE...: images out of the store, damaged ones too, and then
// the blobs that neither another image nor the build cache needs.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>

#include "base/fs.hpp"
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

/// Whether `entry` is what `operand` names: its name, or (as `images` shows
/// it, or whole) its manifest's digest.
bool names(const std::string& operand, const IndexEntry& entry) {
  if (operand.empty()) return false;
  if (operand == entry.name) return true;
  if (!operand.starts_with("sha256:") || !entry.descriptor) return false;
  std::string_view hex = std::string_view(operand).substr(7);
  return hex.size() >= entry.descriptor->digest.short_hex().size() && entry.descriptor->digest.hex().starts_with(hex);
}

/// Each operand names an entry, and a digest names one image only (as with
/// docker and podman, removing every name of an image takes its names).
void check_operands(const std::vector<std::string>& operands, const std::vector<IndexEntry>& entries) {
  for (auto& operand : operands) {
    std::set<std::string> named;
    for (auto& e : entries)
      if (names(operand, e)) named.insert(e.name);
    if (named.empty())
      throw std::runtime_error("no image named " + operand + " in the store (imgbuild images lists them)");
    if (named.size() > 1)
      throw std::runtime_error(operand + " is the image of several names (" + join(named, ", ") +
                               "): remove them by name");
  }
}

}  // namespace

int cmd_rmi(const std::vector<std::string>& args) {
  Options options;
  std::vector<std::string> operands = parse_options(args, {kCacheOptions, Operands::NotDash}, options);
  if (operands.empty()) throw UsageError("rmi takes the images to remove: imgbuild rmi NAME...");
  fs::path cache_dir = options.cache_dir.value_or(default_cache_dir());
  Layout store = open_store();
  check_operands(operands, store.entries());

  // As `cache prune`: no build may be between writing a blob and naming it,
  // nor between finding a cached layer and using it.
  fs::create_directories(cache_dir);
  auto waiting = [] { report("waiting for running builds to finish"); };
  FileLock cache_lock(usage_lock_path(cache_dir), FileLock::Mode::Exclusive, waiting);
  FileLock store_lock(usage_lock_path(store.root()), FileLock::Mode::Exclusive, waiting);

  // The names go first, in one atomic write: interrupted after it, the store
  // lists what is left and holds at worst blobs that `cache prune` frees.
  std::vector<IndexEntry> removed = store.remove_entries([&](const IndexEntry& e) {
    return std::any_of(operands.begin(), operands.end(), [&](auto& operand) { return names(operand, e); });
  });
  std::set<Digest> candidates, cached;
  for (auto& e : removed)
    if (e.descriptor) candidates.merge(store.blobs_of(*e.descriptor));
  for (auto& step : StepCache(cache_dir).list())
    if (step.layer) cached.insert(step.layer->digest);
  auto [blobs, bytes] = store.remove_unused(candidates, cached);

  for (auto& e : removed) {
    std::string line = "removed " + (e.name.empty() ? std::string("an unnamed image") : e.name);
    if (e.descriptor) line += " (" + e.descriptor->digest.str() + ")";
    std::printf("%s\n", line.c_str());
  }
  std::printf("%zu blobs freed: %s\n", blobs, human_size(bytes).c_str());
  return 0;
}

}  // namespace imgbuild::cli
