#include "store/docker_archive.hpp"

#include <algorithm>

#include "base/fs.hpp"
#include "layer/layer.hpp"

namespace imgbuild {

using json = nlohmann::json;
namespace fs = std::filesystem;

void write_docker_archive(const Layout& layout, const Descriptor& manifest, const std::string& repo_tag,
                          const fs::path& file, int64_t mtime) {
  StoredImage img = layout.load(manifest);
  std::string config_digest = img.manifest_json["config"]["digest"].get<std::string>();
  auto blob_name = [](const std::string& digest) { return "blobs/sha256/" + digest.substr(7); };

  json layers = json::array();
  std::vector<std::string> blobs{manifest.digest.str(), config_digest};
  for (auto& l : img.manifest_json["layers"]) {
    layers.push_back(blob_name(l["digest"].get<std::string>()));
    blobs.push_back(l["digest"].get<std::string>());
  }
  json legacy = json::array({{{"Config", blob_name(config_digest)}, {"RepoTags", {repo_tag}}, {"Layers", layers}}});
  Descriptor named = manifest;
  named.annotations = {{"io.containerd.image.name", repo_tag}, {kRefNameAnnotation, repo_tag}};
  json index = {{"schemaVersion", 2}, {"mediaType", media_type::kIndex}, {"manifests", {named.to_json()}}};

  // The small documents go through files too, so one entry type serves all.
  TempDir docs(fs::temp_directory_path(), "imgbuild-archive-");
  auto doc_entry = [&](const std::string& name, const std::string& content) {
    write_file_atomic(docs.path() / name, content);
    return LayerEntry{name, LayerEntry::Type::File, 0644, 0, 0, docs.path() / name, content.size(), {}};
  };
  std::vector<LayerEntry> entries{doc_entry("manifest.json", legacy.dump()), doc_entry("index.json", index.dump()),
                                  doc_entry("oci-layout", R"({"imageLayoutVersion":"1.0.0"})"),
                                  LayerEntry{"blobs", LayerEntry::Type::Directory, 0755, 0, 0, {}, 0, {}},
                                  LayerEntry{"blobs/sha256", LayerEntry::Type::Directory, 0755, 0, 0, {}, 0, {}}};
  std::sort(blobs.begin(), blobs.end());
  blobs.erase(std::unique(blobs.begin(), blobs.end()), blobs.end());
  for (auto& d : blobs) {
    fs::path p = layout.verified_blob(Digest::parse(d), std::nullopt, kRebuildHint);
    entries.push_back(LayerEntry{blob_name(d), LayerEntry::Type::File, 0644, 0, 0, p, fs::file_size(p), {}});
  }
  std::sort(entries.begin(), entries.end(), [](auto& a, auto& b) { return a.path < b.path; });

  AtomicFile out(file);
  write_tar(
      entries, [&out](const void* data, size_t size) { write_all(out.fd(), data, size, out.temp_path()); }, mtime);
  out.commit();
}

}  // namespace imgbuild
