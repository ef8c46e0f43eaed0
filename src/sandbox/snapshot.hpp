#pragma once
// Internal to src/sandbox/: the copy of the image root that a step runs on
// when the kernel refuses the overlay, and what its diff needs to read it.
#include <filesystem>
#include <string>

namespace imgbuild {

/// Copies the image root `from` into the empty folder `to` for a snapshot step.
void copy_image(const std::filesystem::path& from, const std::filesystem::path& to);

/// Whether folder `dir` of a snapshot copy carries the mark copy_image sets
/// on every folder it copies: one without it was made by the step.
bool has_snapshot_marker(const std::filesystem::path& dir);

/// `name` in folder `dir`, both relative to the image root ("" is the root).
std::string join(const std::string& dir, const std::string& name);

}  // namespace imgbuild
