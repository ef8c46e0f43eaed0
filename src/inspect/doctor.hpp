#pragma once
// The scratch doctor: checks a finished image for the ways FROM-scratch images
// fail at run time (a missing loader, library or interpreter, a binary for
// another CPU, a Go binary whose cgo-only module is a stub, no CA bundle, no
// zoneinfo) before it is written anywhere.
#include <set>
#include <string>
#include <vector>

#include "layer/image_tree.hpp"
#include "oci/image.hpp"

namespace imgbuild {

/// Names of the warnings, as `:doctor { ignore = {...} }` and --ignore take them.
inline const std::set<std::string> kDoctorWarnings = {"cgo", "entrypoint", "root", "tls", "tzdata"};

struct Finding {
  bool error = false;
  std::string check;  ///< a name of kDoctorWarnings (warnings) or "run" (errors)
  std::string loc;    ///< recipe line the finding is about
  std::string message;
};

/// What the doctor needs to know besides the image itself.
struct DoctorContext {
  std::string entrypoint_loc;    ///< line of the :entrypoint (or :cmd) step that set the program
  std::string image_loc;         ///< line of the image() call
  std::set<std::string> ignore;  ///< warnings not to report
  /// The recipe line of the step that made each of the image's layers (the
  /// `from` line for a base's): where a finding about a file in it points.
  std::vector<std::string> layer_locs;
  /// How many of the image's layers came with its base image: their programs
  /// are the base's own, built to run on it, and are not examined.
  size_t base_layers = 0;
};

/// Examines `image` whose files are `tree`. Errors: the program the image runs
/// is missing, not executable, built for another architecture, or needs a
/// loader, library or script interpreter the image lacks; so does another
/// ELF program that a step of the recipe put where images keep programs (the
/// bin, sbin and libexec folders, the entrypoint's own folder), reported at
/// that step's line. Warnings: see kDoctorWarnings.
std::vector<Finding> examine_image(const Image& image, const ImageTree& tree, const DoctorContext& context);

}  // namespace imgbuild
