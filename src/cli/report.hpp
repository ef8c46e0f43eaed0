#pragma once
// How the command line ends and speaks: its exit statuses, the usage error any
// command may raise, and the "imgbuild: " line of every error, warning and note.
#include <stdexcept>
#include <string>

namespace imgbuild::cli {

/// A build, recipe or other error.
inline constexpr int kExitError = 1;
/// imgbuild was called wrongly (a UsageError).
inline constexpr int kExitUsage = 2;

/// A mistake in how imgbuild was called (exit status 2).
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// Writes "imgbuild: MESSAGE" on stderr, as one line in one write, so that
/// lines from the builder's threads (registry requests) never interleave;
/// each of its lines through printable_text().
void report(const std::string& message);

}  // namespace imgbuild::cli
