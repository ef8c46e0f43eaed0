#pragma once
// Reading a layer's files ahead of the tar writer, on reader threads, and
// handing their bytes over in entry order.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include "base/fs.hpp"
#include "layer/layer.hpp"

namespace imgbuild {

/// Reads the files of a layer ahead of the tar writer, on every core, and
/// hands their bytes over in entry order. Opening, reading and hashing
/// thousands of small files is most of a layer's serial work: done here,
/// it overlaps with the tar, the compression and the other files.
///
/// Readers take *batches*: a run of small files read into one buffer, or
/// one large file streamed in pieces, so that threads meet once per batch,
/// not once per file. Memory stays bounded whatever the layer: at most
/// kAhead bytes and kWindow batches are held ahead of the writer. Both
/// sides wait with hysteresis (a blocked reader resumes at half the
/// budget), so a full read-ahead does not cost a thread switch per file.
class FileReadAhead {
public:
  /// Starts reading `entries`' files (of type File, in order); with `hash`,
  /// each file's sha256 and stamp are taken as it is read.
  FileReadAhead(const std::vector<LayerEntry>& entries, bool hash);
  ~FileReadAhead();
  FileReadAhead(const FileReadAhead&) = delete;
  FileReadAhead& operator=(const FileReadAhead&) = delete;

  /// Passes the bytes of the next file (entry `index`: files are taken in
  /// entry order) to `data`, in one or more pieces; returns its digest when
  /// hashing. Rethrows what reading it threw.
  template <typename Data>
  std::optional<FileDigest> next(size_t index, Data&& data) {
    std::unique_lock lock(mutex_);
    Slot& slot = slots_[taken_ % kWindow];
    wait_for_writer_data(lock, slot);
    if (slot.files.empty() || slot.files[slot.next_file].entry != index)
      throw std::logic_error("layer: files read out of order");
    if (slot.streamed) {
      // One large file: its pieces as they come.
      for (;;) {
        wait_for_writer_data(lock, slot);
        if (slot.pieces.empty()) break;
        Piece piece = std::move(slot.pieces.front());
        slot.pieces.pop_front();
        lock.unlock();
        data(piece.bytes.get(), piece.size);
        lock.lock();
        release(std::move(piece));
      }
    } else {
      FileRead& file = slot.files[slot.next_file];
      if (!file.error && entries_[index].size > 0) {
        const char* bytes = slot.pieces.front().bytes.get() + file.offset;
        lock.unlock();
        data(bytes, static_cast<size_t>(entries_[index].size));
        lock.lock();
      }
    }
    FileRead& file = slot.files[slot.next_file];
    if (file.error) std::rethrow_exception(file.error);
    std::optional<FileDigest> digest = std::move(file.digest);
    if (++slot.next_file == slot.files.size()) {
      if (!slot.pieces.empty()) release(std::move(slot.pieces.front()));
      slot = Slot{};
      ++taken_;
      wake_readers();
    }
    return digest;
  }

private:
  /// 1 MiB: as fast as 4 on large files, and on a tree of small files the
  /// 3 MiB less of buffers to fault in saved 4% of the layer's CPU time
  /// (a page fault costs about 13 us in a VM like the bench's).
  static constexpr size_t kAhead = 1 << 20;
  static constexpr size_t kWindow = 64;  ///< batches
  static constexpr size_t kBatchBytes = 64 << 10;
  static constexpr size_t kBatchFiles = 64;
  static constexpr size_t kPiece = 256 << 10;  ///< files above this are streamed, in pieces of this size
  static constexpr size_t kMaxReaders = 4;

  struct Piece {
    std::unique_ptr<char[]> bytes;
    size_t size = 0;
    bool pooled = false;  ///< a kPiece + 1 buffer, handed back to spare_ when written
    /// The memory it holds, as the budget counts it.
    size_t held() const { return pooled ? kPiece + 1 : size; }
  };
  struct FileRead {
    size_t entry = 0;
    size_t offset = 0;  ///< where its bytes start in a batch's piece
    std::optional<FileDigest> digest;
    std::exception_ptr error;
  };
  struct Slot {
    std::vector<FileRead> files;  ///< set when a reader claims the batch
    bool streamed = false;        ///< one large file, in pieces; else one piece holds every file
    std::deque<Piece> pieces;
    bool complete = false;
    size_t next_file = 0;  ///< the writer's place in `files`
  };

  // The writer's side, inline with next() (in this header): the tar writer
  // calls it for every file.

  /// Waits until the writer can go on with `slot`: a piece of a streamed
  /// file is there, or the reader is done with it (a batch is handed over
  /// whole: its digests and errors come with its end).
  void wait_for_writer_data(std::unique_lock<std::mutex>& lock, Slot& slot) {
    while (!slot.complete && (!slot.streamed || slot.pieces.empty())) {
      // The reader of this very batch may be waiting for budget, which it
      // is owed now (see hand_over).
      if (readers_waiting_) writable_.notify_all();
      writer_waiting_ = true;
      readable_.wait(lock);
      writer_waiting_ = false;
    }
  }

  /// Returns a written piece's memory (under the lock).
  void release(Piece piece) {
    buffered_ -= piece.held();
    if (piece.pooled) spare_.push_back(std::move(piece.bytes));
  }

  /// Wakes blocked readers once there is room for half the read-ahead again
  /// (under the lock).
  void wake_readers() {
    if (readers_waiting_ && (buffered_ <= kAhead / 2 || claimed_ <= taken_ + kWindow / 2)) writable_.notify_all();
  }

  // The readers' side: runs on the reader threads, in read_ahead.cpp.

  /// A reader's loop: claims the next batch, reads it, hands it over.
  void read_batches();

  /// Reads a batch of small files into one piece; stops at the first
  /// failure, which the writer reports when it reaches that file.
  void read_batch(size_t ordinal, std::vector<FileRead>& files);

  /// Streams one large file in pooled pieces.
  void stream_file(size_t ordinal, FileRead& f);

  /// Opens an entry's file; when hashing, takes its stamp before any read
  /// (so a write during the read leaves a stamp that no longer matches) and
  /// starts `content`.
  Fd open_file(const LayerEntry& e, FileRead& f, std::optional<Sha256>& content);

  /// Reads the next `size` bytes of `e` into `out` and into `content`. With
  /// `at_end`, the file must end there: the read asks for one byte more
  /// (`out` has room for it), so that a short read is the end-of-file check
  /// and a file that grew is caught without another read.
  static void read_exactly(const Fd& fd, const LayerEntry& e, char* out, size_t size, bool at_end,
                           std::optional<Sha256>& content);

  /// An empty pooled piece. Pieces of large files are recycled: a fresh
  /// mapping per piece would cost a page fault every 4 KiB.
  Piece pooled_buffer();

  /// Queues a piece for the writer; false when the writer has stopped.
  bool hand_over(size_t ordinal, Piece piece);

  const std::vector<LayerEntry>& entries_;
  const bool hash_;
  std::mutex mutex_;
  std::condition_variable readable_, writable_;
  std::vector<Slot> slots_;      ///< ring: batch n lives in slots_[n % kWindow]
  size_t next_entry_ = 0;        ///< the next entry a reader looks at
  size_t claimed_ = 0;           ///< batches claimed by readers, in order
  size_t taken_ = 0;             ///< batches the writer has finished
  size_t buffered_ = 0;          ///< bytes read and not yet written
  size_t readers_waiting_ = 0;   ///< readers blocked on writable_
  bool writer_waiting_ = false;  ///< the writer is blocked on readable_
  bool stopping_ = false;
  std::vector<std::unique_ptr<char[]>> spare_;  ///< pooled buffers, written and free again
  std::vector<std::thread> readers_;
};

}  // namespace imgbuild
