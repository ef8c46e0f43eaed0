#include "registry/cache_transfer.hpp"

#include <optional>
#include <set>

namespace imgbuild {

using json = nlohmann::json;

Descriptor store_cache_manifest(Layout& store, const std::vector<CachedStep>& steps) {
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
  std::string config = json{{"entries", entries}}.dump();
  Descriptor config_desc = store.put_document(config, media_type::kStepCache);
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", media_type::kManifest},
                   {"artifactType", media_type::kStepCache},
                   {"config", config_desc.to_json()},
                   {"layers", layers}};
  return store.put_document(manifest.dump(), media_type::kManifest);
}

std::map<Digest, CachedStep> import_step_cache(RegistryClient& client, const Reference& ref) {
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
  std::map<Digest, CachedStep> steps;
  for (auto& e : doc["entries"]) {
    try {
      CachedStep step = CachedStep::from_json(e);
      step.source = ref.str();
      steps.insert_or_assign(step.key, std::move(step));
    } catch (const std::exception& error) {
      throw RegistryError(ref.str() + ": a malformed step cache entry: " + error.what());
    }
  }
  return steps;
}

}  // namespace imgbuild
