#include "sign/publish.hpp"

#include <set>

#include "base/fs.hpp"
#include "base/text.hpp"

namespace imgbuild {

using json = nlohmann::json;

namespace {

/// The manifest under `tag` of `repo`'s repository; nullopt when there is none.
std::optional<Manifest> manifest_at(RegistryClient& client, const Reference& repo, const std::string& tag) {
  try {
    return client.get_manifest(repo.with_tag(tag));
  } catch (const RegistryError& e) {
    if (e.status() == 404) return std::nullopt;
    throw;
  }
}

/// Writes `blob` into `layout` (unless there) and returns its path there.
std::filesystem::path place(Layout& layout, const ArtifactBlob& blob) {
  if (!layout.has_blob(blob.descriptor.digest)) {
    write_file_atomic(layout.blob_path(blob.descriptor.digest), blob.bytes);
    layout.note_verified(blob.descriptor.digest);
  }
  return layout.blob_path(blob.descriptor.digest);
}

}  // namespace

std::string describe(ReferrersMode mode, const Digest& subject) {
  return mode == ReferrersMode::Api ? "the referrers API" : "the referrers tag " + referrers_tag(subject);
}

std::vector<json> list_referrers(RegistryClient& client, const Reference& repo, const Digest& subject,
                                 ReferrersMode& mode) {
  std::optional<std::string> index = client.get_referrers(repo, subject);
  mode = index ? ReferrersMode::Api : ReferrersMode::TagSchema;
  if (!index) {
    std::optional<Manifest> tagged = manifest_at(client, repo, referrers_tag(subject));
    if (!tagged) return {};
    index = std::move(tagged->body);
  }
  try {
    return referrers_of(*index);
  } catch (const std::runtime_error& e) {
    throw RegistryError(repo.name() + ": " + describe(mode, subject) + ": " + e.what());
  }
}

ReferrersMode attach_to_registry(RegistryClient& client, Layout& scratch, const Reference& repo, const Digest& subject,
                                 const std::vector<Artifact>& artifacts,
                                 const std::function<void(const std::string&)>& warn) {
  std::vector<json> entries;
  std::set<Digest> sent;  // the empty config is every artifact's: asked for once
  for (const Artifact& artifact : artifacts) {
    for (const ArtifactBlob& blob : artifact.blobs)
      if (sent.insert(blob.descriptor.digest).second && !client.has_blob(repo, blob.descriptor.digest))
        client.upload_blob(repo, blob.descriptor, place(scratch, blob));
    client.put_manifest(repo.with_digest(artifact.descriptor.digest), media_type::kManifest, artifact.manifest);
    entries.push_back(referrer_entry(artifact));
  }
  std::optional<std::string> api = client.get_referrers(repo, subject);
  if (api) return ReferrersMode::Api;
  const std::string tag = referrers_tag(subject);
  std::optional<Manifest> index = manifest_at(client, repo, tag);
  std::string listed = index ? index->body : std::string();
  if (index) try {
      referrers_of(listed);
    } catch (const std::runtime_error& e) {
      // Not an index of referrers, so nobody can have read it as one.
      warn(repo.name() + ":" + tag + " held no referrers index (" + e.what() + ", " + index->digest.str() +
           "): replaced by one");
      listed.clear();
    }
  if (std::optional<std::string> merged = merge_referrers(listed, entries))
    client.put_manifest(repo.with_tag(tag), media_type::kIndex, *merged);
  return ReferrersMode::TagSchema;
}

Artifact cosign_signature(const std::optional<Manifest>& existing, const std::string& repository,
                          const Descriptor& subject, const EcKey& key) {
  const std::string payload = simple_signing_payload(repository, subject.digest);
  const Digest payload_digest = sha256_of(payload);
  std::vector<json> earlier;
  if (existing) {
    json doc = json::parse(existing->body, nullptr, false);
    // Only a manifest about this image can stand as its referrer.
    const bool about_subject = doc.is_object() && doc.contains("subject") && doc["subject"].is_object() &&
                               doc["subject"].value("digest", json()) == subject.digest.str();
    const json layers = doc.is_object() ? doc.value("layers", json::array()) : json::array();
    for (const json& layer : layers.is_array() ? layers : json::array()) {
      // Only signatures are kept: the tag may hold anything.
      if (!layer.is_object() || layer.value("mediaType", json()) != kSimpleSigningMediaType) continue;
      const json annotations = layer.value("annotations", json::object());
      auto signature = annotations.is_object() && annotations.contains(kCosignSignatureAnnotation) &&
                               annotations[kCosignSignatureAnnotation].is_string()
                           ? base64_decode(annotations[kCosignSignatureAnnotation].get<std::string>())
                           : std::nullopt;
      if (about_subject && layer.value("digest", json()) == payload_digest.str() && signature &&
          key.verifies(payload, *signature))
        return Artifact{kCosignArtifactType,
                        existing->body,
                        Descriptor{media_type::kManifest, existing->digest, existing->body.size(), {}},
                        {}};
      earlier.push_back(layer);
    }
  }
  return make_artifact(subject, signature_attachment(key, repository, subject.digest), earlier);
}

Artifact cosign_signature(RegistryClient& client, const Reference& repo, const Descriptor& subject, const EcKey& key) {
  return cosign_signature(manifest_at(client, repo, signature_tag(subject.digest)),
                          repo.registry + "/" + repo.repository, subject, key);
}

void tag_signature(RegistryClient& client, const Reference& repo, const Digest& subject, const Artifact& signature) {
  // One with no blobs of its own is the manifest cosign_signature found under the tag.
  if (!signature.blobs.empty())
    client.put_manifest(repo.with_tag(signature_tag(subject)), media_type::kManifest, signature.manifest);
}

void attach_to_layout(Layout& layout, const std::vector<Artifact>& artifacts) {
  std::vector<json> entries;
  for (const Artifact& artifact : artifacts) {
    for (const ArtifactBlob& blob : artifact.blobs) place(layout, blob);
    place(layout, ArtifactBlob{artifact.descriptor, artifact.manifest});
    entries.push_back(referrer_entry(artifact));
  }
  layout.add_artifacts(entries);
}

std::vector<json> layout_referrers(const Layout& layout, const Digest& subject) {
  std::vector<json> found;
  for (const IndexEntry& entry : layout.entries()) {
    if (!entry.descriptor || layout.subject_of(*entry.descriptor) != subject) continue;
    json described = entry.descriptor->to_json();
    described.erase("annotations");
    if (!entry.artifact_type.empty()) described["artifactType"] = entry.artifact_type;
    found.push_back(described);
  }
  return found;
}

std::optional<Manifest> layout_signature(const Layout& layout, const Digest& subject) {
  for (const json& entry : layout_referrers(layout, subject))
    if (entry.value("artifactType", "") == kCosignArtifactType) {
      Descriptor d = Descriptor::from_json(entry);
      return Manifest{d.media_type, layout.read_document(d), d.digest};
    }
  return std::nullopt;
}

}  // namespace imgbuild
