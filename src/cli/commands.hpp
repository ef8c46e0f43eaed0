#pragma once
// The commands of imgbuild, one file each; main.cpp dispatches to them. Each
// takes the words after its name and returns the exit status, or throws (a
// UsageError for a mistake in those words).
#include <string>
#include <vector>

namespace imgbuild::cli {

/// imgbuild [build] RECIPE [TARGET...]: builds, examines, stores, writes and
/// pushes the images the recipe describes.
int cmd_build(const std::vector<std::string>& args);
/// imgbuild plan RECIPE [TARGET...]: each step the targets need, its key and
/// where its result would come from. Nothing is built, written or pushed.
int cmd_plan(const std::vector<std::string>& args);
/// imgbuild cache ls | prune: lists or empties the build cache.
int cmd_cache(const std::vector<std::string>& args);
/// imgbuild images: the local store, an image a line.
int cmd_images(const std::vector<std::string>& args);
/// imgbuild rmi IMAGE...: images out of the store, with the blobs nothing
/// else needs.
int cmd_rmi(const std::vector<std::string>& args);
/// imgbuild push NAME REF: a stored image to a registry.
int cmd_push(const std::vector<std::string>& args);
/// imgbuild login [--username U] [--password-stdin] HOST: a credential,
/// checked with the registry, saved where podman, skopeo and docker read it.
int cmd_login(const std::vector<std::string>& args);
/// imgbuild logout HOST: every saved credential for HOST removed.
int cmd_logout(const std::vector<std::string>& args);
/// imgbuild inspect NAME | oci:DIR[:NAME]: one image as a JSON object.
int cmd_inspect(const std::vector<std::string>& args);
/// imgbuild sbom NAME | oci:DIR[:NAME]: the image's SPDX 2.3 SBOM.
int cmd_sbom(const std::vector<std::string>& args);
/// imgbuild verify REF --key PUB.pem: the pushed image's signatures, SBOM
/// and other referrers checked against the key and its digest.
int cmd_verify(const std::vector<std::string>& args);
/// imgbuild store verify: every blob, reference and diff_id of the store checked.
int cmd_store(const std::vector<std::string>& args);
/// imgbuild convert [DOCKERFILE | DIR] [-f FILE] [--context DIR]: the
/// equivalent recipe on stdout.
int cmd_convert(const std::vector<std::string>& args);
/// imgbuild check [--json] FILE...: the static-binary report of each file.
int cmd_check(const std::vector<std::string>& args);

}  // namespace imgbuild::cli
