#include "cli/attachments.hpp"

#include <cstdlib>
#include <set>

#include "base/fs.hpp"
#include "base/text.hpp"
#include "build/provenance.hpp"
#include "cli/report.hpp"
#include "cli/sbom.hpp"
#include "registry/transfer.hpp"
#include "sign/publish.hpp"

namespace imgbuild::cli {

std::optional<EcKey> signing_key(const Options& options) {
  if (options.sign_key) return EcKey::private_from_file(*options.sign_key);
  const char* pem = std::getenv(kSignKeyVariable);
  if (!pem || !*pem) return std::nullopt;
  EcKey key = EcKey::private_from_pem(pem, kSignKeyVariable);
  ::unsetenv(kSignKeyVariable);
  return key;
}

namespace {

/// "a", "a and b", "a, b and c".
std::string english_list(const std::vector<std::string>& items) {
  if (items.size() < 2) return items.empty() ? "" : items.front();
  return join(std::vector<std::string>(items.begin(), items.end() - 1), ", ") + " and " + items.back();
}

}  // namespace

void attach_pushed(RegistryClient& client, Layout& store, const Descriptor& manifest,
                   const std::vector<Reference>& dests, const EcKey* key) {
  if (dests.empty()) return;
  // Each platform's image is described on its own (scanners and admission
  // controllers look an image up by its manifest's digest); the index gets
  // the signature.
  if (manifest.media_type.is_index())
    for (const Descriptor& platform_image : store.index_manifests(manifest))
      attach_pushed(client, store, platform_image, dests, nullptr);
  std::optional<Attachment> sbom;
  if (manifest.media_type.is_manifest()) {
    const Reference& first = dests.front();
    NamedImage image{store, manifest, load_stored(store, manifest), first.str()};
    // The SBOM reads every layer; a base's that no step needed were mounted,
    // never downloaded: they come back from where they were just pushed.
    std::vector<LayerBlob> missing;
    for (const LayerBlob& layer : image_from_documents(image.image.manifest_json, image.image.config_json).layers)
      if (!store.verify_blob(layer.digest, layer.size)) missing.push_back(layer);
    if (!missing.empty()) fetch_layers(client, store, first, missing);
    sbom = Attachment{kSpdxMediaType, kSpdxMediaType, spdx_document(sbom_of(image))};
  }
  // The build that made the image kept its provenance in the store; an image
  // pushed from elsewhere has none to attach.
  std::optional<Attachment> provenance;
  if (const std::filesystem::path kept = provenance_path(store.root(), manifest.digest); std::filesystem::exists(kept))
    provenance = Attachment{kInTotoMediaType, kInTotoMediaType, read_file(kept)};
  // Referrers and signatures belong to a repository: each gets them once,
  // however many of its tags were pushed.
  std::set<std::string> repositories;
  for (const Reference& dest : dests) {
    if (!repositories.insert(dest.name()).second) continue;
    std::vector<Artifact> artifacts;
    std::vector<std::string> kinds;
    if (sbom) {
      artifacts.push_back(make_artifact(manifest, *sbom));
      kinds.push_back("SBOM");
    }
    if (provenance) {
      artifacts.push_back(make_artifact(manifest, *provenance));
      kinds.push_back("provenance");
    }
    if (key) {
      artifacts.push_back(cosign_signature(client, dest, manifest, *key));
      kinds.push_back("signature");
    }
    if (artifacts.empty()) return;
    ReferrersMode mode = attach_to_registry(client, store, dest, manifest.digest, artifacts,
                                            [](const std::string& message) { report("warning: " + message); });
    if (key) tag_signature(client, dest, manifest.digest, artifacts.back());
    report("attached " + english_list(kinds) + " to " + dest.name() + "@" + manifest.digest.str() + " (" +
           describe(mode, manifest.digest) + (key ? ", " + signature_tag(manifest.digest) : "") + ")");
  }
}

}  // namespace imgbuild::cli
