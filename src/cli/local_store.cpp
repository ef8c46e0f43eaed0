#include "cli/local_store.hpp"

#include "cli/report.hpp"

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

}  // namespace imgbuild::cli
