#pragma once
// Runs a recipe in a fresh engine, in-process: evaluation, then a build of its
// targets into a private store. Recipes are written to a temporary folder that
// is also the build context; messages come back with that folder's path
// removed, so tests read "recipe.lua:3: ..." as a user would.
#include <filesystem>
#include <functional>
#include <map>
#include <string>

#include "base/fs.hpp"
#include "build/builder.hpp"
#include "lua/recipe.hpp"

namespace imgbuild::test {

class RecipeRun {
public:
  RecipeRun()
      : dir_(std::filesystem::temp_directory_path(), "imgbuild-lua-test-"),
        state_(std::filesystem::temp_directory_path(), "imgbuild-lua-state-") {}

  const std::filesystem::path& dir() const { return dir_.path(); }

  /// Writes a file into the context (parents created).
  void file(const std::string& rel, const std::string& content) {
    auto p = dir() / rel;
    std::filesystem::create_directories(p.parent_path());
    write_file_atomic(p, content);
  }

  /// Evaluates `recipe` (written as recipe.lua) and returns the description.
  Evaluation evaluate(const std::string& recipe, std::map<std::string, std::string> params = {},
                      std::vector<std::string> search_path = {}) {
    file("recipe.lua", recipe);
    return evaluate_recipe(
        RecipeOptions{dir() / "recipe.lua", dir(), std::move(params), std::move(search_path), false, exists});
  }

  /// The registry that exists() and cached() ask; unset, they fail as in an
  /// evaluation without registry access.
  std::function<bool(const std::string&)> exists;

  /// Evaluates, builds every target and runs the doctor on each: one line per
  /// finding, "error LOC: message" or "warning[check] LOC: message" (paths
  /// relative to the context), or the single error that stopped the build.
  std::vector<std::string> findings_of(const std::string& recipe) {
    std::vector<std::string> out;
    try {
      Evaluation ev = evaluate(recipe);
      Layout store(state_.path() / "store");
      BuildSettings settings;
      settings.context = dir();
      settings.cache_dir = state_.path() / "cache";
      Builder builder(ev.graph, store, settings);
      for (auto& t : ev.graph.targets) {
        for (auto& f : examine_built(builder.build(t.node), t.loc))
          out.push_back(relative((f.error ? "error " : "warning[" + f.check + "] ") + f.loc + ": " + f.message));
      }
    } catch (const std::exception& e) {
      out.push_back(relative(e.what()));
    }
    return out;
  }

  /// Evaluates and builds every target; returns the error message, "" on success.
  std::string error_of(const std::string& recipe, std::map<std::string, std::string> params = {}) {
    try {
      Evaluation ev = evaluate(recipe, std::move(params));
      Layout store(state_.path() / "store");
      BuildSettings settings;
      settings.context = dir();
      settings.cache_dir = state_.path() / "cache";
      Builder builder(ev.graph, store, settings);
      for (auto& t : ev.graph.targets) builder.build(t.node);
      return "";
    } catch (const std::exception& e) {
      return relative(e.what());
    }
  }

  /// Evaluates and builds every target; returns "LOC DESCRIPTION: cached" or
  /// "...: done" for each step that ended, in the order they ended.
  std::vector<std::string> steps_of(const std::string& recipe) {
    Evaluation ev = evaluate(recipe);
    Layout store(state_.path() / "store");
    BuildSettings settings;
    settings.context = dir();
    settings.cache_dir = cache_dir();
    std::vector<std::string> out;
    settings.progress = [&](const ProgressEvent& event) {
      if (auto* end = std::get_if<StepEnded>(&event))
        out.push_back(relative(end->loc + " " + end->description + ": " +
                               (end->status == StepStatus::Cached ? "cached" : "done")));
    };
    Builder builder(ev.graph, store, settings);
    for (auto& t : ev.graph.targets) builder.build(t.node);
    return out;
  }

  /// The step cache of every build this run makes.
  std::filesystem::path cache_dir() const { return state_.path() / "cache"; }

  /// `msg` with the context folder's path removed.
  std::string relative(std::string msg) const {
    std::string prefix = dir().string() + "/";
    for (size_t pos; (pos = msg.find(prefix)) != std::string::npos;) msg.erase(pos, prefix.size());
    return msg;
  }

private:
  TempDir dir_;    // the build context, holding recipe.lua
  TempDir state_;  // store and cache, outside the context
};

}  // namespace imgbuild::test
