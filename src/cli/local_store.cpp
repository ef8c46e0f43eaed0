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

}  // namespace imgbuild::cli
