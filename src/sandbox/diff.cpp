#include "sandbox/sandbox.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <set>

#include "base/fs.hpp"
#include "sandbox/rootless.hpp"
#include "sandbox/snapshot.hpp"

namespace imgbuild {

namespace fs = std::filesystem;

namespace {

/// Whether two regular files hold the same bytes. Size and mtime are not
/// enough: a step can rewrite a file within the same second, keeping its size.
bool same_bytes(const fs::path& a, const fs::path& b) {
  Fd fa(::open(a.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fa) throw_errno(a.string());
  Fd fb(::open(b.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!fb) throw_errno(b.string());
  auto fill = [](int fd, std::vector<char>& buf, const fs::path& what) {
    size_t got = 0;
    while (got < buf.size()) {
      ssize_t n = ::read(fd, buf.data() + got, buf.size() - got);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw_errno(what.string());
      if (n == 0) break;
      got += static_cast<size_t>(n);
    }
    return got;
  };
  std::vector<char> ba(1 << 16), bb(1 << 16);
  for (;;) {
    size_t na = fill(fa.get(), ba, a), nb = fill(fb.get(), bb, b);
    if (na != nb || std::memcmp(ba.data(), bb.data(), na) != 0) return false;
    if (na == 0) return true;
  }
}

/// The entries of a step, from either kind of run, under the rules both
/// share, so that a change gives the same entries whichever ran.
class Diff {
public:
  Diff(const RootStack& lower, const std::vector<std::string>& mount_points, const fs::path& whiteout_source)
      : lower_(lower), whiteout_source_(whiteout_source) {
    for (auto& m : mount_points) mount_points_.insert(m.starts_with("/") ? m.substr(1) : m);
  }

  /// A folder or file made only to mount on, which the image did not have.
  bool stub(const std::string& rel) const { return mount_points_.count(rel) && !lower_.find(rel); }

  /// The step's folder, file or symlink `rel`, found at `full`. `keep`: it
  /// is below an opaque folder, so it is in the layer even when the image's
  /// own is the same. A stub is in the layer only as the folder of an entry
  /// that is.
  void add(const fs::path& full, const std::string& rel, const struct stat& st, bool keep) {
    LayerEntry e;
    e.path = rel;
    e.mode = st.st_mode & 07777;
    e.uid = st.st_uid;
    e.gid = st.st_gid;
    e.xattrs = kept_xattrs(full);
    if (S_ISDIR(st.st_mode)) {
      e.type = LayerEntry::Type::Directory;
    } else if (S_ISLNK(st.st_mode)) {
      e.type = LayerEntry::Type::Symlink;
      e.link_target = fs::read_symlink(full).string();
    } else if (S_ISREG(st.st_mode)) {
      e.type = LayerEntry::Type::File;
      e.source = full;
      e.size = static_cast<uint64_t>(st.st_size);
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      // Kept, as Docker keeps them: the step's root is mounted nodev, so
      // the node opens nothing here, and where the image runs, the runtime's
      // device policy decides.
      e.type = S_ISCHR(st.st_mode) ? LayerEntry::Type::CharDevice : LayerEntry::Type::BlockDevice;
      e.device_major = major(st.st_rdev);
      e.device_minor = minor(st.st_rdev);
    } else if (S_ISFIFO(st.st_mode)) {
      e.type = LayerEntry::Type::Fifo;
    } else {
      throw std::runtime_error("/" + rel + ": a socket cannot be put in a layer");
    }
    bool is_stub = stub(rel);
    candidates_.push_back({std::move(e), keep && !is_stub, is_stub});
  }

  /// `rel` was deleted.
  void add_whiteout(const std::string& rel) {
    fs::path p(rel);
    add_empty((p.parent_path() / (".wh." + p.filename().string())).generic_string());
  }

  /// Folder `dir` hides the image's folder whole.
  void add_opaque_marker(const std::string& dir) { add_empty(dir + "/.wh..wh..opq"); }

  /// The entries, sorted by path. What the step left as the image has it
  /// (a folder above a change, a file rewritten with the same bytes) is left
  /// out, but for the folders a kept entry is in.
  std::vector<LayerEntry> finish() {
    std::vector<bool> unchanged(candidates_.size());
    std::set<std::string> needed;
    for (size_t i = 0; i < candidates_.size(); ++i) {
      unchanged[i] = candidates_[i].stub || (!candidates_[i].keep && same_as_lower(candidates_[i].entry));
      if (!unchanged[i])
        for (fs::path p = fs::path(candidates_[i].entry.path).parent_path(); !p.empty(); p = p.parent_path())
          needed.insert(p.generic_string());
    }
    std::vector<LayerEntry> entries;
    for (size_t i = 0; i < candidates_.size(); ++i) {
      LayerEntry& e = candidates_[i].entry;
      if (!unchanged[i] || (e.type == LayerEntry::Type::Directory && needed.count(e.path)))
        entries.push_back(std::move(e));
    }
    std::sort(entries.begin(), entries.end(), [](const LayerEntry& a, const LayerEntry& b) { return a.path < b.path; });
    return entries;
  }

private:
  struct Candidate {
    LayerEntry entry;
    bool keep = false;  // a whiteout, a marker or below an opaque folder: in the layer whatever the image has
    bool stub = false;  // made to mount on: in the layer only above a kept entry
  };

  void add_empty(const std::string& path) {
    candidates_.push_back({{path, LayerEntry::Type::File, 0644, 0, 0, whiteout_source_, 0, ""}, true, false});
  }

  bool same_as_lower(const LayerEntry& e) const {
    std::optional<fs::path> found = lower_.find(e.path);
    if (!found) return false;
    const fs::path& path = *found;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return false;
    if ((st.st_mode & 07777) != e.mode || st.st_uid != e.uid || st.st_gid != e.gid) return false;
    // setcap on a file the image has changes nothing but its xattrs.
    if (kept_xattrs(path) != e.xattrs) return false;
    switch (e.type) {
      case LayerEntry::Type::Directory:
        return S_ISDIR(st.st_mode);
      case LayerEntry::Type::Symlink:
        return S_ISLNK(st.st_mode) && fs::read_symlink(path).string() == e.link_target;
      case LayerEntry::Type::File:
        return S_ISREG(st.st_mode) && static_cast<uint64_t>(st.st_size) == e.size && same_bytes(e.source, path);
      case LayerEntry::Type::CharDevice:
      case LayerEntry::Type::BlockDevice:
        return (S_ISCHR(st.st_mode) ? LayerEntry::Type::CharDevice : LayerEntry::Type::BlockDevice) == e.type &&
               (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) && major(st.st_rdev) == e.device_major &&
               minor(st.st_rdev) == e.device_minor;
      case LayerEntry::Type::Fifo:
        return S_ISFIFO(st.st_mode);
    }
    return false;
  }

  const RootStack& lower_;
  fs::path whiteout_source_;
  std::set<std::string> mount_points_;  // relative to the root
  std::vector<Candidate> candidates_;
};

struct stat lstat_of(const fs::path& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) throw_errno(path.string());
  return st;
}

std::vector<std::string> sorted_names(const fs::path& dir) {
  std::vector<std::string> names;
  for (auto& de : fs::directory_iterator(dir)) names.push_back(de.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

/// The snapshot side of step_changes: the copy a step ran on, walked beside
/// the image root it was copied from.
class SnapshotWalk {
public:
  SnapshotWalk(Diff& diff, const fs::path& copy, const fs::path& lower)
      : diff_(diff), copy_(copy), lower_(lower), markers_(has_snapshot_marker(copy)) {}

  /// Folder `dir`, in both, holds what the image's did but for the changes.
  void children(const std::string& dir) {
    std::vector<std::string> now = sorted_names(copy_ / dir), before = sorted_names(lower_ / dir);
    for (auto& name : before)
      if (!std::binary_search(now.begin(), now.end(), name)) diff_.add_whiteout(join(dir, name));
    for (auto& name : now) path(join(dir, name));
  }

private:
  void path(const std::string& rel) {
    struct stat st = lstat_of(copy_ / rel), old{};
    bool had = ::lstat((lower_ / rel).c_str(), &old) == 0;
    if (!S_ISDIR(st.st_mode)) {
      diff_.add(copy_ / rel, rel, st, false);
    } else if (!had) {
      tree(rel, false);
    } else if (!S_ISDIR(old.st_mode) || (markers_ && !has_snapshot_marker(copy_ / rel))) {
      // Made where a file was, or deleted and made again: overlay makes such
      // a folder opaque, so nothing of the image's shows through it.
      diff_.add(copy_ / rel, rel, st, false);
      diff_.add_opaque_marker(rel);
      for (auto& name : sorted_names(copy_ / rel)) tree(join(rel, name), true);
    } else {
      diff_.add(copy_ / rel, rel, st, false);
      children(rel);
    }
  }

  /// `rel` and everything below it, all the step's.
  void tree(const std::string& rel, bool keep) {
    struct stat st = lstat_of(copy_ / rel);
    diff_.add(copy_ / rel, rel, st, keep);
    if (S_ISDIR(st.st_mode))
      for (auto& name : sorted_names(copy_ / rel)) tree(join(rel, name), keep);
  }

  Diff& diff_;
  const fs::path& copy_;
  const fs::path& lower_;
  bool markers_;  // the copy's folders carry snapshot_marker(): a folder without it is the step's
};

}  // namespace

std::vector<LayerEntry> overlay_diff(const fs::path& upper, const RootStack& lower,
                                     const std::vector<std::string>& mount_points, const fs::path& whiteout_source) {
  Diff diff(lower, mount_points, whiteout_source);
  const std::string opaque_xattr = rootless() ? "user.overlay.opaque" : "trusted.overlay.opaque";
  std::set<std::string, std::less<>> opaque;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(upper, fs::directory_options::none, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) throw std::runtime_error(upper.string() + ": " + ec.message());
    fs::path full = it->path();
    // Lexically: fs::relative resolves symlinks, which would turn a symlink
    // the step made into the path of its target.
    std::string rel = full.lexically_relative(upper).generic_string();
    struct stat st = lstat_of(full);
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
      diff.add_whiteout(rel);  // overlay's whiteout: the file was deleted
      continue;
    }
    // Every ancestor, as a prefix of rel: no path objects, so that a tree
    // thousands of folders deep does not cost cubic time.
    bool below_opaque = false;
    for (size_t slash = rel.rfind('/'); !opaque.empty() && !below_opaque && slash != std::string::npos && slash > 0;
         slash = rel.rfind('/', slash - 1))
      below_opaque = opaque.contains(std::string_view(rel).substr(0, slash));
    diff.add(full, rel, st, below_opaque);
    char v[4] = {};
    if (S_ISDIR(st.st_mode) && ::lgetxattr(full.c_str(), opaque_xattr.c_str(), v, sizeof v) == 1 && v[0] == 'y') {
      opaque.insert(rel);
      diff.add_opaque_marker(rel);
    }
  }
  return diff.finish();
}

std::vector<LayerEntry> step_changes(const SandboxSpec& spec, const SandboxResult& result,
                                     const std::vector<std::string>& mount_points, const fs::path& whiteout_source) {
  std::vector<std::string> all = result.mount_points;
  all.insert(all.end(), mount_points.begin(), mount_points.end());
  if (!result.snapshot) return overlay_diff(spec.upper, image_root_of(spec), all, whiteout_source);
  RootStack lower(spec.lower);
  Diff diff(lower, all, whiteout_source);
  SnapshotWalk(diff, spec.upper, spec.lower).children("");
  return diff.finish();
}

}  // namespace imgbuild
