#pragma once
// Paths inside an image, taken lexically: no file system is looked at.
#include <optional>
#include <string>
#include <vector>

namespace imgbuild {

/// Splits a path into cleaned segments ("./a//b/../c" -> a, c). A ".." above
/// the start either stays at the start (`clamp`, as in an image's file system)
/// or makes the path invalid (nullopt: it would leave the build context).
std::optional<std::vector<std::string>> clean_segments(const std::string& path, bool clamp);

/// Lexically normalises an absolute image path: "/a/./b/../c/" -> "/a/c".
/// ".." never climbs above "/".
std::string clean_image_path(const std::string& path);

/// `path` as the image sees it from `workdir` (empty: "/"): a relative path
/// is taken from there, as WORKDIR, COPY destinations and exec do; then cleaned.
std::string resolve_image_path(const std::string& workdir, const std::string& path);

}  // namespace imgbuild
