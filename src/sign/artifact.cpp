#include "sign/artifact.hpp"

#include <algorithm>

namespace imgbuild {

using json = nlohmann::json;

namespace {

Descriptor describe(const std::string& bytes, const std::string& media_type) {
  return Descriptor{MediaType::parse(media_type), sha256_of(bytes), bytes.size(), {}};
}

json descriptor_json(const Descriptor& d) {
  json j = {{"mediaType", d.media_type.str()}, {"digest", d.digest.str()}, {"size", d.size}};
  if (!d.annotations.empty()) j["annotations"] = d.annotations;
  return j;
}

}  // namespace

Artifact make_artifact(const Descriptor& subject, const Attachment& attachment,
                       const std::vector<json>& earlier_layers) {
  ArtifactBlob config{describe("{}", kEmptyMediaType), "{}"};
  ArtifactBlob document{describe(attachment.bytes, attachment.media_type), attachment.bytes};
  document.descriptor.annotations = attachment.annotations;
  json layers = earlier_layers;
  layers.push_back(descriptor_json(document.descriptor));
  json manifest = {{"schemaVersion", 2},
                   {"mediaType", media_type::kManifest.str()},
                   {"artifactType", attachment.artifact_type},
                   {"config", descriptor_json(config.descriptor)},
                   {"layers", layers},
                   {"subject", descriptor_json(Descriptor{subject.media_type, subject.digest, subject.size, {}})}};
  std::string body = manifest.dump();
  Descriptor described = describe(body, media_type::kManifest.str());
  return Artifact{
      attachment.artifact_type, std::move(body), std::move(described), {std::move(config), std::move(document)}};
}

std::string referrers_tag(const Digest& subject) { return "sha256-" + std::string(subject.hex()); }

json referrer_entry(const Artifact& artifact) {
  json entry = descriptor_json(artifact.descriptor);
  entry["artifactType"] = artifact.artifact_type;
  return entry;
}

std::vector<json> referrers_of(const std::string& index) {
  json doc = json::parse(index, nullptr, false);
  if (!doc.is_object() || !doc.contains("manifests") || !doc["manifests"].is_array())
    throw std::runtime_error("the referrers index is not an image index (no manifests list)");
  std::vector<json> entries;
  for (const json& m : doc["manifests"]) {
    if (!m.is_object() || !m.contains("digest") || !m["digest"].is_string())
      throw std::runtime_error("the referrers index lists an entry without a digest");
    entries.push_back(m);
  }
  return entries;
}

std::optional<std::string> merge_referrers(const std::string& index, const std::vector<json>& entries) {
  std::vector<json> listed = index.empty() ? std::vector<json>{} : referrers_of(index);
  bool added = false;
  for (const json& entry : entries) {
    bool known =
        std::any_of(listed.begin(), listed.end(), [&](const json& m) { return m["digest"] == entry["digest"]; });
    if (known) continue;
    listed.push_back(entry);
    added = true;
  }
  if (!added) return std::nullopt;
  json merged = {{"schemaVersion", 2}, {"mediaType", media_type::kIndex.str()}, {"manifests", listed}};
  return merged.dump();
}

}  // namespace imgbuild
