#pragma once
// The git checkout a build context lies in: when its sources were last
// committed (the time images are created at unless SOURCE_DATE_EPOCH says),
// which commit that is and where it is published: what images say of where
// they came from.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace imgbuild {

/// HEAD of a git checkout. Uncommitted changes do not count: the same tree
/// gives the same values on every machine and every build.
struct Checkout {
  int64_t commit_time = 0;  ///< HEAD's committer time, seconds since the epoch
  std::string revision;     ///< HEAD's commit id
  /// The URL of the remote "origin" as configured (it may hold a password or
  /// token: strip it before it goes anywhere); empty when there is none.
  std::string remote;
};

/// The git checkout holding `dir`: a `.git` folder or file in it or above.
/// nullopt when there is none. Throws std::runtime_error naming the checkout
/// and git's own message when git cannot tell (git missing, no commit yet, a
/// repository git refuses to read).
std::optional<Checkout> read_checkout(const std::filesystem::path& dir);

/// `remote` as another machine reaches it; "" for a repository on this one (a
/// path or a file:// URL names nothing elsewhere, and an image or provenance
/// naming it would differ with the folder a checkout was cloned from).
std::string reachable_remote(const std::string& remote);

}  // namespace imgbuild
