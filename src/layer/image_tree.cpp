#include "layer/image_tree.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>

#include "base/text.hpp"
#include "layer/resolve.hpp"
#include "oci/image_path.hpp"

namespace imgbuild {

namespace {

/// A tar member name as a tree key ("./a/b/" is "/a/b"), cleaned as the
/// unpacker cleans it; nullopt for one that climbs out of the root, which the
/// unpacker refuses and no path of the image can name.
std::optional<std::string> tree_path(std::string_view name) {
  std::optional<ImagePath> path = ImagePath::inside(name);
  if (!path) return std::nullopt;
  return path->str();
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

using Node = std::pair<std::string, ImageTree::File>;

bool by_path(const Node& a, const Node& b) { return a.first < b.first; }
bool key_less(const Node& n, std::string_view path) { return n.first < path; }

const Node* find_in(const std::vector<Node>& nodes, std::string_view path) {
  auto it = std::lower_bound(nodes.begin(), nodes.end(), path, key_less);
  return it != nodes.end() && it->first == path ? &*it : nullptr;
}

bool listed(const std::vector<std::string>& sorted, std::string_view path) {
  return std::binary_search(sorted.begin(), sorted.end(), path, std::less<>());
}

/// Sorted by path; of the nodes a tar names twice, the later one.
std::vector<Node> unique_paths(std::vector<Node> nodes) {
  std::stable_sort(nodes.begin(), nodes.end(), by_path);
  size_t out = 0;
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (i + 1 < nodes.size() && nodes[i + 1].first == nodes[i].first) continue;
    if (out != i) nodes[out] = std::move(nodes[i]);
    ++out;
  }
  nodes.resize(out);
  return nodes;
}

}  // namespace

void ImageTree::apply_layer_blob(const std::filesystem::path& blob) { pending_.emplace_back(blob); }

void ImageTree::settle() const {
  std::vector<std::filesystem::path> layers;
  layers.swap(pending_);
  for (auto& blob : layers) apply_blob(blob);
}

void ImageTree::apply_blob(const std::filesystem::path& blob) const {
  Archive a = open_layer(blob);
  const auto layer = static_cast<uint32_t>(blobs_.size());
  blobs_.push_back(blob);
  // Whiteouts hide what lower layers had, never what this layer adds, wherever
  // they stand in the tar: merge() applies them to the lower layers only.
  std::vector<std::string> removed, opaque;
  std::vector<Node> added;
  std::vector<std::pair<std::string, std::string>> hardlinks;  // path, target
  archive_entry* e = nullptr;
  for (;;) {
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) throw std::runtime_error(blob.string() + ": " + archive_error_string(a.get()));
    const char* raw = archive_entry_pathname(e);
    if (!raw) continue;
    std::optional<std::string> cleaned = tree_path(raw);
    if (!cleaned) continue;
    std::string path = std::move(*cleaned);
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
      if (std::optional<std::string> to = tree_path(target)) hardlinks.emplace_back(path, std::move(*to));
      continue;
    }
    File f;
    f.mode = archive_entry_perm(e);
    switch (archive_entry_filetype(e)) {
      case AE_IFREG:
        f.type = LayerEntry::Type::File;
        f.where = raw;
        f.layer = layer;
        break;
      case AE_IFDIR:
        f.type = LayerEntry::Type::Directory;
        break;
      case AE_IFLNK:
        f.type = LayerEntry::Type::Symlink;
        f.where = archive_entry_symlink(e) ? archive_entry_symlink(e) : "";
        break;
      default:
        continue;  // devices and fifos: nothing the doctor looks at
    }
    added.emplace_back(std::move(path), std::move(f));
  }
  std::sort(removed.begin(), removed.end());
  std::sort(opaque.begin(), opaque.end());
  merge(unique_paths(std::move(added)), removed, opaque);
  // Hard links take what their targets are once the layer stands.
  std::vector<Node> linked;
  for (auto& [path, target] : hardlinks)
    if (const Node* n = find(target)) linked.emplace_back(std::move(path), n->second);
  if (!linked.empty()) merge(unique_paths(std::move(linked)), {}, {});
}

void ImageTree::merge(std::vector<Node> added, const std::vector<std::string>& removed,
                      const std::vector<std::string>& emptied) const {
  if (files_->empty()) {
    files_ = std::make_shared<std::vector<Node>>(std::move(added));
    return;
  }
  std::vector<Node>& old = *files_;
  // A path of the lower layers goes when this layer puts something at it or
  // removes it, or at one of its parents: a non-folder, a whiteout or an opaque marker.
  auto goes = [&](std::string_view path) {
    if (find_in(added, path) || listed(removed, path)) return true;
    for (size_t slash = path.find('/'); slash != std::string_view::npos; slash = path.find('/', slash + 1)) {
      std::string_view parent = path.substr(0, slash);
      const Node* n = find_in(added, parent);
      if ((n && n->second.type != LayerEntry::Type::Directory) || listed(removed, parent) || listed(emptied, parent))
        return true;
    }
    return false;
  };
  std::vector<bool> kept(old.size());
  size_t count = added.size();
  for (size_t i = 0; i < old.size(); ++i) {
    kept[i] = !goes(old[i].first);
    if (kept[i]) ++count;
  }
  // Moved when no copy of this tree shares the lower layers' nodes, copied otherwise.
  const bool own = files_.use_count() == 1;
  auto out = std::make_shared<std::vector<Node>>();
  out->reserve(count);
  auto next = added.begin();
  for (size_t i = 0; i < old.size(); ++i) {
    if (!kept[i]) continue;
    for (; next != added.end() && next->first < old[i].first; ++next) out->push_back(std::move(*next));
    out->push_back(own ? std::move(old[i]) : old[i]);
  }
  for (; next != added.end(); ++next) out->push_back(std::move(*next));
  files_ = std::move(out);
}

void ImageTree::stream_contents(const std::vector<const File*>& files, const std::function<void(size_t)>& begin,
                                const std::function<void(size_t, std::string_view)>& chunk) const {
  std::map<uint32_t, std::multimap<std::string_view, size_t>> wanted;  // by layer, then member name
  for (size_t i = 0; i < files.size(); ++i)
    if (files[i]->type == LayerEntry::Type::File) wanted[files[i]->layer].emplace(files[i]->where, i);
  for (auto& [layer, members] : wanted) {
    const std::filesystem::path& blob = blobs_.at(layer);
    Archive a = open_layer(blob);
    archive_entry* e = nullptr;
    std::set<std::string_view> found;
    char buf[1 << 16];
    while (archive_read_next_header(a.get(), &e) >= ARCHIVE_WARN) {
      const char* name = archive_entry_pathname(e);
      if (!name || archive_entry_hardlink(e)) continue;
      auto [first, last] = members.equal_range(name);
      if (first == last) continue;
      found.insert(first->first);
      for (auto it = first; it != last; ++it) begin(it->second);
      for (la_ssize_t n; (n = archive_read_data(a.get(), buf, sizeof buf)) > 0;)
        for (auto it = first; it != last; ++it) chunk(it->second, std::string_view(buf, size_t(n)));
    }
    for (auto& [member, i] : members)
      if (!found.count(member))
        throw std::runtime_error(blob.string() + ": " + std::string(member) + " is missing from its layer");
  }
}

const ImageTree::Node* ImageTree::find(std::string_view path) const { return find_in(*files_, path); }

std::string ImageTree::contents(const File& file, size_t max) const {
  if (file.type != LayerEntry::Type::File) return "";
  const std::filesystem::path& blob = blobs_.at(file.layer);
  Archive a = open_layer(blob);
  archive_entry* e = nullptr;
  while (archive_read_next_header(a.get(), &e) >= ARCHIVE_WARN) {
    const char* name = archive_entry_pathname(e);
    if (!name || file.where != name) continue;
    std::string out;
    char buf[1 << 16];
    for (la_ssize_t n; out.size() < max && (n = archive_read_data(a.get(), buf, sizeof buf)) > 0;)
      out.append(buf, std::min<size_t>(static_cast<size_t>(n), max - out.size()));
    return out;
  }
  throw std::runtime_error(blob.string() + ": " + file.where + " is missing from its layer");
}

bool ImageTree::has_children(const std::string& path) const {
  settle();
  std::string prefix = path == "/" ? "/" : path + "/";
  auto it = std::lower_bound(files_->begin(), files_->end(), prefix, key_less);
  return it != files_->end() && it->first.starts_with(prefix);
}

std::vector<ImageTree::Resolved> ImageTree::files_in(const std::string& path, bool recursive) const {
  std::vector<Resolved> out;
  std::optional<Resolved> folder = resolve(path);
  if (!folder || (folder->file && folder->file->type != LayerEntry::Type::Directory)) return out;
  std::string prefix = folder->path == "/" ? "/" : folder->path + "/";
  for (auto it = std::lower_bound(files_->begin(), files_->end(), prefix, key_less);
       it != files_->end() && it->first.starts_with(prefix); ++it)
    if (it->second.type == LayerEntry::Type::File &&
        (recursive || it->first.find('/', prefix.size()) == std::string::npos))
      out.push_back({it->first, &it->second});
  return out;
}

namespace {

/// RootWalk in the tree: a folder can stand only as the parent of its entries.
class TreeWalk : public RootWalk {
public:
  TreeWalk(const ImageTree& tree, const std::vector<Node>& nodes) : tree_(tree), nodes_(nodes) {}

  std::string path() const { return "/" + join(at(), "/"); }
  /// What stands where the walk is; nullptr for the root or a folder that
  /// is only a parent.
  const ImageTree::File* file() const { return file_; }

protected:
  void restart() override { file_ = nullptr; }

  int leave() override {
    std::string parent = path();
    parent.resize(parent.rfind('/'));
    const Node* n = find_in(nodes_, parent);
    file_ = n ? &n->second : nullptr;
    return 0;
  }

  int look(const std::string& name, Kind& kind, std::string& target) override {
    std::string next = at().empty() ? "/" + name : path() + "/" + name;
    looked_ = find_in(nodes_, next);
    if (!looked_) {
      if (!tree_.has_children(next)) return ENOENT;
      kind = Kind::Directory;
      return 0;
    }
    switch (looked_->second.type) {
      case LayerEntry::Type::Directory:
        kind = Kind::Directory;
        break;
      case LayerEntry::Type::Symlink:
        kind = Kind::Symlink;
        target = looked_->second.where;
        break;
      case LayerEntry::Type::File:
      case LayerEntry::Type::CharDevice:
      case LayerEntry::Type::BlockDevice:
      case LayerEntry::Type::Fifo:
        kind = Kind::Other;
        break;
    }
    return 0;
  }

  void enter(const std::string&, Kind) override { file_ = looked_ ? &looked_->second : nullptr; }

private:
  const ImageTree& tree_;
  const std::vector<Node>& nodes_;
  const Node* looked_ = nullptr;
  const ImageTree::File* file_ = nullptr;
};

}  // namespace

std::optional<ImageTree::Resolved> ImageTree::resolve(const std::string& path) const {
  settle();
  TreeWalk walk(*this, *files_);
  if (walk.walk(path, {})) return std::nullopt;
  return Resolved{walk.path(), walk.file()};
}

}  // namespace imgbuild
