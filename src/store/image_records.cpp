#include "store/image_records.hpp"

#include <stdexcept>
#include <string>
#include <utility>

namespace fs = std::filesystem;

namespace imgbuild {
namespace {

/// Each kind's folder under the store and the end of its file names.
constexpr std::pair<const char*, const char*> kRecords[] = {
    {"provenance", ".intoto.json"},
    {"sbom", ".spdx.json"},
    {"doctor", ".json"},
};

}  // namespace

fs::path image_record_path(const fs::path& store_root, ImageRecord record, const Digest& manifest) {
  const auto& [folder, ending] = kRecords[static_cast<size_t>(record)];
  return store_root / folder / ("sha256-" + std::string(manifest.hex()) + ending);
}

void drop_image_records(const fs::path& store_root, const std::set<Digest>& live) {
  for (const auto& [folder, ending] : kRecords) {
    std::error_code ec;
    for (const auto& f : fs::directory_iterator(store_root / folder, ec)) {
      const std::string name = f.path().filename().string();
      if (name.starts_with("sha256-") && name.ends_with(ending)) try {
          const Digest manifest =
              Digest::parse("sha256:" + name.substr(7, name.size() - 7 - std::string(ending).size()));
          if (live.count(manifest)) continue;
        } catch (const std::runtime_error&) {
          // not a record's name: removed below
        }
      fs::remove(f.path(), ec);
    }
  }
}

}  // namespace imgbuild
