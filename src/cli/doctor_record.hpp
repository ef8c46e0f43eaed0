#pragma once
// The doctor's findings on a built image, kept in the store beside it
// (ImageRecord::Findings). An image is named by its digest, so what the
// doctor finds in it changes only with what it is told besides the image:
// the recipe lines it names and the warnings ignored. A build that makes the
// same image again (a no-op rebuild) reads the findings back instead of
// reading the image's programs out of its layers.
#include <set>
#include <string>
#include <vector>

#include "build/builder.hpp"
#include "inspect/doctor.hpp"
#include "store/layout.hpp"

namespace imgbuild::cli {

/// What examine_built finds in `built`: the record `store` keeps when it was
/// made by this imgbuild for the same context, else the doctor's own
/// examination, then kept (a store that cannot take it fails nothing).
std::vector<Finding> examine_kept(const Layout& store, const BuiltImage& built, const std::string& loc,
                                  const std::set<std::string>& ignore);

}  // namespace imgbuild::cli
