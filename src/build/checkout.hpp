#pragma once
// The git checkout a build context lies in: when its sources were last
// committed, the time images are created at unless SOURCE_DATE_EPOCH says.
#include <cstdint>
#include <filesystem>
#include <optional>

namespace imgbuild {

/// The committer time of HEAD (seconds since the epoch) of the git checkout
/// holding `dir`: a `.git` folder or file in it or above. nullopt when there
/// is none. Uncommitted changes do not count: the same tree gives the same
/// time on every machine and every build. Throws std::runtime_error naming
/// the checkout and git's own message when git cannot tell (git missing, no
/// commit yet, a repository git refuses to read).
std::optional<int64_t> checkout_commit_time(const std::filesystem::path& dir);

}  // namespace imgbuild
