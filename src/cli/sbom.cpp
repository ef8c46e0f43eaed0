// imgbuild sbom NAME | oci:DIR[:NAME] [--format spdx|cyclonedx]: the image's
// software bill of materials, read from the image's own layers.
#include <filesystem>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/local_store.hpp"
#include "cli/options.hpp"
#include "cli/report.hpp"
#include "cli/sbom.hpp"
#include "inspect/sbom.hpp"

namespace imgbuild::cli {

namespace {

const Syntax kSbomSyntax = {OptionSet{Opt::Format}, Operands::NotDash};

std::string string_at(const nlohmann::json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : "";
}

/// How many of `image`'s layers are its base's: the base manifest (named by
/// the image's base annotation) is read from the layout the image is in, else
/// from the local store, where building on it left it.
size_t base_layer_count(const NamedImage& img, const Image& image, const std::string& base_digest) {
  if (base_digest.empty()) return 0;
  const Digest digest = Digest::parse(base_digest);
  Layout store = open_store();
  for (const Layout* layout : {&img.layout, static_cast<const Layout*>(&store)}) {
    if (!layout->has_blob(digest)) continue;
    const uint64_t size = std::filesystem::file_size(layout->blob_path(digest));
    nlohmann::json manifest =
        nlohmann::json::parse(layout->read_document({media_type::kManifest, digest, size, {}}), nullptr, false);
    const nlohmann::json& layers = manifest.is_object() ? manifest["layers"] : nlohmann::json();
    if (!layers.is_array() || layers.size() > image.layers.size()) break;
    for (size_t i = 0; i < layers.size(); ++i)
      if (string_at(layers[i], "digest") != image.layers[i].digest.str()) return 0;
    return layers.size();
  }
  throw std::runtime_error(img.name + " is built on " + base_digest +
                           ", whose manifest is not in the local store: pull the base again "
                           "(or build the image again) to tell its layers from the recipe's");
}

}  // namespace

std::string sbom_tool() { return std::string("imgbuild-") + IMGBUILD_VERSION; }

Sbom sbom_of(const NamedImage& img) {
  const nlohmann::json& config = img.image.config_json;
  const nlohmann::json annotations = img.image.manifest_json.value("annotations", nlohmann::json::object());
  Image image = image_from_documents(img.image.manifest_json, config);
  const std::string base_digest = string_at(annotations, kBaseDigestAnnotation);
  // The listings a build kept in the cache (Builder's "layer-listings"): a
  // layer the build wrote or read is listed without reading it again, so the
  // SBOM reads each layer once, for the bytes of the files it hashes.
  ImageTree tree(std::make_shared<LayerListings>(default_cache_dir() / "layer-listings"));
  for (const LayerBlob& layer : image.layers)
    tree.apply_layer_blob(img.layout.verified_blob(layer.digest, layer.size, kRebuildHint));
  SbomSubject subject{img.name,
                      img.manifest.digest,
                      string_at(config, "created"),
                      string_at(config, "architecture"),
                      string_at(annotations, kBaseNameAnnotation),
                      base_digest,
                      tree,
                      base_layer_count(img, image, base_digest),
                      sbom_tool()};
  return gather_sbom(subject);
}

int cmd_sbom(const std::vector<std::string>& args) {
  Options options;
  std::vector<std::string> operands = parse_options(args, kSbomSyntax, options);
  if (operands.size() != 1) throw UsageError("sbom takes one image: NAME or oci:DIR[:NAME]");
  const std::string format = options.format.value_or("spdx");
  if (format != "spdx" && format != "cyclonedx")
    throw UsageError("sbom --format " + format + ": expected spdx or cyclonedx");
  Sbom sbom = sbom_of(open_named_image(operands[0], "sbom"));
  std::cout << (format == "spdx" ? spdx_document(sbom) : cyclonedx_document(sbom)) << "\n";
  return 0;
}

}  // namespace imgbuild::cli
