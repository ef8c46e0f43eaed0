#include "base/growing_file.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace imgbuild {

void GrowingFile::opened(int fd) {
  Fd own(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!own) throw_errno("cannot share the file being written");
  std::lock_guard lock(mutex_);
  fd_ = std::move(own);
  changed_.notify_all();
}

void GrowingFile::grew(uint64_t size) {
  std::lock_guard lock(mutex_);
  size_ = size;
  changed_.notify_all();
}

void GrowingFile::restarted() { failed("the download started over: unpacked from the whole blob instead"); }

void GrowingFile::finished() {
  std::lock_guard lock(mutex_);
  finished_ = true;
  changed_.notify_all();
}

void GrowingFile::failed(const std::string& why) {
  std::lock_guard lock(mutex_);
  // Once finished, the file is whole and checked: a later failure (making
  // it durable) is no reason to doubt what readers read of it.
  if (finished_ || !failure_.empty()) return;
  failure_ = why;
  changed_.notify_all();
}

Fd GrowingFile::open_reader() {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return fd_ || !failure_.empty(); });
  if (!failure_.empty()) throw GrowingFileError(failure_);
  Fd reader(::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0));
  if (!reader) throw_errno("cannot read the file being written");
  return reader;
}

uint64_t GrowingFile::wait_beyond(uint64_t offset) {
  std::unique_lock lock(mutex_);
  changed_.wait(lock, [&] { return size_ > offset || finished_ || !failure_.empty(); });
  if (!failure_.empty()) throw GrowingFileError(failure_);
  return size_;
}

bool GrowingFile::abandoned() {
  std::lock_guard lock(mutex_);
  return !failure_.empty();
}

}  // namespace imgbuild
