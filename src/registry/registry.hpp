#pragma once
// A client for the OCI distribution API: manifests and blobs, with the auth
// dance (anonymous, basic, bearer tokens per scope), retries and the transport
// policy (TLS verified; plain HTTP only where the user allows it).
//
// Nothing a registry sends is trusted: documents are size-limited and hashed,
// blobs are hashed as they stream, and a digest header never replaces hashing.
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "oci/digest.hpp"
#include "oci/image.hpp"
#include "oci/reference.hpp"
#include "registry/credentials.hpp"
#include "registry/http.hpp"

namespace imgbuild {

/// A failed registry operation. what() names the reference and carries the
/// registry's own error code and message ("MANIFEST_UNKNOWN: manifest unknown").
class RegistryError : public std::runtime_error {
public:
  RegistryError(const std::string& message, long status = 0, std::string code = {})
      : std::runtime_error(message), status_(status), code_(std::move(code)) {}
  long status() const { return status_; }
  const std::string& code() const { return code_; }

private:
  long status_;
  std::string code_;
};

struct RegistryOptions {
  /// Hosts ("host:port" as in references) where plain HTTP and unverified TLS
  /// are allowed. Loopback hosts may use plain HTTP without being listed.
  std::set<std::string> insecure;
  /// CA bundle trusted instead of the system's (SSL_CERT_FILE), and folders
  /// with a HOST/ca.crt for registries with a private CA (docker's certs.d).
  std::string ca_file;
  std::vector<std::filesystem::path> cert_dirs = {"/etc/docker/certs.d", "/etc/containers/certs.d"};
  /// Registries to pull from before the one a reference names, by registry
  /// ("docker.io" -> {"mirror.example.com"}), as docker's registry-mirrors.
  /// Pushes never go to a mirror.
  std::map<std::string, std::vector<std::string>> mirrors;
  /// Attempts for one request when the registry answers 429 or 5xx or the
  /// connection drops.
  int max_attempts = 5;
  /// First retry delay; doubled each time. Retry-After overrides it.
  std::chrono::milliseconds backoff{200};
  /// One line per HTTP exchange (method, redacted URL, status), for --debug.
  std::function<void(const std::string&)> debug;
};

/// A manifest or index as fetched: the exact bytes (their digest is the
/// content's identity) and what kind of document they are.
struct Manifest {
  MediaType media_type;
  std::string body;
  Digest digest;
};

/// Bytes transferred so far for one blob, for progress.
using TransferProgress = std::function<void(uint64_t done, uint64_t total)>;

class RegistryClient {
public:
  RegistryClient(Credentials credentials, RegistryOptions options);
  ~RegistryClient();

  /// GET a manifest or index by tag or digest, at most 4 MiB. By digest, the
  /// bytes must hash to it.
  Manifest get_manifest(const Reference& ref);
  /// HEAD a manifest: whether the registry has it (for exists()).
  bool has_manifest(const Reference& ref);
  /// PUT a manifest under the reference's tag (or digest). Returns the digest
  /// of the bytes sent.
  Digest put_manifest(const Reference& ref, const MediaType& media_type, const std::string& body);

  /// GET a small blob (a config) of the repository into memory, verified.
  std::string get_document(const Reference& repo, const Descriptor& blob);
  /// GET a blob into `path` (written atomically), hashing as it streams; the
  /// size and digest must match `blob`. A dropped download resumes with Range.
  void download_blob(const Reference& repo, const Descriptor& blob, const std::filesystem::path& path,
                     const TransferProgress& progress = {});

  /// HEAD a blob: whether the repository already has it.
  bool has_blob(const Reference& repo, const Digest& digest);
  /// Uploads a blob from a file: one PUT, or PATCH chunks for large blobs.
  /// With `mount_from` (another repository of the same registry that has the
  /// blob) the registry is first asked to mount it; returns true when it did.
  /// An upload that fails part-way is restarted from a new session.
  bool upload_blob(const Reference& repo, const Descriptor& blob, const std::filesystem::path& file,
                   const std::string& mount_from = {}, const TransferProgress& progress = {});

  /// Where to pull `ref` from, in order: its mirrors (the same repository and
  /// tag or digest on each), then its own registry.
  std::vector<Reference> pull_sources(const Reference& ref) const;

  /// Blobs at or above this size go up in chunks (default 64 MiB).
  void set_chunk_threshold(uint64_t bytes) { chunk_threshold_ = bytes; }

private:
  struct Endpoint;
  struct Scope;
  struct Call;

  Endpoint& endpoint(const Reference& ref);
  /// Whether a loopback `host` speaks plain HTTP as a registry (one HEAD /v2/).
  bool answers_plain_http(const std::string& host);
  std::string ca_file_for(const std::string& host) const;
  HttpResponse send(const Reference& ref, const Scope& scope, Call& call);
  HttpResponse exchange(Endpoint& ep, const Scope& scope, Call& call, bool& authorized);
  void authenticate(Endpoint& ep, const Scope& scope, const HttpResponse& challenge_response, const std::string& what,
                    bool sent_basic);
  [[noreturn]] void refused(Endpoint& ep, const Scope& scope, const HttpResponse& response, const std::string& what);
  struct Token;
  Token fetch_token(Endpoint& ep, const std::map<std::string, std::string>& challenge, const std::string& scope_text,
                    const std::string& what);
  bool upload_once(const Reference& repo, const Descriptor& blob, const std::filesystem::path& file,
                   const std::string& mount_from, const TransferProgress& progress);

  Credentials credentials_;
  RegistryOptions options_;
  Http http_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Endpoint>> endpoints_;
  uint64_t chunk_threshold_ = 64ull << 20;
};

/// Why credentials must not go to a token `realm` that a registry reached at
/// `registry_base` ("https://host[:port]") names, or nullopt when they may: a
/// realm must be https unless the registry itself is plain HTTP and the realm
/// is on a host allowed plain HTTP too; and a realm on a private or loopback
/// address is only believed from a registry on one.
std::optional<std::string> token_realm_refusal(const std::string& registry_base, const std::string& realm,
                                               const std::set<std::string>& insecure);

/// "registry said: CODE: message" from a distribution-spec error body, or the
/// HTTP status when the body has none. Never includes anything but the
/// registry's code and message fields, so nothing echoed back leaks.
std::string describe_registry_error(const HttpResponse& response);

}  // namespace imgbuild
