#pragma once
// Build provenance: an in-toto Statement v1 with an SLSA Provenance v1
// predicate for each image a build makes, saying what it was made from (the
// recipe, its targets and parameters, the context's commit, every base image
// and cached() builder by digest, the --cache-from sources) and by which
// imgbuild. What only the build knows is gathered then: the statement is kept
// beside the image in the local store (provenance_path) for the attaching to
// pick up.
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "build/builder.hpp"
#include "build/checkout.hpp"
#include "oci/digest.hpp"

namespace imgbuild {

/// The in-toto statement type and the SLSA predicate type provenance_json() writes.
inline constexpr const char* kInTotoStatementType = "https://in-toto.io/Statement/v1";
inline constexpr const char* kSlsaProvenanceType = "https://slsa.dev/provenance/v1";
/// The media type of a statement as a blob (in-toto's, as cosign and buildx use it).
inline constexpr const char* kInTotoMediaType = "application/vnd.in-toto+json";

/// What the provenance of every image of one build says alike.
struct BuildFacts {
  /// The recipe's path relative to the build context ("recipe.lua",
  /// "deploy/app.lua") and the SHA-256 of its bytes.
  std::string recipe;
  Digest recipe_digest;
  /// The targets named on the command line (empty: all).
  std::vector<std::string> targets;
  /// The --set parameters as given: provenance_json() writes the value of
  /// none whose name says it is a secret (secret_parameter).
  std::map<std::string, std::string> parameters;
  /// The git checkout holding the context, when it is one.
  std::optional<Checkout> checkout;
  /// The --cache-from references, normalised.
  std::vector<std::string> cache_from;
  /// imgbuild's version.
  std::string version;
};

/// What provenance says of one built image.
struct ProvenanceFacts {
  /// The subject: the image's name (or the reference it is pushed to) and its manifest digest.
  std::string name;
  Digest manifest;
  /// The image's platform ("linux/amd64").
  std::string platform;
  /// Every base image and cached() builder the image was built from (Builder::inputs_of).
  std::vector<BuildInput> images;
  BuildFacts build;
};

/// Whether a --set parameter named `name` holds a secret, by its name: one
/// that says secret, token, password, passwd, credential, key or auth (in any
/// case). Its value is never written.
bool secret_parameter(const std::string& name);

/// The in-toto Statement v1 for `facts`, canonical (sorted keys, no
/// whitespace): the same facts, the same bytes. No time but what the facts
/// hold, no environment, no secret parameter's value.
std::string provenance_json(const ProvenanceFacts& facts);

/// Where the local store keeps the statement of the image with manifest
/// `manifest` (`STORE/provenance/sha256-HEX.intoto.json`, ImageRecord::Provenance):
/// written by each build that makes the image, the last build's; dropped
/// with the image.
std::filesystem::path provenance_path(const std::filesystem::path& store_root, const Digest& manifest);

}  // namespace imgbuild
