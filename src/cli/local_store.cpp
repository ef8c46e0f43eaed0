#include "cli/local_store.hpp"

#include <algorithm>

#include "cli/report.hpp"
#include "oci/image.hpp"

namespace imgbuild::cli {

Layout open_store() {
  Layout store(default_store_dir());
  store.set_warning([](const std::string& message) { report("warning: " + message); });
  return store;
}

std::optional<Descriptor> find_stored(const Layout& layout, const std::string& name) {
  if (auto d = layout.find_ref(name)) return d;
  if (auto d = layout.find_ref(name, Platform::host())) return d;
  for (auto& d : layout.refs()) {
    auto it = d.annotations.find(kRefNameAnnotation);
    if (it != d.annotations.end() && it->second == name) return d;
  }
  return std::nullopt;
}

std::string removal_hint(const Layout& store, const IndexEntry& entry) {
  if (!entry.name.empty()) return "imgbuild rmi " + entry.name + " removes it";
  if (entry.descriptor) return "imgbuild rmi " + entry.descriptor->digest.str() + " removes it";
  return "remove it from " + (store.root() / "index.json").string() + " by hand";
}

StoredImage load_stored(const Layout& store, const Descriptor& manifest) {
  try {
    return store.load(manifest);
  } catch (const DamagedImage& e) {
    throw DamagedImage(e.name(),
                       std::string(e.what()) + " (" + removal_hint(store, IndexEntry{e.name(), manifest, {}}) + ")");
  }
}

std::vector<LayerBlob> layers_missing(const Layout& store, const Descriptor& manifest) {
  const StoredImage stored = load_stored(store, manifest);
  std::vector<LayerBlob> missing;
  for (const LayerBlob& layer : image_from_documents(stored.manifest_json, stored.config_json).layers)
    if (!store.verify_blob(layer.digest, layer.size)) missing.push_back(layer);
  return missing;
}

NamedImage open_named_image(const std::string& arg, const std::string& command) {
  std::filesystem::path layout_dir = default_store_dir();
  std::string name = arg;
  const bool oci = arg.starts_with("oci:");
  if (oci) {
    std::string rest = arg.substr(4);
    size_t colon = rest.rfind(':');
    layout_dir = colon == std::string::npos ? rest : rest.substr(0, colon);
    name = colon == std::string::npos ? "" : rest.substr(colon + 1);
    if (!std::filesystem::exists(layout_dir / "index.json"))
      throw UsageError(layout_dir.string() + " is not an OCI image layout");
  }
  Layout layout = oci ? Layout(layout_dir) : open_store();
  std::optional<Descriptor> d;
  if (name.empty()) {
    auto refs = layout.refs();
    if (refs.size() != 1)
      throw UsageError(layout_dir.string() + " holds " + std::to_string(refs.size()) + " images: name one as " +
                       command + " oci:DIR:NAME");
    d = refs[0];
  } else {
    d = find_stored(layout, name);
  }
  if (!d) throw std::runtime_error("no image named '" + name + "' in " + layout_dir.string());
  auto ref_name = d->annotations.find(kRefNameAnnotation);
  if (ref_name != d->annotations.end()) name = ref_name->second;
  std::optional<Descriptor> index;
  std::vector<Descriptor> manifests;
  if (d->media_type.is_index()) {
    index = d;
    manifests = layout.index_manifests(*d);
    if (manifests.empty()) throw std::runtime_error("image '" + name + "' is an index of no images");
    auto host = std::find_if(manifests.begin(), manifests.end(),
                             [](const Descriptor& m) { return m.platform == Platform::host(); });
    d = host == manifests.end() ? manifests.front() : *host;
  }
  StoredImage image = oci ? layout.load(*d) : load_stored(layout, *d);
  return {std::move(layout), *d, std::move(image), name, index, std::move(manifests)};
}

}  // namespace imgbuild::cli
