#include "layer/image_tree.hpp"

#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>

#include "base/fs.hpp"
#include "base/text.hpp"
#include "layer/layer_stream.hpp"
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
  // A layer imgbuild wrote comes sorted: no sort, and none of its buffer.
  if (!std::is_sorted(nodes.begin(), nodes.end(), by_path)) std::stable_sort(nodes.begin(), nodes.end(), by_path);
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

/// Makes a Listing from a layer's members in tar order.
class ListingMaker {
public:
  /// Room for `members` members at once: no growth by doubling, which held
  /// up to twice a big copy's listing at the build's peak.
  void reserve(size_t members) { listing_->added.reserve(members); }
  /// One member: `raw` as the tar names it; `link` a symlink's target;
  /// `hardlink` a hard link's target, when it is one.
  void add(const char* raw, LayerEntry::Type type, uint32_t mode, std::string_view link, const char* hardlink) {
    std::optional<std::string> cleaned = tree_path(raw);
    if (!cleaned) return;
    std::string path = std::move(*cleaned);
    const size_t slash = path.rfind('/');
    const std::string_view dir = std::string_view(path).substr(0, slash);
    const std::string_view base = std::string_view(path).substr(slash + 1);
    if (base == kOpaque) {
      listing_->emptied.emplace_back(dir);
      return;
    }
    if (base.starts_with(kWhiteout)) {
      listing_->removed.push_back(std::string(dir) + "/" + std::string(base.substr(kWhiteout.size())));
      return;
    }
    if (hardlink) {
      if (std::optional<std::string> to = tree_path(hardlink)) listing_->hardlinks.emplace_back(path, std::move(*to));
      return;
    }
    ImageTree::File f;
    f.type = type;
    f.mode = mode;
    switch (type) {
      case LayerEntry::Type::File:
        f.where = raw;
        break;
      case LayerEntry::Type::Directory:
        break;
      case LayerEntry::Type::Symlink:
        f.where = link;
        break;
      default:
        return;  // devices and fifos: nothing a tree is asked about
    }
    listing_->added.emplace_back(std::move(path), std::move(f));
  }

  /// One member as libarchive read its header.
  void add_member(archive_entry* e) {
    const char* raw = archive_entry_pathname(e);
    if (!raw) return;
    LayerEntry::Type type = LayerEntry::Type::Fifo;  // anything the tree skips
    switch (archive_entry_filetype(e)) {
      case AE_IFREG:
        type = LayerEntry::Type::File;
        break;
      case AE_IFDIR:
        type = LayerEntry::Type::Directory;
        break;
      case AE_IFLNK:
        type = LayerEntry::Type::Symlink;
        break;
      default:
        break;
    }
    const char* link = archive_entry_symlink(e);
    add(raw, type, archive_entry_perm(e), link ? link : "", archive_entry_hardlink(e));
  }

  /// The listing, in the order trees apply it.
  std::shared_ptr<const ImageTree::Listing> finish() {
    listing_->added = unique_paths(std::move(listing_->added));
    std::sort(listing_->removed.begin(), listing_->removed.end());
    std::sort(listing_->emptied.begin(), listing_->emptied.end());
    return std::move(listing_);
  }

private:
  std::shared_ptr<ImageTree::Listing> listing_ = std::make_shared<ImageTree::Listing>();
};

namespace {

std::shared_ptr<const ImageTree::Listing> read_listing(const std::filesystem::path& blob) {
  LayerStream stream(blob, blob.string());
  LayerStream::TarReader a = stream.tar_reader();
  ListingMaker maker;
  archive_entry* e = nullptr;
  for (;;) {
    int r = archive_read_next_header(a.get(), &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) throw std::runtime_error(blob.string() + ": " + archive_error_string(a.get()));
    maker.add_member(e);
  }
  return maker.finish();
}

/// A listing kept on disk: a header naming the blob, then one record per
/// path: a tag (f file, d folder, l symlink, w removed, o emptied, h hard
/// link), the mode in octal, the path and the `where`, each ended by a NUL
/// (which no tar member name holds).
constexpr std::string_view kListingHeader = "imgbuild layer listing 1 ";

std::string encode_listing(const ImageTree::Listing& listing, const std::string& digest_hex) {
  std::string out = std::string(kListingHeader) + digest_hex + "\n";
  // Each record's size first: the text of a big copy is made in one
  // allocation, not grown (and its pages faulted in) a dozen times.
  constexpr size_t kRecordOverhead = 1 + 11 + 3;  // tag, up to 11 octal digits of a mode, three NULs
  size_t size = out.size();
  for (auto& [path, f] : listing.added) size += kRecordOverhead + path.size() + f.where.size();
  for (auto& path : listing.removed) size += kRecordOverhead + path.size();
  for (auto& path : listing.emptied) size += kRecordOverhead + path.size();
  for (auto& [path, target] : listing.hardlinks) size += kRecordOverhead + path.size() + target.size();
  out.reserve(size);
  auto record = [&](char tag, uint32_t mode, const std::string& path, const std::string& where) {
    char octal[11];
    char* digits = std::end(octal);
    do *--digits = static_cast<char>('0' + (mode & 7));
    while (mode >>= 3);
    out += tag;
    out.append(digits, std::end(octal));
    out += '\0';
    out += path;
    out += '\0';
    out += where;
    out += '\0';
  };
  for (auto& [path, f] : listing.added)
    record(f.type == LayerEntry::Type::Directory ? 'd'
           : f.type == LayerEntry::Type::Symlink ? 'l'
                                                 : 'f',
           f.mode, path, f.where);
  for (auto& path : listing.removed) record('w', 0, path, "");
  for (auto& path : listing.emptied) record('o', 0, path, "");
  for (auto& [path, target] : listing.hardlinks) record('h', 0, path, target);
  return out;
}

/// nullopt for a file that is not a whole listing of that blob.
std::optional<ImageTree::Listing> decode_listing(std::string_view text, const std::string& digest_hex) {
  std::string header = std::string(kListingHeader) + digest_hex + "\n";
  if (!text.starts_with(header)) return std::nullopt;
  text.remove_prefix(header.size());
  ImageTree::Listing listing;
  listing.added.reserve(static_cast<size_t>(std::count(text.begin(), text.end(), '\0')) / 3);  // three fields a record
  auto field = [&](std::string_view& out) {
    size_t end = text.find('\0');
    if (end == std::string_view::npos) return false;
    out = text.substr(0, end);
    text.remove_prefix(end + 1);
    return true;
  };
  while (!text.empty()) {
    char tag = text.front();
    text.remove_prefix(1);
    std::string_view octal, path, where;
    if (!field(octal) || !field(path) || !field(where)) return std::nullopt;
    uint32_t mode = 0;
    for (char c : octal) {
      if (c < '0' || c > '7') return std::nullopt;
      mode = mode * 8 + static_cast<uint32_t>(c - '0');
    }
    ImageTree::File f;
    f.mode = mode;
    f.where = where;
    switch (tag) {
      case 'f':
        f.type = LayerEntry::Type::File;
        break;
      case 'd':
        f.type = LayerEntry::Type::Directory;
        break;
      case 'l':
        f.type = LayerEntry::Type::Symlink;
        break;
      case 'w':
        listing.removed.emplace_back(path);
        continue;
      case 'o':
        listing.emptied.emplace_back(path);
        continue;
      case 'h':
        listing.hardlinks.emplace_back(path, where);
        continue;
      default:
        return std::nullopt;
    }
    listing.added.emplace_back(path, std::move(f));
  }
  return listing;
}

}  // namespace

LayerListings::LayerListings(std::filesystem::path dir) : dir_(std::move(dir)) {}

std::shared_ptr<const ImageTree::Listing> LayerListings::kept(const std::filesystem::path& blob) {
  const std::string hex = blob.filename().string();
  {
    std::lock_guard lock(mutex_);
    if (auto it = known_.find(hex); it != known_.end()) {
      if (it->second.pinned) return it->second.pinned;
      if (auto listing = it->second.used.lock()) return listing;
    }
  }
  if (dir_.empty()) return nullptr;
  std::string text;
  try {
    text = read_file(dir_ / hex);
  } catch (const std::exception&) {
    return nullptr;  // never kept, or unreadable: made again from the blob
  }
  std::optional<ImageTree::Listing> decoded = decode_listing(text, hex);
  if (!decoded) return nullptr;
  auto listing = std::make_shared<const ImageTree::Listing>(std::move(*decoded));
  std::lock_guard lock(mutex_);
  known_[hex].used = listing;
  hold(listing);
  return listing;
}

void LayerListings::hold(std::shared_ptr<const ImageTree::Listing> listing) {
  const size_t paths = listing->added.size();
  if (paths > kRecentPaths) return;
  recent_.push_back(std::move(listing));
  for (recent_paths_ += paths; recent_paths_ > kRecentPaths; recent_.pop_front())
    recent_paths_ -= recent_.front()->added.size();
}

void LayerListings::keep(const std::filesystem::path& blob, std::shared_ptr<const ImageTree::Listing> listing) {
  const std::string hex = blob.filename().string();
  bool saved = false;
  if (!dir_.empty()) {
    try {
      std::filesystem::create_directories(dir_);
      write_file_atomic(dir_ / hex, encode_listing(*listing, hex));
      saved = true;
    } catch (const std::exception&) {
      // Only a saving: then this build keeps the listing in memory.
    }
  }
  std::lock_guard lock(mutex_);
  known_[hex] = Known{listing, saved ? nullptr : listing};
  if (saved) hold(std::move(listing));
}

std::shared_ptr<const ImageTree::Listing> LayerListings::of(const std::filesystem::path& blob) {
  if (auto listing = kept(blob)) return listing;
  if (before_reading_) {
    before_reading_(blob);
    if (auto listing = kept(blob)) return listing;
  }
  auto listing = read_listing(blob);
  keep(blob, listing);
  return listing;
}

bool LayerListings::known(const std::filesystem::path& blob) { return kept(blob) != nullptr; }

void LayerListings::put(const std::filesystem::path& blob, const std::vector<LayerEntry>& entries) {
  ListingMaker maker;
  maker.reserve(entries.size());
  for (auto& e : entries) maker.add(e.path.c_str(), e.type, e.mode & 07777, e.link_target, nullptr);
  keep(blob, maker.finish());
}

void LayerListings::same_as(const std::filesystem::path& blob, const std::filesystem::path& tar) {
  keep(blob, of(tar));
}

void LayerListings::before_reading(std::function<void(const std::filesystem::path& blob)> hook) {
  before_reading_ = std::move(hook);
}

LayerListings::Recording::Recording(LayerListings& listings, std::filesystem::path blob)
    : listings_(&listings), blob_(std::move(blob)), maker_(std::make_unique<ListingMaker>()) {}
LayerListings::Recording::~Recording() = default;
LayerListings::Recording::Recording(Recording&&) noexcept = default;

void LayerListings::Recording::member(archive_entry* header) { maker_->add_member(header); }

void LayerListings::Recording::keep() { listings_->keep(blob_, maker_->finish()); }

ImageTree::ImageTree(std::shared_ptr<LayerListings> listings) : listings_(std::move(listings)) {}

void ImageTree::apply_layer_blob(const std::filesystem::path& blob) { pending_.emplace_back(blob); }

ImageTree::ImageTree(const ImageTree& other) {
  std::lock_guard lock(other.settling_);
  listings_ = other.listings_;
  files_ = other.files_;
  pending_ = other.pending_;
  blobs_ = other.blobs_;
}

void ImageTree::settle() const {
  std::lock_guard lock(settling_);
  std::vector<std::filesystem::path> layers;
  layers.swap(pending_);
  for (auto& blob : layers) apply_listing(*listings_->of(blob), blob);
}

void ImageTree::apply_listing(const Listing& listing, const std::filesystem::path& blob) const {
  const auto layer = static_cast<uint32_t>(blobs_.size());
  blobs_.push_back(blob);
  // Whiteouts hide what lower layers had, never what this layer adds, wherever
  // they stand in the tar: merge() applies them to the lower layers only.
  std::vector<Node> added = listing.added;
  for (auto& [path, f] : added)
    if (f.type == LayerEntry::Type::File) f.layer = layer;
  merge(std::move(added), listing.removed, listing.emptied);
  // Hard links take what their targets are once the layer stands.
  std::vector<Node> linked;
  for (auto& [path, target] : listing.hardlinks)
    if (const Node* n = find(target)) linked.emplace_back(path, n->second);
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

void ImageTree::stream_contents(const std::vector<const File*>& files, ContentSink& sink) const {
  std::map<uint32_t, std::multimap<std::string_view, size_t>> wanted;  // by layer, then member name
  for (size_t i = 0; i < files.size(); ++i)
    if (files[i]->type == LayerEntry::Type::File) wanted[files[i]->layer].emplace(files[i]->where, i);
  for (auto& [layer, members] : wanted) {
    const std::filesystem::path& blob = blobs_.at(layer);
    LayerStream stream(blob, blob.string());
    LayerStream::TarReader a = stream.tar_reader();
    archive_entry* e = nullptr;
    std::set<std::string_view> found;
    char buf[1 << 16];
    while (archive_read_next_header(a.get(), &e) >= ARCHIVE_WARN) {
      const char* name = archive_entry_pathname(e);
      if (!name || archive_entry_hardlink(e)) continue;
      auto [first, last] = members.equal_range(name);
      if (first == last) continue;
      found.insert(first->first);
      const uint64_t size = archive_entry_size_is_set(e) ? static_cast<uint64_t>(archive_entry_size(e)) : 0;
      for (auto it = first; it != last; ++it) sink.begin(it->second, size);
      la_ssize_t n;
      while ((n = archive_read_data(a.get(), buf, sizeof buf)) > 0)
        for (auto it = first; it != last; ++it) sink.chunk(it->second, std::string_view(buf, size_t(n)));
      if (n < 0) throw std::runtime_error(blob.string() + ": " + name + ": " + archive_error_string(a.get()));
      for (auto it = first; it != last; ++it) sink.end(it->second);
    }
    for (auto& [member, i] : members)
      if (!found.count(member))
        throw std::runtime_error(blob.string() + ": " + std::string(member) + " is missing from its layer");
  }
}

const ImageTree::Node* ImageTree::find(std::string_view path) const { return find_in(*files_, path); }

std::string ImageTree::contents(const File& file, size_t max, std::string_view magic) const {
  if (file.type != LayerEntry::Type::File) return "";
  const std::filesystem::path& blob = blobs_.at(file.layer);
  LayerStream stream(blob, blob.string());
  LayerStream::TarReader a = stream.tar_reader();
  archive_entry* e = nullptr;
  while (archive_read_next_header(a.get(), &e) >= ARCHIVE_WARN) {
    const char* name = archive_entry_pathname(e);
    if (!name || file.where != name) continue;
    // Read in place, into room for what the header says: a Go program is
    // megabytes, and growing a string for it by copies cost more than inflating it.
    const uint64_t announced = archive_entry_size_is_set(e) ? static_cast<uint64_t>(archive_entry_size(e)) : 0;
    std::string out;
    make_room(out, std::min<uint64_t>(announced, max));
    size_t got = 0;
    while (got < max) {
      if (got == out.size()) make_room(out, std::min(max, std::max<size_t>(out.size() * 2, 1 << 16)));
      // A file that must start with `magic` is looked at first: most are not.
      size_t want = out.size() - got;
      if (got == 0 && !magic.empty()) want = std::min<size_t>(want, 1 << 16);
      la_ssize_t n = archive_read_data(a.get(), out.data() + got, want);
      if (n <= 0) break;
      got += static_cast<size_t>(n);
      if (!std::string_view(out.data(), got).starts_with(magic.substr(0, got))) break;
    }
    out.resize(got);
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

  /// A folder the copy will make: nothing stands there yet.
  int make(const std::string&) override {
    looked_ = nullptr;
    file_ = nullptr;
    return 0;
  }

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

std::optional<std::string> ImageTree::place(const std::string& path, std::string& error) const {
  settle();
  ImagePath wanted = ImagePath::from("/", path);
  if (wanted.is_root()) return "/";
  TreeWalk walk(*this, *files_);
  std::string parent = wanted.parent().str();
  if (auto stop = walk.walk(parent, {.directory = true, .create = true})) {
    error = parent + (stop->error == ENOTDIR ? ": a file in the image stands on the way"
                      : stop->error == ELOOP ? ": a symlink loop in the image stands on the way"
                                             : ": a symlink to nothing in the image stands on the way");
    return std::nullopt;
  }
  std::string placed = (walk.path() == "/" ? "" : walk.path()) + "/" + std::string(wanted.name());
  // A last component that links to a folder is the folder, as Docker's copy finds it.
  if (std::optional<Resolved> last = resolve(placed); last && folder_mode(last->path)) return last->path;
  return placed;
}

std::optional<uint32_t> ImageTree::folder_mode(const std::string& path) const {
  settle();
  if (const Node* n = find(path)) {
    if (n->second.type != LayerEntry::Type::Directory) return std::nullopt;
    return n->second.mode;
  }
  if (path == "/" || has_children(path)) return 0755;
  return std::nullopt;
}

}  // namespace imgbuild
