#pragma once
// Worker threads: how many to start, and stopping those of a class that waits
// on a condition variable.
#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <span>
#include <thread>

namespace imgbuild {

/// `requested` threads, or one per core when it is 0 (at least one).
inline unsigned thread_count(unsigned requested) {
  return requested ? requested : std::max(1u, std::thread::hardware_concurrency());
}

/// Stops threads that wait on `wake` until `stopping` is set: sets it under
/// `mutex` (so that no thread misses it between its check and its wait),
/// wakes them all and joins each one that runs. For destructors.
inline void stop_threads(std::mutex& mutex, bool& stopping, std::condition_variable& wake,
                         std::span<std::thread> threads) {
  {
    std::lock_guard lock(mutex);
    stopping = true;
  }
  wake.notify_all();
  for (std::thread& t : threads)
    if (t.joinable()) t.join();
}

}  // namespace imgbuild
