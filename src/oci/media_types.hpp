#pragma once
// The media types of the documents and layers imgbuild reads and writes, as
// values: a type is parsed once where its text enters (a registry's answer, a
// layout's index, a stored document) and compared as a MediaType from then on.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace imgbuild {

/// A media type: one imgbuild knows, or any other kept verbatim, so that what
/// only passes through (an artifact in an index, a foreign layer) is written
/// back byte for byte. Where an unknown type cannot serve, the code that needs
/// a known one refuses it, naming it.
class MediaType {
public:
  /// The types imgbuild knows by name.
  enum class Kind : uint8_t {
    Manifest,
    Index,
    Config,
    LayerGzip,
    LayerTar,
    LayerZstd,
    DockerManifest,
    DockerManifestList,
    DockerConfig,
    DockerLayerGzip,
    StepCache,
  };

  /// Implicit, so that a known type reads as its constant (media_type::kIndex).
  constexpr MediaType(Kind kind) : kind_(kind) {}
  /// The type `text` names: a known one when it is spelled exactly as that
  /// type (media types are compared byte for byte, as registries do), else an
  /// unknown one that keeps `text`.
  static MediaType parse(std::string_view text);

  /// The text of the type, as it was parsed.
  std::string str() const;
  /// An image index: OCI's, or Docker's manifest list.
  bool is_index() const { return kind_ == Kind::Index || kind_ == Kind::DockerManifestList; }
  /// An image manifest: OCI's or Docker's schema 2.
  bool is_manifest() const { return kind_ == Kind::Manifest || kind_ == Kind::DockerManifest; }

  friend bool operator==(const MediaType&, const MediaType&) = default;

private:
  explicit MediaType(std::string unknown) : unknown_(std::move(unknown)) {}

  // Exactly one is set. The text is an optional, not an empty string, so that
  // no std::string is built for a known type: the constants below stay
  // constant expressions for every compiler (clang rejects a constexpr one).
  std::optional<Kind> kind_;            ///< none for a type imgbuild does not know
  std::optional<std::string> unknown_;  ///< the text of an unknown type
};

/// A media type in a JSON document is its text.
void to_json(nlohmann::json& j, const MediaType& type);

namespace media_type {
inline constexpr MediaType kManifest = MediaType::Kind::Manifest;
inline constexpr MediaType kIndex = MediaType::Kind::Index;
inline constexpr MediaType kConfig = MediaType::Kind::Config;
inline constexpr MediaType kLayerGzip = MediaType::Kind::LayerGzip;
inline constexpr MediaType kLayerTar = MediaType::Kind::LayerTar;
inline constexpr MediaType kLayerZstd = MediaType::Kind::LayerZstd;
// Docker's schema 2 types: read from registries, never written.
inline constexpr MediaType kDockerManifest = MediaType::Kind::DockerManifest;
inline constexpr MediaType kDockerManifestList = MediaType::Kind::DockerManifestList;
inline constexpr MediaType kDockerConfig = MediaType::Kind::DockerConfig;
inline constexpr MediaType kDockerLayerGzip = MediaType::Kind::DockerLayerGzip;
/// The config of a step cache shared through a registry (--cache-to), and the
/// artifactType of its manifest.
inline constexpr MediaType kStepCache = MediaType::Kind::StepCache;
}  // namespace media_type

}  // namespace imgbuild
