#pragma once
// `imgbuild convert`: a Dockerfile as an equivalent recipe (imgbuild-recipe(5)).
// Each stage becomes a local image value built by a chain of methods, each
// instruction one method at the same place; ARGs become param() calls; what a
// recipe cannot say is kept as a "-- imgbuild convert: cannot express ..."
// comment where the instruction stood, so nothing is dropped unseen.
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "convert/dockerfile.hpp"

namespace imgbuild::convert {

/// How to convert.
struct ConvertOptions {
  std::string name = "Dockerfile";  ///< the file as the user named it, for errors ("NAME:LINE: ...")
  std::string target = "app";       ///< the image() name of the last stage
  /// The build context: whether it has a .dockerignore, and which local ADD
  /// sources are archives (by content); without it, by name alone.
  std::optional<std::filesystem::path> context;
};

/// The recipe for the Dockerfile `text`. Throws DockerfileError, naming
/// options.name and the line, for a Dockerfile Docker would refuse.
std::string dockerfile_to_recipe(std::string_view text, const ConvertOptions& options);

/// A valid image() name made of `text` (a folder's name): lowercased, other
/// characters as '-'; "app" when nothing usable is left.
std::string target_name(std::string_view text);

}  // namespace imgbuild::convert
