#pragma once
// Registry credentials: found where podman, skopeo, buildah and docker find
// them (containers' auth.json files, docker's config.json, their credential
// helpers) or in CI environment variables, saved where those tools read them,
// and kept out of every message. A secret never appears in an exception, and
// nothing a helper prints on stdout is ever repeated, since that is where its
// secrets are.
#include <chrono>
#include <filesystem>
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
  /// Whose it is, for messages: "user alice", or "an identity token".
  std::string who() const { return username.empty() ? "an identity token" : "user " + username; }
};

/// How a credentials file's keys are read. Docker's config.json: a key's path
/// is ignored ("https://index.docker.io/v1/" is docker.io). Containers'
/// auth.json (containers-auth.json(5)): a key without a scheme that has a path
/// ("quay.io/team") is for that namespace only, and is not read, since
/// imgbuild uses one credential per registry.
enum class ConfigFormat { Docker, Containers };

/// A file credentials are read from, in lookup order.
struct CredentialFile {
  std::filesystem::path path;
  ConfigFormat format = ConfigFormat::Docker;
};

/// The files read for credentials, in order, as podman, skopeo and buildah
/// read them: $REGISTRY_AUTH_FILE alone when set; otherwise
/// $XDG_RUNTIME_DIR/containers/auth.json (else /run/containers/UID/auth.json),
/// $XDG_CONFIG_HOME/containers/auth.json (else $HOME/.config/...), and
/// docker's $DOCKER_CONFIG/config.json (else $HOME/.docker/config.json).
/// Taken from `env`; a file whose variables are unset is left out.
std::vector<CredentialFile> credential_files(const std::map<std::string, std::string>& env);

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

  /// Reads credential_files(env). A missing file means no credentials
  /// configured there; an unreadable or malformed one is a CredentialError.
  /// `env` is also where the IMGBUILD_REGISTRY_AUTH_* variables are read,
  /// where PATH is searched for helpers and what helpers run with.
  static Credentials load(const std::map<std::string, std::string>& env,
                          std::chrono::milliseconds helper_timeout = kHelperTimeout);
  /// load() with the process environment.
  static Credentials load();

  /// The credentials a config.json text configures, with an empty environment:
  /// no variables and no PATH, so no helper can be found or run. `origin` names
  /// the text in messages (the file's path). Every entry is decoded here, so a
  /// malformed one fails now, as in docker. Throws CredentialError naming the
  /// key and, for a JSON syntax error, the line and column, quoting nothing.
  static Credentials parse_config(std::string_view json_text, std::string_view origin,
                                  ConfigFormat format = ConfigFormat::Docker);

  /// Only `credential`, for `registry`: what `imgbuild login` checks before saving.
  static Credentials only(const std::string& registry, Credential credential);

  /// The credential for a registry host as in Reference::registry ("docker.io",
  /// "ghcr.io", "localhost:5000"), or nullopt when none is configured. Hosts
  /// match exactly, port included, whatever their letters' case. In order:
  ///  1. IMGBUILD_REGISTRY_AUTH_<ANY>="HOST=user:password", the host named in
  ///     the value; or the old form IMGBUILD_REGISTRY_AUTH_<HOST>="user:password",
  ///     HOST being the registry uppercased with each character outside [A-Z0-9]
  ///     replaced by '_', read only when that name can stand for this one host
  ///     (legacy_env_readings) and refused, naming the hosts, when it cannot;
  ///  2. each of credential_files() in turn: the helper its credHelpers names
  ///     for the host, else its credsStore helper (`docker-credential-<name>
  ///     get`); then its auths (auth, username/password, identitytoken), keys
  ///     matched by host: "https://", "http://" and, in config.json, any path
  ///     are ignored, and "https://index.docker.io/v1/", "index.docker.io" and
  ///     "registry-1.docker.io" all mean docker.io.
  /// A helper that answers "credentials not found" passes on to the next step.
  /// Throws CredentialError.
  std::optional<Credential> lookup(const std::string& registry) const;

  /// Where lookup() looks, for a message about a missing credential:
  /// "IMGBUILD_REGISTRY_AUTH_*, /run/user/1000/containers/auth.json, ...".
  std::string searched() const;

  /// Saves `credential` (a username and password) for `registry` where the
  /// user's tools read it: in $REGISTRY_AUTH_FILE when set; else in the first
  /// file of credential_files() that already has an entry for the host (so it
  /// replaces the one in use); else in docker's config.json. When that file
  /// names a helper for the host (credHelpers, credsStore), the helper gets
  /// `store`; otherwise the file is rewritten atomically, mode 0600, keeping
  /// its other entries and fields, the host's other keys removed. Returns
  /// where it went ("/home/u/.docker/config.json", "credential helper
  /// docker-credential-pass"). Throws CredentialError.
  std::string save(const std::string& registry, const Credential& credential) const;

  /// Removes every credential for `registry` from credential_files() (their
  /// entries for the host, and `erase` to the helper each names for it).
  /// Returns where it was removed from; empty when nowhere had one. Throws
  /// CredentialError.
  std::vector<std::string> erase(const std::string& registry) const;

private:
  struct HelperCache;
  struct File;

  std::optional<Credential> from_environment(const std::string& host) const;
  std::optional<Credential> from_legacy_variable(const std::string& host) const;
  std::optional<Credential> from_helper(const std::string& helper, const std::string& host) const;
  /// Runs `docker-credential-<helper> <action>` (get, store, erase) for
  /// `host` with `input` on stdin: its stdout when it succeeds, nullopt when it
  /// answers "credentials not found". Throws CredentialError otherwise.
  std::optional<std::string> ask_helper(const std::string& helper, const std::string& action, const std::string& host,
                                        const std::string& input) const;

  std::vector<File> files_;               ///< the files read, in lookup order
  std::vector<CredentialFile> searched_;  ///< every file looked for, read or not
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

/// The registry host a login names, as credentials files key it and lookup()
/// matches it: "https://index.docker.io/v1/" is "docker.io", "HOST:5000/" is
/// "host:5000". nullopt when it names no registry host.
std::optional<std::string> registry_host(std::string_view text);

}  // namespace imgbuild
