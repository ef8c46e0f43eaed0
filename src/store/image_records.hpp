#pragma once
// What the local store keeps beside an image about it, one file per manifest
// digest: for attaching to the image when it is pushed or written, the
// provenance its build wrote and the SBOM made of it; and what the doctor
// found in it, said again when a build makes the same image. Each goes with
// its image: garbage collection drops the records no named image needs.
#include <filesystem>
#include <set>

#include "oci/digest.hpp"

namespace imgbuild {

/// A kind of record about an image.
enum class ImageRecord {
  Provenance,  ///< `provenance/sha256-HEX.intoto.json`: the in-toto statement its last build wrote
  Sbom,        ///< `sbom/sha256-HEX.spdx.json`: the SPDX document last made of it
  Findings,    ///< `doctor/sha256-HEX.json`: what the doctor last found in it (cli/doctor_record.hpp)
};

/// Where the store at `store_root` keeps `record` of the image whose manifest
/// is `manifest`.
std::filesystem::path image_record_path(const std::filesystem::path& store_root, ImageRecord record,
                                        const Digest& manifest);

/// Removes every record of the store at `store_root` about a manifest that is
/// not in `live` (and any other file in their folders). The caller holds the store's usage lock exclusively, as for
/// Layout::collect_garbage: no build is between keeping a record and naming
/// its image.
void drop_image_records(const std::filesystem::path& store_root, const std::set<Digest>& live);

}  // namespace imgbuild
