#pragma once
// Worker threads: how many to start, stopping those of a class that waits on
// a condition variable, and running pieces of work side by side.
#include <algorithm>
#include <condition_variable>
#include <exception>
#include <future>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

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

/// Runs `work(i)` for every i below `count`, each on a thread of its own, all
/// at once; waits for every one, then rethrows the first exception any threw,
/// so that nothing still runs when the caller handles it.
template <class Work>
void run_side_by_side(size_t count, const Work& work) {
  std::vector<std::future<void>> running;
  for (size_t i = 0; i < count; ++i) running.push_back(std::async(std::launch::async, [&work, i] { work(i); }));
  std::exception_ptr first;
  for (auto& r : running) try {
      r.get();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  if (first) std::rethrow_exception(first);
}

}  // namespace imgbuild
