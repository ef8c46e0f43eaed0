// imgbuild inspect NAME | oci:DIR[:NAME]: one image's manifest, config and
// size as a JSON object.
#include <filesystem>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/local_store.hpp"
#include "cli/report.hpp"

namespace fs = std::filesystem;

namespace imgbuild::cli {

int cmd_inspect(const std::vector<std::string>& args) {
  if (args.size() != 1) throw UsageError("inspect takes one image: NAME or oci:DIR[:NAME]");
  std::string ref = args[0];
  fs::path layout_dir = default_store_dir();
  std::string name = ref;
  if (ref.starts_with("oci:")) {
    std::string rest = ref.substr(4);
    size_t colon = rest.rfind(':');
    layout_dir = colon == std::string::npos ? rest : rest.substr(0, colon);
    name = colon == std::string::npos ? "" : rest.substr(colon + 1);
    if (!fs::exists(layout_dir / "index.json")) throw UsageError(layout_dir.string() + " is not an OCI image layout");
  }
  Layout layout(layout_dir);
  std::optional<Descriptor> d;
  if (name.empty()) {
    auto refs = layout.refs();
    if (refs.size() != 1)
      throw UsageError(layout_dir.string() + " holds " + std::to_string(refs.size()) +
                       " images: name one as oci:DIR:NAME");
    d = refs[0];
  } else {
    d = find_stored(layout, name);
  }
  if (!d) throw std::runtime_error("no image named '" + name + "' in " + layout_dir.string());
  StoredImage img = ref.starts_with("oci:") ? layout.load(*d) : load_stored(layout, *d);
  auto ref_name = d->annotations.find(kRefNameAnnotation);
  nlohmann::json out = {{"name", ref_name != d->annotations.end() ? ref_name->second : name},
                        {"digest", d->digest.str()},
                        {"size", img.total_size()},
                        {"manifest", img.manifest_json},
                        {"config", img.config_json}};
  std::cout << out.dump(2) << "\n";
  return 0;
}

}  // namespace imgbuild::cli
