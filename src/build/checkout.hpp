#pragma once
// The git checkout a build context lies in: which commit its sources are at,
// and when that was committed, the time images are created at unless
// SOURCE_DATE_EPOCH says.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace imgbuild {

/// The commit a checkout is at.
struct CheckoutHead {
  /// HEAD's commit id (hex) and committer time (seconds since the epoch).
  std::string commit;
  int64_t time = 0;
  /// The URL of the remote `origin` as git's config has it; "" without one.
  std::string remote;
};

/// HEAD of the git checkout holding `dir`: a `.git` folder or file in it or
/// above. nullopt when there is none. Uncommitted changes do not count: the
/// same tree gives the same commit and time on every machine and every build.
/// Throws std::runtime_error naming the checkout and git's own message when
/// git cannot tell (git missing, no commit yet, a repository git refuses to read).
std::optional<CheckoutHead> checkout_head(const std::filesystem::path& dir);

}  // namespace imgbuild
