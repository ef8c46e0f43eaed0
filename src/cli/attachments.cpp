#include "cli/attachments.hpp"

#include <cstdlib>
#include <functional>
#include <set>

#include "base/fs.hpp"
#include "base/text.hpp"
#include "base/threads.hpp"
#include "build/provenance.hpp"
#include "cli/local_store.hpp"
#include "cli/report.hpp"
#include "cli/sbom.hpp"
#include "inspect/sbom.hpp"
#include "registry/transfer.hpp"
#include "sign/publish.hpp"
#include "store/image_records.hpp"

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

/// The SPDX SBOM of the image `manifest` of `store`, named `name`: the one
/// the store keeps (ImageRecord::Sbom) when it describes that image under that name (this
/// imgbuild made it), else made from the image's layers, after
/// `reading_layers`, and kept for the next push when the store takes it.
std::string spdx_of(const Layout& store, const Descriptor& manifest, const std::string& name,
                    const std::function<void()>& reading_layers) {
  const std::filesystem::path kept = image_record_path(store.root(), ImageRecord::Sbom, manifest.digest);
  try {
    std::string document = read_file(kept);
    if (spdx_describes(document, name, manifest.digest, sbom_tool())) return document;
  } catch (const std::exception&) {
    // none kept yet, or unreadable: made again
  }
  if (reading_layers) reading_layers();
  std::string document =
      spdx_document(sbom_of({store, manifest, load_stored(store, manifest), name, std::nullopt, {}}));
  // Keeping it only saves the next push work: a store that cannot take it
  // (a full disk) does not fail this one.
  try {
    std::filesystem::create_directories(kept.parent_path());
    write_record_atomic(kept, document);
  } catch (const std::exception& e) {
    report("warning: the SBOM of " + manifest.digest.str() + " was not kept (" + e.what() +
           "): the next push of the image makes it again");
  }
  return document;
}

}  // namespace

Documents documents_of(const Layout& store, const Descriptor& manifest, const std::string& name,
                       const std::function<void()>& reading_layers) {
  Documents documents;
  if (manifest.media_type.is_manifest())
    documents.emplace_back("SBOM",
                           Attachment{kSpdxMediaType, kSpdxMediaType, spdx_of(store, manifest, name, reading_layers)});
  if (const std::filesystem::path kept = provenance_path(store.root(), manifest.digest); std::filesystem::exists(kept))
    documents.emplace_back("provenance", Attachment{kInTotoMediaType, kInTotoMediaType, read_file(kept)});
  return documents;
}

namespace {

/// write_oci_output's attaching: `manifest` is in `output` already, and
/// `documents` are documents_of() it; `made` those of its platform images
/// made ahead.
void attach_to_output(const Layout& store, Layout& output, const Descriptor& manifest, const std::string& name,
                      const Documents& documents, const EcKey* key, const std::map<Digest, Documents>& made) {
  if (manifest.media_type.is_index()) {
    // Each platform's SBOM reads its layers: the platforms side by side.
    const std::vector<Descriptor> platform_images = store.index_manifests(manifest);
    std::vector<Documents> described(platform_images.size());
    run_side_by_side(platform_images.size(), [&](size_t i) {
      auto ahead = made.find(platform_images[i].digest);
      described[i] = ahead != made.end() ? ahead->second : documents_of(store, platform_images[i], name);
    });
    for (size_t i = 0; i < platform_images.size(); ++i)
      attach_to_output(store, output, platform_images[i], name, described[i], nullptr, made);
  }
  std::vector<Artifact> artifacts;
  for (const auto& [kind, document] : documents) artifacts.push_back(make_artifact(manifest, document));
  // The signature kept there is reused when it is this key's: signing again
  // would list one more each time the output is written.
  if (key) artifacts.push_back(cosign_signature(layout_signature(output, manifest.digest), name, manifest, *key));
  attach_to_layout(output, artifacts);
}

}  // namespace

DocumentsAhead::DocumentsAhead(const Layout& store, const Descriptor& manifest, std::string name)
    : name_(std::move(name)) {
  if (!manifest.media_type.is_manifest()) return;
  try {
    if (!layers_missing(store, manifest).empty()) return;
  } catch (const std::exception&) {
    return;  // a damaged image: the push says so
  }
  made_ =
      std::async(std::launch::async, [&store, manifest, name = name_] { return documents_of(store, manifest, name); });
}

std::optional<Documents> DocumentsAhead::take(const std::string& name) {
  if (!made_.valid() || name != name_) return std::nullopt;
  return made_.get();
}

void attach_pushed(RegistryClient& client, Layout& store, const Descriptor& manifest,
                   const std::vector<Reference>& dests, const EcKey* key, DocumentsAhead* ahead) {
  if (dests.empty()) return;
  // Each platform's image is described on its own (scanners and admission
  // controllers look an image up by its manifest's digest); the index gets
  // the signature.
  if (manifest.media_type.is_index())
    for (const Descriptor& platform_image : store.index_manifests(manifest))
      attach_pushed(client, store, platform_image, dests, nullptr);
  const Reference& first = dests.front();
  // An SBOM made anew reads every layer; a base's that no step needed were
  // mounted, never downloaded: they come back from where they were just pushed.
  auto fetch_missing = [&] {
    if (std::vector<LayerBlob> missing = layers_missing(store, manifest); !missing.empty())
      fetch_layers(client, store, first, missing);
  };
  std::optional<Documents> made = ahead ? ahead->take(first.str()) : std::nullopt;
  const Documents documents = made ? std::move(*made) : documents_of(store, manifest, first.str(), fetch_missing);
  // Referrers and signatures belong to a repository: each gets them once,
  // however many of its tags were pushed.
  std::set<std::string> repositories;
  for (const Reference& dest : dests) {
    if (!repositories.insert(dest.name()).second) continue;
    std::vector<Artifact> artifacts;
    std::vector<std::string> kinds;
    for (const auto& [kind, document] : documents) {
      artifacts.push_back(make_artifact(manifest, document));
      kinds.push_back(kind);
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

void write_oci_output(const Layout& store, const std::filesystem::path& dir, const Descriptor& manifest,
                      const std::string& name, const EcKey* key, const std::map<Digest, Documents>& made) {
  Layout output(dir);
  output.import_image(store, manifest, name);
  auto ahead = made.find(manifest.digest);
  attach_to_output(store, output, manifest, name,
                   ahead != made.end() ? ahead->second : documents_of(store, manifest, name), key, made);
}

}  // namespace imgbuild::cli
