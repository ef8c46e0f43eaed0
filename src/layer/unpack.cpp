#include "layer/unpack.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "base/fs.hpp"
#include "base/interrupt.hpp"
#include "base/text.hpp"
#include "layer/layer.hpp"
#include "layer/layer_stream.hpp"
#include "layer/resolve.hpp"
#include "oci/image_path.hpp"

namespace imgbuild {

namespace {

constexpr size_t kBuffer = 1 << 20;
constexpr std::string_view kWhiteout = ".wh.";
constexpr std::string_view kOpaque = ".wh..wh..opq";
/// The prefix of AUFS's own metadata, which old Docker layers carry: hard-link
/// targets in .wh..wh.plnk/, .wh..wh.aufs, .wh..wh.orph/. The opaque marker
/// shares it and is the one such name that means something to an image.
constexpr std::string_view kAufsMeta = ".wh..wh.";

/// Whether `name` is AUFS metadata: not a file of the image, nor a whiteout
/// of one (no file can be called ".wh.<anything>"), so skipped, as Docker and
/// containerd skip it.
bool is_aufs_metadata(std::string_view name) { return name.starts_with(kAufsMeta) && name != kOpaque; }

using Components = std::vector<std::string>;
using ComponentSpan = std::span<const std::string>;

std::string child_path(const std::string& dir, std::string_view name) {
  return dir.empty() ? std::string(name) : dir + "/" + std::string(name);
}

/// A name from a layer as components below the root: cleaned as an image
/// path is, as Docker and containerd do ("/etc", "./etc" and "etc/" are all
/// "etc"), but one that climbs out of the root is refused. `what` names it in
/// errors.
Components normalise(std::string_view name, const std::string& what) {
  std::optional<ImagePath> path = ImagePath::inside(name);
  // A component too long is named before an escape that comes after it, even
  // one a later ".." drops: the faults in the order the name has them.
  for (size_t i = 0; i <= name.size();) {
    size_t j = std::min(name.find('/', i), name.size());
    if (j - i > NAME_MAX && ImagePath::inside(name.substr(0, j)))
      throw std::runtime_error(what + " has a component longer than 255 bytes");
    i = j + 1;
  }
  if (!path) throw std::runtime_error(what + " escapes the image root");
  // Checked here rather than left to the kernel, so the component walk, which
  // has no such limit, accepts exactly what openat2 does.
  if (path->str().size() > PATH_MAX) throw std::runtime_error(what + " is longer than 4095 bytes");
  return path->segments();
}

std::string archive_message(archive* a) {
  const char* msg = archive_error_string(a);
  return msg ? msg : "unreadable archive";
}

/// Applies the entries of one layer. Paths are resolved inside the root (an
/// entry's folder once for the entries that follow in it); the last component
/// is never followed, whatever stands there is replaced.
class LayerApplier {
public:
  LayerApplier(Fd root, const UnpackOptions& options)
      : root_(std::move(root), options.use_openat2), options_(options) {}

  void entry(archive* a, archive_entry* e, std::string_view name) {
    if (name.empty()) throw std::runtime_error("empty path");
    Components path = normalise(name, "path");
    // AUFS kept its metadata folders at the root only; below it, such a name
    // used as a folder stays an error, as every other whiteout name does.
    if (!path.empty() && is_aufs_metadata(path.front())) return;
    for (size_t i = 0; i + 1 < path.size(); ++i)
      if (path[i].starts_with(kWhiteout))
        throw std::runtime_error("invalid whiteout: " + quote(path[i]) + " is used as a directory");
    if (!path.empty() && path.back().starts_with(kWhiteout)) return whiteout(path);

    Meta meta = metadata(e);
    const char* hardlink = archive_entry_hardlink(e);
    mode_t type = hardlink ? 0 : archive_entry_filetype(e);
    if (path.empty()) {
      if (type != AE_IFDIR) throw std::runtime_error("only a directory can stand at the image root");
      finish_directory(e, root_.fd(), "", meta);
      return;
    }

    std::string joined = join(path, "/");
    mark_created(joined);
    const int parent = folder_of(joined, ComponentSpan(path).first(path.size() - 1));
    const std::string& last = path.back();
    if (hardlink) return link(parent, last, joined, hardlink);
    switch (type) {
      case AE_IFREG:
        return write_file(a, e, parent, last, joined, meta);
      case AE_IFDIR:
        return make_directory(e, parent, last, joined, meta);
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(e);
        clear(parent, last, joined, false);
        // Stored exactly as given: an absolute target means inside the image,
        // and only this module's resolver ever follows it.
        if (::symlinkat(target ? target : "", parent, last.c_str()) != 0) throw_errno("cannot create the symlink");
        return finish_node(e, parent, last, meta, false);
      }
      case AE_IFCHR:
      case AE_IFBLK:
        if (!options_.nodes)
          throw std::runtime_error("a device node: an archive holds only files, folders and links here");
        check_device_number(e);
        [[fallthrough]];
      case AE_IFIFO:
        if (!options_.nodes) throw std::runtime_error("a fifo: an archive holds only files, folders and links here");
        clear(parent, last, joined, false);
        if (::mknodat(parent, last.c_str(), type | 0600, archive_entry_rdev(e)) != 0) {
          // Device nodes need CAP_MKNOD; an unprivileged unpack goes without
          // them, as rootless container tools do.
          if (errno == EPERM && type != AE_IFIFO) return;
          throw_errno("cannot create the node");
        }
        return finish_node(e, parent, last, meta, true);
      default:
        throw std::runtime_error("unsupported entry type");
    }
  }

  /// Directories get their mode and mtime last, deepest first: their contents
  /// change their mtime, and a read-only one must still accept its contents.
  void finish() {
    for (auto it = dirs_.rbegin(); it != dirs_.rend(); ++it) {
      const auto& [path, meta] = *it;
      try {
        Fd dir = path.empty() ? open_dir_nofollow(root_.fd(), ".") : open_entry_dir(path);
        if (!dir) throw_errno("cannot open the directory");
        if (::fchmod(dir.get(), meta.mode) != 0) throw_errno("chmod");
        if (::futimens(dir.get(), meta.times) != 0) throw_errno("set times");
      } catch (const std::runtime_error& ex) {
        throw std::runtime_error("entry " + quote(path) + ": " + ex.what());
      }
    }
  }

private:
  struct Meta {
    mode_t mode;
    uid_t uid;
    gid_t gid;
    timespec times[2];  ///< atime, mtime: both the entry's mtime, so the result does not depend on the clock
  };

  static Meta metadata(archive_entry* e) {
    la_int64_t uid = archive_entry_uid(e), gid = archive_entry_gid(e);
    // (uid_t)-1 would mean "leave unchanged" to chown.
    if (uid < 0 || uid >= UINT32_MAX) throw std::runtime_error("uid " + std::to_string(uid) + " is out of range");
    if (gid < 0 || gid >= UINT32_MAX) throw std::runtime_error("gid " + std::to_string(gid) + " is out of range");
    timespec t{archive_entry_mtime(e), archive_entry_mtime_nsec(e)};
    return Meta{archive_entry_perm(e) & 07777, static_cast<uid_t>(uid), static_cast<gid_t>(gid), {t, t}};
  }

  /// Refuses a device number the kernel cannot hold (a 12-bit major, a 20-bit
  /// minor): makedev() would cut it down to another device, 0:0 among them,
  /// which overlayfs reads as a whiteout.
  static void check_device_number(archive_entry* e) {
    dev_t major = archive_entry_rdevmajor(e), minor = archive_entry_rdevminor(e);
    if (major > 0xfff || minor > 0xfffff)
      throw std::runtime_error("device number " + std::to_string(major) + ":" + std::to_string(minor) +
                               " is out of range (at most 4095:1048575)");
  }

  /// Records `path` and its parents as this layer's, so that an opaque marker
  /// or whiteout, wherever it comes in the tar, only removes lower layers' files.
  void mark_created(std::string path) {
    while (created_.insert(path).second) {
      size_t slash = path.rfind('/');
      if (slash == std::string::npos) break;
      path.resize(slash);
    }
  }

  /// Drops the pending metadata of a removed directory and everything below it.
  void forget_dirs(const std::string& path) {
    dirs_.erase(path);
    // Every path below starts with "path/", and '0' is the character after '/'.
    dirs_.erase(dirs_.lower_bound(path + "/"), dirs_.lower_bound(path + "0"));
  }

  void remove(int parent, const std::string& name, const std::string& path) {
    remove_tree_at(parent, name);
    forget_dirs(path);
  }

  /// Makes way for an entry at parent/name. Returns whether a directory stands
  /// there and was kept (`keep_dir`: the entry is a directory too).
  bool clear(int parent, const std::string& name, const std::string& path, bool keep_dir) {
    struct stat st;
    if (::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) return false;
      throw_errno("stat");
    }
    if (S_ISDIR(st.st_mode)) {
      if (keep_dir) return true;
      remove(parent, name, path);
    } else if (::unlinkat(parent, name.c_str(), 0) != 0) {
      throw_errno("cannot remove what stands there");
    }
    return false;
  }

  /// A descriptor of the directory `dir` (components below the root), made
  /// with its parents when missing and `create`. Throws std::system_error
  /// `cannot open directory "a/b": <reason>`, naming the path up to where it
  /// failed, with the errno.
  Fd open_dir(ComponentSpan dir, bool create) const {
    ResolveError error;
    Fd fd = root_.open_dir(dir, create, error);
    if (!fd)
      throw std::system_error(
          error.error, std::generic_category(),
          "cannot open directory " + quote(join(dir.first(std::min(error.component + 1, dir.size())), "/")));
    return fd;
  }

  /// The folder `dir` of the entry at `path`, made when missing. A tar lists
  /// a folder's entries one after another: the folder opened for the last
  /// entry serves the next one in it, without resolving its path again.
  /// Safe because an entry in a folder (even one that replaces a folder
  /// inside it) never changes what the folder's own path names; a whiteout
  /// could, and forgets it.
  int folder_of(const std::string& path, ComponentSpan dir) {
    std::string_view folder = std::string_view(path).substr(0, dir.empty() ? 0 : path.rfind('/'));
    if (!last_folder_ || folder != last_folder_path_) {
      last_folder_ = open_dir(dir, true);
      last_folder_path_ = folder;
    }
    return last_folder_.get();
  }

  Fd open_entry_dir(const std::string& path) const {
    Components c = split(path, '/');
    Fd parent = open_dir(ComponentSpan(c).first(c.size() - 1), false);
    Fd dir = open_dir_nofollow(parent.get(), c.back());
    if (!dir) throw_errno("cannot open the directory");
    return dir;
  }

  void write_file(archive* a, archive_entry* e, int parent, const std::string& name, const std::string& path,
                  const Meta& meta) {
    clear(parent, name, path, false);
    Fd fd(::openat(parent, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) throw_errno("cannot create the file");
    // Blocks come straight from libarchive's buffer, with their offsets: the
    // holes of a sparse file stay holes instead of being written out as zeros
    // (a few bytes of sparse map can describe terabytes).
    la_int64_t end = 0;
    for (;;) {
      const void* block;
      size_t size;
      la_int64_t offset;
      int rc = archive_read_data_block(a, &block, &size, &offset);
      if (rc == ARCHIVE_EOF) break;
      if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) throw std::runtime_error(archive_message(a));
      if (offset != end && ::lseek(fd.get(), offset, SEEK_SET) < 0) throw_errno("seek");
      write_all(fd.get(), block, size, "write");
      end = offset + static_cast<la_int64_t>(size);
    }
    if (archive_entry_size(e) > end && ::ftruncate(fd.get(), archive_entry_size(e)) != 0) throw_errno("truncate");
    // chown clears setuid, setgid and security.capability: it goes first.
    if (options_.preserve_owners && ::fchown(fd.get(), meta.uid, meta.gid) != 0) throw_errno("chown");
    restore_xattrs(e, fd.get(), "");
    if (::fchmod(fd.get(), meta.mode) != 0) throw_errno("chmod");
    if (::futimens(fd.get(), meta.times) != 0) throw_errno("set times");
  }

  void make_directory(archive_entry* e, int parent, const std::string& name, const std::string& path,
                      const Meta& meta) {
    if (!clear(parent, name, path, true) && ::mkdirat(parent, name.c_str(), 0700) != 0)
      throw_errno("cannot create the directory");
    Fd dir = open_dir_nofollow(parent, name);
    if (!dir) throw_errno("cannot open the directory");
    finish_directory(e, dir.get(), path, meta);
  }

  void finish_directory(archive_entry* e, int dir, const std::string& path, const Meta& meta) {
    if (options_.preserve_owners && ::fchown(dir, meta.uid, meta.gid) != 0) throw_errno("chown");
    restore_xattrs(e, dir, "");
    dirs_[path] = meta;
  }

  /// Owner, xattrs, mode and times of a symlink, device or fifo, through its
  /// parent and never following it: such nodes are not opened (opening a
  /// device or fifo has effects).
  void finish_node(archive_entry* e, int parent, const std::string& name, const Meta& meta, bool chmod) {
    if (options_.preserve_owners && ::fchownat(parent, name.c_str(), meta.uid, meta.gid, AT_SYMLINK_NOFOLLOW) != 0)
      throw_errno("chown");
    restore_xattrs(e, -1, "/proc/self/fd/" + std::to_string(parent) + "/" + name);
    if (chmod && ::fchmodat(parent, name.c_str(), meta.mode, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("chmod");
    if (::utimensat(parent, name.c_str(), meta.times, AT_SYMLINK_NOFOLLOW) != 0) throw_errno("set times");
  }

  /// Sets the entry's xattrs on `fd`, or else on `path` without following its
  /// last component. What the kernel or file system refuses as unsupported or
  /// not permitted (user.* on a symlink, security.* unprivileged) is skipped.
  /// Only those a layer keeps (layer_keeps_xattr) are set, so that a base
  /// image's file capabilities reach its steps; the others are dropped, as
  /// no layer imgbuild writes could carry them on: overlayfs's own state
  /// would steer an overlay built on this root, trusted.* and security.selinux
  /// are the host's policy, and an ACL names the host's users.
  static void restore_xattrs(archive_entry* e, int fd, const std::string& path) {
    const char* name;
    const void* value;
    size_t size;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
      std::string_view n = name;
      if (!layer_keeps_xattr(n)) continue;
      int rc = fd >= 0 ? ::fsetxattr(fd, name, value, size, 0) : ::lsetxattr(path.c_str(), name, value, size, 0);
      if (rc != 0 && errno != ENOTSUP && errno != EPERM) throw_errno("cannot set extended attribute " + quote(n));
    }
  }

  void link(int parent, const std::string& name, const std::string& path, std::string_view target_name) {
    std::string what = "hardlink target " + quote(target_name);
    Components target = normalise(target_name, what);
    if (target.empty()) throw std::runtime_error(what + " is a directory");
    Fd target_parent;
    try {
      target_parent = open_dir(ComponentSpan(target).first(target.size() - 1), false);
    } catch (const std::system_error& ex) {
      if (ex.code() != std::errc::no_such_file_or_directory) throw;
      throw std::runtime_error(what + " does not exist");
    }
    struct stat st;
    if (::fstatat(target_parent.get(), target.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) throw std::runtime_error(what + " does not exist");
      throw_errno("stat " + what);
    }
    if (S_ISDIR(st.st_mode)) throw std::runtime_error(what + " is a directory");
    struct stat here;
    if (::fstatat(parent, name.c_str(), &here, AT_SYMLINK_NOFOLLOW) == 0 && here.st_dev == st.st_dev &&
        here.st_ino == st.st_ino)
      return;  // already that file (a link to itself, or a repeated entry)
    clear(parent, name, path, false);
    // Flags 0: a symlink target is linked itself, never followed.
    if (::linkat(target_parent.get(), target.back().c_str(), parent, name.c_str(), 0) != 0)
      throw_errno("cannot create the hardlink");
  }

  void whiteout(const Components& path) {
    last_folder_ = Fd();
    const std::string& name = path.back();
    std::string_view target = std::string_view(name).substr(kWhiteout.size());
    if (is_aufs_metadata(name)) return;
    if (name != kOpaque) {
      if (target.empty()) throw std::runtime_error("invalid whiteout: no name after \".wh.\"");
      if (target == "." || target == "..") throw std::runtime_error("invalid whiteout: it names " + quote(target));
    }
    ComponentSpan dir = ComponentSpan(path).first(path.size() - 1);
    Fd parent;
    try {
      parent = open_dir(dir, false);
    } catch (const std::system_error& ex) {
      if (ex.code() == std::errc::no_such_file_or_directory) return;  // nothing below to hide
      throw;
    }
    std::string dir_path = join(dir, "/");
    if (name == kOpaque) return prune(parent.get(), dir_path);
    std::string t(target), target_path = child_path(dir_path, target);
    if (!created_.contains(target_path)) return remove(parent.get(), t, target_path);
    // This layer made it: only what lower layers left inside it goes.
    if (Fd sub = open_dir_nofollow(parent.get(), t)) prune(sub.get(), target_path);
  }

  /// Removes from directory `dir` (at `dir_path`) whatever this layer did not
  /// create, recursing into the directories it did.
  void prune(int dir, const std::string& dir_path) {
    std::vector<std::string> names;
    {
      Fd fd(::openat(dir, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!fd) throw_errno("cannot open directory " + quote(dir_path));
      std::unique_ptr<DIR, int (*)(DIR*)> d(::fdopendir(fd.get()), ::closedir);
      if (!d) throw_errno("cannot read directory " + quote(dir_path));
      fd.release();
      while (dirent* de = ::readdir(d.get()))
        if (std::string_view n = de->d_name; n != "." && n != "..") names.emplace_back(n);
    }
    for (const std::string& name : names) {
      std::string path = child_path(dir_path, name);
      if (!created_.contains(path)) {
        remove(dir, name, path);
      } else if (Fd sub = open_dir_nofollow(dir, name)) {
        prune(sub.get(), path);
      }
    }
  }

  RootDir root_;
  const UnpackOptions& options_;
  std::unordered_set<std::string> created_;  ///< paths this layer made, with their parents
  std::map<std::string, Meta> dirs_;         ///< directories waiting for their mode and times
  Fd last_folder_;                           ///< the folder of the last entry (see folder_of)
  std::string last_folder_path_;
};

using ArchivePtr = std::unique_ptr<archive, int (*)(archive*)>;

/// A tar reader of a layer in memory or an archive file. Layers: the
/// compressions OCI layers use. `archives`: also those Docker's ADD extracts
/// (bzip2, xz). In-process only (ARCHIVE_WARN would mean an outside
/// program); tar formats only (ustar, pax, GNU): anything else is not a
/// layer. Layer blobs on disk are read through TarFeed instead.
ArchivePtr new_reader(const std::string& label, bool archives = false) {
  ArchivePtr a(archive_read_new(), archive_read_free);
  if (!a) throw UnpackError(label + ": libarchive: out of memory");
  if (archive_read_support_filter_gzip(a.get()) != ARCHIVE_OK ||
      archive_read_support_filter_zstd(a.get()) != ARCHIVE_OK ||
      (archives && (archive_read_support_filter_bzip2(a.get()) != ARCHIVE_OK ||
                    archive_read_support_filter_xz(a.get()) != ARCHIVE_OK)) ||
      archive_read_support_format_tar(a.get()) != ARCHIVE_OK)
    throw UnpackError(label + ": libarchive: " + archive_message(a.get()));
  return a;
}

void apply_archive(archive* a, const std::filesystem::path& root, const std::string& label,
                   const UnpackOptions& options) {
  Fd root_fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!root_fd) throw UnpackError(label + ": cannot open " + root.string() + ": " + std::strerror(errno));
  LayerApplier applier(std::move(root_fd), options);
  for (;;) {
    check_interrupt();
    archive_entry* e = nullptr;
    int rc = archive_read_next_header(a, &e);
    if (rc == ARCHIVE_EOF) break;
    // ARCHIVE_WARN is a name not valid in the locale's charset, or a malformed
    // extension libarchive skipped: the entry itself is usable.
    if (rc != ARCHIVE_OK && rc != ARCHIVE_WARN) throw UnpackError(label + ": " + archive_message(a));
    if (options.on_member) options.on_member(e);
    const char* name = archive_entry_pathname(e);
    if (options.only && !options.only->contains(name ? name : "")) continue;
    try {
      applier.entry(a, e, name ? name : "");
    } catch (const std::runtime_error& ex) {
      throw UnpackError(label + ": entry " + quote(name ? name : "") + ": " + ex.what());
    }
  }
  try {
    applier.finish();
  } catch (const std::runtime_error& ex) {
    throw UnpackError(label + ": " + ex.what());
  }
}

/// A layer blob's tar stream (LayerStream) for a tar reader, hashing every
/// byte on the way when asked: a layer's diff_id comes from the same single
/// read that unpacks it. Its errors are UnpackErrors.
class TarFeed {
public:
  /// The layer's blob (as it arrives, when it is still arriving); with
  /// `hashed`, the stream's sha256 too.
  TarFeed(const UnpackLayer& layer, bool hashed) try
      : stream_(layer.incoming ? LayerStream(layer.incoming, layer.label) : LayerStream(layer.blob, layer.label)) {
    if (hashed) stream_.hash_into(hash_);
  } catch (const std::runtime_error& e) {
    throw UnpackError(e.what());
  }

  /// A tar reader on the stream; it must go before this feed does.
  ArchivePtr reader() try { return stream_.tar_reader(); } catch (const std::runtime_error& e) {
    throw UnpackError(e.what());
  }

  /// Reads what the tar reader left (the padding after its end) and returns the whole stream.
  TarStream finish() try {
    while (!stream_.next().empty()) {
    }
    return {stream_.size(), hash_.finish()};
  } catch (const std::runtime_error& e) {
    throw UnpackError(e.what());
  }

private:
  LayerStream stream_;
  Sha256 hash_;
};

}  // namespace

DiffIdMismatch::DiffIdMismatch(const std::string& label, Digest expected_id, Digest actual_id)
    : UnpackError(label + ": the uncompressed layer is " + actual_id.str() + ", but the image's config gives diff_id " +
                  expected_id.str()),
      expected(std::move(expected_id)),
      actual(std::move(actual_id)) {}

bool is_tar_archive(const std::filesystem::path& file) {
  ArchivePtr a = new_reader(file.string(), true);
  archive_entry* e = nullptr;
  return archive_read_open_filename(a.get(), file.c_str(), kBuffer) == ARCHIVE_OK &&
         archive_read_next_header(a.get(), &e) == ARCHIVE_OK;
}

void extract_archive(const std::filesystem::path& root, const std::filesystem::path& archive, const std::string& label,
                     const UnpackOptions& options) {
  ArchivePtr a = new_reader(label, true);
  if (archive_read_open_filename(a.get(), archive.c_str(), kBuffer) != ARCHIVE_OK)
    throw UnpackError(label + ": " + archive_message(a.get()));
  apply_archive(a.get(), root, label, options);
}

uint64_t apply_layer(const std::filesystem::path& root, const std::filesystem::path& blob, const std::string& label,
                     const UnpackOptions& options) {
  return apply_layer(root, UnpackLayer{blob, label}, options);
}

uint64_t apply_layer(const std::filesystem::path& root, const UnpackLayer& layer, const UnpackOptions& options) {
  TarFeed stream(layer, layer.diff_id.has_value());
  ArchivePtr a = stream.reader();
  apply_archive(a.get(), root, layer.label, options);
  TarStream whole = stream.finish();
  if (layer.diff_id && whole.digest != *layer.diff_id) throw DiffIdMismatch(layer.label, *layer.diff_id, whole.digest);
  return whole.size;
}

void apply_layer(const std::filesystem::path& root, std::span<const unsigned char> data, const std::string& label,
                 const UnpackOptions& options) {
  ArchivePtr a = new_reader(label);
  if (archive_read_open_memory(a.get(), data.data(), data.size()) != ARCHIVE_OK)
    throw UnpackError(label + ": " + archive_message(a.get()));
  apply_archive(a.get(), root, label, options);
}

TarStream read_tar_stream(const std::filesystem::path& blob) {
  return TarFeed(UnpackLayer{blob, blob.string()}, true).finish();
}

void unpack_image(const std::filesystem::path& root, const std::vector<UnpackLayer>& layers,
                  const UnpackOptions& options) {
  if (::mkdir(root.c_str(), 0755) != 0 || ::chmod(root.c_str(), 0755) != 0)
    throw UnpackError("cannot create " + root.string() + ": " + std::strerror(errno));
  try {
    for (const auto& layer : layers) apply_layer(root, layer, options);
  } catch (...) {
    // The layer's error is the one to report; a failed cleanup cannot add to it.
    try {
      remove_tree(root);
    } catch (const std::runtime_error&) {
    }
    throw;
  }
}

void link_tree(const std::filesystem::path& from, const std::filesystem::path& to) {
  namespace fs = std::filesystem;
  auto make_dir = [](const fs::path& dir, const struct stat& st) {
    if (::mkdir(dir.c_str(), 0700) != 0) throw_errno("cannot create " + dir.string());
    // Owner first: chown clears setuid and setgid bits.
    if (::lchown(dir.c_str(), st.st_uid, st.st_gid) != 0 && errno != EPERM) throw_errno("chown " + dir.string());
    if (::chmod(dir.c_str(), st.st_mode & 07777) != 0) throw_errno("chmod " + dir.string());
  };
  struct stat st {};
  if (::lstat(from.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) throw_errno("not a directory: " + from.string());
  make_dir(to, st);
  for (auto it = fs::recursive_directory_iterator(from); it != fs::recursive_directory_iterator(); ++it) {
    fs::path target = to / it->path().lexically_relative(from);
    if (::lstat(it->path().c_str(), &st) != 0) throw_errno("stat " + it->path().string());
    if (S_ISDIR(st.st_mode)) {
      make_dir(target, st);
    } else if (::link(it->path().c_str(), target.c_str()) != 0) {
      throw_errno("cannot link " + it->path().string());
    }
  }
}

namespace {

/// Makes the file `ours` (lstat `st`) of a root a link to `theirs` of its
/// donor root when it is a file one layer wrote (one link) with the same
/// bytes, mode, owner and modification time, and neither has extended
/// attributes. The folders on the way to both are the caller's to check.
/// Returns the bytes now shared.
uint64_t share_if_identical(const std::filesystem::path& ours, const struct stat& st,
                            const std::filesystem::path& theirs) {
  auto no_xattrs = [](const std::filesystem::path& p) { return ::llistxattr(p.c_str(), nullptr, 0) == 0; };
  struct stat other {};
  if (!S_ISREG(st.st_mode) || st.st_nlink != 1 || st.st_size == 0 || ::lstat(theirs.c_str(), &other) != 0 ||
      !S_ISREG(other.st_mode) || st.st_size != other.st_size || st.st_mode != other.st_mode ||
      st.st_uid != other.st_uid || st.st_gid != other.st_gid || st.st_mtim.tv_sec != other.st_mtim.tv_sec ||
      st.st_mtim.tv_nsec != other.st_mtim.tv_nsec || !no_xattrs(ours) || !no_xattrs(theirs) ||
      sha256_file(ours) != sha256_file(theirs))
    return 0;
  // Linked beside and renamed over: the file is never missing. A donor
  // file at the link limit stays unshared.
  std::filesystem::path temp = ours;
  temp += ".imgbuild-share";
  if (::link(theirs.c_str(), temp.c_str()) != 0) return 0;
  if (::rename(temp.c_str(), ours.c_str()) != 0) {
    int error = errno;
    ::unlink(temp.c_str());
    errno = error;
    throw_errno("cannot replace " + ours.string());
  }
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

}  // namespace

uint64_t share_identical_files(const std::filesystem::path& tree, const std::filesystem::path& donor) {
  namespace fs = std::filesystem;
  uint64_t shared = 0;
  // in_donor[d]: whether the folder at depth d of the walk is a folder in
  // `donor` too, reached through folders only.
  std::vector<bool> in_donor{true};
  // Sharing is a saving: a folder it cannot read (an image's mode 000, without
  // privileges) is left as it is.
  for (auto it = fs::recursive_directory_iterator(tree, fs::directory_options::skip_permission_denied);
       it != fs::recursive_directory_iterator(); ++it) {
    size_t depth = static_cast<size_t>(it.depth());
    in_donor.resize(depth + 1);
    fs::path theirs = donor / it->path().lexically_relative(tree);
    struct stat ours {};
    if (::lstat(it->path().c_str(), &ours) != 0) {
      if (errno == ENOENT) continue;  // a link made below and renamed already
      throw_errno("stat " + it->path().string());
    }
    if (S_ISDIR(ours.st_mode)) {
      struct stat other {};
      in_donor.push_back(in_donor[depth] && ::lstat(theirs.c_str(), &other) == 0 && S_ISDIR(other.st_mode));
      if (!in_donor.back()) it.disable_recursion_pending();
      continue;
    }
    if (in_donor[depth]) shared += share_if_identical(it->path(), ours, theirs);
  }
  return shared;
}

uint64_t share_identical_files(const std::filesystem::path& tree, const std::filesystem::path& donor,
                               const std::vector<std::string>& written) {
  // Whether each folder on the way is a folder in both roots, never a
  // symlink: asked once per folder, shortest first, so that a longer one is
  // only looked up through folders already known to be folders.
  std::unordered_map<std::string, bool> folders{{"", true}};
  auto folder_in_both = [&](const std::string& rel) {
    auto [it, first] = folders.try_emplace(rel, false);
    if (first) {
      struct stat a {
      }, b{};
      it->second = ::lstat((tree / rel).c_str(), &a) == 0 && S_ISDIR(a.st_mode) &&
                   ::lstat((donor / rel).c_str(), &b) == 0 && S_ISDIR(b.st_mode);
    }
    return it->second;
  };
  uint64_t shared = 0;
  for (const std::string& path : written) {
    std::string rel = path.substr(std::min(path.find_first_not_of('/'), path.size()));
    bool through_folders = !rel.empty();
    for (size_t at = 0; through_folders;) {
      size_t slash = rel.find('/', at);
      std::string name = rel.substr(at, slash == std::string::npos ? std::string::npos : slash - at);
      if (name.empty() || name == "." || name == "..") through_folders = false;
      if (slash == std::string::npos) break;
      through_folders = through_folders && folder_in_both(rel.substr(0, slash));
      at = slash + 1;
    }
    struct stat ours {};
    if (through_folders && ::lstat((tree / rel).c_str(), &ours) == 0)
      shared += share_if_identical(tree / rel, ours, donor / rel);
  }
  return shared;
}

void remove_tree(const std::filesystem::path& path) {
  std::filesystem::path p = path.lexically_normal();
  if (!p.has_filename()) p = p.parent_path();
  if (p.filename() == "." || p.filename() == ".." || p == p.root_path())
    throw UnpackError("cannot remove " + path.string() + ": not a path to remove");
  std::filesystem::path parent = p.parent_path().empty() ? "." : p.parent_path();
  Fd dir(::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir) {
    if (errno == ENOENT) return;
    throw UnpackError("cannot remove " + path.string() + ": " + std::strerror(errno));
  }
  try {
    remove_tree_at(dir.get(), p.filename().string());
  } catch (const std::runtime_error& ex) {
    throw UnpackError("cannot remove " + path.string() + ": " + ex.what());
  }
}

}  // namespace imgbuild
