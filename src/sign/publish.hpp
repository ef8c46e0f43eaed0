#pragma once
// Artifacts pushed next to an image: each a manifest whose subject is the
// image, found through the registry's referrers API, or through the
// referrers tag schema (the index under the tag sha256-<hex>) where the
// registry has none, as distribution-spec 1.1 asks of clients.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/reference.hpp"
#include "registry/registry.hpp"
#include "sign/artifact.hpp"
#include "sign/cosign.hpp"
#include "store/layout.hpp"

namespace imgbuild {

/// How a registry lists an image's referrers.
enum class ReferrersMode {
  Api,        ///< GET /v2/NAME/referrers/DIGEST answers: the registry indexes what is pushed
  TagSchema,  ///< it does not: clients keep the index under the tag sha256-<hex>
};

/// "the referrers API" / "the referrers tag sha256-...": for messages.
std::string describe(ReferrersMode mode, const Digest& subject);

/// The referrers of `subject` in `repo`'s repository as the registry lists
/// them: through its referrers API, else the tag schema's index (none when
/// the tag is missing). Sets `mode` to how it found them.
std::vector<nlohmann::json> list_referrers(RegistryClient& client, const Reference& repo, const Digest& subject,
                                           ReferrersMode& mode);

/// Pushes `artifacts` about `subject` to `repo`'s repository: the blobs it
/// lacks (written into `scratch`, the local store, to be uploaded from
/// there), each manifest by digest, and, where the registry has no referrers
/// API, their entries into the index under sha256-<hex>, read, merged and
/// written back only when something was added. Pushing the same artifacts
/// again adds nothing. A tag sha256-<hex> that holds no referrers index is
/// replaced by one, and `warn` says what it held. Returns how the registry
/// lists them.
ReferrersMode attach_to_registry(RegistryClient& client, Layout& scratch, const Reference& repo, const Digest& subject,
                                 const std::vector<Artifact>& artifacts,
                                 const std::function<void(const std::string&)>& warn);

/// The cosign signature of `subject` (pushed to `repo`) by `key`, to push
/// with attach_to_registry and then tag with sign_tag: the manifest now under
/// sha256-<hex>.sig when it already holds a signature of this payload by this
/// key (a second push signs nothing again; the artifact has no blobs then),
/// else that manifest's signatures followed by a new one.
Artifact cosign_signature(RegistryClient& client, const Reference& repo, const Descriptor& subject, const EcKey& key);

/// The cosign signature of `subject` by `key` for `repository`
/// ("registry/name", or an image's name in a layout): `existing` (a
/// signature manifest already kept for `subject`, none for nothing yet) when
/// it holds a signature of this payload by this key, else `existing`'s
/// signatures followed by a new one.
Artifact cosign_signature(const std::optional<Manifest>& existing, const std::string& repository,
                          const Descriptor& subject, const EcKey& key);

/// Puts the pushed signature `signature` under cosign's tag sha256-<hex>.sig,
/// unless it is the one cosign_signature found there (it has no blobs then).
void tag_signature(RegistryClient& client, const Reference& repo, const Digest& subject, const Artifact& signature);

/// Writes `artifacts` into `layout` (an `-o oci:DIR` output): their blobs
/// and manifests, and their entries in index.json, each once
/// (Layout::add_artifacts), so that a referrers lookup scanning the layout
/// finds them by their subject.
void attach_to_layout(Layout& layout, const std::vector<Artifact>& artifacts);

/// The referrers of `subject` in `layout`: every manifest index.json lists
/// whose `subject` is `subject`, as referrer entries (descriptor and
/// artifactType), in index.json's order.
std::vector<nlohmann::json> layout_referrers(const Layout& layout, const Digest& subject);

/// The manifest of the cosign signature `layout` lists about `subject`, if any.
std::optional<Manifest> layout_signature(const Layout& layout, const Digest& subject);

}  // namespace imgbuild
