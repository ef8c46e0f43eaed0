#include "core/image_tree.hpp"

#include <archive.h>
#include <unistd.h>
#include <archive_entry.h>

#include <cerrno>
#include <deque>
#include <memory>
#include <stdexcept>

#include "core/fs.hpp"

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

/// "./a/b/" -> "/a/b": tar member names as tree keys.
std::string tree_path(std::string_view name) {
  while (name.starts_with("./")) name.remove_prefix(2);
  while (name.starts_with("/")) name.remove_prefix(1);
  while (name.ends_with("/")) name.remove_suffix(1);
  return "/" + std::string(name);
}

using Archive = std::unique_ptr<archive, decltype(&archive_read_free)>;

Archive open_layer(const std::filesystem::path& blob) {
  Archive a(archive_read_new(), archive_read_free);
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_filename(a.get(), blob.c_str(), 1 << 16) != ARCHIVE_OK)
    throw std::runtime_error(blob.string() + ": " + archive_error_string(a.get()));
  return a;
}

constexpr std::string_view kWhiteout = ".wh.";
constexpr std::string_view kOpaque = ".wh..wh..opq";

}  // namespace

void ImageTree::apply_layer_blob(const std::filesystem::path& blob) { pending_.emplace_back(blob); }

void ImageTree::apply(const std::vector<LayerEntry>& entries) {
  if (pending_.empty()) apply_entries(entries);
  else pending_.emplace_back(entries);
}

void ImageTree::settle() const {
  std::vector<Layer> layers;
  layers.swap(pending_);
  for (auto& layer : layers) {
    if (auto* blob = std::get_if<std::filesystem::path>(&layer)) apply_blob(*blob);
    else apply_entries(std::get<std::vector<LayerEntry>>(layer));
  }
}

void ImageTree::apply_blob(const std::filesystem::path& blob) const {
  Archive a = open_layer(blob);
  // Whiteouts hide what lower layers had, never what this layer adds, wherever
  // they stand in the tar: so they go first, then the entries.
  std::vector<std::string> removed, opaque;
  std::vector<std::pair<std::string, File>> added;
  std::vector<std::pair<std::string, std::string>> hardlinks;  // path, target
  archive_entry* e = nullptr;
  for (;;) {
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) throw std::runtime_error(blob.string() + ": " + archive_error_string(a.get()));
    const char* raw = archive_entry_pathname(e);
    if (!raw) continue;
    std::string path = tree_path(raw);
    std::string dir = path.substr(0, path.rfind('/'));
    std::string base = path.substr(path.rfind('/') + 1);
    if (base == kOpaque) {
      opaque.push_back(dir);
      continue;
    }
    if (base.starts_with(kWhiteout)) {
      removed.push_back(dir + "/" + base.substr(kWhiteout.size()));
      continue;
    }
    if (const char* target = archive_entry_hardlink(e)) {
      hardlinks.emplace_back(path, tree_path(target));
      continue;
    }
    File f;
    f.mode = archive_entry_perm(e);
    switch (archive_entry_filetype(e)) {
      case AE_IFREG: f.type = LayerEntry::Type::File; f.layer = blob; f.member = raw; break;
      case AE_IFDIR: f.type = LayerEntry::Type::Directory; break;
      case AE_IFLNK:
        f.type = LayerEntry::Type::Symlink;
        f.link_target = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
        break;
      default: continue;  // devices and fifos: nothing the doctor looks at
    }
    added.emplace_back(std::move(path), std::move(f));
  }
  auto erase_tree = [&](const std::string& path, bool keep_self) {
    std::string prefix = path + "/";
    for (auto it = files_.lower_bound(prefix); it != files_.end() && it->first.starts_with(prefix);)
      it = files_.erase(it);
    if (!keep_self) files_.erase(path);
  };
  for (auto& d : opaque) erase_tree(d, true);
  for (auto& r : removed) erase_tree(r, false);
  for (auto& [path, f] : added) {
    if (f.type != LayerEntry::Type::Directory) erase_tree(path, true);
    files_[path] = std::move(f);
  }
  for (auto& [path, target] : hardlinks)
    if (auto it = files_.find(target); it != files_.end()) files_[path] = it->second;
}

std::string ImageTree::contents(const File& file, size_t max) const {
  if (!file.source.empty()) {
    Fd fd = open_read(file.source);
    std::string out(max, '\0');
    size_t got = 0;
    while (got < max) {
      ssize_t n = ::read(fd.get(), out.data() + got, max - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno(file.source);
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    out.resize(got);
    return out;
  }
  if (file.layer.empty()) return "";
  Archive a = open_layer(file.layer);
  archive_entry* e = nullptr;
  while (archive_read_next_header(a.get(), &e) >= ARCHIVE_WARN) {
    const char* name = archive_entry_pathname(e);
    if (!name || file.member != name) continue;
    std::string out;
    char buf[1 << 16];
    for (la_ssize_t n; out.size() < max && (n = archive_read_data(a.get(), buf, sizeof buf)) > 0;)
      out.append(buf, std::min<size_t>(static_cast<size_t>(n), max - out.size()));
    return out;
  }
  throw std::runtime_error(file.layer.string() + ": " + file.member + " is missing from its layer");
}

void ImageTree::apply_entries(const std::vector<LayerEntry>& entries) const {
  for (const auto& e : entries) {
    std::string path = "/" + e.path;
    if (e.type != LayerEntry::Type::Directory) {
      // A file or link replacing a folder takes the folder's contents with it.
      std::string prefix = path + "/";
      for (auto it = files_.lower_bound(prefix); it != files_.end() && it->first.starts_with(prefix);)
        it = files_.erase(it);
    }
    files_[path] = File{e.type, e.mode, e.link_target, e.source, {}, {}};
  }
}

bool ImageTree::has_children(const std::string& path) const {
  settle();
  std::string prefix = path == "/" ? "/" : path + "/";
  auto it = files_.lower_bound(prefix);
  return it != files_.end() && it->first.starts_with(prefix);
}

std::optional<ImageTree::Resolved> ImageTree::resolve(const std::string& path) const {
  settle();
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
