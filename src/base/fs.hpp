#pragma once
// File-system primitives with RAII and the atomic-write discipline every store
// and cache update follows: write a temporary file, fsync, rename into place
// (a record that only saves work skips the fsync: write_record_atomic).
#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "base/errors.hpp"

namespace imgbuild {

namespace fs = std::filesystem;

/// An owned file descriptor, closed on destruction.
class Fd {
public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(o.release()) {}
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd();

  int get() const { return fd_; }
  explicit operator bool() const { return fd_ >= 0; }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

private:
  int fd_ = -1;
};

/// What a file of this st_mode is, for messages: "a named pipe", "a socket",
/// "a character device", "a block device", "a folder", "a symlink", "a file".
const char* file_kind(mode_t mode);

/// A close-on-exec pipe: read end, write end.
std::pair<Fd, Fd> make_pipe();

/// Whether open_read follows a symlink that is the path's last component.
enum class FollowLink { Yes, No };

/// Opens a regular file read-only with O_CLOEXEC; throws naming the path
/// (std::system_error; for a folder, EISDIR). Anything but a regular file is
/// refused at once, saying what it is ("PATH: is a named pipe, not a file"):
/// opening a named pipe waits for a writer and reading a device may never
/// end. The check is made on the opened descriptor, opened without waiting,
/// so a file replaced by a pipe after a walk saw it cannot block either.
/// FollowLink::No also refuses a symlink there: for paths a walk found to be
/// files, which must not be swapped for a link to something else. With
/// `opened`, the opened file's fstat is also given there (no second call).
Fd open_read(const fs::path& path, FollowLink follow = FollowLink::Yes, struct ::stat* opened = nullptr);
/// Reads a whole (small) file: JSON documents, .dockerignore, lockfiles.
std::string read_file(const fs::path& path);
/// Reads the rest of a file open_read opened, `opened` its stat from there:
/// the bytes of the very file whose stat the caller holds, not of whatever
/// stands at `path` (which names it in errors) by the time of a second open.
std::string read_opened(const Fd& fd, const struct ::stat& opened, const fs::path& path);

/// Resizes `s` to `size` bytes, to be read into, and asks the kernel to back
/// a large one with huge pages: each first touch of fresh memory costs a page
/// fault per 4 KiB, which in a virtual machine took more than inflating a
/// program of megabytes into it.
void make_room(std::string& s, size_t size);
/// Writes all of `data` to `fd`, retrying short writes.
void write_all(int fd, const void* data, size_t size, const fs::path& what);

/// A file being written next to its final name. Nothing is visible under the
/// final name until commit(), which fsyncs and renames; if the writer dies or
/// throws first, the destructor removes the temporary, so no torn file remains.
class AtomicFile {
public:
  explicit AtomicFile(fs::path final_path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  int fd() const { return fd_.get(); }
  const fs::path& temp_path() const { return temp_; }
  void write(std::string_view data) { write_all(fd_.get(), data.data(), data.size(), temp_); }
  /// Sets `mode` (0600 for a file of secrets), fsyncs, renames over the final
  /// path and fsyncs the directory.
  void commit(mode_t mode = 0644);
  /// Same, for content whose name is known only once written (a blob named by its digest).
  void commit_as(fs::path final_path);
  /// commit() without the fsyncs: see write_record_atomic().
  void commit_unsynced(mode_t mode = 0644);

private:
  /// Gives the file `mode` and its final name; `durable`: synced, and its folder too.
  void put_in_place(mode_t mode, bool durable);

  fs::path final_, temp_;
  Fd fd_;
  bool committed_ = false;
};

/// Marks `path` as used now (its mtime): the cache's least-recently-used
/// order goes by it. A path that is gone is no error.
void mark_used(const fs::path& path);

/// Atomically replaces `path` with `data`.
void write_file_atomic(const fs::path& path, std::string_view data);

/// write_file_atomic() without the fsyncs, for a record that only saves work
/// (what was verified, a step's cache entry): after a crash it may be missing
/// or empty, never another record's half, so its reader must take one it
/// cannot parse as none. Written after what it names is durable (a blob
/// committed by AtomicFile), it never names what a crash took away.
void write_record_atomic(const fs::path& path, std::string_view data);

/// An advisory lock (flock) on a lock file, held until destruction. Lets
/// concurrent builds share a store and a cache without corrupting them.
class FileLock {
public:
  enum class Mode { Exclusive, Shared };
  /// Waits for the lock; `on_wait` is called first when another holder has
  /// it, to say why nothing happens.
  explicit FileLock(const fs::path& lock_path, Mode mode = Mode::Exclusive, const std::function<void()>& on_wait = {});
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

private:
  Fd fd_;
};

/// The device and inode of an open file: what tells that the folder ".."
/// leads to is the one a walk came down through.
std::pair<dev_t, ino_t> file_identity(int fd);

/// Opens the folder `name` in `dirfd`, never through a symlink; invalid (errno
/// set) when it is not a folder or cannot be opened.
Fd open_dir_nofollow(int dirfd, const std::string& name);

/// Removes `name` in the folder `dirfd` and everything below it, never
/// following a symlink. One folder is held open at a time, however deep the
/// tree (a RUN step's can be as deep as it likes), and the way back up is
/// "..", checked against the identity recorded on the way down. With `stop`:
/// returns false, leaving the rest, once it is set (looked at between
/// entries). Throws std::runtime_error (std::system_error for a failed call)
/// naming the entry it could not remove, or a folder moved meanwhile.
bool remove_tree_at(int dirfd, const std::string& name, const std::atomic<bool>* stop = nullptr);

/// Removes folders on a thread of its own, so that whoever hands it a folder
/// it no longer needs (a RUN step's scratch folder) goes on without waiting
/// for the removal. A folder handed to it is first renamed into `trash` (on
/// the same file system: a rename, however big the folder), and the thread
/// empties `trash` entry by entry, what earlier processes left there too.
/// Its destructor waits until all is removed, unless leave_the_rest() was
/// called: then it stops at the next entry (on a disk mounted with `discard`,
/// removing a compiler's cache takes seconds), and what is left waits in
/// `trash` for the next remover, or for whoever cleans the place (the build
/// cache's tmp: `cache prune`).
class BackgroundRemover {
public:
  /// Empties `trash` (when it exists) on its thread from now on.
  explicit BackgroundRemover(fs::path trash);
  ~BackgroundRemover();
  BackgroundRemover(const BackgroundRemover&) = delete;
  BackgroundRemover& operator=(const BackgroundRemover&) = delete;

  /// Moves `dir` into the trash now and removes it soon (errors ignored: a
  /// folder that cannot be moved is removed where it is, on the thread, and
  /// what cannot be removed is left).
  void remove(const fs::path& dir);

  /// The destructor leaves what is not removed yet in the trash.
  void leave_the_rest() { leave_the_rest_ = true; }

private:
  void start();  // under mutex_
  void work();

  const fs::path trash_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::vector<fs::path> unmoved_;  // handed folders the rename could not take
  bool pending_ = false;           // something to remove since the thread last looked
  bool stopping_ = false;
  std::atomic<bool> leave_the_rest_{false};
  std::atomic<bool> stop_now_{false};  // read between entries, without the lock
  std::thread thread_;                 // started when there is something to remove
};

/// A private temporary directory, removed recursively on destruction.
class TempDir {
public:
  explicit TempDir(const fs::path& parent, std::string_view prefix = "imgbuild-");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }
  /// Hands the directory to `remover` instead of removing it on destruction;
  /// path() is empty afterwards.
  void remove_later(BackgroundRemover& remover);

private:
  fs::path path_;
};

}  // namespace imgbuild
