#pragma once
// Registry credentials: found where docker finds them (config.json, its
// credential helpers) or in CI environment variables, and kept out of every
// message. A secret never appears in an exception, and nothing a helper prints
// on stdout is ever repeated, since that is where its secrets are.
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace imgbuild {

/// A username/password pair, or an identity token: an OAuth2 refresh token
/// (Username "<token>" from a helper, "identitytoken" in config.json) that the
/// registry's token server exchanges for a bearer token.
struct Credential {
  std::string username;
  std::string password;
  std::string identity_token;
  /// Where it was found, for a message when a registry refuses it: the
  /// variable, the config file and key, or the helper. Never a secret.
  std::string source{};

  /// The same secret, wherever it was found.
  friend bool operator==(const Credential& a, const Credential& b) {
    return a.username == b.username && a.password == b.password && a.identity_token == b.identity_token;
  }
};

/// Credentials that are configured but unusable: a malformed config.json, a
/// helper that failed, a malformed environment variable. The message names the
/// file, key, helper or variable, never a value.
class CredentialError : public std::runtime_error {
  using runtime_error::runtime_error;
};

/// Where the credentials for each registry come from. Thread-safe: lookups may
/// happen from several threads, and a helper's answer is cached per host.
class Credentials {
public:
  /// How long a credential helper may take before it is killed.
  static constexpr std::chrono::milliseconds kHelperTimeout{30000};

  /// No credentials: every lookup answers nullopt (anonymous access).
  Credentials();
  ~Credentials();
  Credentials(Credentials&&) noexcept;
  Credentials& operator=(Credentials&&) noexcept;

  /// Reads $DOCKER_CONFIG/config.json, else $HOME/.docker/config.json, both
  /// taken from `env`. A missing file means no configured credentials; an
  /// unreadable or malformed one is a CredentialError. `env` is also where the
  /// IMGBUILD_REGISTRY_AUTH_* variables are read, where PATH is searched for
  /// helpers and what helpers run with.
  static Credentials load(const std::map<std::string, std::string>& env,
                          std::chrono::milliseconds helper_timeout = kHelperTimeout);
  /// load() with the process environment.
  static Credentials load();

  /// The credentials a config.json text configures, with an empty environment:
  /// no variables and no PATH, so no helper can be found or run. `origin` names
  /// the text in messages (the file's path). Every entry is decoded here, so a
  /// malformed one fails now, as in docker. Throws CredentialError naming the
  /// key and, for a JSON syntax error, the line and column, quoting nothing.
  static Credentials parse_config(std::string_view json_text, std::string_view origin);

  /// The credential for a registry host as in Reference::registry ("docker.io",
  /// "ghcr.io", "localhost:5000"), or nullopt when none is configured. Hosts
  /// match exactly, port included, whatever their letters' case. In order:
  ///  1. IMGBUILD_REGISTRY_AUTH_<ANY>="HOST=user:password", the host named in
  ///     the value; or the old form IMGBUILD_REGISTRY_AUTH_<HOST>="user:password",
  ///     HOST being the registry uppercased with each character outside [A-Z0-9]
  ///     replaced by '_', read only when that name can stand for this one host
  ///     (legacy_env_readings) and refused, naming the hosts, when it cannot;
  ///  2. the helper credHelpers names for the host, else the credsStore helper:
  ///     `docker-credential-<name> get`;
  ///  3. auths in config.json (auth, username/password, identitytoken), keys
  ///     matched by host: "https://", "http://" and any path are ignored, and
  ///     "https://index.docker.io/v1/", "index.docker.io" and
  ///     "registry-1.docker.io" all mean docker.io.
  /// A helper that answers "credentials not found" passes on to the next step.
  /// Throws CredentialError.
  std::optional<Credential> lookup(const std::string& registry) const;

private:
  struct HelperCache;

  std::optional<Credential> from_environment(const std::string& host) const;
  std::optional<Credential> from_legacy_variable(const std::string& host) const;
  std::optional<Credential> from_helper(const std::string& helper, const std::string& host) const;

  std::string origin_;                          ///< the config file, for messages
  std::map<std::string, Credential> auths_;     ///< by host
  std::map<std::string, std::string> helpers_;  ///< credHelpers, by host
  std::string store_;                           ///< credsStore
  std::map<std::string, std::string> env_;
  std::chrono::milliseconds helper_timeout_ = kHelperTimeout;
  std::unique_ptr<HelperCache> cache_;
};

/// The registry hosts (lowercase) that the old variable form's HOST part
/// `encoded` ("TEAM_REGISTRY_TEST") can stand for, at most `limit` of them:
/// each '_' was a '.', '-' or ':' (or '[' and ']' around an IPv6 address).
/// Only hosts someone could own are counted: IP addresses, "localhost", and
/// DNS names with a dot whose last label is a top-level domain (letters, or
/// "xn--" and more). Exposed for its tests.
std::vector<std::string> legacy_env_readings(std::string_view encoded, size_t limit = 2);

}  // namespace imgbuild
