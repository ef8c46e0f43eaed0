#pragma once
// Paths inside an image, taken lexically: no file system is looked at. What a
// path names once symlinks are followed is layer/resolve.hpp's question.
#include <compare>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace imgbuild {

/// A path inside an image, or inside any root a path must stay in (a build
/// context, a layer's tar), parsed once where a string enters: always
/// absolute and clean ("/", "/usr/bin"; never "//", "/./", "/../" or a
/// trailing "/"), so code that holds one never cleans it again.
class ImagePath {
public:
  /// The root, "/".
  ImagePath() : path_("/") {}
  /// `path` as an image's file system takes it: a relative path from "/",
  /// empty and "." segments dropped, ".." applied and never above "/"
  /// ("/a/./b/../c/" and "a/c" are "/a/c"; "/../x" is "/x").
  explicit ImagePath(std::string_view path);
  /// `path` as seen from the folder `workdir` (empty: "/"), as WORKDIR, COPY
  /// destinations and exec take it: a relative path from there.
  static ImagePath from(std::string_view workdir, std::string_view path);
  /// A path that must not leave its root (a build context path, a layer's
  /// member name): cleaned as the constructor does, but nullopt when a ".."
  /// would climb above the start.
  static std::optional<ImagePath> inside(std::string_view path);

  /// "/a/b".
  const std::string& str() const { return path_; }
  /// "a/b", "" for the root: the form of LayerEntry::path and of paths in
  /// the build context.
  std::string_view relative() const { return std::string_view(path_).substr(1); }
  /// "a", "b"; none for the root.
  std::vector<std::string> segments() const;
  bool is_root() const { return path_.size() == 1; }
  /// The last segment; "" for the root.
  std::string_view name() const { return std::string_view(path_).substr(path_.rfind('/') + 1); }
  /// The folder it is in; the root is its own.
  ImagePath parent() const;
  /// `path` below this one, cleaned (a leading '/' in it does not make it
  /// absolute; ".." still stops at "/"). One plain name, what a walk joins
  /// for every file, is appended without parsing.
  ImagePath join(std::string_view path) const;

  friend bool operator==(const ImagePath&, const ImagePath&) = default;
  friend std::strong_ordering operator<=>(const ImagePath&, const ImagePath&) = default;

private:
  std::string path_;
};

}  // namespace imgbuild
