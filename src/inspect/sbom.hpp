#pragma once
// The software bill of materials of an image, as SPDX 2.3 JSON: what the
// image is made of, read from the image itself (the Go build info of its
// programs, the base's package databases, the files the recipe added), so it
// says the same on any machine for the same image.
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "layer/image_tree.hpp"
#include "oci/digest.hpp"

namespace imgbuild {

/// A package an image's base installed, from its package database.
struct OsPackage {
  std::string name, version, architecture;
  /// The source package (dpkg `Source:`, apk `o:`) when it differs from name.
  std::string source;
  /// The license as the database states it (apk `L:`); dpkg keeps none.
  std::string license;
  bool operator==(const OsPackage&) const = default;
};

/// The installed packages of an apk database (`/lib/apk/db/installed`).
std::vector<OsPackage> parse_apk_installed(std::string_view text);
/// The installed packages of a dpkg status file (`/var/lib/dpkg/status`, or
/// one file of distroless' `/var/lib/dpkg/status.d/`): only those whose
/// Status says "installed".
std::vector<OsPackage> parse_dpkg_status(std::string_view text);

/// What an SBOM describes: one image as the store holds it.
struct SbomSubject {
  /// How the user names the image ("hello", "registry.example/app:v1").
  std::string name;
  /// The digest of the image's manifest: the document is about that image.
  Digest manifest;
  /// The image config's `created` (RFC 3339) and `architecture`.
  std::string created, architecture;
  /// The manifest's base image annotations (kBaseNameAnnotation,
  /// kBaseDigestAnnotation); "" for an image built on nothing.
  std::string base_name, base_digest;
  /// The image's files: its layers applied in order.
  const ImageTree& tree;
  /// The first `base_layers` layers came from the base image; files the
  /// layers above them left in the image are listed one by one with their
  /// checksums.
  size_t base_layers = 0;
  /// "imgbuild-<version>": the SPDX creator.
  std::string tool;
};

/// The SPDX 2.3 JSON document for `subject`, canonical (sorted keys, no
/// whitespace): the image; its base by digest; every Go program in it with
/// its main module, toolchain, build settings and each dependency module with
/// version, `h1:` sum and purl; the base's packages from its apk and dpkg
/// databases; the recipe's files with SHA-1 and SHA-256. Throws
/// std::runtime_error naming the file for a layer that cannot be read.
std::string spdx_document(const SbomSubject& subject);

}  // namespace imgbuild
