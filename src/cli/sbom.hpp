#pragma once
// The SPDX SBOM of an image the command line names: what `imgbuild sbom`
// prints and what a push attaches to the image.
#include <string>

#include "cli/local_store.hpp"

namespace imgbuild::cli {

/// The SPDX 2.3 JSON document of `img`, read from its layers (spdx_document).
std::string spdx_of(const NamedImage& img);

}  // namespace imgbuild::cli
