#include "core/layer.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <stdexcept>

#include "core/fs.hpp"

namespace imgbuild {

namespace {

constexpr size_t kChunk = 1 << 20;

/// The byte sink behind libarchive: hashes the tar (diffID), deflates it, hashes
/// and writes the compressed bytes. Errors are kept here because they must not
/// unwind through libarchive's C frames; the caller rethrows them.
class GzipHashSink {
public:
  GzipHashSink(int fd, const std::filesystem::path& path, int level) : fd_(fd), path_(path) {
    // windowBits 15+16: a gzip wrapper with mtime 0 and no file name, so the
    // header bytes never depend on when or where the layer was built.
    if (deflateInit2(&z_, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
      throw std::runtime_error("gzip: initialisation failed");
    out_.resize(kChunk);
  }
  ~GzipHashSink() { deflateEnd(&z_); }
  GzipHashSink(const GzipHashSink&) = delete;
  GzipHashSink& operator=(const GzipHashSink&) = delete;

  void write(const void* data, size_t size) {
    tar_hash_.update(data, size);
    tar_size_ += size;
    z_.next_in = static_cast<Bytef*>(const_cast<void*>(data));
    z_.avail_in = static_cast<uInt>(size);
    deflate_pending(Z_NO_FLUSH);
  }

  LayerBlob finish() {
    z_.next_in = nullptr;
    z_.avail_in = 0;
    deflate_pending(Z_FINISH);
    return LayerBlob{gz_hash_.finish(), gz_size_, tar_hash_.finish(), tar_size_};
  }

private:
  void deflate_pending(int flush) {
    for (;;) {
      z_.next_out = reinterpret_cast<Bytef*>(out_.data());
      z_.avail_out = static_cast<uInt>(out_.size());
      int rc = deflate(&z_, flush);
      if (rc == Z_STREAM_ERROR) throw std::runtime_error("gzip: deflate failed");
      size_t produced = out_.size() - z_.avail_out;
      if (produced) {
        gz_hash_.update(out_.data(), produced);
        gz_size_ += produced;
        write_all(fd_, out_.data(), produced, path_);
      }
      if (flush == Z_FINISH ? rc == Z_STREAM_END : (z_.avail_in == 0 && z_.avail_out != 0)) return;
    }
  }

  int fd_;
  const std::filesystem::path& path_;
  z_stream z_{};
  std::vector<char> out_;
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
  for (const auto& e : entries) tar.add(e, mtime);
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
  GzipHashSink sink(out.fd(), out.temp_path(), options.gzip_level);
  write_tar(entries, [&sink](const void* data, size_t size) { sink.write(data, size); }, options.mtime);
  LayerBlob blob = sink.finish();
  out.commit_as(blob_dir / std::string(blob.digest.hex()));
  return blob;
}

}  // namespace imgbuild
