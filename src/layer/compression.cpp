#include "layer/compression.hpp"

#include <libdeflate.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "base/threads.hpp"
#include "layer/layer.hpp"

namespace imgbuild {

namespace {

/// Whether a block of bytes looks incompressible: its byte histogram is so
/// flat that coding literals could save at most about 0.01 bit a byte (the
/// chi-square distance from uniform, in integers so that every machine
/// decides alike). Random and already compressed data (archives, images,
/// packed binaries) are; text and code are far from it.
bool incompressible(const unsigned char* p, size_t n) {
  uint32_t h[4][256] = {};
  auto count = [&](size_t from, size_t to) {
    size_t i = from;
    for (; i + 4 <= to; i += 4) {
      ++h[0][p[i]];
      ++h[1][p[i + 1]];
      ++h[2][p[i + 2]];
      ++h[3][p[i + 3]];
    }
    for (; i < to; ++i) ++h[0][p[i]];
  };
  auto squares = [&] {
    uint64_t sum = 0;
    for (int b = 0; b < 256; ++b) {
      uint64_t c = uint64_t{h[0][b]} + h[1][b] + h[2][b] + h[3][b];
      sum += c * c;
    }
    return sum;
  };
  // Text and code show it in their first 4 KiB already: a chi2 / n above 1
  // there (random bytes give about 0.06 on so few), and the rest of the
  // block is not counted. Most blocks of a source tree end here.
  constexpr uint64_t kSample = 4096;
  if (n > kSample) {
    count(0, kSample);
    if (squares() * 256 > 2 * kSample * kSample) return false;
    count(kSample, n);
  } else {
    count(0, n);
  }
  // chi2 / n = 256 * squares / n^2 - 1 < 0.014, i.e. 8 - entropy < ~0.01 bit.
  return squares() * 256 * 1000 < uint64_t{1014} * n * n;
}

/// Moves the last of `spares` into `buffer`, if there is one (under the sink's lock).
void take_spare(std::vector<std::vector<char>>& spares, std::vector<char>& buffer) {
  if (spares.empty()) return;
  buffer.swap(spares.back());
  spares.pop_back();
}

}  // namespace

struct ParallelGzipSink::Compressors {
  struct Deleter {
    void operator()(libdeflate_compressor* c) const { libdeflate_free_compressor(c); }
  };
  std::unique_ptr<libdeflate_compressor, Deleter> deflate{libdeflate_alloc_compressor(kLevel)};
  std::unique_ptr<libdeflate_compressor, Deleter> store{libdeflate_alloc_compressor(0)};
};

ParallelGzipSink::ParallelGzipSink(BlobOutput& out, unsigned threads) : out_(out), workers_(thread_count(threads)) {
  for (size_t i = 0; i < workers_.size(); ++i) workers_[i] = std::thread([this] { work(); });
}

ParallelGzipSink::~ParallelGzipSink() { stop_threads(mutex_, stopping_, wake_workers_, workers_); }

void ParallelGzipSink::add(std::vector<char>& chunk) {
  while (order_.size() >= 2 * workers_.size()) write_front();
  auto job = std::make_shared<Job>();
  job->in.swap(chunk);
  {
    std::lock_guard lock(mutex_);
    take_spare(spare_in_, chunk);
    take_spare(spare_out_, job->out);
    pending_.push_back(job);
    order_.push_back(job);
  }
  wake_workers_.notify_one();
}

void ParallelGzipSink::finish() {
  // An empty stream still needs one (empty) member to be valid gzip.
  if (order_.empty()) {
    std::vector<char> none;
    add(none);
  }
  while (!order_.empty()) write_front();
}

void ParallelGzipSink::write_front() {
  std::shared_ptr<Job> job = order_.front();
  {
    std::unique_lock lock(mutex_);
    job_done_.wait(lock, [&] { return job->done; });
  }
  order_.pop_front();
  if (job->failed) throw std::runtime_error("gzip: compression failed");
  out_.write(job->out.data(), job->written);
  std::lock_guard lock(mutex_);
  spare_out_.push_back(std::move(job->out));
}

bool ParallelGzipSink::compress(Compressors& c, Job& job) {
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
  // Zero-filled only where a reused buffer grows.
  if (job.out.size() < bound) job.out.resize(bound);
  size_t written = 0;
  for (auto& r : runs) {
    size_t n = libdeflate_gzip_compress(r.stored ? c.store.get() : c.deflate.get(), in + r.start, r.end - r.start,
                                        job.out.data() + written, job.out.size() - written);
    if (n == 0) return false;
    written += n;
  }
  job.written = written;
  return true;
}

void ParallelGzipSink::work() {
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
    {
      std::lock_guard lock(mutex_);
      spare_in_.push_back(std::move(job->in));
      job->failed = !ok;
      job->done = true;
    }
    job_done_.notify_all();
  }
}

ZstdSink::ZstdSink(BlobOutput& out, unsigned threads)
    : out_(out), ctx_(ZSTD_createCCtx()), buffer_(ZSTD_CStreamOutSize()) {
  if (!ctx_) throw std::runtime_error("zstd: out of memory");
  check(ZSTD_CCtx_setParameter(ctx_.get(), ZSTD_c_compressionLevel, kLevel));
  check(ZSTD_CCtx_setParameter(ctx_.get(), ZSTD_c_checksumFlag, 1));
  // Jobs of 4 MiB: enough to keep every worker busy on a layer of a few
  // dozen MB, while the buffered jobs stay small.
  check(ZSTD_CCtx_setParameter(ctx_.get(), ZSTD_c_jobSize, kJobSize));
  size_t workers = ZSTD_CCtx_setParameter(ctx_.get(), ZSTD_c_nbWorkers, static_cast<int>(thread_count(threads)));
  if (ZSTD_isError(workers)) throw std::runtime_error("zstd: this libzstd has no multi-threading support");
}

void ZstdSink::add(const std::vector<char>& chunk) {
  ZSTD_inBuffer in{chunk.data(), chunk.size(), 0};
  while (in.pos < in.size) drain(ZSTD_e_continue, in);
}

void ZstdSink::finish() {
  ZSTD_inBuffer in{nullptr, 0, 0};
  while (drain(ZSTD_e_end, in) != 0) {
  }
}

size_t ZstdSink::drain(ZSTD_EndDirective mode, ZSTD_inBuffer& in) {
  ZSTD_outBuffer out{buffer_.data(), buffer_.size(), 0};
  size_t left = check(ZSTD_compressStream2(ctx_.get(), &out, &in, mode));
  out_.write(buffer_.data(), out.pos);
  return left;
}

size_t ZstdSink::check(size_t rc) {
  if (ZSTD_isError(rc)) throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(rc));
  return rc;
}

const char* compression_name(Compression c) { return c == Compression::Zstd ? "zstd" : "gzip"; }

std::optional<Compression> parse_compression(std::string_view name) {
  if (name == "gzip") return Compression::Gzip;
  if (name == "zstd") return Compression::Zstd;
  return std::nullopt;
}

}  // namespace imgbuild
