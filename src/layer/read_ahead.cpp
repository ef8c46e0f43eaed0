#include "layer/read_ahead.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/interrupt.hpp"
#include "base/threads.hpp"

namespace imgbuild {

FileReadAhead::FileReadAhead(const std::vector<LayerEntry>& entries, bool hash)
    : entries_(entries), hash_(hash), slots_(kWindow) {
  size_t readers = std::min<size_t>(thread_count(0), kMaxReaders);
  for (size_t i = 0; i < readers; ++i) readers_.emplace_back([this] { read_batches(); });
}

FileReadAhead::~FileReadAhead() { stop_threads(mutex_, stopping_, writable_, readers_); }

void FileReadAhead::read_batches() {
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

void FileReadAhead::read_batch(size_t ordinal, std::vector<FileRead>& files) {
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

void FileReadAhead::stream_file(size_t ordinal, FileRead& f) {
  try {
    const LayerEntry& e = entries_[f.entry];
    std::optional<Sha256> content;
    Fd fd = open_file(e, f, content);
    for (uint64_t left = e.size; left > 0;) {
      check_interrupt();  // the writer looks between entries only, and this may be a large one
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

Fd FileReadAhead::open_file(const LayerEntry& e, FileRead& f, std::optional<Sha256>& content) {
  // A file replaced by a pipe, a device or a symlink since the entry was
  // made is refused, never waited on nor followed.
  struct ::stat st {};
  Fd fd = open_read(e.source, FollowLink::No, &st);
  if (hash_) {
    f.digest = FileDigest{{}, FileStamp::of(st)};
    content.emplace();
  }
  return fd;
}

void FileReadAhead::read_exactly(const Fd& fd, const LayerEntry& e, char* out, size_t size, bool at_end,
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

FileReadAhead::Piece FileReadAhead::pooled_buffer() {
  std::lock_guard lock(mutex_);
  if (spare_.empty()) return {std::make_unique_for_overwrite<char[]>(kPiece + 1), 0, true};
  Piece piece{std::move(spare_.back()), 0, true};
  spare_.pop_back();
  return piece;
}

bool FileReadAhead::hand_over(size_t ordinal, Piece piece) {
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

}  // namespace imgbuild
