#pragma once
// The software bill of materials of an image, as SPDX 2.3 or CycloneDX 1.6
// JSON: what the image is made of, read from the image itself (the Go build info of its
// programs, the base's package databases, the files the recipe added), so it
// says the same on any machine for the same image.
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "inspect/go_buildinfo.hpp"
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

/// A Go program in the image, as its build info describes it.
struct SbomProgram {
  /// How both formats name it: SPDX `SPDXID` after "SPDXRef-", CycloneDX
  /// `bom-ref`; the same goes for every `id` below.
  std::string id;
  /// Where it is in the image ("/app").
  std::string path;
  GoBuildInfo go;
  /// The main module's purl ("" without a main module) and the SHA-256 of its
  /// `h1:` sum ("" without one).
  std::string purl, sha256;
  /// Indexes into Sbom::toolchains (none when the build info names no
  /// toolchain) and Sbom::modules, one per `dep` line in its order.
  std::optional<size_t> toolchain;
  std::vector<size_t> modules;
};

/// A Go toolchain's standard library, listed once however many programs it built.
struct SbomToolchain {
  std::string id, go_version, purl;
};

/// A Go module programs were built from, listed once however many share it.
struct SbomModule {
  std::string id;
  /// As the first program listing it names it, with its replacement.
  GoDependency dep;
  /// The purl of what was built ("" for a module replaced by a local folder)
  /// and the SHA-256 of its `h1:` sum ("" without one).
  std::string purl, sha256;
  /// What was built: the replacement when go.mod names one.
  const GoModule& used() const { return dep.replacement ? *dep.replacement : dep.module; }
};

/// A package of the image's distribution, from its apk or dpkg database.
struct SbomPackage {
  std::string id;
  /// "apk" or "deb": the purl type and the database it came from.
  std::string type, purl;
  OsPackage package;
};

/// A regular file the recipe's layers left in the image.
struct SbomFile {
  std::string id;
  /// Absolute in the image ("/app"); SHA-1 and SHA-256 of its bytes in hex.
  std::string path, sha1, sha256;
};

/// What an image is made of, gathered once and written in either format:
/// both serializers only arrange these facts, in this order.
struct Sbom {
  std::string name;
  Digest manifest;
  std::string created, architecture, tool;
  /// The image's purl (`pkg:oci/SHORT@sha256%3A...?arch=...`) and the last
  /// component of its name, tag and digest cut (what the purl names).
  std::string purl, short_name;
  /// The base image by name and digest ("" for an image built on nothing),
  /// the digest's hex when it is a SHA-256 and its purl then.
  std::string base_name, base_digest, base_sha256, base_purl;
  std::vector<SbomProgram> programs;
  std::vector<SbomToolchain> toolchains;
  std::vector<SbomModule> modules;
  std::vector<SbomPackage> packages;
  std::vector<SbomFile> files;
};

/// Reads what `subject` is made of: every Go program in it with its main
/// module, toolchain, build settings and each dependency module with version,
/// `h1:` sum and purl; the base's packages from its apk and dpkg databases;
/// the recipe's files with SHA-1 and SHA-256. Throws std::runtime_error
/// naming the file for a layer that cannot be read.
Sbom gather_sbom(const SbomSubject& subject);

/// `sbom` as SPDX 2.3 JSON, canonical (sorted keys, no whitespace): the
/// same image gives the same bytes on any machine.
std::string spdx_document(const Sbom& sbom);

/// Whether `document` is what spdx_document() wrote of the image whose
/// manifest is `manifest`, named `name`, by `tool` ("imgbuild-<version>"):
/// canonical SPDX 2.3 JSON whose name, namespace, creator and image package
/// say so. What it lists is not checked: that is only known by reading the
/// image again, which a document the store keeps (ImageRecord::Sbom) saves.
bool spdx_describes(std::string_view document, const std::string& name, const Digest& manifest,
                    const std::string& tool);

/// `sbom` as CycloneDX 1.6 JSON, canonical as spdx_document() is: the image
/// as `metadata.component` with its base as pedigree ancestor, the programs,
/// toolchains, modules, packages and files as components, and what depends
/// on what as `dependencies`.
std::string cyclonedx_document(const Sbom& sbom);

}  // namespace imgbuild
