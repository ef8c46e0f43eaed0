#pragma once
// The media types of the documents and layers imgbuild reads and writes.

namespace imgbuild {

namespace media_type {
inline constexpr const char* kManifest = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char* kIndex = "application/vnd.oci.image.index.v1+json";
inline constexpr const char* kConfig = "application/vnd.oci.image.config.v1+json";
inline constexpr const char* kLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
inline constexpr const char* kLayerTar = "application/vnd.oci.image.layer.v1.tar";
inline constexpr const char* kLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd";
// Docker's schema 2 types: read from registries, never written.
inline constexpr const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr const char* kDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr const char* kDockerConfig = "application/vnd.docker.container.image.v1+json";
inline constexpr const char* kDockerLayerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";
}  // namespace media_type

}  // namespace imgbuild
