#pragma once
// The scratch doctor: checks a finished image for the ways FROM-scratch images
// fail at run time (a missing loader, library or interpreter, a binary for
// another CPU, no CA bundle, no zoneinfo) before it is written anywhere.
#include <set>
#include <string>
#include <vector>

#include "layer/image_tree.hpp"
#include "oci/image.hpp"

namespace imgbuild {

/// Names of the warnings, as `:doctor { ignore = {...} }` and --ignore take them.
inline const std::set<std::string> kDoctorWarnings = {"entrypoint", "root", "tls", "tzdata"};

struct Finding {
  bool error = false;
  std::string check;  ///< "entrypoint", "root", "tls", "tzdata" (warnings) or "run" (errors)
  std::string loc;    ///< recipe line the finding is about
  std::string message;
};

/// What the doctor needs to know besides the image itself.
struct DoctorContext {
  std::string entrypoint_loc;    ///< line of the :entrypoint (or :cmd) step that set the program
  std::string image_loc;         ///< line of the image() call
  std::set<std::string> ignore;  ///< warnings not to report
};

/// Examines `image` whose files are `tree`. Errors: the program the image runs
/// is missing, not executable, built for another architecture, or needs a
/// loader, library or script interpreter the image lacks. Warnings: see
/// kDoctorWarnings.
std::vector<Finding> examine_image(const Image& image, const ImageTree& tree, const DoctorContext& context);

}  // namespace imgbuild
