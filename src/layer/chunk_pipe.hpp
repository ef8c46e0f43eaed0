#pragma once
// The hand-over between the tar writer and the compressor: the tar stream, cut
// into chunks at fixed offsets, consumed on a thread of its own.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace imgbuild {

/// Carries a byte stream, cut into kChunk-byte chunks (the last one shorter)
/// and in order, to `consume`, which runs on a thread of its own: the tar
/// writer goes on with the next files while the last chunk is hashed and
/// compressed. At most kDepth chunks wait in between. An exception in
/// `consume` stops the stream and reaches the writer from its next write()
/// or from finish().
class ChunkPipe {
public:
  /// The size of every chunk but the last: the cuts decide the bytes of a
  /// gzip layer (see ParallelGzipSink), so it is fixed.
  static constexpr size_t kChunk = 1 << 20;

  /// Receives each chunk; it may leave the buffer to be filled again, or
  /// take it and swap in another (of any size and contents) in its place.
  using Consumer = std::function<void(std::vector<char>& chunk)>;
  explicit ChunkPipe(Consumer consume);
  ~ChunkPipe();
  ChunkPipe(const ChunkPipe&) = delete;
  ChunkPipe& operator=(const ChunkPipe&) = delete;

  /// Appends bytes to the stream. Inline: the tar writer calls it for every
  /// block it writes.
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
  void finish();

private:
  static constexpr size_t kDepth = 2;

  void send();
  void run();

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

}  // namespace imgbuild
