#include "build/context.hpp"

#include "base/fs.hpp"
#include "base/interrupt.hpp"
#include "base/threads.hpp"
#include "layer/resolve.hpp"
#include "layer/unpack.hpp"
#include "oci/image_path.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <ranges>
#include <stdexcept>
#include <thread>
#include <unordered_map>

namespace imgbuild {

namespace fs = std::filesystem;

namespace {

bool has_glob(const std::string& s) { return s.find_first_of("*?[") != std::string::npos; }

/// A context-relative path, cleaned: "/a" and "./a/" are "a"; "" is the
/// context itself; nullopt for one that leaves the context.
std::optional<std::string> clean_context_path(const std::string& path) {
  std::optional<ImagePath> clean = ImagePath::inside(path);
  if (!clean) return std::nullopt;
  return std::string(clean->relative());
}

/// What an entry needs of a host path's lstat. A walk keeps this, not the
/// whole stat, for each name of every folder it is inside.
struct HostStat {
  mode_t mode = 0;
  uint64_t size = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

/// The lstat of `name` in the folder open as `at` (AT_FDCWD: a path);
/// nullopt, with errno set, when there is none.
std::optional<HostStat> lstat_at(int at, const char* name) {
  struct stat st {};
  if (::fstatat(at, name, &st, AT_SYMLINK_NOFOLLOW) != 0) return std::nullopt;
  return HostStat{st.st_mode, static_cast<uint64_t>(st.st_size), st.st_uid, st.st_gid};
}

std::runtime_error unreadable(const std::string& host, int error) {
  return std::runtime_error("cannot read " + host + ": " + std::strerror(error));
}

HostStat lstat_or_throw(const std::string& path) {
  auto st = lstat_at(AT_FDCWD, path.c_str());
  if (!st) throw unreadable(path, errno);
  return *st;
}

/// Permissions are normalised the way git stores them, so the same commit gives
/// the same layer on every machine whatever its umask: 0755 for directories and
/// executables, 0644 for other files.
uint32_t normalised_mode(mode_t mode) {
  if (S_ISDIR(mode)) return 0755;
  if (S_ISLNK(mode)) return 0777;
  return (mode & 0111) ? 0755 : 0644;
}

LayerEntry entry_for(const std::string& host, const HostStat& st, const ImagePath& image_path) {
  LayerEntry e;
  e.path = image_path.relative();
  e.mode = normalised_mode(st.mode);
  if (S_ISREG(st.mode)) {
    e.type = LayerEntry::Type::File;
    e.source = host;
    e.size = st.size;
  } else if (S_ISDIR(st.mode)) {
    e.type = LayerEntry::Type::Directory;
  } else if (S_ISLNK(st.mode)) {
    e.type = LayerEntry::Type::Symlink;
    std::error_code ec;
    e.link_target = fs::read_symlink(host, ec).string();
    if (ec) throw std::runtime_error("cannot read symlink " + host);
  } else {
    throw std::runtime_error(host + ": is " + file_kind(st.mode) + ": only files, folders and symlinks can be copied");
  }
  return e;
}

std::exception_ptr folder_error(const std::string& dir, int error) {
  return std::make_exception_ptr(std::runtime_error("cannot read folder " + dir + ": " + std::strerror(error)));
}

}  // namespace

/// A host folder's names in byte order (the layer's order does not depend on
/// the locale or the file system's), each with what its lstat says. `failed`
/// is the error of the folder (no names) or of the first name that could not
/// be stat'ed (the names before it): a walk raises it once it has visited
/// those, as when each name was stat'ed in turn.
struct Listing {
  std::vector<std::pair<std::string, HostStat>> names;
  std::exception_ptr failed;
};

namespace {

/// Lists and stats a folder, each name relative to the open folder (the
/// kernel resolves one name, not the whole path again), and closes it: a walk
/// holds no descriptor while it visits the names, whatever the depth.
Listing list_folder(const std::string& dir) {
  Listing out;
  std::unique_ptr<DIR, int (*)(DIR*)> d(::opendir(dir.c_str()), ::closedir);
  if (!d) {
    out.failed = folder_error(dir, errno);
    return out;
  }
  errno = 0;
  while (const dirent* de = ::readdir(d.get())) {
    std::string_view name = de->d_name;
    if (name != "." && name != "..") out.names.emplace_back(name, HostStat{});
  }
  if (errno != 0) {
    out.names.clear();
    out.failed = folder_error(dir, errno);
    return out;
  }
  std::sort(out.names.begin(), out.names.end(), [](auto& a, auto& b) { return a.first < b.first; });
  for (size_t i = 0; i < out.names.size(); ++i) {
    auto st = lstat_at(::dirfd(d.get()), out.names[i].first.c_str());
    if (!st) {
      out.failed = std::make_exception_ptr(unreadable(dir + "/" + out.names[i].first, errno));
      out.names.resize(i);
      break;
    }
    out.names[i].second = *st;
  }
  return out;
}

}  // namespace

/// Reads the folders of a tree for a walk on every core. The walk itself
/// stays serial, so its entries keep their depth-first order and its errors
/// their path order; but most of its time is the kernel's, listing and
/// stat'ing, and that is shared: a helper thread reads ahead, depth first,
/// the folders the walk will enter, and the walk reads one itself when it
/// gets there first, or another while it waits for one being read.
class FolderReader {
public:
  /// `enters(rel)`: whether the walk enters the sub-folder at `rel` (as the
  /// walk names it). One it does not foresee is read when the walk asks.
  explicit FolderReader(std::function<bool(const std::string& rel)> enters) : enters_(std::move(enters)) {
    if (std::thread::hardware_concurrency() > 1) helper_ = std::thread([this] { help(); });
  }
  ~FolderReader() { stop_threads(mutex_, stop_, changed_, {&helper_, 1}); }
  FolderReader(const FolderReader&) = delete;
  FolderReader& operator=(const FolderReader&) = delete;

  /// The listing of the folder `dir` at `rel` (each folder is taken once).
  Listing take(const std::string& dir, const std::string& rel) {
    std::unique_lock lock(mutex_);
    for (;;) {
      auto it = folders_.find(dir);
      if (it == folders_.end()) break;
      if (it->second.read) {
        ahead_ -= it->second.listing.names.size();
        changed_.notify_all();
        return std::move(it->second.listing);  // the entry stays: the folder is not read again
      }
      // Being read by the helper: read another one meanwhile.
      if (!read_next(lock)) changed_.wait(lock);
    }
    return std::move(read(lock, dir, rel).listing);
  }

private:
  struct Folder {
    bool read = false;  ///< false while being read
    Listing listing;
  };

  /// Reads `dir` (claimed here) unlocked, then queues the sub-folders the walk
  /// will enter, the first on top: the walk enters them in that order.
  Folder& read(std::unique_lock<std::mutex>& lock, const std::string& dir, const std::string& rel) {
    folders_.emplace(dir, Folder{});
    std::vector<std::pair<std::string, std::string>> next;
    Listing listing;
    lock.unlock();
    try {
      listing = list_folder(dir);
      for (auto& [name, st] : listing.names | std::views::reverse)
        if (S_ISDIR(st.mode)) {
          std::string child_rel = rel.empty() ? name : rel + "/" + name;
          if (enters_(child_rel)) next.emplace_back(dir + "/" + name, std::move(child_rel));
        }
    } catch (...) {
      // Out of memory: unclaimed, so that no one waits for it.
      lock.lock();
      folders_.erase(dir);
      changed_.notify_all();
      throw;
    }
    lock.lock();
    Folder& folder = folders_[dir];
    folder.read = true;
    folder.listing = std::move(listing);
    std::move(next.begin(), next.end(), std::back_inserter(todo_));
    changed_.notify_all();
    return folder;
  }

  /// Reads the folder on top of the queue not read yet; false when there is
  /// none, or when too much read is not taken yet (memory stays bounded).
  bool read_next(std::unique_lock<std::mutex>& lock) {
    while (!todo_.empty() && ahead_ < kMaxAhead) {
      auto [dir, rel] = std::move(todo_.back());
      todo_.pop_back();
      if (folders_.contains(dir)) continue;
      ahead_ += read(lock, dir, rel).listing.names.size();
      return true;
    }
    return false;
  }

  void help() {
    std::unique_lock lock(mutex_);
    try {
      while (!stop_)
        if (!read_next(lock)) changed_.wait(lock);
    } catch (...) {
      // Out of memory: the walk reads what is left itself.
    }
  }

  /// Names read ahead and not yet taken, at most.
  static constexpr size_t kMaxAhead = 1 << 16;
  std::function<bool(const std::string&)> enters_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<std::pair<std::string, std::string>> todo_;  ///< host path and rel of folders to read: a stack
  std::unordered_map<std::string, Folder> folders_;        ///< by host path: being read, read, or taken
  size_t ahead_ = 0;
  bool stop_ = false;
  std::thread helper_;
};

namespace {

/// Calls `each(name, host, st)` for every name in the host folder `dir` at
/// `rel`, from `reader`, then raises the listing's error if it has one.
template <class Each>
void for_each_name(FolderReader& reader, const std::string& dir, const std::string& rel, Each each) {
  // A context of a million files takes seconds to walk: Ctrl-C stops it.
  check_interrupt();
  Listing listing = reader.take(dir, rel);
  for (auto& [name, st] : listing.names) each(name, dir + "/" + name, st);
  if (listing.failed) std::rethrow_exception(listing.failed);
}

}  // namespace

BuildContext::BuildContext(fs::path root) : root_(fs::weakly_canonical(std::move(root))) {
  if (!fs::is_directory(root_)) throw std::runtime_error("build context " + root_.string() + " is not a directory");
  ignore_ = IgnoreRules::load(root_);
}

std::string BuildContext::relative(const fs::path& p) const {
  std::string rel = p.lexically_relative(root_).generic_string();
  return rel == "." ? "" : rel;
}

bool BuildContext::visible(const std::string& rel) const {
  if (rel.empty() || ignore_.empty() || !ignore_.excluded(rel)) return true;
  // An excluded folder can still be named when an exception re-includes
  // something inside it; add_tree then copies only what is included.
  return fs::is_directory(root_ / rel) && ignore_.must_descend(rel);
}

std::vector<CopyItem> BuildContext::resolve(const std::string& source) const {
  auto rel = clean_context_path(source);
  if (!rel) throw std::runtime_error(source + ": outside the build context");

  std::vector<std::string> matches;
  if (has_glob(*rel)) {
    // Walk only as deep as the pattern has segments; '*' never crosses '/'.
    size_t depth = static_cast<size_t>(std::count(rel->begin(), rel->end(), '/')) + 1;
    std::vector<std::pair<std::string, size_t>> stack{{"", 0}};
    while (!stack.empty()) {
      auto [dir, level] = stack.back();
      stack.pop_back();
      std::error_code ec;
      for (auto& de : fs::directory_iterator(dir.empty() ? root_ : root_ / dir, ec)) {
        std::string child = dir.empty() ? de.path().filename().string() : dir + "/" + de.path().filename().string();
        if (level + 1 == depth) {
          if (::fnmatch(rel->c_str(), child.c_str(), FNM_PATHNAME) == 0) matches.push_back(child);
        } else if (de.is_directory(ec) && !de.is_symlink(ec)) {
          stack.push_back({child, level + 1});
        }
      }
    }
    std::sort(matches.begin(), matches.end());
  } else {
    matches.push_back(*rel);
  }

  std::vector<CopyItem> items;
  for (auto& m : matches) {
    // Symlinks anywhere in the path are followed, as docker does, but the file
    // they lead to must be inside the context and not excluded, under its real
    // name as well as the name written: the context is all a recipe may read.
    std::error_code ec;
    fs::path host = fs::canonical(root_ / m, ec);
    if (ec) continue;  // missing, or a dangling symlink
    std::string real = relative(host);
    if (real == ".." || real.starts_with("../"))
      throw std::runtime_error(source + ": symlink points outside the build context");
    if (!visible(m) || !visible(real)) continue;
    require_copyable(real, lstat_or_throw(host.string()).mode);
    items.push_back({host, m.empty() ? root_.filename().string() : fs::path(m).filename().string()});
  }
  if (items.empty()) throw std::runtime_error("no such file in the build context: " + source);
  return items;
}

fs::path BuildContext::directory(const std::string& dir) const {
  auto rel = clean_context_path(dir);
  std::error_code ec;
  fs::path host = rel ? fs::canonical(root_ / *rel, ec) : fs::path();
  std::string inside = (rel && !ec) ? host.lexically_relative(root_).generic_string() : "..";
  if (inside == ".." || inside.starts_with("../")) throw std::runtime_error(dir + ": outside the build context");
  if (!fs::is_directory(host)) throw std::runtime_error(dir + ": no such folder in the build context");
  return host;
}

void BuildContext::add_tree(const fs::path& host_dir, const ImagePath& dest, bool in_context,
                            std::vector<LayerEntry>& out) const {
  // A folder is entered when not excluded, or when an exception may
  // re-include something inside it (walk below).
  FolderReader reader([&](const std::string& rel) {
    return !in_context || ignore_.empty() || !ignore_.excluded(rel) || ignore_.must_descend(rel);
  });
  walk(reader, host_dir.string(), in_context ? relative(host_dir) : std::string(), dest, in_context, out);
}

void BuildContext::walk(FolderReader& reader, const std::string& host_dir, const std::string& rel_dir,
                        const ImagePath& dest, bool in_context, std::vector<LayerEntry>& out) const {
  // Strings, not std::filesystem paths: a path object per name and per
  // comparison made most of the cost of planning a copy of many files.
  for_each_name(reader, host_dir, rel_dir, [&](const std::string& name, const std::string& host, const HostStat& st) {
    std::string rel = in_context ? (rel_dir.empty() ? name : rel_dir + "/" + name) : std::string();
    bool excluded = in_context && !ignore_.empty() && ignore_.excluded(rel);
    ImagePath image_path = dest.join(name);
    if (excluded) {
      // Walk an excluded folder only for what an exception re-includes, and
      // keep the folder's own entry only when something inside survived.
      if (S_ISDIR(st.mode) && ignore_.must_descend(rel)) {
        size_t before = out.size();
        out.push_back(entry_for(host, st, image_path));
        walk(reader, host, rel, image_path, in_context, out);
        if (out.size() == before + 1) out.pop_back();
      }
      return;
    }
    if (in_context) require_copyable(rel, st.mode);
    out.push_back(entry_for(host, st, image_path));
    if (S_ISDIR(st.mode)) walk(reader, host, rel, image_path, in_context, out);
  });
}

void require_copyable(const std::string& rel, mode_t mode) {
  if (!S_ISREG(mode) && !S_ISDIR(mode) && !S_ISLNK(mode))
    throw std::runtime_error(rel + " is " + file_kind(mode) +
                             ": a build context holds only files, folders and symlinks");
}

namespace {

/// Docker's COPY rules for what sources name (imgbuild-recipe(5) has their
/// table): several sources need a destination folder ("dir/"); a folder's
/// contents are copied, not the folder; a file goes to the destination, or
/// into it when it ends in "/" or is a folder in `image`; the destination is
/// found through the image's symlinks, and its missing folders are made.
/// `add_dir` appends a source folder's tree under an image path, `entry`
/// makes one source's entry at an image path.
template <class Item, class AddDir, class Entry>
std::vector<LayerEntry> place_sources(const CopyOp& op, const std::string& workdir, const ImageTree& image,
                                      const std::vector<Item>& items, AddDir add_dir, Entry entry) {
  bool dest_is_dir = op.dest.ends_with("/") || op.dest == "." || op.dest.ends_with("/.");
  if (items.size() > 1 && !dest_is_dir)
    throw std::runtime_error("copying " + std::to_string(items.size()) + " sources to " + op.dest +
                             ": the destination must be a directory ending in /");
  std::string why;
  std::optional<std::string> placed = image.place(ImagePath::from(workdir, op.dest).str(), why);
  if (!placed) throw std::runtime_error("copying to " + op.dest + ": " + why);
  ImagePath dest = ImagePath::from("/", *placed);
  // Docker: a folder the image has receives the sources inside it.
  // (The root, named without a trailing "/", stays refused below: "/.." is more likely a mistake.)
  if (!dest.is_root() && image.folder_mode(dest.str())) dest_is_dir = true;

  std::vector<LayerEntry> entries;
  ImagePath dest_dir = dest;  // the directory whose implied parents are created
  for (auto& item : items) {
    HostStat st = lstat_or_throw(item.host_path.string());
    if (S_ISDIR(st.mode)) {
      // Like docker, a directory's contents are copied, not the directory itself.
      add_dir(item, dest, entries);
      dest_is_dir = true;
    } else {
      ImagePath target = dest_is_dir ? dest.join(item.name) : dest;
      if (target.is_root()) throw std::runtime_error("cannot copy a file over /");
      entries.push_back(entry(item, st, target));
      if (!dest_is_dir) dest_dir = dest.parent();
    }
  }

  if (op.chown || op.chmod)
    for (auto& e : entries) {
      if (op.chown) {
        e.uid = op.chown->uid;
        e.gid = op.chown->gid;
      }
      if (op.chmod && e.type != LayerEntry::Type::Symlink) e.mode = *op.chmod;
    }

  // Sorted by path, as layers and step keys list them, in place: a context
  // may have a million files. One source's entries never share a path, so
  // the order among equal paths only matters, and a stable sort (with its
  // buffer as large as the list) is only paid, when there are several.
  auto by_path = [](const LayerEntry& a, const LayerEntry& b) { return a.path < b.path; };
  if (items.size() > 1)
    std::stable_sort(entries.begin(), entries.end(), by_path);
  else
    std::sort(entries.begin(), entries.end(), by_path);
  auto is_dir = [](const LayerEntry& e) { return e.type == LayerEntry::Type::Directory; };
  size_t kept = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (i + 1 < entries.size() && entries[i + 1].path == entries[i].path) {
      // Later sources replace earlier ones, but a file never replaces a folder
      // or the other way round: the layer would silently lose one of them.
      if (is_dir(entries[i]) != is_dir(entries[i + 1]))
        throw std::runtime_error("/" + entries[i].path + " is copied as a file and as a directory");
      continue;
    }
    if (kept != i) entries[kept] = std::move(entries[i]);
    ++kept;
  }
  entries.resize(kept);
  auto find = [&](const std::string& path) {
    auto it = std::lower_bound(entries.begin(), entries.end(), path,
                               [](const LayerEntry& e, const std::string& p) { return e.path < p; });
    return std::pair{it, it != entries.end() && it->path == path};
  };

  // Parents of the destination that the layer must create. The destination
  // directory itself takes the copy's owner, as docker's --chown does.
  auto add_parent = [&](const std::string& path, bool is_dest) {
    auto [at, found] = find(path);
    if (path.empty() || found) return;
    LayerEntry d;
    d.path = path;
    d.type = LayerEntry::Type::Directory;
    // A folder the image has keeps its mode (a /tmp stays 1777), as Docker's copy leaves it.
    d.mode = image.folder_mode("/" + path).value_or(0755);
    if (is_dest && op.chown) {
      d.uid = op.chown->uid;
      d.gid = op.chown->gid;
    }
    entries.insert(at, std::move(d));
  };
  std::string dir_rel(dest_dir.relative());
  if (dest_is_dir) add_parent(dir_rel, true);
  for (size_t slash = dir_rel.rfind('/'); slash != std::string::npos && slash > 0;
       slash = dir_rel.rfind('/', slash - 1))
    add_parent(dir_rel.substr(0, slash), false);
  if (!dest_is_dir) add_parent(dir_rel, false);

  for (auto& e : entries) {
    // A file standing where a directory must be would make the layer ambiguous.
    auto slash = e.path.rfind('/');
    if (slash == std::string::npos) continue;
    auto [parent, found] = find(e.path.substr(0, slash));
    if (found && !is_dir(*parent))
      throw std::runtime_error("/" + parent->path + " is copied as a file and as a directory");
  }
  return entries;
}

/// An entry of another image's file system as it is there: mode kept, owned
/// by root (docker's COPY --from without --chown).
LayerEntry image_entry(const std::string& host, const HostStat& st, const ImagePath& image_path) {
  LayerEntry e = entry_for(host, st, image_path);
  e.mode = st.mode & 07777;
  return e;
}

/// The entries of the folder `host_dir` of an image (or of an extracted
/// archive, whose owners are kept when `keep_owners`) placed under `dest`.
void add_image_tree(FolderReader& reader, const std::string& host_dir, const ImagePath& dest, bool keep_owners,
                    std::vector<LayerEntry>& out) {
  for_each_name(reader, host_dir, "", [&](const std::string& name, const std::string& host, const HostStat& st) {
    ImagePath image_path = dest.join(name);
    out.push_back(image_entry(host, st, image_path));
    if (keep_owners) {
      out.back().uid = st.uid;
      out.back().gid = st.gid;
    }
    if (S_ISDIR(st.mode)) add_image_tree(reader, host, image_path, keep_owners, out);
  });
}

}  // namespace

std::vector<LayerEntry> plan_copy(const CopyOp& op, const BuildContext& context, const std::string& workdir,
                                  const ImageTree& image, const std::vector<CopyItem>& files,
                                  const ExtractArchive& extract) {
  std::vector<CopyItem> items;
  size_t next_file = 0;
  if (op.remote) items.push_back(files.at(next_file++));
  for (auto& s : op.sources) {
    if (s.file_node) {
      items.push_back(files.at(next_file++));
    } else {
      auto resolved = context.resolve(s.context_path);
      items.insert(items.end(), resolved.begin(), resolved.end());
    }
  }
  if (op.extract_archives)
    for (auto& item : items)
      if (item.in_context && S_ISREG(lstat_or_throw(item.host_path.string()).mode) && is_tar_archive(item.host_path)) {
        item.host_path = extract(item.host_path);
        item.extracted = true;
      }
  if (op.remote && !op.chmod) {
    // Docker's ADD gives a fetched file mode 0600.
    CopyOp fetched = op;
    fetched.chmod = 0600;
    return plan_copy(fetched, context, workdir, image, files, extract);
  }
  return place_sources(
      op, workdir, image, items,
      [&](const CopyItem& item, const ImagePath& dest, std::vector<LayerEntry>& out) {
        if (!item.extracted) return context.add_tree(item.host_path, dest, item.in_context, out);
        FolderReader reader([](const std::string&) { return true; });
        add_image_tree(reader, item.host_path.string(), dest, true, out);
      },
      [](const CopyItem& item, const HostStat& st, const ImagePath& target) {
        return entry_for(item.host_path.string(), st, target);
      });
}

std::vector<CopyItem> copy_from_items(const CopyOp& op, const fs::path& root, const std::string& source_workdir) {
  RootDir image(root);
  // The host path of what a path names in the image, its symlinks resolved inside it.
  auto in_image = [&](const ImagePath& path) -> std::optional<fs::path> {
    std::optional<ImagePath> resolved = image.resolve(path.str());
    if (!resolved) return std::nullopt;
    return resolved->is_root() ? root : root / resolved->relative();
  };
  std::vector<CopyItem> items;
  for (auto& s : op.sources) {
    ImagePath path = ImagePath::from(source_workdir, s.context_path);
    std::vector<ImagePath> names{path};
    if (has_glob(path.str())) {
      // A pattern in the last component, matched in its (resolved) folder.
      names.clear();
      ImagePath dir = path.parent();
      std::string pattern(path.name());
      if (has_glob(dir.str()))
        throw std::runtime_error(s.context_path + ": patterns only in the last component of a path from another image");
      if (auto host_dir = in_image(dir); host_dir && fs::is_directory(*host_dir)) {
        for (auto& de : fs::directory_iterator(*host_dir))
          if (::fnmatch(pattern.c_str(), de.path().filename().c_str(), 0) == 0)
            names.push_back(dir.join(de.path().filename().string()));
        std::sort(names.begin(), names.end());
      }
    }
    for (auto& name : names)
      if (auto host = in_image(name)) items.push_back({*host, std::string(name.name()), false});
    if (names.empty() || items.empty()) throw std::runtime_error("no such file in the source image: " + s.context_path);
  }
  return items;
}

std::optional<std::vector<TreeSource>> copy_from_files(const CopyOp& op, const ImageTree& tree,
                                                       const std::string& source_workdir) {
  std::vector<TreeSource> files;
  for (auto& s : op.sources) {
    ImagePath path = ImagePath::from(source_workdir, s.context_path);
    if (has_glob(path.str())) return std::nullopt;
    std::optional<ImageTree::Resolved> resolved = tree.resolve(path.str());
    if (!resolved || !resolved->file || resolved->file->type != LayerEntry::Type::File) return std::nullopt;
    files.push_back({resolved->file, std::string(path.name())});
  }
  return files;
}

std::vector<LayerEntry> plan_copy_from(const CopyOp& op, const std::vector<CopyItem>& items, const std::string& workdir,
                                       const ImageTree& into) {
  return place_sources(
      op, workdir, into, items,
      [](const CopyItem& item, const ImagePath& dest, std::vector<LayerEntry>& out) {
        FolderReader reader([](const std::string&) { return true; });
        add_image_tree(reader, item.host_path.string(), dest, false, out);
      },
      [](const CopyItem& item, const HostStat& st, const ImagePath& target) {
        return image_entry(item.host_path, st, target);
      });
}

}  // namespace imgbuild
