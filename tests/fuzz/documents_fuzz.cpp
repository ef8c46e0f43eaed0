// libFuzzer target for the documents a registry sends: image manifests and
// indexes (their descriptors) and image configs, read into the model to build
// on (image_from_documents). Run it through tests/fuzz/run.sh.
//
// The input is one JSON object {"manifest": ..., "config": ..., "index": ...}.
// std::runtime_error is the documented answer to a malformed document; any
// other exception (a json::type_error from an unchecked access) is a finding,
// and so is a model that does not write back valid documents.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>

#include <nlohmann/json.hpp>

#include "oci/image.hpp"

namespace {

using json = nlohmann::json;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  json doc = json::parse(std::string_view(reinterpret_cast<const char*>(data), size), nullptr, false);
  if (!doc.is_object()) return 0;
  if (auto index = doc.find("index");
      index != doc.end() && index->is_object() && index->contains("manifests") && (*index)["manifests"].is_array())
    for (auto& m : (*index)["manifests"]) try {
        imgbuild::Descriptor d = imgbuild::Descriptor::from_json(m);
        check(imgbuild::Descriptor::from_json(d.to_json()).digest == d.digest);
      } catch (const std::runtime_error&) {
      }
  if (!doc.contains("manifest") || !doc.contains("config")) return 0;
  imgbuild::Image image;
  try {
    image = imgbuild::image_from_documents(doc["manifest"], doc["config"]);
  } catch (const std::runtime_error&) {
    return 0;
  }
  json config = json::parse(image.config_document(), nullptr, false);
  check(config.is_object() && config["rootfs"]["diff_ids"].size() == image.layers.size());
  imgbuild::Descriptor cfg{imgbuild::media_type::kConfig, imgbuild::sha256_of("x"), 1, {}, {}};
  json manifest = json::parse(image.manifest_document(cfg), nullptr, false);
  check(manifest.is_object() && manifest["layers"].size() == image.layers.size());
  return 0;
}
