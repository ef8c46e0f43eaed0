#pragma once
// The OCI image model: what an image is once built, and its JSON documents.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/digest.hpp"
#include "core/layer.hpp"

namespace imgbuild {

namespace media_type {
inline constexpr const char* kManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr const char* kLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
}  // namespace media_type

/// Annotation that names an image inside an OCI layout's index.json.
inline constexpr const char* kRefNameAnnotation = "org.opencontainers.image.ref.name";

/// An OCI content descriptor.
struct Descriptor {
  std::string media_type;
  Digest digest;
  uint64_t size = 0;
  std::map<std::string, std::string> annotations;

  nlohmann::json to_json() const;
  /// Throws std::runtime_error naming the missing or malformed field.
  static Descriptor from_json(const nlohmann::json& j);
};

/// os/architecture[/variant], in OCI's names ("linux/amd64", "linux/arm/v7").
struct Platform {
  std::string os = "linux";
  std::string architecture;
  std::string variant;

  /// The machine imgbuild runs on.
  static Platform host();
  /// Parses "os/arch[/variant]"; throws std::runtime_error for anything else.
  static Platform parse(const std::string& text);
  std::string str() const;
  friend bool operator==(const Platform&, const Platform&) = default;
};

/// The runtime part of an image config (the "config" object of the OCI config).
struct RuntimeConfig {
  std::vector<std::string> env;  ///< "NAME=value", in the order first set
  std::optional<std::vector<std::string>> entrypoint, cmd;
  std::string workdir, user, stop_signal;
  std::set<std::string> exposed_ports;  ///< "8080/tcp"
  std::map<std::string, std::string> labels;
  std::set<std::string> volumes;

  /// Sets NAME, replacing an earlier value in place.
  void set_env(const std::string& name, const std::string& value);
  std::optional<std::string> get_env(const std::string& name) const;
};

struct HistoryEntry {
  std::string created_by;
  bool empty_layer = false;
};

/// A built image: layers in order, their history and the config.
struct Image {
  Platform platform;
  RuntimeConfig config;
  std::vector<LayerBlob> layers;
  std::vector<HistoryEntry> history;
  int64_t created = 0;  ///< seconds since the epoch (SOURCE_DATE_EPOCH)

  /// The OCI image config document (canonical: sorted keys, no whitespace).
  std::string config_document() const;
  /// The OCI image manifest document for the given config descriptor.
  std::string manifest_document(const Descriptor& config) const;
};

/// "1970-01-01T00:00:00Z" for an epoch time.
std::string rfc3339(int64_t seconds);

/// The pieces of an image stored in a layout, read back for listing and inspection.
struct StoredImage {
  Descriptor manifest;
  nlohmann::json manifest_json;
  nlohmann::json config_json;
  /// Sum of the manifest, config and compressed layer sizes.
  uint64_t total_size() const;
};

}  // namespace imgbuild
