// The tar writer: layer entries as a deterministic PAX tar, through
// libarchive, with the files' bytes from the read-ahead (write_tar in layer.hpp).
#include <archive.h>
#include <archive_entry.h>

#include <memory>
#include <stdexcept>
#include <string>

#include "base/interrupt.hpp"
#include "layer/layer.hpp"
#include "layer/read_ahead.hpp"

namespace imgbuild {

namespace {

struct ArchiveSink {
  const ByteSink& sink;
  std::exception_ptr error;
};

/// Never fails libarchive: a sink's error is kept for TarWriter to throw, and
/// what comes after it is dropped. An archive failed by its callback leaks its
/// output state when freed (libarchive 3.6), and unblocked (bytes_per_block 0)
/// the callback runs in every write, not only in the last.
la_ssize_t archive_write_cb(struct archive*, void* client, const void* buf, size_t size) {
  auto* s = static_cast<ArchiveSink*>(client);
  if (!s->error) try {
      s->sink(buf, size);
    } catch (...) {
      s->error = std::current_exception();
    }
  return static_cast<la_ssize_t>(size);
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
    // Extended attributes as SCHILY.xattr.<name> records only, the ones Docker
    // and containerd read, without libarchive's own base64 copy of each.
    check(archive_write_set_format_option(a_.get(), "pax", "xattrheader", "SCHILY"));
    check(archive_write_add_filter_none(a_.get()));
    // No blocking: each header, file and padding goes straight to the sink,
    // not copied into a block buffer first (ChunkPipe cuts the stream into
    // chunks anyway), and the stream ends right after its end-of-archive
    // records, unpadded.
    check(archive_write_set_bytes_per_block(a_.get(), 0));
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
    // libarchive puts each xattr added before the others: added backwards,
    // they are written in the entry's order (sorted by name).
    for (auto x = e.xattrs.rbegin(); x != e.xattrs.rend(); ++x)
      archive_entry_xattr_add_entry(en, x->first.c_str(), x->second.data(), x->second.size());
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
      case LayerEntry::Type::CharDevice:
      case LayerEntry::Type::BlockDevice:
        archive_entry_set_filetype(en, e.type == LayerEntry::Type::CharDevice ? AE_IFCHR : AE_IFBLK);
        archive_entry_set_rdevmajor(en, e.device_major);
        archive_entry_set_rdevminor(en, e.device_minor);
        break;
      case LayerEntry::Type::Fifo:
        archive_entry_set_filetype(en, AE_IFIFO);
        break;
    }
    check(archive_write_header(a_.get(), en));
    if (e.type != LayerEntry::Type::File) return std::nullopt;
    return files.next(index, [&](const char* data, size_t size) {
      check(archive_write_data(a_.get(), data, size) == static_cast<la_ssize_t>(size) ? ARCHIVE_OK : ARCHIVE_FATAL);
    });
  }

  void close() { check(archive_write_close(a_.get())); }

private:
  void check(int rc) {
    if (sink_.error) std::rethrow_exception(sink_.error);
    if (rc >= ARCHIVE_WARN) return;
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

}  // namespace imgbuild
