#pragma once
// The two layer compressors, gzip and zstd: each takes the tar stream in
// ChunkPipe's chunks and writes the compressed bytes to the blob, in order,
// with the one fixed setting that Compression names.
#include <zstd.h>

#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "layer/blob_output.hpp"

namespace imgbuild {

/// The gzip compressor: compresses the tar the way pigz does, on every core:
/// the stream comes cut into kChunk-byte pieces (ChunkPipe::kChunk), each
/// compressed by a worker into gzip members (libdeflate at level 5: layers
/// as small as `gzip -6` makes them, at about 4x its speed), and the members
/// are written in order. A run of members is one valid gzip stream that
/// gzip, Go, Python and docker read as a whole; with fixed cuts the bytes
/// are the same on every machine, however many cores it has. Memory stays
/// bounded: at most two chunks per worker are in flight.
///
/// Within a chunk, 64 KiB blocks that cannot shrink (see incompressible())
/// are stored, not searched for matches they do not have: deflate spends
/// more time on such bytes than on text, to save nothing. Each run of stored
/// or compressed blocks is its own member.
class ParallelGzipSink {
public:
  /// Writes to `out` from `threads` workers (0: one per core).
  ParallelGzipSink(BlobOutput& out, unsigned threads);
  ~ParallelGzipSink();
  ParallelGzipSink(const ParallelGzipSink&) = delete;
  ParallelGzipSink& operator=(const ParallelGzipSink&) = delete;

  /// Takes the next chunk of the stream, kChunk bytes (fewer only for the
  /// last), as ChunkPipe cuts it: the cuts decide the bytes. Leaves in
  /// `chunk` a buffer to fill again, of any size and contents: one a worker
  /// is done with (its pages already mapped), or an empty one.
  void add(std::vector<char>& chunk);

  /// Writes the members still in flight; the stream is then complete.
  void finish();

private:
  /// Level 5, not 6: as layers (imgbuild build), Go's source tree gives
  /// 26.27 MB (level 6: 25.95, gzip -6: 27.09) for a fifth less deflate CPU,
  /// Go's tool binaries 32.34 MB (32.15; 32.40) for 17% less build CPU, and
  /// bench/run.sh's layer tree 92.66 MB (92.51; 94.22). A change here changes
  /// every gzip layer's bytes: the step keys' format (step_cache.cpp) with it.
  static constexpr int kLevel = 5;
  static constexpr size_t kBlock = 64 << 10;

  struct Job {
    std::vector<char> in, out;
    size_t written = 0;  ///< bytes of `out` that are the members (it keeps its size, to be reused)
    bool done = false;
    bool failed = false;
  };

  /// A worker's libdeflate compressors (libdeflate's types stay in the .cpp).
  struct Compressors;

  /// Waits for the oldest chunk, then writes its members.
  void write_front();
  /// Compresses one chunk into members; false when libdeflate fails.
  static bool compress(Compressors& c, Job& job);
  void work();

  BlobOutput& out_;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_workers_, job_done_;
  bool stopping_ = false;
  std::deque<std::shared_ptr<Job>> pending_;  ///< waiting for a worker
  std::deque<std::shared_ptr<Job>> order_;    ///< submitted, not yet written: output order
  /// Buffers done with, to be used again: a fresh megabyte per chunk costs
  /// a page fault every 4 KiB, its zero-filling and its unmapping, about a
  /// tenth of a build of many small files. As many as there are jobs, at most.
  std::vector<std::vector<char>> spare_in_, spare_out_;
};

/// The zstd compressor: libzstd's own workers, one per core. Its streaming
/// multi-threaded output is the same for any number of workers (it cuts jobs
/// at fixed offsets; facebook/zstd#2238, #2327), so it is deterministic; at
/// least one worker always, because the single-threaded format differs.
class ZstdSink {
public:
  /// Writes to `out` from `threads` workers (0: one per core).
  ZstdSink(BlobOutput& out, unsigned threads);

  /// Compresses the next chunk of the stream.
  void add(const std::vector<char>& chunk);

  /// Ends the frame and writes what libzstd still holds.
  void finish();

private:
  static constexpr int kLevel = 3;
  static constexpr int kJobSize = 4 << 20;

  struct Deleter {
    void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
  };

  size_t drain(ZSTD_EndDirective mode, ZSTD_inBuffer& in);
  static size_t check(size_t rc);

  BlobOutput& out_;
  std::unique_ptr<ZSTD_CCtx, Deleter> ctx_;
  std::vector<char> buffer_;
};

}  // namespace imgbuild
