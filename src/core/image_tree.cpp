#include "core/image_tree.hpp"

#include <deque>

namespace imgbuild {

namespace {

std::deque<std::string> components(const std::string& path) {
  std::deque<std::string> out;
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    if (j > i) out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

}  // namespace

void ImageTree::apply(const std::vector<LayerEntry>& entries) {
  for (const auto& e : entries) {
    std::string path = "/" + e.path;
    if (e.type != LayerEntry::Type::Directory) {
      // A file or link replacing a folder takes the folder's contents with it.
      std::string prefix = path + "/";
      for (auto it = files_.lower_bound(prefix); it != files_.end() && it->first.starts_with(prefix);)
        it = files_.erase(it);
    }
    files_[path] = File{e.type, e.mode, e.link_target, e.source};
  }
}

bool ImageTree::has_children(const std::string& path) const {
  std::string prefix = path == "/" ? "/" : path + "/";
  auto it = files_.lower_bound(prefix);
  return it != files_.end() && it->first.starts_with(prefix);
}

std::optional<ImageTree::Resolved> ImageTree::resolve(const std::string& path) const {
  constexpr int kMaxLinks = 40;  // as the kernel's ELOOP limit
  std::deque<std::string> todo = components(path);
  std::string current;  // "" is the root
  const File* file = nullptr;
  int links = 0;
  while (!todo.empty()) {
    std::string part = std::move(todo.front());
    todo.pop_front();
    if (part == ".") continue;
    if (part == "..") {
      current = current.substr(0, current.rfind('/'));
      file = nullptr;
      continue;
    }
    // Only folders can be walked through.
    if (file && file->type != LayerEntry::Type::Directory) return std::nullopt;
    std::string next = current + "/" + part;
    auto it = files_.find(next);
    if (it == files_.end()) {
      if (!has_children(next)) return std::nullopt;
      current = next;
      file = nullptr;
      continue;
    }
    if (it->second.type == LayerEntry::Type::Symlink) {
      if (++links > kMaxLinks) return std::nullopt;
      std::deque<std::string> target = components(it->second.link_target);
      todo.insert(todo.begin(), target.begin(), target.end());
      if (it->second.link_target.starts_with("/")) current.clear();
      file = nullptr;
      continue;
    }
    current = next;
    file = &it->second;
  }
  return Resolved{current.empty() ? "/" : current, file};
}

}  // namespace imgbuild
