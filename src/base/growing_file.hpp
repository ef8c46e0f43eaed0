#pragma once
// A file read while it is written: a layer blob unpacked as it downloads, so
// that a fresh machine's pull and unpack of a base image overlap instead of
// following each other. The writer says how far the file is written and how
// it ended; readers wait for bytes not written yet. A reader sees the end of
// the file only once the writer has finished it, checked: what it read is
// then exactly the bytes the writer verified, because the file is only ever
// appended to. A writer that has to start over (a registry that answers a
// resumed download with the whole blob) fails what was read so far instead
// of rewriting it under its readers.
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>

#include "base/fs.hpp"

namespace imgbuild {

/// What a reader of a GrowingFile gets when the writer failed, or started
/// over: what it read so far is not the file's content.
class GrowingFileError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

class GrowingFile {
public:
  /// A file of `expected_size` bytes once complete.
  explicit GrowingFile(uint64_t expected_size) : expected_size_(expected_size) {}
  uint64_t expected_size() const { return expected_size_; }

  // The writer's side.

  /// The file is open for writing at `fd` (duplicated here: the writer keeps
  /// its own), empty so far.
  void opened(int fd);
  /// The file now holds `size` bytes, all of them written.
  void grew(uint64_t size);
  /// The file was cut back to nothing, to be written anew: readers fail.
  void restarted();
  /// The file is complete, and its content checked.
  void finished();
  /// The writer gave up; readers fail with `why`. Nothing once finished.
  void failed(const std::string& why);

  // A reader's side.

  /// A descriptor of the file of its own, once the writer opened it (to be
  /// read with pread: it shares the writer's file offset). Throws
  /// GrowingFileError when the writer failed first.
  Fd open_reader();
  /// Waits until the file holds more than `offset` bytes, or is finished.
  /// Returns how many it holds: `offset` means the end. Throws
  /// GrowingFileError when the writer failed or started over.
  uint64_t wait_beyond(uint64_t offset);
  /// Whether readers were failed: the writer gave up or started over, and
  /// what they read may not be the file's content.
  bool abandoned();

private:
  const uint64_t expected_size_;
  std::mutex mutex_;
  std::condition_variable changed_;
  Fd fd_;
  uint64_t size_ = 0;
  bool finished_ = false;
  std::string failure_;  ///< why readers fail; empty while they need not
};

}  // namespace imgbuild
