// imgbuild inspect NAME | oci:DIR[:NAME]: one image's manifest, config and
// size as a JSON object.
#include <iostream>

#include "cli/commands.hpp"
#include "cli/local_store.hpp"
#include "cli/report.hpp"

namespace imgbuild::cli {

int cmd_inspect(const std::vector<std::string>& args) {
  if (args.size() != 1) throw UsageError("inspect takes one image: NAME or oci:DIR[:NAME]");
  NamedImage img = open_named_image(args[0], "inspect");
  nlohmann::json out = {{"name", img.name},
                        {"digest", img.manifest.digest.str()},
                        {"size", img.image.total_size()},
                        {"manifest", img.image.manifest_json},
                        {"config", img.image.config_json}};
  // An image of several platforms: the index, and above the machine's
  // platform's image (or the first).
  if (img.index) {
    nlohmann::json platforms = nlohmann::json::array();
    for (auto& m : img.platform_manifests) platforms.push_back(m.to_json());
    out["index"] = {{"digest", img.index->digest.str()}, {"manifests", platforms}};
    out["platform"] = img.manifest.platform ? img.manifest.platform->str() : "";
  }
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace imgbuild::cli
