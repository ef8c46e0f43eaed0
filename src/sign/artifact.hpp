#pragma once
// OCI 1.1 artifacts about an image (image-spec 1.1): a document (an SBOM, a
// provenance statement, a signature) in a manifest whose `subject` is the
// image's manifest, so that registries and layouts find it by the image's
// digest alone, and the referrers index that lists them where a registry has
// no referrers API (distribution-spec 1.1, the referrers tag schema).
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/digest.hpp"
#include "oci/image.hpp"

namespace imgbuild {

/// The config of an artifact that needs none: the two bytes "{}".
inline constexpr const char* kEmptyMediaType = "application/vnd.oci.empty.v1+json";
/// What an SPDX 2.3 JSON SBOM is, as artifactType and as its layer's type.
inline constexpr const char* kSpdxMediaType = "application/spdx+json";

/// A document to attach to an image: any kind, so that a new one (provenance)
/// is one more value, not more code.
struct Attachment {
  std::string artifact_type;  ///< what the artifact is ("application/spdx+json")
  std::string media_type;     ///< the type of its one layer, the document
  std::string bytes;          ///< the document
  /// The layer's annotations (a signature's, for cosign).
  std::map<std::string, std::string> annotations = {};
};

/// A document of an artifact: its descriptor and its bytes.
struct ArtifactBlob {
  Descriptor descriptor;
  std::string bytes;
};

/// An artifact manifest ready to be stored or pushed, with its blobs.
struct Artifact {
  std::string artifact_type;
  std::string manifest;             ///< the manifest's bytes (canonical JSON)
  Descriptor descriptor;            ///< of `manifest`
  std::vector<ArtifactBlob> blobs;  ///< the empty config, then the document
};

/// The artifact manifest of `attachment` about `subject` (an image manifest
/// or index): artifactType, the empty config, one layer and the subject.
/// Deterministic: the same document about the same image has one digest, so
/// attaching it twice adds nothing. `earlier_layers` (descriptors, already in
/// the repository) come before the document's layer: cosign keeps every
/// signature of an image in one manifest.
Artifact make_artifact(const Descriptor& subject, const Attachment& attachment,
                       const std::vector<nlohmann::json>& earlier_layers = {});

/// "sha256-<hex>": the tag of the referrers index of `subject` where a
/// registry has no referrers API (the referrers tag schema).
std::string referrers_tag(const Digest& subject);

/// The entry of an artifact in a referrers index: its descriptor with its
/// artifactType.
nlohmann::json referrer_entry(const Artifact& artifact);

/// `index` (a referrers index's bytes; empty for none yet) with `entries`
/// added, each once: an entry whose digest is listed already is skipped.
/// nullopt when nothing was added, so an unchanged index is not written
/// again. Throws std::runtime_error when `index` is not an image index.
std::optional<std::string> merge_referrers(const std::string& index, const std::vector<nlohmann::json>& entries);

/// The descriptors a referrers index lists (the referrers API's answer or the
/// tag schema's index). Throws std::runtime_error, saying what is wrong, for
/// one that is not an image index.
std::vector<nlohmann::json> referrers_of(const std::string& index);

}  // namespace imgbuild
