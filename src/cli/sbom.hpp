#pragma once
// The SBOM of an image the command line names: what `imgbuild sbom` prints
// and what a push attaches to the image.
#include <string>

#include "cli/local_store.hpp"
#include "inspect/sbom.hpp"

namespace imgbuild::cli {

/// "imgbuild-<version>": who makes an SBOM, as its SPDX creator says.
std::string sbom_tool();

/// What `img` holds, read from its layers: written out by spdx_document or
/// cyclonedx_document.
Sbom sbom_of(const NamedImage& img);

}  // namespace imgbuild::cli
