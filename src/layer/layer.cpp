#include "layer/layer.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <libdeflate.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "base/fs.hpp"
#include "base/interrupt.hpp"
#include "base/threads.hpp"
#include "oci/image.hpp"

namespace imgbuild {

namespace {

constexpr size_t kChunk = 1 << 20;

/// Where the compressed bytes go: hashed (the blob's digest), counted and
/// written in order. Write-back to the disk is started every few MiB, so the
/// fsync that commits the blob finds little left to wait for.
class BlobOutput {
public:
  BlobOutput(int fd, const std::filesystem::path& path) : fd_(fd), path_(path) {}

  void write(const void* data, size_t size) {
    hash_.update(data, size);
    write_all(fd_, data, size, path_);
    size_ += size;
    if (size_ - synced_ >= kWriteBack) {
      // Only a hint (it fails harmlessly on file systems without it): the
      // commit's fsync is what makes the blob durable.
      ::sync_file_range(fd_, static_cast<off_t>(synced_), static_cast<off_t>(size_ - synced_), SYNC_FILE_RANGE_WRITE);
      synced_ = size_;
    }
  }
  uint64_t size() const { return size_; }
  Digest finish() { return hash_.finish(); }

private:
  static constexpr uint64_t kWriteBack = 8 << 20;
  int fd_;
  const std::filesystem::path& path_;
  Sha256 hash_;
  uint64_t size_ = 0, synced_ = 0;
};

unsigned thread_count(unsigned requested) {
  return requested ? requested : std::max(1u, std::thread::hardware_concurrency());
}

/// Whether a block of bytes looks incompressible: its byte histogram is so
/// flat that coding literals could save at most about 0.01 bit a byte (the
/// chi-square distance from uniform, in integers so that every machine
/// decides alike). Random and already compressed data (archives, images,
/// packed binaries) are; text and code are far from it.
bool incompressible(const unsigned char* p, size_t n) {
  uint32_t h[4][256] = {};
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    ++h[0][p[i]];
    ++h[1][p[i + 1]];
    ++h[2][p[i + 2]];
    ++h[3][p[i + 3]];
  }
  for (; i < n; ++i) ++h[0][p[i]];
  uint64_t squares = 0;
  for (int b = 0; b < 256; ++b) {
    uint64_t c = uint64_t{h[0][b]} + h[1][b] + h[2][b] + h[3][b];
    squares += c * c;
  }
  // chi2 / n = 256 * squares / n^2 - 1 < 0.014, i.e. 8 - entropy < ~0.01 bit.
  return squares * 256 * 1000 < uint64_t{1014} * n * n;
}

/// The gzip compressor: compresses the tar the way pigz does, on every core:
/// the stream comes cut into kChunk-byte pieces (ChunkPipe), each compressed by a worker
/// into gzip members (libdeflate at level 6: about 3x zlib's speed at a
/// slightly smaller size), and the members are written in order. A run of
/// members is one valid gzip stream that gzip, Go, Python and docker read as
/// a whole; with fixed cuts the bytes are the same on every machine, however
/// many cores it has. Memory stays bounded: at most two chunks per worker are
/// in flight.
///
/// Within a chunk, 64 KiB blocks that cannot shrink (see incompressible())
/// are stored, not searched for matches they do not have: deflate spends
/// more time on such bytes than on text, to save nothing. Each run of stored
/// or compressed blocks is its own member.
class ParallelGzipSink {
public:
  ParallelGzipSink(BlobOutput& out, unsigned threads) : out_(out), workers_(thread_count(threads)) {
    for (size_t i = 0; i < workers_.size(); ++i) workers_[i] = std::thread([this] { work(); });
  }
  ~ParallelGzipSink() { stop_threads(mutex_, stopping_, wake_workers_, workers_); }
  ParallelGzipSink(const ParallelGzipSink&) = delete;
  ParallelGzipSink& operator=(const ParallelGzipSink&) = delete;

  /// Takes the next chunk of the stream, kChunk bytes (fewer only for the
  /// last), as ChunkPipe cuts it: the cuts decide the bytes.
  void add(std::vector<char>&& chunk) {
    while (order_.size() >= 2 * workers_.size()) write_front();
    auto job = std::make_shared<Job>();
    job->in = std::move(chunk);
    {
      std::lock_guard lock(mutex_);
      pending_.push_back(job);
      order_.push_back(job);
    }
    wake_workers_.notify_one();
  }

  void finish() {
    // An empty stream still needs one (empty) member to be valid gzip.
    if (order_.empty()) add({});
    while (!order_.empty()) write_front();
  }

private:
  static constexpr int kLevel = 6;
  static constexpr size_t kBlock = 64 << 10;

  struct Job {
    std::vector<char> in, out;
    bool done = false;
    bool failed = false;
  };

  struct Compressors {
    struct Deleter {
      void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
    };
    std::unique_ptr<libdeflate_compressor, Deleter> deflate{libdeflate_alloc_compressor(kLevel)};
    std::unique_ptr<libdeflate_compressor, Deleter> store{libdeflate_alloc_compressor(0)};
  };

  /// Waits for the oldest chunk, then writes its members.
  void write_front() {
    std::shared_ptr<Job> job = order_.front();
    {
      std::unique_lock lock(mutex_);
      job_done_.wait(lock, [&] { return job->done; });
    }
    order_.pop_front();
    if (job->failed) throw std::runtime_error("gzip: compression failed");
    out_.write(job->out.data(), job->out.size());
  }

  /// Compresses one chunk into members; false when libdeflate fails.
  static bool compress(Compressors& c, Job& job) {
    if (!c.deflate || !c.store) return false;
    auto in = reinterpret_cast<const unsigned char*>(job.in.data());
    const size_t size = job.in.size();
    // Runs of blocks of one kind: [start, end) and whether they are stored.
    struct Run {
      size_t start, end;
      bool stored;
    };
    std::vector<Run> runs;
    size_t bound = 0;
    for (size_t at = 0; at < size || runs.empty();) {
      size_t end = std::min(size, at + kBlock);
      bool stored = end > at && incompressible(in + at, end - at);
      if (!runs.empty() && runs.back().stored == stored)
        runs.back().end = end;
      else
        runs.push_back({at, end, stored});
      at = end;
    }
    for (auto& r : runs) bound += libdeflate_gzip_compress_bound(c.deflate.get(), r.end - r.start);
    job.out.resize(bound);
    size_t written = 0;
    for (auto& r : runs) {
      size_t n = libdeflate_gzip_compress(r.stored ? c.store.get() : c.deflate.get(), in + r.start, r.end - r.start,
                                          job.out.data() + written, job.out.size() - written);
      if (n == 0) return false;
      written += n;
    }
    job.out.resize(written);
    return true;
  }

  void work() {
    Compressors compressors;
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock lock(mutex_);
        wake_workers_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
        if (pending_.empty()) return;
        job = pending_.front();
        pending_.pop_front();
      }
      bool ok = compress(compressors, *job);
      std::vector<char>().swap(job->in);
      {
        std::lock_guard lock(mutex_);
        job->failed = !ok;
        job->done = true;
      }
      job_done_.notify_all();
    }
  }

  BlobOutput& out_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_workers_, job_done_;
  bool stopping_ = false;
  std::deque<std::shared_ptr<Job>> pending_;  ///< waiting for a worker
  std::deque<std::shared_ptr<Job>> order_;    ///< submitted, not yet written: output order
};

/// The zstd compressor: libzstd's own workers, one per core. Its streaming
/// multi-threaded output is the same for any number of workers (it cuts jobs
/// at fixed offsets; facebook/zstd#2238, #2327), so it is deterministic; at
/// least one worker always, because the single-threaded format differs.
class ZstdSink {
public:
  ZstdSink(BlobOutput& out, unsigned threads) : out_(out), ctx_(ZSTD_createCCtx()), buffer_(ZSTD_CStreamOutSize()) {
    if (!ctx_) throw std::runtime_error("zstd: out of memory");
    check(ZSTD_CCtx_setParameter(ctx_.get(), ZSTD_c_compressionLevel, kLevel));
    check(ZSTD_CCtx_setParameter(ctx_.get(), ZSTD_c_checksumFlag, 1));
    // Jobs of 4 MiB: enough to keep every worker busy on a layer of a few
    // dozen MB, while the buffered jobs stay small.
    check(ZSTD_CCtx_setParameter(ctx_.get(), ZSTD_c_jobSize, kJobSize));
    size_t workers = ZSTD_CCtx_setParameter(ctx_.get(), ZSTD_c_nbWorkers, static_cast<int>(thread_count(threads)));
    if (ZSTD_isError(workers)) throw std::runtime_error("zstd: this libzstd has no multi-threading support");
  }

  /// Compresses the next chunk of the stream.
  void add(const std::vector<char>& chunk) {
    ZSTD_inBuffer in{chunk.data(), chunk.size(), 0};
    while (in.pos < in.size) drain(ZSTD_e_continue, in);
  }

  void finish() {
    ZSTD_inBuffer in{nullptr, 0, 0};
    while (drain(ZSTD_e_end, in) != 0) {
    }
  }

private:
  static constexpr int kLevel = 3;
  static constexpr int kJobSize = 4 << 20;

  struct Deleter {
    void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  };

  size_t drain(ZSTD_EndDirective mode, ZSTD_inBuffer& in) {
    ZSTD_outBuffer out{buffer_.data(), buffer_.size(), 0};
    size_t left = check(ZSTD_compressStream2(ctx_.get(), &out, &in, mode));
    out_.write(buffer_.data(), out.pos);
    return left;
  }

  static size_t check(size_t rc) {
    if (ZSTD_isError(rc)) throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(rc));
    return rc;
  }

  BlobOutput& out_;
  std::unique_ptr<ZSTD_CCtx, Deleter> ctx_;
  std::vector<char> buffer_;
};

/// Carries a byte stream, cut into kChunk-byte chunks (the last one shorter)
/// and in order, to `consume`, which runs on a thread of its own: the tar
/// writer goes on with the next files while the last chunk is hashed and
/// compressed. At most kDepth chunks wait in between. An exception in
/// `consume` stops the stream and reaches the writer from its next write()
/// or from finish().
class ChunkPipe {
public:
  /// Receives each chunk; it may keep the buffer (move it out), or leave it
  /// to be filled again.
  using Consumer = std::function<void(std::vector<char>& chunk)>;
  explicit ChunkPipe(Consumer consume) : consume_(std::move(consume)) {
    fill_.reserve(kChunk);
    thread_ = std::thread([this] { run(); });
  }
  ~ChunkPipe() { stop_threads(mutex_, stopping_, readable_, {&thread_, 1}); }
  ChunkPipe(const ChunkPipe&) = delete;
  ChunkPipe& operator=(const ChunkPipe&) = delete;

  void write(const void* data, size_t size) {
    auto p = static_cast<const char*>(data);
    while (size > 0) {
      size_t n = std::min(size, kChunk - fill_.size());
      fill_.insert(fill_.end(), p, p + n);
      p += n;
      size -= n;
      if (fill_.size() == kChunk) send();
    }
  }

  /// Sends the last bytes and returns once `consume` has taken them all.
  void finish() {
    if (!fill_.empty()) send();
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    readable_.notify_all();
    thread_.join();
    if (error_) std::rethrow_exception(error_);
  }

private:
  static constexpr size_t kDepth = 2;

  void send() {
    std::vector<char> next;
    {
      std::unique_lock lock(mutex_);
      writable_.wait(lock, [&] { return error_ || queue_.size() < kDepth; });
      if (error_) std::rethrow_exception(error_);
      queue_.push_back(std::move(fill_));
      if (!spare_.empty()) {
        next = std::move(spare_.back());
        spare_.pop_back();
      }
    }
    readable_.notify_one();
    next.clear();
    next.reserve(kChunk);
    fill_ = std::move(next);
  }

  void run() {
    try {
      for (;;) {
        std::vector<char> chunk;
        {
          std::unique_lock lock(mutex_);
          readable_.wait(lock, [&] { return stopping_ || closed_ || !queue_.empty(); });
          if (stopping_ || queue_.empty()) return;
          chunk = std::move(queue_.front());
          queue_.pop_front();
        }
        consume_(chunk);
        {
          std::lock_guard lock(mutex_);
          spare_.push_back(std::move(chunk));
        }
        writable_.notify_one();
      }
    } catch (...) {
      {
        std::lock_guard lock(mutex_);
        error_ = std::current_exception();
      }
      writable_.notify_all();
    }
  }

  Consumer consume_;
  std::vector<char> fill_;  ///< the chunk being written
  std::mutex mutex_;
  std::condition_variable readable_, writable_;
  std::deque<std::vector<char>> queue_;   ///< full chunks, oldest first
  std::vector<std::vector<char>> spare_;  ///< consumed chunks, to fill again
  bool closed_ = false, stopping_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

struct ArchiveSink {
  const ByteSink& sink;
  std::exception_ptr error;
};

la_ssize_t archive_write_cb(struct archive* a, void* client, const void* buf, size_t size) {
  auto* s = static_cast<ArchiveSink*>(client);
  try {
    s->sink(buf, size);
    return static_cast<la_ssize_t>(size);
  } catch (...) {
    s->error = std::current_exception();
    archive_set_error(a, EIO, "layer sink failed");
    return -1;
  }
}

struct ArchiveDeleter {
  void operator()(struct archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

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
  FileReadAhead(const std::vector<LayerEntry>& entries, bool hash) : entries_(entries), hash_(hash), slots_(kWindow) {
    size_t readers = std::min<size_t>(thread_count(0), kMaxReaders);
    for (size_t i = 0; i < readers; ++i) readers_.emplace_back([this] { read_batches(); });
  }
  ~FileReadAhead() { stop_threads(mutex_, stopping_, writable_, readers_); }
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
  static constexpr size_t kAhead = 4 << 20;
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

  void read_batches() {
    for (;;) {
      size_t ordinal;
      std::vector<FileRead> files;
      bool streamed = false;
      {
        std::unique_lock lock(mutex_);
        if (!stopping_ && claimed_ >= taken_ + kWindow) {
          ++readers_waiting_;
          writable_.wait(lock, [&] { return stopping_ || claimed_ <= taken_ + kWindow / 2; });
          --readers_waiting_;
        }
        size_t bytes = 0;
        for (; next_entry_ < entries_.size() && files.size() < kBatchFiles && bytes < kBatchBytes; ++next_entry_) {
          const LayerEntry& e = entries_[next_entry_];
          if (e.type != LayerEntry::Type::File) continue;
          const bool large = e.size > kPiece;
          if (large && !files.empty()) break;  // a large file is a batch of its own
          files.push_back({next_entry_, bytes, std::nullopt, nullptr});
          bytes += e.size;
          if (large) {
            streamed = true;
            ++next_entry_;
            break;
          }
        }
        if (stopping_ || files.empty()) return;
        ordinal = claimed_++;
        Slot& slot = slots_[ordinal % kWindow];
        slot.files = files;
        slot.streamed = streamed;
      }
      if (streamed)
        stream_file(ordinal, files.front());
      else
        read_batch(ordinal, files);
      {
        std::lock_guard lock(mutex_);
        Slot& slot = slots_[ordinal % kWindow];
        slot.complete = true;
        for (size_t i = 0; i < files.size(); ++i) {
          slot.files[i].digest = std::move(files[i].digest);
          slot.files[i].error = files[i].error;
        }
        if (writer_waiting_ && ordinal == taken_) readable_.notify_one();
      }
    }
  }

  /// Reads a batch of small files into one piece; stops at the first
  /// failure, which the writer reports when it reaches that file.
  void read_batch(size_t ordinal, std::vector<FileRead>& files) {
    const FileRead& last = files.back();
    const size_t total = last.offset + static_cast<size_t>(entries_[last.entry].size);
    // One spare byte: each file is read asking for one byte more than its
    // size (see read_into), and the next file overwrites it.
    Piece piece{std::make_unique_for_overwrite<char[]>(total + 1), total, false};
    for (FileRead& f : files) {
      try {
        const LayerEntry& e = entries_[f.entry];
        std::optional<Sha256> content;
        Fd fd = open_file(e, f, content);
        read_exactly(fd, e, piece.bytes.get() + f.offset, static_cast<size_t>(e.size), true, content);
        if (content) f.digest->sha256 = content->finish_raw();
      } catch (...) {
        f.error = std::current_exception();
        break;
      }
    }
    hand_over(ordinal, std::move(piece));
  }

  /// Streams one large file in pooled pieces.
  void stream_file(size_t ordinal, FileRead& f) {
    try {
      const LayerEntry& e = entries_[f.entry];
      std::optional<Sha256> content;
      Fd fd = open_file(e, f, content);
      for (uint64_t left = e.size; left > 0;) {
        Piece piece = pooled_buffer();
        piece.size = static_cast<size_t>(std::min<uint64_t>(left, kPiece));
        left -= piece.size;
        read_exactly(fd, e, piece.bytes.get(), piece.size, left == 0, content);
        if (!hand_over(ordinal, std::move(piece))) return;
      }
      if (content) f.digest->sha256 = content->finish_raw();
    } catch (...) {
      f.error = std::current_exception();
    }
  }

  /// Opens an entry's file; when hashing, takes its stamp before any read
  /// (so a write during the read leaves a stamp that no longer matches) and
  /// starts `content`.
  Fd open_file(const LayerEntry& e, FileRead& f, std::optional<Sha256>& content) {
    int raw = ::open(e.source.c_str(), O_RDONLY | O_CLOEXEC);
    if (raw < 0) throw_errno(e.source);
    Fd fd(raw);
    if (hash_) {
      struct ::stat st {};
      if (::fstat(fd.get(), &st) != 0) throw_errno(e.source);
      f.digest = FileDigest{{}, FileStamp::of(st)};
      content.emplace();
    }
    return fd;
  }

  /// Reads the next `size` bytes of `e` into `out` and into `content`. With
  /// `at_end`, the file must end there: the read asks for one byte more
  /// (`out` has room for it), so that a short read is the end-of-file check
  /// and a file that grew is caught without another read.
  static void read_exactly(const Fd& fd, const LayerEntry& e, char* out, size_t size, bool at_end,
                           std::optional<Sha256>& content) {
    const size_t want = size + (at_end ? 1 : 0);
    size_t got = 0;
    while (got < want) {
      ssize_t n = ::read(fd.get(), out + got, want - got);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno(e.source);
      }
      if (n == 0) break;
      got += static_cast<size_t>(n);
      if (at_end && got == size) break;  // short by the extra byte: the end
    }
    if (got > size) throw std::runtime_error(e.source + ": file grew while it was being read");
    if (got < size) throw std::runtime_error(e.source + ": file shrank while it was being read");
    if (content) content->update(out, got);
  }

  /// An empty pooled piece. Pieces of large files are recycled: a fresh
  /// mapping per piece would cost a page fault every 4 KiB.
  Piece pooled_buffer() {
    std::lock_guard lock(mutex_);
    if (spare_.empty()) return {std::make_unique_for_overwrite<char[]>(kPiece + 1), 0, true};
    Piece piece{std::move(spare_.back()), 0, true};
    spare_.pop_back();
    return piece;
  }

  /// Queues a piece for the writer; false when the writer has stopped.
  bool hand_over(size_t ordinal, Piece piece) {
    std::unique_lock lock(mutex_);
    Slot& slot = slots_[ordinal % kWindow];
    // The piece the writer waits for always gets through (when the others
    // hold the whole budget, it is what frees it), but only one.
    auto owed = [&] { return ordinal == taken_ && slot.pieces.empty(); };
    if (!stopping_ && buffered_ + piece.held() > kAhead && !owed()) {
      ++readers_waiting_;
      writable_.wait(lock, [&] { return stopping_ || buffered_ + piece.held() <= kAhead / 2 || owed(); });
      --readers_waiting_;
    }
    if (stopping_) return false;
    buffered_ += piece.held();
    slot.pieces.push_back(std::move(piece));
    if (writer_waiting_ && ordinal == taken_) readable_.notify_one();
    return true;
  }

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

class TarWriter {
public:
  TarWriter(ArchiveSink& sink) : sink_(sink), a_(archive_write_new()) {
    if (!a_) throw std::runtime_error("libarchive: out of memory");
    // pax_restricted: plain ustar headers, PAX extensions only where ustar cannot
    // hold a value (long or non-ASCII names, big sizes), so most layers are
    // readable by any tar and carry no per-entry overhead.
    check(archive_write_set_format_pax_restricted(a_.get()));
    check(archive_write_add_filter_none(a_.get()));
    check(archive_write_set_bytes_per_block(a_.get(), 65536));
    check(archive_write_set_bytes_in_last_block(a_.get(), 1));
    check(archive_write_open2(a_.get(), &sink_, nullptr, archive_write_cb, nullptr, nullptr));
  }

  /// Adds entry `index`; a file's bytes come from `files`, and its digest
  /// is returned when `files` hashes.
  std::optional<FileDigest> add(const LayerEntry& e, size_t index, int64_t mtime, FileReadAhead& files) {
    std::unique_ptr<archive_entry, EntryDeleter> entry(archive_entry_new());
    if (!entry) throw std::runtime_error("libarchive: out of memory");
    archive_entry* en = entry.get();
    archive_entry_copy_pathname(en, e.path.c_str());
    archive_entry_set_uid(en, e.uid);
    archive_entry_set_gid(en, e.gid);
    archive_entry_set_mtime(en, mtime, 0);
    archive_entry_set_perm(en, e.mode & 07777);
    switch (e.type) {
      case LayerEntry::Type::File:
        archive_entry_set_filetype(en, AE_IFREG);
        archive_entry_set_size(en, static_cast<la_int64_t>(e.size));
        break;
      case LayerEntry::Type::Directory:
        archive_entry_set_filetype(en, AE_IFDIR);
        break;
      case LayerEntry::Type::Symlink:
        archive_entry_set_filetype(en, AE_IFLNK);
        archive_entry_copy_symlink(en, e.link_target.c_str());
        break;
    }
    check(archive_write_header(a_.get(), en));
    if (e.type != LayerEntry::Type::File) return std::nullopt;
    return files.next(index, [&](const char* data, size_t size) {
      if (archive_write_data(a_.get(), data, size) != static_cast<la_ssize_t>(size)) check(ARCHIVE_FATAL);
    });
  }

  void close() { check(archive_write_close(a_.get())); }

private:
  void check(int rc) {
    if (rc >= ARCHIVE_WARN) return;
    if (sink_.error) std::rethrow_exception(sink_.error);
    const char* msg = archive_error_string(a_.get());
    throw std::runtime_error(std::string("tar: ") + (msg ? msg : "write failed"));
  }

  ArchiveSink& sink_;
  std::unique_ptr<struct archive, ArchiveDeleter> a_;
};

}  // namespace

void write_tar(const std::vector<LayerEntry>& entries, const ByteSink& sink, int64_t mtime, FileDigests* file_digests) {
  ArchiveSink archive_sink{sink, nullptr};
  TarWriter tar(archive_sink);
  FileReadAhead files(entries, file_digests != nullptr);
  if (file_digests) file_digests->assign(entries.size(), std::nullopt);
  for (size_t i = 0; i < entries.size(); ++i) {
    check_interrupt();
    auto digest = tar.add(entries[i], i, mtime, files);
    if (file_digests) (*file_digests)[i] = std::move(digest);
  }
  tar.close();
}

void sort_layer_entries(std::vector<LayerEntry>& entries) {
  std::sort(entries.begin(), entries.end(), [](const LayerEntry& a, const LayerEntry& b) { return a.path < b.path; });
  for (size_t i = 1; i < entries.size(); ++i)
    if (entries[i].path == entries[i - 1].path) throw std::logic_error("layer: duplicate entry " + entries[i].path);
}

FileStamp FileStamp::of(const struct ::stat& st) {
  return {static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino), static_cast<uint64_t>(st.st_size),
          nanoseconds(st.st_mtim), nanoseconds(st.st_ctim)};
}

const char* compression_name(Compression c) { return c == Compression::Zstd ? "zstd" : "gzip"; }

std::optional<Compression> parse_compression(std::string_view name) {
  if (name == "gzip") return Compression::Gzip;
  if (name == "zstd") return Compression::Zstd;
  return std::nullopt;
}

LayerBlob write_layer(std::vector<LayerEntry> entries, const std::filesystem::path& blob_dir,
                      const LayerOptions& options) {
  sort_layer_entries(entries);
  return write_sorted_layer(entries, blob_dir, options);
}

LayerBlob write_sorted_layer(const std::vector<LayerEntry>& entries, const std::filesystem::path& blob_dir,
                             const LayerOptions& options, FileDigests* file_digests) {
  if (std::adjacent_find(entries.begin(), entries.end(), [](auto& a, auto& b) { return !(a.path < b.path); }) !=
      entries.end())
    throw std::logic_error("layer: entries are not in layer order (sorted, each path once)");

  std::filesystem::create_directories(blob_dir);
  AtomicFile file(blob_dir / "layer");
  BlobOutput out(file.fd(), file.temp_path());
  Sha256 tar_hash;
  uint64_t tar_size = 0;
  auto compress = [&](auto& sink) {
    ChunkPipe pipe([&](std::vector<char>& chunk) {
      tar_hash.update(chunk.data(), chunk.size());
      tar_size += chunk.size();
      sink.add(std::move(chunk));
    });
    write_tar(
        entries, [&](const void* data, size_t size) { pipe.write(data, size); }, options.mtime, file_digests);
    pipe.finish();
    sink.finish();
  };
  MediaType type = media_type::kLayerGzip;
  if (options.compression == Compression::Zstd) {
    ZstdSink sink(out, options.threads);
    compress(sink);
    type = media_type::kLayerZstd;
  } else {
    ParallelGzipSink sink(out, options.threads);
    compress(sink);
  }
  LayerBlob blob{out.finish(), out.size(), tar_hash.finish(), tar_size, type};
  file.commit_as(blob_dir / std::string(blob.digest.hex()));
  return blob;
}

}  // namespace imgbuild
