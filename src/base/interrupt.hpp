#pragma once
// Ctrl-C and SIGTERM. The handler only records the signal (the one global
// STYLE.md allows); the build notices it at safe points (between tar entries,
// in every wait for a child process or a transfer) and throws Interrupted,
// so the ordinary unwinding path runs every destructor: temporary roots and
// partial blobs are removed, child processes are killed and reaped, locks are
// released. Later signals are counted and ignored: they never cut the cleanup
// short (SIGQUIT, Ctrl-\, still ends the process at once).
#include <chrono>

namespace imgbuild {

/// Thrown at a check point once SIGINT or SIGTERM has arrived. Deliberately
/// not a std::exception: the handlers on the way up that wrap an error with
/// its recipe line or try the next mirror must not take it for a failure.
struct Interrupted {
  int signal;
};

/// Installs the SIGINT and SIGTERM handlers (the command line does, once).
void install_interrupt_handlers();

/// The signal received (SIGINT or SIGTERM), 0 when none.
int interrupt_signal();

/// How many SIGINT and SIGTERM have arrived, the first included: the later
/// ones change nothing (the first one's cleanup runs to its end).
int interrupt_count();

/// Throws Interrupted once a signal has arrived.
void check_interrupt();

/// Records `signal` as if it had arrived, or forgets it (0): tests cancel a
/// build this way without signalling the whole test process.
void set_interrupt_for_testing(int signal);

/// Sleeps for `duration` (a retry's back-off), or throws Interrupted as soon
/// as a signal arrives.
void sleep_or_interrupt(std::chrono::milliseconds duration);

/// Waits until `fd` is readable (data, end of file, or a pidfd whose process
/// ended). Returns false, without waiting further, once a signal has arrived.
bool wait_readable(int fd);

}  // namespace imgbuild
