#pragma once
// Authenticated requests to registries: the auth dance (anonymous, basic,
// bearer tokens per scope), retries, redirects and the transport policy (TLS
// verified; plain HTTP only where the user allows it). The distribution API
// (registry.hpp) sends every request through it and knows none of this.
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

#include "oci/reference.hpp"
#include "registry/credentials.hpp"
#include "registry/http.hpp"
#include "store/layout.hpp"

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

/// How to reach registries: what the user allows and trusts, and how hard to try.
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
  /// The longest one request may take (an attempt: a retry has its own).
  std::chrono::milliseconds request_timeout = std::chrono::minutes(5);
  /// The longest one attempt at a blob's transfer may take; unset, it is
  /// request_timeout plus the blob's size at `deadline_rate` bytes a second.
  std::optional<std::chrono::milliseconds> transfer_timeout;
  uint64_t deadline_rate = 100'000;
  /// The slowest a blob's transfer may go before it counts as stalled (and is
  /// retried, a download resuming where it stopped).
  HttpRequest::MinRate min_rate{512 * 1024, std::chrono::seconds(60)};
  /// Whether a registry reached at a public address may send this client (by
  /// redirect, upload location, token realm or its own name resolving anew)
  /// to an internal one (is_internal_address).
  bool allow_private_redirects = false;
  /// For tests: name resolution overrides ("host:port:address"), and internal
  /// addresses to count as public, so that loopback servers can play both.
  std::vector<std::string> resolve;
  std::set<std::string> public_for_testing;
};

/// Sends requests to registries as the user's credentials and options allow:
/// one endpoint per registry (its scheme found at first contact, its
/// credential and tokens kept), retries of transient failures, redirects
/// followed without credentials. Thread-safe.
class RegistryTransport {
public:
  /// The access a request needs, as token scopes name it.
  struct Scope {
    std::string repository;
    bool push = false;
    std::string mount_from{};

    /// "repository:a/b:pull,push repository:a/c:pull": the key of a token;
    /// "" for no repository (a login, which asks for no access).
    std::string text() const {
      if (repository.empty()) return {};
      std::string s = "repository:" + repository + (push ? ":pull,push" : ":pull");
      if (!mount_from.empty() && mount_from != repository) s += " repository:" + mount_from + ":pull";
      return s;
    }
  };

  /// A request the transport may send several times (auth rounds, retries):
  /// `prepare` sets up its body and response handling afresh each time.
  struct Call {
    std::string method = "GET";
    std::string url;  ///< absolute, or a path below the endpoint's base
    std::vector<std::string> headers;
    std::function<void(HttpRequest&)> prepare;
    size_t max_body = kMaxDocumentSize;
    bool follow_redirects = false;
    bool retry = true;  ///< false for requests whose body cannot simply be sent again
    /// A blob's bytes to move (up or down): the request is a transfer, with
    /// min_rate and a deadline scaled by its size. 0: an ordinary request.
    uint64_t transfer_size = 0;
    std::string what;  ///< names the operation in errors: "push localhost:5000/a:1: blob sha256:…"
  };

  RegistryTransport(Credentials credentials, RegistryOptions options);
  ~RegistryTransport();

  /// Sends `call` to `ref`'s registry with the access `scope` needs, logging
  /// in and retrying as needed. Returns the final response whatever its status;
  /// failures below HTTP become RegistryErrors named by `call.what`.
  HttpResponse send(const Reference& ref, const Scope& scope, Call& call);
  /// "https://host[:port]" (or http://) as `ref`'s registry is reached.
  std::string base_url(const Reference& ref);
  /// Throws the RegistryError for a request with `scope` that the registry
  /// refuses (status 401 or 403, for the reason `why`): it names the
  /// credential's source and user, or where none was found.
  [[noreturn]] void refused(const Reference& ref, const Scope& scope, const std::string& why, long status,
                            const std::string& what);
  /// Whether the bearer token held for `scope` at `ref`'s registry says it
  /// grants no push there: a JWT whose "access" claim (the token format of
  /// docker's token servers) lists no push on the repository. False when no
  /// token is held or its grants cannot be read.
  bool token_denies_push(const Reference& ref, const Scope& scope);
  /// The options it was made with (attempts, backoff, mirrors, debug log).
  const RegistryOptions& options() const { return options_; }

private:
  struct Endpoint;
  struct Token;

  Endpoint& endpoint(const Reference& ref);
  /// Whether a loopback `host` speaks plain HTTP as a registry (one HEAD /v2/).
  bool answers_plain_http(const std::string& host);
  std::string ca_file_for(const std::string& host) const;
  /// Sets up `req` for `ep`: resolve overrides, and the check of the address
  /// it connects to (the registry's own origin when `own`).
  void guard(HttpRequest& req, Endpoint& ep, bool own);
  HttpResponse exchange(Endpoint& ep, const Scope& scope, Call& call, bool& authorized);
  void authenticate(Endpoint& ep, const Scope& scope, const HttpResponse& challenge_response, const std::string& what,
                    bool sent_basic);
  [[noreturn]] void refused(Endpoint& ep, const Scope& scope, const std::string& why, long status,
                            const std::string& what);
  Token fetch_token(Endpoint& ep, const std::map<std::string, std::string>& challenge, const std::string& scope_text,
                    const std::string& what);

  Credentials credentials_;
  RegistryOptions options_;
  Http http_;
  std::mutex mutex_;
  std::map<std::string, std::unique_ptr<Endpoint>> endpoints_;
};

/// Whether an HTTP status is worth another attempt (429 and the 5xx of an
/// overloaded or restarting registry).
bool retryable_status(long status);

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
