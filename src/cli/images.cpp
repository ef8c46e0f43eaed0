// imgbuild images: the local store, an image a line. A damaged entry is a
// line too, marked, with a warning that says what is wrong and how to remove
// it: one bad image never hides the others.
#include <algorithm>
#include <cstdio>

#include "base/text.hpp"
#include "build/builder.hpp"
#include "cli/commands.hpp"
#include "cli/local_store.hpp"
#include "cli/report.hpp"

namespace imgbuild::cli {

int cmd_images(const std::vector<std::string>& args) {
  if (!args.empty()) throw UsageError("images takes no arguments");
  Layout store = open_store();
  struct Row {
    std::string name, platform, digest, size, created;
  };
  std::vector<Row> rows{{"NAME", "PLATFORM", "DIGEST", "SIZE", "CREATED"}};
  std::vector<std::string> warnings;
  for (auto& entry : store.entries()) {
    Row row{entry.name.empty() ? "<none>" : entry.name, "", "", "-", "damaged"};
    if (!entry.descriptor) {
      warnings.push_back("warning: " + (entry.name.empty() ? "an entry" : "entry '" + entry.name + "'") + " of " +
                         (store.root() / "index.json").string() + " is not an image descriptor (" + entry.problem +
                         "): " + removal_hint(store, entry));
      rows.push_back(row);
      continue;
    }
    const Descriptor& d = *entry.descriptor;
    row.digest = "sha256:" + std::string(d.digest.short_hex());
    if (d.platform) row.platform = d.platform->str();
    try {
      if (d.media_type.is_index()) {
        // An image of several platforms: one line, its platforms and their sizes together.
        std::vector<std::string> platforms;
        uint64_t size = 0;
        row.created.clear();
        for (const Descriptor& m : store.index_manifests(d)) {
          StoredImage img = store.load(m);
          platforms.push_back(m.platform ? m.platform->str() : "?");
          size += img.total_size();
          if (auto created = img.config_json.find("created"); row.created.empty() && created != img.config_json.end())
            row.created = created->is_string() ? created->get<std::string>() : "";
        }
        row.platform = join(platforms, ",");
        row.size = human_size(size);
        rows.push_back(row);
        continue;
      }
      StoredImage img = store.load(d);
      auto text = [&](const char* key) {
        auto it = img.config_json.find(key);
        return it != img.config_json.end() && it->is_string() ? it->get<std::string>() : std::string();
      };
      Platform p{text("os"), text("architecture"), text("variant")};
      row.platform = p.architecture.empty() ? "" : p.str();
      row.size = human_size(img.total_size());
      row.created = text("created");
    } catch (const DamagedImage& e) {
      warnings.push_back("warning: " + std::string(e.what()) + ": " + removal_hint(store, entry));
    }
    rows.push_back(row);
  }
  // Columns as wide as their widest cell: base image names are long.
  size_t name_w = 0, platform_w = 0;
  for (auto& r : rows) {
    name_w = std::max(name_w, r.name.size());
    platform_w = std::max(platform_w, r.platform.size());
  }
  for (auto& r : rows)
    std::printf("%-*s  %-*s  %-19s %9s  %s\n", static_cast<int>(name_w), r.name.c_str(), static_cast<int>(platform_w),
                r.platform.c_str(), r.digest.c_str(), r.size.c_str(), r.created.c_str());
  std::fflush(stdout);
  for (auto& w : warnings) report(w);
  return 0;
}

}  // namespace imgbuild::cli
