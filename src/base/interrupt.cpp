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
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs a lock-free flag");

extern "C" void on_signal(int sig) {
  int none = 0;
  if (received.compare_exchange_strong(none, sig)) return;
  // A second signal: the user will not wait for the cleanup.
  ::signal(sig, SIG_DFL);
  ::raise(sig);
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

void check_interrupt() {
  if (int sig = received.load()) throw Interrupted{sig};
}

void set_interrupt_for_testing(int signal) { received.store(signal); }

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
