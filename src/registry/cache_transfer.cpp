#include "registry/cache_transfer.hpp"

#include <optional>
#include <set>

#include "store/run_cache.hpp"

namespace imgbuild {

using json = nlohmann::json;

Descriptor store_cache_manifest(Layout& store, const std::vector<CachedStep>& steps, const RunCacheBlobs& run_caches) {
  json entries = json::array();
  json layers = json::array();
  std::set<Digest> listed;
  for (auto& step : steps) {
    json entry = step.to_json();
    // The same steps export the same document; the layers are beside it.
    entry.erase("created");
    entry.erase("source");
    entries.push_back(entry);
    if (step.layer && listed.insert(step.layer->digest).second)
      layers.push_back(Descriptor{step.layer->media_type, step.layer->digest, step.layer->size, {}, {}}.to_json());
  }
  json config_doc = {{"entries", entries}};
  if (!run_caches.empty()) {
    json archives = json::array();
    for (auto& [path, blob] : run_caches) {
      archives.push_back({{"path", path}, {"archive", layer_to_json(blob)}});
      if (listed.insert(blob.digest).second)
        layers.push_back(Descriptor{blob.media_type, blob.digest, blob.size, {}, {}}.to_json());
    }
    config_doc["run_caches"] = archives;
  }
  std::string config = config_doc.dump();
  Descriptor config_desc = store.put_document(config, media_type::kStepCache);
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", media_type::kManifest},
                   {"artifactType", media_type::kStepCache},
                   {"config", config_desc.to_json()},
                   {"layers", layers}};
  return store.put_document(manifest.dump(), media_type::kManifest);
}

namespace {

/// The "run_caches" of a cache's config: archives of cache mounts, zstd tars,
/// each at an absolute image path.
RunCacheBlobs read_run_caches(const json& doc, const Reference& ref) {
  RunCacheBlobs blobs;
  auto list = doc.find("run_caches");
  if (list == doc.end()) return blobs;
  if (!list->is_array()) throw RegistryError(ref.str() + ": the step cache's run_caches is not a list");
  for (auto& e : *list) {
    try {
      std::string path = e.at("path").get<std::string>();
      if (!path.starts_with("/")) throw std::runtime_error("path '" + path + "' is not absolute");
      LayerBlob blob = layer_from_json(e.at("archive"));
      if (blob.media_type != media_type::kLayerZstd)
        throw std::runtime_error("the archive of " + path + " is " + blob.media_type.str() + ", not a zstd tar");
      if (blob.size > kRunCacheLimit)
        throw std::runtime_error("the archive of " + path + " takes " + std::to_string(blob.size) +
                                 " bytes, more than a cache mount may (" + std::to_string(kRunCacheLimit) + ")");
      blobs.insert_or_assign(path, blob);
    } catch (const std::exception& error) {
      throw RegistryError(ref.str() + ": a malformed cache mount entry: " + error.what());
    }
  }
  return blobs;
}

}  // namespace

RegistryCache import_step_cache(RegistryClient& client, const Reference& ref) {
  std::optional<Manifest> fetched;
  try {
    fetched = client.get_manifest(ref);
  } catch (const RegistryError& e) {
    if (e.status() == 404) return {};
    throw;
  }
  json manifest = json::parse(fetched->body, nullptr, false);
  if (!manifest.is_object() || !manifest.contains("config"))
    throw RegistryError(ref.str() + ": not an imgbuild step cache (no config)");
  Descriptor config = Descriptor::from_json(manifest["config"]);
  if (config.media_type != media_type::kStepCache)
    throw RegistryError(ref.str() + ": not an imgbuild step cache (its config is " + config.media_type.str() + ")");
  json doc = json::parse(client.get_document(ref, config), nullptr, false);
  if (!doc.is_object() || !doc.contains("entries") || !doc["entries"].is_array())
    throw RegistryError(ref.str() + ": the step cache's config has no entry list");
  RegistryCache cache{{}, read_run_caches(doc, ref)};
  for (auto& e : doc["entries"]) {
    try {
      CachedStep step = CachedStep::from_json(e);
      step.source = ref.str();
      cache.steps.insert_or_assign(step.key, std::move(step));
    } catch (const std::exception& error) {
      throw RegistryError(ref.str() + ": a malformed step cache entry: " + error.what());
    }
  }
  return cache;
}

}  // namespace imgbuild
