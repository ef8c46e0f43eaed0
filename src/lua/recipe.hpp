#pragma once
// Evaluating a recipe: the boundary between Lua and the C++ core. Nothing here
// exposes a Lua type; callers get a plain Graph or a RecipeError.
#include <filesystem>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "build/graph.hpp"

namespace imgbuild {

/// A recipe failed to load or evaluate. what() is complete and located:
/// "recipe.lua:7: copy: expected a non-empty string, got nil".
class RecipeError : public std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct RecipeOptions {
  std::filesystem::path recipe;               ///< as the user named it: errors use this spelling
  std::filesystem::path context;              ///< the build context, for inspect() and hash()
  std::map<std::string, std::string> params;  ///< --set NAME=VALUE
  std::vector<std::string> search_path;       ///< IMGBUILD_PATH entries
  bool debug = false;                         ///< tracebacks in error messages
  /// For exists() and cached(): whether the registry has the manifest of a
  /// normalised reference (one HEAD request); throws with the registry's
  /// message when it cannot tell. Unset, those functions fail: the evaluation
  /// has no registry access.
  std::function<bool(const std::string& normalised_ref)> exists;
  /// The platform this evaluation describes (the recipe's `platform`); the
  /// build machine's own is `platform.build`.
  Platform platform = Platform::host();
};

struct Evaluation {
  Graph graph;
  std::vector<std::string> params_used;  ///< names the recipe asked param() for
  std::string ci_tag;                    ///< `ci.tag` (the release built on a CI service), or ""
};

/// Runs the recipe in a fresh Lua state and returns what it describes. Each
/// call has its own state: many evaluations can live in one process.
Evaluation evaluate_recipe(const RecipeOptions& options);

}  // namespace imgbuild
