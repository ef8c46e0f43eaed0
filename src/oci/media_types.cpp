#include "oci/media_types.hpp"

#include <iterator>

#include <nlohmann/json.hpp>

namespace imgbuild {

namespace {

/// The text of each known type, in the order of MediaType::Kind.
constexpr std::string_view kNames[] = {
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.container.image.v1+json",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.imgbuild.step-cache.v1+json",
};
static_assert(std::size(kNames) == static_cast<size_t>(MediaType::Kind::StepCache) + 1);

}  // namespace

MediaType MediaType::parse(std::string_view text) {
  for (size_t i = 0; i < std::size(kNames); ++i)
    if (kNames[i] == text) return static_cast<Kind>(i);
  return MediaType(std::string(text));
}

std::string MediaType::str() const { return kind_ ? std::string(kNames[static_cast<size_t>(*kind_)]) : *unknown_; }

void to_json(nlohmann::json& j, const MediaType& type) { j = type.str(); }

}  // namespace imgbuild
