#include "base/interrupt.hpp"

#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

#include "base/errors.hpp"

namespace imgbuild {

namespace {

/// How often a wait looks at the signal: short enough that Ctrl-C feels
/// immediate, long enough to cost nothing.
constexpr int kPollMs = 100;

std::atomic<int> received{0};
std::atomic<int> count{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void on_signal(int sig) {
  int none = 0;
  int nth = count.fetch_add(1) + 1;
  if (received.compare_exchange_strong(none, sig)) return;
  // A signal after the first never ends the process: one interrupt often
  // comes twice (`timeout -s INT` signals the process and then its group, a
  // script passes on the Ctrl-C the terminal sent its whole group), and dying
  // by it would skip the cleanup under way and leave temporary roots in the
  // cache, with an exit status (130) that looks like a clean interrupt. The
  // cleanup is quick; the first repeat says what is happening and how to
  // quit anyway.
  if (nth != 2) return;
  int saved = errno;
  static constexpr char kNote[] =
      "imgbuild: interrupted: cleaning up before exiting (Ctrl-\\ quits at once, leaving temporary files)\n";
  [[maybe_unused]] ssize_t n = ::write(STDERR_FILENO, kNote, sizeof kNote - 1);
  errno = saved;
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  // Interrupted system calls restart: the waits that matter poll the flag, and
  // no other code has to expect EINTR.
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

int interrupt_signal() { return received.load(); }

int interrupt_count() { return count.load(); }

void check_interrupt() {
  if (int sig = received.load()) throw Interrupted{sig};
}

void set_interrupt_for_testing(int signal) {
  received.store(signal);
  count.store(signal ? 1 : 0);
}

void sleep_or_interrupt(std::chrono::milliseconds duration) {
  auto end = std::chrono::steady_clock::now() + duration;
  for (;;) {
    check_interrupt();
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return;
    ::poll(nullptr, 0, static_cast<int>(std::min<long long>(left.count(), kPollMs)));
  }
}

bool wait_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  for (;;) {
    if (interrupt_signal()) return false;
    int n = ::poll(&p, 1, kPollMs);
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) throw_errno("poll");
  }
}

}  // namespace imgbuild
