#pragma once
// The file a layer blob is written to, as the compressors emit its bytes.
#include <fcntl.h>

#include <cstdint>
#include <filesystem>

#include "base/fs.hpp"
#include "oci/digest.hpp"

namespace imgbuild {

/// Where the compressed bytes go: hashed (the blob's digest), counted and
/// written in order. Write-back to the disk is started every few MiB, so the
/// fsync that commits the blob finds little left to wait for.
class BlobOutput {
public:
  /// Writes to `fd`; `path` (kept by reference) names it in errors.
  BlobOutput(int fd, const std::filesystem::path& path) : fd_(fd), path_(path) {}

  /// Appends the next compressed bytes.
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
  /// Bytes written so far.
  uint64_t size() const { return size_; }
  /// The digest of all bytes written; once, after the last write.
  Digest finish() { return hash_.finish(); }

private:
  static constexpr uint64_t kWriteBack = 8 << 20;
  int fd_;
  const std::filesystem::path& path_;
  Sha256 hash_;
  uint64_t size_ = 0, synced_ = 0;
};

}  // namespace imgbuild
