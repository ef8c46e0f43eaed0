#pragma once
// What goes with a pushed or written image: its SPDX SBOM, its provenance
// and, with a signing key, its cosign signature, each an OCI 1.1 artifact
// whose subject is the image.
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "cli/options.hpp"
#include "registry/registry.hpp"
#include "sign/artifact.hpp"
#include "sign/cosign.hpp"
#include "store/layout.hpp"

namespace imgbuild::cli {

/// The environment variable that holds a signing key's PEM, for CI.
inline constexpr const char* kSignKeyVariable = "IMGBUILD_SIGN_KEY";

/// The key that signs what a build or push sends: --sign-key FILE, else the
/// PEM in IMGBUILD_SIGN_KEY (then taken out of the environment, so that no
/// RUN step, helper or child process inherits it); nullopt for neither.
/// Called before any build work, so a wrong key fails first.
std::optional<EcKey> signing_key(const Options& options);

/// What is attached to an image manifest: its SPDX SBOM, and the provenance
/// its build kept in the store (an image pushed from elsewhere has none),
/// each with the word that says what it is.
using Documents = std::vector<std::pair<std::string, Attachment>>;

/// The documents that attach_pushed() attaches to an image manifest, made
/// on a thread of their own while the image uploads: an SBOM made anew
/// reads every layer (for a Go service, as long as the upload of a new one
/// to a registry on the same machine). None are made ahead for an index,
/// nor for an image with a layer the store lacks (attach_pushed then reads
/// it from where it was just pushed).
class DocumentsAhead {
public:
  /// `name`: the reference they name the image by, the first one pushed to.
  DocumentsAhead(const Layout& store, const Descriptor& manifest, std::string name);
  /// The documents, when they were made ahead for `name` (the first tag that
  /// was pushed, which is another when the first one failed); else nullopt.
  /// Rethrows what making them threw.
  std::optional<Documents> take(const std::string& name);

private:
  std::string name_;
  /// Its destructor waits for the thread, which reads the store.
  std::future<Documents> made_;
};

/// Attaches to `manifest`, just pushed to `dests`, its SPDX SBOM and the
/// provenance its build kept (an image manifest's; an index's platform images
/// get theirs each, the index none of its own) and, with `key`, its cosign
/// signature under sha256-<hex>.sig, all as its referrers in each
/// repository named (once per repository, whatever its tags); then says
/// what it attached and how each registry lists them. `store` holds the
/// image and the artifacts' blobs on their way up. `ahead`: the documents
/// made while `manifest` was pushed, if any.
void attach_pushed(RegistryClient& client, Layout& store, const Descriptor& manifest,
                   const std::vector<Reference>& dests, const EcKey* key, DocumentsAhead* ahead = nullptr);

/// The documents attached to the image `manifest` of `store` that name it
/// `name`. The SBOM is the one kept in the store (ImageRecord::Sbom) when it
/// describes that image under that name; else it is made from the image's
/// layers, after `reading_layers` (which brings in those the store lacks),
/// and kept: a build makes them while its other platforms still build, for
/// write_oci_output().
Documents documents_of(const Layout& store, const Descriptor& manifest, const std::string& name,
                       const std::function<void()>& reading_layers = {});

/// Writes the image `manifest` of `store`, named `name`, into the layout at
/// `dir` (an `-o oci:DIR` output) with what a push attaches to it, the same
/// way: its SBOM and provenance (each platform image's, for an index) and,
/// with `key`, the signature of `manifest` (its docker-reference is `name`),
/// as artifacts listed in index.json whose subject is the image. Writing
/// the same image again adds nothing. `made`: documents_of() some of its
/// images already, by manifest digest, each for `name`.
void write_oci_output(const Layout& store, const std::filesystem::path& dir, const Descriptor& manifest,
                      const std::string& name, const EcKey* key, const std::map<Digest, Documents>& made = {});

}  // namespace imgbuild::cli
