#include "oci/image_path.hpp"

namespace imgbuild {

std::optional<std::vector<std::string>> clean_segments(const std::string& path, bool clamp) {
  std::vector<std::string> parts;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    std::string seg = path.substr(i, j - i);
    if (seg == "..") {
      if (parts.empty() && !clamp) return std::nullopt;
      if (!parts.empty()) parts.pop_back();
    } else if (!seg.empty() && seg != ".") {
      parts.push_back(seg);
    }
    i = j + 1;
  }
  return parts;
}

std::string clean_image_path(const std::string& path) {
  std::vector<std::string> parts = *clean_segments(path, true);
  std::string out;
  for (auto& p : parts) out += "/" + p;
  return out.empty() ? "/" : out;
}

std::string resolve_image_path(const std::string& workdir, const std::string& path) {
  if (path.starts_with("/")) return clean_image_path(path);
  return clean_image_path((workdir.empty() ? std::string("/") : workdir) + "/" + path);
}

}  // namespace imgbuild
