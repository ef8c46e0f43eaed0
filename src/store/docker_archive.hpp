#pragma once
// `-o docker-archive:FILE`: a tarball that `docker load` and
// `skopeo inspect docker-archive:` accept.
#include <filesystem>
#include <string>

#include "oci/image.hpp"
#include "store/layout.hpp"

namespace imgbuild {

/// Writes the image whose manifest is in `layout` as a docker-archive: the
/// layout docker 25+ itself saves (an OCI image layout plus the legacy
/// manifest.json that older loaders read), so old and new loaders both accept
/// it. `repo_tag` is the name `docker load` gives the image ("hello:latest").
/// The file appears whole or not at all.
void write_docker_archive(const Layout& layout, const Descriptor& manifest, const std::string& repo_tag,
                          const std::filesystem::path& file, int64_t mtime);

}  // namespace imgbuild
