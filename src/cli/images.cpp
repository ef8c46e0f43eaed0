// imgbuild images: the local store, an image a line.
#include <algorithm>
#include <cstdio>

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
  for (auto& d : store.refs()) {
    StoredImage img = store.load(d);
    auto text = [&](const char* key) {
      auto it = img.config_json.find(key);
      return it != img.config_json.end() && it->is_string() ? it->get<std::string>() : std::string();
    };
    Platform p{text("os"), text("architecture"), text("variant")};
    rows.push_back({d.annotations.count(kRefNameAnnotation) ? d.annotations.at(kRefNameAnnotation) : "<none>",
                    p.architecture.empty() ? "" : p.str(), "sha256:" + std::string(d.digest.short_hex()),
                    human_size(img.total_size()), text("created")});
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
  return 0;
}

}  // namespace imgbuild::cli
