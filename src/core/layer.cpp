#include "core/layer.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>
#include <libdeflate.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "core/fs.hpp"
#include "core/interrupt.hpp"

namespace imgbuild {

namespace {

constexpr size_t kChunk = 1 << 20;

/// The byte sink behind libarchive: hashes the tar (diffID) and compresses it
/// the way pigz does, on every core: the stream is cut into kChunk-byte pieces,
/// each compressed by a worker as one gzip member (libdeflate: several times
/// zlib's speed at a slightly smaller size), and the members are written and
/// hashed in order. A run of members is one valid gzip stream that gzip, Go,
/// Python and docker read as a whole; with fixed cuts and level the bytes are
/// the same on every machine, however many cores it has. Memory stays bounded:
/// at most two chunks per worker are in flight.
///
/// Errors are kept here because they must not unwind through libarchive's C
/// frames; the caller rethrows them.
class ParallelGzipSink {
public:
  ParallelGzipSink(int fd, const std::filesystem::path& path, int level)
      : fd_(fd), path_(path), level_(level),
        workers_(std::max(1u, std::thread::hardware_concurrency())) {
    for (size_t i = 0; i < workers_.size(); ++i) workers_[i] = std::thread([this] { work(); });
    current_ = std::make_shared<Job>();
    current_->in.reserve(kChunk);
  }
  ~ParallelGzipSink() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_workers_.notify_all();
    for (auto& t : workers_) t.join();
  }
  ParallelGzipSink(const ParallelGzipSink&) = delete;
  ParallelGzipSink& operator=(const ParallelGzipSink&) = delete;

  void write(const void* data, size_t size) {
    tar_hash_.update(data, size);
    tar_size_ += size;
    auto p = static_cast<const char*>(data);
    while (size > 0) {
      size_t n = std::min(size, kChunk - current_->in.size());
      current_->in.insert(current_->in.end(), p, p + n);
      p += n;
      size -= n;
      if (current_->in.size() == kChunk) submit();
    }
  }

  LayerBlob finish() {
    // An empty stream still needs one (empty) member to be valid gzip.
    if (!current_->in.empty() || order_.empty()) submit();
    while (!order_.empty()) write_front();
    return LayerBlob{gz_hash_.finish(), gz_size_, tar_hash_.finish(), tar_size_};
  }

private:
  struct Job {
    std::vector<char> in, out;
    bool done = false;
    bool failed = false;
  };

  void submit() {
    while (order_.size() >= 2 * workers_.size()) write_front();
    {
      std::lock_guard lock(mutex_);
      pending_.push_back(current_);
      order_.push_back(current_);
    }
    wake_workers_.notify_one();
    current_ = std::make_shared<Job>();
    current_->in.reserve(kChunk);
  }

  /// Waits for the oldest chunk, then writes and hashes its member.
  void write_front() {
    std::shared_ptr<Job> job = order_.front();
    {
      std::unique_lock lock(mutex_);
      job_done_.wait(lock, [&] { return job->done; });
    }
    order_.pop_front();
    if (job->failed) throw std::runtime_error("gzip: compression failed");
    gz_hash_.update(job->out.data(), job->out.size());
    gz_size_ += job->out.size();
    write_all(fd_, job->out.data(), job->out.size(), path_);
  }

  void work() {
    struct Deleter {
      void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
    };
    std::unique_ptr<libdeflate_compressor, Deleter> compressor(libdeflate_alloc_compressor(level_));
    for (;;) {
      std::shared_ptr<Job> job;
      {
        std::unique_lock lock(mutex_);
        wake_workers_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
        if (pending_.empty()) return;
        job = pending_.front();
        pending_.pop_front();
      }
      size_t n = 0;
      if (compressor) {
        job->out.resize(libdeflate_gzip_compress_bound(compressor.get(), job->in.size()));
        n = libdeflate_gzip_compress(compressor.get(), job->in.data(), job->in.size(), job->out.data(),
                                     job->out.size());
        job->out.resize(n);
      }
      std::vector<char>().swap(job->in);
      {
        std::lock_guard lock(mutex_);
        job->failed = (n == 0);
        job->done = true;
      }
      job_done_.notify_all();
    }
  }

  int fd_;
  const std::filesystem::path& path_;
  int level_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_workers_, job_done_;
  bool stopping_ = false;
  std::deque<std::shared_ptr<Job>> pending_;  ///< waiting for a worker
  std::deque<std::shared_ptr<Job>> order_;    ///< submitted, not yet written: output order
  std::shared_ptr<Job> current_;
  Sha256 tar_hash_, gz_hash_;
  uint64_t tar_size_ = 0, gz_size_ = 0;
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

  void add(const LayerEntry& e, int64_t mtime) {
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
    if (e.type == LayerEntry::Type::File) copy_data(e);
  }

  void close() { check(archive_write_close(a_.get())); }

private:
  void copy_data(const LayerEntry& e) {
    Fd fd = open_read(e.source);
    std::vector<char> buf(std::min<uint64_t>(kChunk, std::max<uint64_t>(e.size, 1)));
    uint64_t left = e.size;
    while (left > 0) {
      ssize_t n = ::read(fd.get(), buf.data(), std::min<uint64_t>(buf.size(), left));
      if (n < 0) {
        if (errno == EINTR) continue;
        throw_errno(e.source.string());
      }
      if (n == 0) throw std::runtime_error(e.source.string() + ": file shrank while it was being read");
      if (archive_write_data(a_.get(), buf.data(), static_cast<size_t>(n)) != n) check(ARCHIVE_FATAL);
      left -= static_cast<uint64_t>(n);
    }
    char extra;
    if (::read(fd.get(), &extra, 1) > 0)
      throw std::runtime_error(e.source.string() + ": file grew while it was being read");
  }

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

void write_tar(const std::vector<LayerEntry>& entries, const ByteSink& sink, int64_t mtime) {
  ArchiveSink archive_sink{sink, nullptr};
  TarWriter tar(archive_sink);
  for (const auto& e : entries) {
    check_interrupt();
    tar.add(e, mtime);
  }
  tar.close();
}

LayerBlob write_layer(std::vector<LayerEntry> entries, const std::filesystem::path& blob_dir,
                      const LayerOptions& options) {
  std::sort(entries.begin(), entries.end(), [](const LayerEntry& a, const LayerEntry& b) { return a.path < b.path; });
  for (size_t i = 1; i < entries.size(); ++i)
    if (entries[i].path == entries[i - 1].path)
      throw std::logic_error("layer: duplicate entry " + entries[i].path);

  std::filesystem::create_directories(blob_dir);
  AtomicFile out(blob_dir / "layer");
  ParallelGzipSink sink(out.fd(), out.temp_path(), options.gzip_level);
  write_tar(entries, [&sink](const void* data, size_t size) { sink.write(data, size); }, options.mtime);
  LayerBlob blob = sink.finish();
  out.commit_as(blob_dir / std::string(blob.digest.hex()));
  return blob;
}

}  // namespace imgbuild
