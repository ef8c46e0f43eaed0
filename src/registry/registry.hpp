#pragma once
// A client for the OCI distribution API: manifests and blobs, up and down,
// each request sent through the transport (transport.hpp), which logs in,
// retries and follows redirects.
//
// Nothing a registry sends is trusted: documents are size-limited and hashed,
// blobs are hashed as they stream, and a digest header never replaces hashing.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "base/growing_file.hpp"
#include "oci/digest.hpp"
#include "oci/image.hpp"
#include "oci/reference.hpp"
#include "registry/transport.hpp"

namespace imgbuild {

/// A manifest or index as fetched: the exact bytes (their digest is the
/// content's identity) and what kind of document they are.
struct Manifest {
  MediaType media_type;
  std::string body;
  Digest digest;
};

/// Bytes transferred so far for one blob, for progress.
using TransferProgress = std::function<void(uint64_t done, uint64_t total)>;

/// The distribution API of any number of registries. Its calls may run on
/// several threads at once (set_chunk_threshold aside).
class RegistryClient {
public:
  RegistryClient(Credentials credentials, RegistryOptions options);

  /// GET a manifest or index by tag or digest, at most 4 MiB. By digest, the
  /// bytes must hash to it.
  Manifest get_manifest(const Reference& ref);
  /// HEAD a manifest: whether the registry has it (for exists()).
  bool has_manifest(const Reference& ref);
  /// PUT a manifest under the reference's tag (or digest). Returns the digest
  /// of the bytes sent.
  Digest put_manifest(const Reference& ref, const MediaType& media_type, const std::string& body);

  /// GET the referrers of `subject` in `repo`'s repository through the
  /// referrers API (distribution-spec 1.1): the image index the registry
  /// answers with, at most 4 MiB; nullopt when it has no such API (404), so
  /// that the caller falls back to the referrers tag schema.
  std::optional<std::string> get_referrers(const Reference& repo, const Digest& subject);

  /// GET a small blob (a config) of the repository into memory, verified.
  std::string get_document(const Reference& repo, const Descriptor& blob);
  /// GET a blob into `path` (written atomically), hashing as it streams; the
  /// size and digest must match `blob`. A dropped download resumes with Range.
  /// With `incoming`, tells it how far the file is written and how the
  /// download ended, for a reader of the blob as it arrives.
  void download_blob(const Reference& repo, const Descriptor& blob, const std::filesystem::path& path,
                     const TransferProgress& progress = {}, GrowingFile* incoming = nullptr);

  /// HEAD a blob: whether the repository already has it.
  bool has_blob(const Reference& repo, const Digest& digest);
  /// Uploads a blob from a file: one PUT, or PATCH chunks for large blobs.
  /// With `mount_from` (another repository of the same registry that has the
  /// blob) the registry is first asked to mount it; returns true when it did.
  /// An upload that fails part-way is restarted from a new session.
  bool upload_blob(const Reference& repo, const Descriptor& blob, const std::filesystem::path& file,
                   const std::string& mount_from = {}, const TransferProgress& progress = {});

  /// Logs in to `registry` ("ghcr.io") with its credential: GET /v2/, through
  /// a token without scope or HTTP Basic, as `docker login` checks one. Throws
  /// a RegistryError naming the credential's source and user when refused.
  void check_login(const std::string& registry);
  /// Whether the credential for `repo` may push there, asked before a build
  /// spends its time, writing nothing: a HEAD of its tag with the push scope,
  /// and the grants of the token fetched for it. Throws a RegistryError naming
  /// the credential's source and user, or where none was found, when the
  /// registry refuses it (401, 403) or its token grants no push; anything else
  /// is left for the push itself to meet.
  void check_push(const Reference& repo);

  /// Where to pull `ref` from, in order: its mirrors (the same repository and
  /// tag or digest on each), then its own registry.
  std::vector<Reference> pull_sources(const Reference& ref) const;

  /// Blobs at or above this size go up in chunks (default 64 MiB).
  void set_chunk_threshold(uint64_t bytes) { chunk_threshold_ = bytes; }

private:
  /// download_blob() but for telling `incoming` of a failure.
  void download(const Reference& repo, const Descriptor& blob, const std::filesystem::path& path,
                const TransferProgress& progress, GrowingFile* incoming);
  bool upload_once(const Reference& repo, const Descriptor& blob, const std::filesystem::path& file,
                   const std::string& mount_from, const TransferProgress& progress);

  RegistryTransport transport_;
  uint64_t chunk_threshold_ = 64ull << 20;
};

}  // namespace imgbuild
