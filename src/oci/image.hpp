#pragma once
// The OCI image model: what an image is once built, and its JSON documents.
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/digest.hpp"
#include "oci/media_types.hpp"

namespace imgbuild {

/// The most bytes a manifest, an index or a config may have, for every writer
/// and reader of them: registries refuse bigger manifests (4 MiB is the
/// distribution registry's and containerd's limit), and imgbuild reads no
/// bigger document into memory. A build or a pull that would store a bigger
/// one fails before anything is written.
inline constexpr size_t kMaxDocumentSize = 4 << 20;

/// A document over kMaxDocumentSize.
class DocumentTooLarge : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// Throws DocumentTooLarge when a document of `size` bytes is over
/// kMaxDocumentSize: "WHAT is too large: N bytes, over the limit of 4194304
/// bytes (4 MiB) on an image document".
void check_document_size(const std::string& what, uint64_t size);

/// What a finished layer is, as the manifest and config need it.
struct LayerBlob {
  Digest digest;                   ///< sha256 of the compressed blob
  uint64_t size = 0;               ///< compressed size
  Digest diff_id;                  ///< sha256 of the uncompressed tar
  uint64_t uncompressed_size = 0;  ///< 0 when unknown (layers of pulled images)
  MediaType media_type = media_type::kLayerGzip;
};

/// Annotation that names an image inside an OCI layout's index.json.
inline constexpr const char* kRefNameAnnotation = "org.opencontainers.image.ref.name";
/// Annotations of an image built on a pulled base: which one, exactly.
inline constexpr const char* kBaseNameAnnotation = "org.opencontainers.image.base.name";
inline constexpr const char* kBaseDigestAnnotation = "org.opencontainers.image.base.digest";
/// Annotations of every built image: when and from what it was built.
inline constexpr const char* kCreatedAnnotation = "org.opencontainers.image.created";
inline constexpr const char* kSourceAnnotation = "org.opencontainers.image.source";
inline constexpr const char* kRevisionAnnotation = "org.opencontainers.image.revision";
inline constexpr const char* kVersionAnnotation = "org.opencontainers.image.version";

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

/// An OCI content descriptor.
struct Descriptor {
  MediaType media_type;
  Digest digest;
  uint64_t size = 0;
  std::map<std::string, std::string> annotations;
  std::optional<Platform> platform{};  ///< in indexes: what the manifest is for

  nlohmann::json to_json() const;
  /// Throws std::runtime_error naming the missing or malformed field.
  static Descriptor from_json(const nlohmann::json& j);
};

/// The PATH runtimes (and RUN steps) give a container whose config sets none.
inline constexpr const char* kDefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Docker's HEALTHCHECK as image configs hold it ("Healthcheck"): `test` is
/// {"CMD", argv...}, {"CMD-SHELL", command} or {"NONE"}; durations are in
/// nanoseconds, and a zero one (or zero retries) means the runtime's default
/// and is left out, as docker and buildah write it.
struct HealthConfig {
  std::vector<std::string> test;
  int64_t interval = 0, timeout = 0, start_period = 0;
  int64_t retries = 0;

  friend bool operator==(const HealthConfig&, const HealthConfig&) = default;
};

/// {"Test": [...], "Interval": 30000000000, ...}: how nlohmann::json writes one.
void to_json(nlohmann::json& j, const HealthConfig& check);

/// The runtime part of an image config (the "config" object of the OCI config).
struct RuntimeConfig {
  std::vector<std::string> env;  ///< "NAME=value", in the order first set
  std::optional<std::vector<std::string>> entrypoint, cmd;
  std::string workdir, user, stop_signal;
  std::set<std::string> exposed_ports;  ///< "8080/tcp"
  std::map<std::string, std::string> labels;
  std::set<std::string> volumes;
  /// Set by the recipe; a base image's check stays in Image::inherited_config
  /// until a recipe replaces it.
  std::optional<HealthConfig> healthcheck;

  /// Sets NAME, replacing an earlier value in place.
  void set_env(const std::string& name, const std::string& value);
  std::optional<std::string> get_env(const std::string& name) const;
};

struct HistoryEntry {
  std::string created_by;
  bool empty_layer = false;
  /// Kept from a base image's history; empty for entries of this build, which
  /// get the image's creation time.
  std::string created{}, author{}, comment{};
};

/// A built image: layers in order, their history and the config.
struct Image {
  Platform platform;
  RuntimeConfig config;
  std::vector<LayerBlob> layers;
  std::vector<HistoryEntry> history;
  int64_t created = 0;  ///< seconds since the epoch (SOURCE_DATE_EPOCH)
  /// Fields of a base image's runtime config that this model does not know
  /// (a base's Healthcheck, Shell, OnBuild...), carried through unchanged.
  nlohmann::json inherited_config = nlohmann::json::object();
  /// Manifest annotations (the base image an image was built on).
  std::map<std::string, std::string> annotations;

  /// The OCI image config document (canonical: sorted keys, no whitespace).
  std::string config_document() const;
  /// The OCI image manifest document for the given config descriptor.
  std::string manifest_document(const Descriptor& config) const;
};

/// "1970-01-01T00:00:00Z" for an epoch time.
std::string rfc3339(int64_t seconds);

/// Where a build's sources came from; an empty field says nothing.
struct ImageOrigin {
  std::string source;    ///< the sources' repository URL, without credentials
  std::string revision;  ///< the commit built
  std::string version;   ///< the release built (a CI tag)
};

/// The manifest annotations of a built image, all made here: when it was
/// created (`image.created`), where it came from (`origin`), and the base it
/// was built on (kBaseNameAnnotation and kBaseDigestAnnotation, set by the
/// pull in `image.annotations`). A config label of one of these names that
/// the recipe set (one not inherited unchanged from `base_labels`, the
/// base's labels) replaces the annotation, or drops it when empty. Last,
/// `overrides` (a recipe's `annotations` option of image() or push()) set
/// any annotation, or drop one when empty, leaving the config as it is.
std::map<std::string, std::string> built_annotations(const Image& image, const ImageOrigin& origin,
                                                     const std::map<std::string, std::string>& base_labels,
                                                     const std::map<std::string, std::string>& overrides = {});

/// The annotations of an index over several platforms' images, given theirs
/// (built_annotations): those every image has with the same value. So the
/// index says when, from what commit and base it was built and what the
/// recipe set, but names no base digest of one platform's.
std::map<std::string, std::string> index_annotations(const std::vector<std::map<std::string, std::string>>& images);

/// Reads an image config document (OCI or Docker) and its manifest's layer
/// descriptors back into the model, to build on it. Docker layer types become
/// their OCI equivalents (the same bytes). Throws std::runtime_error naming
/// what is malformed or unsupported.
Image image_from_documents(const nlohmann::json& manifest, const nlohmann::json& config);

/// The pieces of an image stored in a layout, read back for listing and inspection.
struct StoredImage {
  Descriptor manifest;
  nlohmann::json manifest_json;
  nlohmann::json config_json;
  /// Sum of the manifest, config and compressed layer sizes.
  uint64_t total_size() const;
  /// Sum of the compressed layer sizes alone (BuiltImage::compressed).
  uint64_t layers_size() const;
};

}  // namespace imgbuild
