#include "oci/image_path.hpp"

#include "base/text.hpp"

namespace imgbuild {

namespace {

/// The one lexical cleaner: `path` as "/a/b" in `out`, empty and "." segments
/// dropped and ".." applied. A ".." above the start stays there (`clamp`) or
/// fails the clean (false).
bool clean(std::string_view path, bool clamp, std::string& out) {
  out.clear();
  for (size_t i = 0; i <= path.size();) {
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    std::string_view seg = path.substr(i, j - i);
    i = j + 1;
    if (seg.empty() || seg == ".") continue;
    if (seg == "..") {
      if (out.empty() && !clamp) return false;
      if (!out.empty()) out.resize(out.rfind('/'));
      continue;
    }
    out += '/';
    out += seg;
  }
  if (out.empty()) out = "/";
  return true;
}

bool plain_name(std::string_view name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos;
}

}  // namespace

ImagePath::ImagePath(std::string_view path) { clean(path, true, path_); }

ImagePath ImagePath::from(std::string_view workdir, std::string_view path) {
  if (path.starts_with("/")) return ImagePath(path);
  return ImagePath(workdir).join(path);
}

std::optional<ImagePath> ImagePath::inside(std::string_view path) {
  ImagePath out;
  if (!clean(path, false, out.path_)) return std::nullopt;
  return out;
}

std::vector<std::string> ImagePath::segments() const { return split(path_, '/'); }

ImagePath ImagePath::parent() const {
  ImagePath out;
  if (size_t slash = path_.rfind('/'); slash > 0) out.path_.assign(path_, 0, slash);
  return out;
}

ImagePath ImagePath::join(std::string_view path) const {
  ImagePath out;
  if (plain_name(path)) {
    out.path_.reserve(path_.size() + 1 + path.size());
    out.path_.assign(path_, 0, is_root() ? 0 : path_.size());
    out.path_ += '/';
    out.path_ += path;
  } else {
    clean(path_ + "/" + std::string(path), true, out.path_);
  }
  return out;
}

}  // namespace imgbuild
