#include "layer/chunk_pipe.hpp"

#include "base/threads.hpp"

namespace imgbuild {

ChunkPipe::ChunkPipe(Consumer consume) : consume_(std::move(consume)) {
  fill_.reserve(kChunk);
  thread_ = std::thread([this] { run(); });
}

ChunkPipe::~ChunkPipe() { stop_threads(mutex_, stopping_, readable_, {&thread_, 1}); }

void ChunkPipe::finish() {
  if (!fill_.empty()) send();
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
  }
  readable_.notify_all();
  thread_.join();
  if (error_) std::rethrow_exception(error_);
}

void ChunkPipe::send() {
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

void ChunkPipe::run() {
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

}  // namespace imgbuild
