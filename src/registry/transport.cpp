#include "registry/transport.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <ctime>

#include <nlohmann/json.hpp>

#include "base/interrupt.hpp"
#include "base/text.hpp"
#include "registry/www_authenticate.hpp"

namespace imgbuild {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kMaxRedirects = 5;
/// The longest Retry-After honoured; a registry asking for more gets an error.
constexpr auto kMaxRetryAfter = std::chrono::seconds(60);

/// Retry-After as seconds or an HTTP date; nullopt when absent or unreadable.
std::optional<std::chrono::milliseconds> retry_after(const HttpResponse& r) {
  auto v = r.header("retry-after");
  if (!v) return std::nullopt;
  char* end = nullptr;
  long secs = std::strtol(v->c_str(), &end, 10);
  if (end != v->c_str() && *end == '\0' && secs >= 0) return std::chrono::seconds(secs);
  time_t when = curl_getdate(v->c_str(), nullptr);
  if (when < 0) return std::nullopt;
  return std::chrono::seconds(std::max<time_t>(0, when - std::time(nullptr)));
}

/// Host part of an origin ("https://h:5000" -> "h:5000").
std::string origin_host(const std::string& origin) { return origin.substr(origin.find("://") + 3); }

/// Whether a host[:port] is "localhost" or an IP literal in an internal range
/// (is_internal_address): places a public registry has no business sending us.
bool is_private_address(std::string host) {
  if (auto colon = host.rfind(':');
      colon != std::string::npos && host.find(']') == std::string::npos && host.find(':') == colon)
    host.resize(colon);
  if (host.starts_with("[")) host = host.substr(1, host.find(']') - 1);
  return host == "localhost" || is_internal_address(host);
}

/// Which settings move the limit that cut a transfer, for its error.
std::string limit_hint(HttpError::Kind kind) {
  if (kind == HttpError::Kind::Deadline)
    return "; IMGBUILD_REGISTRY_TIMEOUT and IMGBUILD_REGISTRY_TRANSFER_TIMEOUT set the deadlines";
  if (kind == HttpError::Kind::Stalled) return "; IMGBUILD_REGISTRY_MIN_RATE sets the minimum";
  return "";
}

}  // namespace

bool retryable_status(long status) {
  return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

std::string describe_registry_error(const HttpResponse& response) {
  json body = json::parse(response.body, nullptr, false);
  std::vector<std::string> parts;
  if (body.is_object() && body.contains("errors") && body["errors"].is_array()) {
    for (auto& e : body["errors"]) {
      if (!e.is_object()) continue;
      auto text = [&](const char* key) {
        auto it = e.find(key);
        return it != e.end() && it->is_string() ? it->get<std::string>() : std::string();
      };
      std::string code = text("code"), message = text("message");
      if (!code.empty() || !message.empty())
        parts.push_back(code.empty() ? message : message.empty() ? code : code + ": " + message);
    }
  }
  std::string status = "HTTP " + std::to_string(response.status);
  return parts.empty() ? status : join(parts, "; ") + " (" + status + ")";
}

/// A bearer token and when to stop using it.
struct RegistryTransport::Token {
  std::string value;
  Clock::time_point expires;
};

/// One registry host as this client talks to it.
struct RegistryTransport::Endpoint {
  std::string registry;
  std::string base;  ///< "https://registry-1.docker.io"
  bool plain_allowed = false;
  bool verify_tls = true;
  std::string ca_file;
  /// Named as a loopback host: where it sends us is not checked.
  bool loopback = false;

  std::mutex mutex;
  /// Whether the registry itself answered from an internal address; unknown
  /// until its first request connects.
  std::optional<bool> internal;
  bool credential_looked_up = false;
  std::optional<Credential> credential;
  bool use_basic = false;
  std::map<std::string, Token> tokens;  ///< by scope text
};

std::optional<std::string> token_realm_refusal(const std::string& registry_base, const std::string& realm,
                                               const std::set<std::string>& insecure) {
  std::string origin = url_origin(realm);
  if (origin.empty()) return "the token realm '" + redact_url(realm) + "' is not an absolute URL";
  std::string host = origin_host(origin), registry_host = origin_host(url_origin(registry_base));
  bool plain_ok = is_loopback_host(host) || insecure.count(host);
  if (!origin.starts_with("https://")) {
    if (!origin.starts_with("http://")) return "the token realm " + redact_url(realm) + " is not an http(s) URL";
    if (registry_base.starts_with("https://"))
      return "refused the plain-HTTP token realm " + redact_url(realm) + " of a registry reached over https";
    if (!plain_ok) return "refused to send credentials to the plain-HTTP token realm " + redact_url(realm);
  }
  if (is_private_address(host) && !is_private_address(registry_host) && !insecure.count(host))
    return "refused the token realm " + redact_url(realm) + ": a private address named by the public registry " +
           registry_host;
  return std::nullopt;
}

std::string RegistryTransport::ca_file_for(const std::string& host) const {
  for (auto& dir : options_.cert_dirs) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(dir / host / "ca.crt", ec)) return (dir / host / "ca.crt").string();
  }
  return options_.ca_file;
}

RegistryTransport::RegistryTransport(Credentials credentials, RegistryOptions options)
    : credentials_(std::move(credentials)), options_(std::move(options)) {}

RegistryTransport::~RegistryTransport() = default;

void RegistryTransport::guard(HttpRequest& req, Endpoint& ep, bool own) {
  req.resolve = options_.resolve;
  if (ep.loopback || options_.allow_private_redirects) return;
  req.check_address = [this, &ep, own](const std::string& address) {
    std::optional<std::string> refusal;
    bool internal = is_internal_address(address) && !options_.public_for_testing.count(address);
    std::lock_guard lock(ep.mutex);
    // A registry's first connection says whether it is an internal one; one
    // that answered from a public address stays public.
    if (own && !ep.internal) ep.internal = internal;
    if (!internal || ep.internal.value_or(false)) return refusal;
    refusal = own ? "refused: the registry " + ep.registry + ", reached at a public address before, now resolves to " +
                        "the internal address " + address
                  : "refused: the registry " + ep.registry + " (at a public address) sent this client here, to " +
                        "the internal address " + address;
    *refusal += " (IMGBUILD_ALLOW_PRIVATE_REDIRECTS=1 allows it)";
    return refusal;
  };
}

bool RegistryTransport::answers_plain_http(const std::string& host) {
  // Only a registry answers /v2/ with 200 or 401; a TLS server asked in plain
  // HTTP answers 400 or hangs up.
  HttpRequest probe;
  probe.method = "HEAD";
  probe.url = "http://" + host + "/v2/";
  probe.resolve = options_.resolve;
  probe.deadline = Clock::now() + options_.request_timeout;
  try {
    long status = http_.perform(probe).status;
    return status == 200 || status == 401;
  } catch (const HttpError&) {
    return false;
  }
}

RegistryTransport::Endpoint& RegistryTransport::endpoint(const Reference& ref) {
  std::lock_guard lock(mutex_);
  auto& ep = endpoints_[ref.registry];
  if (!ep) {
    ep = std::make_unique<Endpoint>();
    ep->registry = ref.registry;
    ep->loopback = is_loopback_host(ref.registry);
    bool insecure = options_.insecure.count(ref.registry) > 0;
    ep->plain_allowed = insecure || is_loopback_host(ref.registry);
    ep->verify_tls = !insecure;
    ep->ca_file = ca_file_for(ref.registry);
    ep->base = "https://" + ref.api_host();
    if (is_loopback_host(ref.registry) && answers_plain_http(ref.api_host())) {
      // A loopback registry is asked in plain HTTP first: that is what test
      // and CI registries speak, and a TLS attempt costs more than the whole
      // request (OpenSSL loads every CA certificate before its handshake).
      ep->base = "http://" + ref.api_host();
    } else if (ep->plain_allowed) {
      // An insecure registry, or a loopback one that does not answer in
      // plain HTTP, may still not speak TLS: asked once, at first contact,
      // before any request that matters. Only a failed handshake means plain
      // HTTP; a certificate that does not verify stays an error (no silent
      // downgrade).
      HttpRequest probe;
      probe.method = "HEAD";
      probe.url = ep->base + "/v2/";
      probe.verify_tls = ep->verify_tls;
      probe.ca_file = ep->ca_file;
      probe.resolve = options_.resolve;
      probe.deadline = Clock::now() + options_.request_timeout;
      try {
        http_.perform(probe);
      } catch (const HttpError& e) {
        if (e.kind() == HttpError::Kind::Tls) ep->base = "http://" + ref.api_host();
      }
    }
  }
  return *ep;
}

HttpResponse RegistryTransport::send(const Reference& ref, const Scope& scope, Call& call) {
  Endpoint& ep = endpoint(ref);
  std::chrono::milliseconds delay = options_.backoff;
  for (int attempt = 1;; ++attempt) {
    bool last = !call.retry || attempt >= options_.max_attempts;
    try {
      bool authorized = false;
      HttpResponse r = exchange(ep, scope, call, authorized);
      if (!retryable_status(r.status) || last) return r;
      auto wait = retry_after(r).value_or(delay);
      if (wait > kMaxRetryAfter) return r;
      if (options_.debug) options_.debug("retrying in " + std::to_string(wait.count()) + " ms");
      sleep_or_interrupt(wait);
    } catch (const HttpError& e) {
      if (e.kind() == HttpError::Kind::TooLarge)
        throw RegistryError(call.what + ": the registry sent more than " + std::to_string(call.max_body >> 20) +
                            " MiB: refused");
      if (!e.retryable() || last) throw RegistryError(call.what + ": " + e.what() + limit_hint(e.kind()));
      if (options_.debug) options_.debug(std::string("retrying after: ") + e.what());
      sleep_or_interrupt(delay);
    }
    delay *= 2;
  }
}

HttpResponse RegistryTransport::exchange(Endpoint& ep, const Scope& scope, Call& call, bool& authorized) {
  std::string base;
  {
    std::lock_guard lock(ep.mutex);
    base = ep.base;
  }
  std::string url = call.url.starts_with("http://") || call.url.starts_with("https://") ? call.url : base + call.url;
  std::string home = url_origin(base);
  // What sent us to `url`: the registry itself (an upload location), or a redirect.
  std::string from = base;
  for (int redirects = 0;;) {
    // Not even a signed URL's query goes out in plain text from an https registry.
    if ((home.starts_with("https://") || from.starts_with("https://")) && !url.starts_with("https://"))
      throw RegistryError(call.what + ": refused to follow " + redact_url(from) + " to the plain-HTTP " +
                          redact_url(url) +
                          (home.starts_with("https://") ? " (the registry is reached over https)" : ""));
    HttpRequest req;
    req.method = call.method;
    req.url = url;
    req.headers = call.headers;
    req.max_body = call.max_body;
    req.verify_tls = ep.verify_tls;
    req.ca_file = ep.ca_file;
    guard(req, ep, url_origin(url) == home);
    auto timeout = options_.request_timeout;
    if (call.transfer_size > 0) {
      timeout = options_.transfer_timeout.value_or(
          options_.request_timeout +
          std::chrono::seconds(call.transfer_size / std::max<uint64_t>(1, options_.deadline_rate)));
      req.min_rate = options_.min_rate;
      req.min_rate.bytes = std::min(req.min_rate.bytes, call.transfer_size);
    }
    req.deadline = Clock::now() + timeout;
    if (call.prepare) call.prepare(req);
    // Credentials go to the registry's own origin only, never where it redirects.
    bool sent_basic = false;
    if (url_origin(url) == home) {
      std::lock_guard lock(ep.mutex);
      if (ep.use_basic && ep.credential) {
        sent_basic = true;
        req.headers.push_back("Authorization: Basic " +
                              base64_encode(ep.credential->username + ":" + ep.credential->password));
      } else if (auto t = ep.tokens.find(scope.text()); t != ep.tokens.end() && t->second.expires > Clock::now()) {
        req.headers.push_back("Authorization: Bearer " + t->second.value);
      }
    }
    HttpResponse r = http_.perform(req);
    if (options_.debug) options_.debug(req.method + " " + redact_url(url) + " -> " + std::to_string(r.status));
    if (r.status == 401 && url_origin(url) == home) {
      if (authorized) refused(ep, scope, describe_registry_error(r), r.status, call.what);
      authenticate(ep, scope, r, call.what, sent_basic);
      authorized = true;
      continue;
    }
    bool redirect = r.status == 301 || r.status == 302 || r.status == 303 || r.status == 307 || r.status == 308;
    if (!redirect || !call.follow_redirects) return r;
    auto location = r.header("location");
    if (!location) throw RegistryError(call.what + ": redirect without a Location", r.status);
    if (++redirects > kMaxRedirects) throw RegistryError(call.what + ": too many redirects", r.status);
    from = url;
    url = resolve_url(url, *location);
  }
}

void RegistryTransport::authenticate(Endpoint& ep, const Scope& scope, const HttpResponse& response,
                                     const std::string& what, bool sent_basic) {
  std::vector<AuthChallenge> challenges;
  for (auto& [name, value] : response.headers)
    if (name == "www-authenticate")
      for (auto& c : parse_www_authenticate(value)) challenges.push_back(std::move(c));
  auto find = [&](const char* scheme) -> const AuthChallenge* {
    for (auto& c : challenges)
      if (c.scheme == scheme) return &c;
    return nullptr;
  };
  {
    std::lock_guard lock(ep.mutex);
    if (!ep.credential_looked_up) {
      ep.credential = credentials_.lookup(ep.registry);
      ep.credential_looked_up = true;
    }
  }
  if (const AuthChallenge* bearer = find("bearer")) {
    std::string key = scope.text();
    std::string wanted = key;
    if (auto s = bearer->params.find("scope"); s != bearer->params.end() && key.find(s->second) == std::string::npos)
      wanted += " " + s->second;
    Token token = fetch_token(ep, bearer->params, wanted, what);
    std::lock_guard lock(ep.mutex);
    ep.tokens[key] = std::move(token);
    return;
  }
  if (find("basic")) {
    // A request that went out without Basic while another thread turned it
    // on is simply sent again; one that carried it was refused.
    bool usable;
    {
      std::lock_guard lock(ep.mutex);
      usable = ep.credential && !ep.credential->username.empty() && !sent_basic;
      if (usable) ep.use_basic = true;
    }
    if (!usable) refused(ep, scope, describe_registry_error(response), response.status, what);
    return;
  }
  throw RegistryError(what + ": " + describe_registry_error(response) + ", and no usable authentication challenge", 401,
                      "UNAUTHORIZED");
}

void RegistryTransport::refused(const Reference& ref, const Scope& scope, const std::string& reason, long status,
                                const std::string& what) {
  refused(endpoint(ref), scope, reason, status, what);
}

bool RegistryTransport::token_denies_push(const Reference& ref, const Scope& scope) {
  Endpoint& ep = endpoint(ref);
  std::string token;
  {
    std::lock_guard lock(ep.mutex);
    auto t = ep.tokens.find(scope.text());
    if (t == ep.tokens.end()) return false;
    token = t->second.value;
  }
  // header.claims.signature, each base64url without padding. The signature is
  // not checked: a token that says it grants no push is refused by the
  // registry anyway, and this only says so before a build rather than after.
  std::vector<std::string> parts = split(token, '.');
  if (parts.size() != 3) return false;
  std::string claims_text = parts[1];
  std::replace(claims_text.begin(), claims_text.end(), '-', '+');
  std::replace(claims_text.begin(), claims_text.end(), '_', '/');
  claims_text.append((4 - claims_text.size() % 4) % 4, '=');
  std::optional<std::string> decoded = base64_decode(claims_text);
  if (!decoded) return false;
  json claims = json::parse(*decoded, nullptr, false);
  if (!claims.is_object() || !claims.contains("access") || !claims["access"].is_array()) return false;
  for (const json& grant : claims["access"]) {
    if (!grant.is_object() || grant.value("type", json()) != "repository" ||
        grant.value("name", json()) != scope.repository || !grant.contains("actions") || !grant["actions"].is_array())
      continue;
    for (const json& action : grant["actions"])
      if (action == "push" || action == "*") return false;
  }
  return true;
}

void RegistryTransport::refused(Endpoint& ep, const Scope& scope, const std::string& reason, long status,
                                const std::string& what) {
  std::string why = " (" + reason + ")";
  if (status != 403) status = 401;
  std::string code = status == 403 ? "DENIED" : "UNAUTHORIZED";
  std::lock_guard lock(ep.mutex);
  if (!ep.credential)
    throw RegistryError(what + ": " + ep.registry + " asks for a login and no credentials are configured for it" + why +
                            "; looked in " + credentials_.searched() + ": run imgbuild login " + ep.registry,
                        status, code);
  if (ep.use_basic && status == 401)
    throw RegistryError(what + ": " + ep.registry + " rejected the credentials from " + ep.credential->source + why +
                            " for " + ep.credential->who(),
                        status, code);
  throw RegistryError(what + ": the credentials of " + ep.credential->who() + " for " + ep.registry + " from " +
                          ep.credential->source + " do not allow " + (scope.push ? "pushing to " : "pulling from ") +
                          scope.repository + why,
                      status, code);
}

RegistryTransport::Token RegistryTransport::fetch_token(Endpoint& ep,
                                                        const std::map<std::string, std::string>& challenge,
                                                        const std::string& scope_text, const std::string& what) {
  auto realm_it = challenge.find("realm");
  if (realm_it == challenge.end() || url_origin(realm_it->second).empty())
    throw RegistryError(what + ": " + ep.registry + " asked for a token without naming an absolute realm URL", 401);
  const std::string& realm = realm_it->second;
  std::string realm_host = origin_host(url_origin(realm));
  std::string base;
  {
    std::lock_guard lock(ep.mutex);
    base = ep.base;
  }
  if (auto refusal = token_realm_refusal(base, realm, options_.insecure))
    throw RegistryError(what + ": " + *refusal, 401);

  std::optional<Credential> cred;
  {
    std::lock_guard lock(ep.mutex);
    cred = ep.credential;
  }
  std::string query;
  if (auto s = challenge.find("service"); s != challenge.end()) query += "service=" + url_encode(s->second);
  for (auto& s : split(scope_text, ' ')) {
    if (s.empty()) continue;
    query += (query.empty() ? "" : "&") + std::string("scope=") + url_encode(s);
  }

  HttpRequest req;
  req.verify_tls = !options_.insecure.count(realm_host);
  req.ca_file = ca_file_for(realm_host);
  req.max_body = 1 << 20;
  std::string body;
  if (cred && !cred->identity_token.empty()) {
    // OAuth2 refresh-token grant (what `docker login` with an identity token does).
    req.method = "POST";
    req.url = realm;
    body = query + "&grant_type=refresh_token&client_id=imgbuild&refresh_token=" + url_encode(cred->identity_token);
    req.headers.push_back("Content-Type: application/x-www-form-urlencoded");
    req.body_size = body.size();
    size_t offset = 0;
    req.read = [&body, offset](char* buf, size_t max) mutable {
      size_t n = std::min(max, body.size() - offset);
      std::copy_n(body.data() + offset, n, buf);
      offset += n;
      return n;
    };
  } else {
    req.url = realm + (realm.find('?') == std::string::npos ? "?" : "&") + query;
    if (cred && !cred->username.empty())
      req.headers.push_back("Authorization: Basic " + base64_encode(cred->username + ":" + cred->password));
  }
  guard(req, ep, url_origin(realm) == url_origin(base));
  HttpResponse r;
  std::chrono::milliseconds delay = options_.backoff;
  for (int attempt = 1;; ++attempt) {
    req.deadline = Clock::now() + options_.request_timeout;
    try {
      r = http_.perform(req);
    } catch (const HttpError& e) {
      if (!e.retryable() || attempt >= options_.max_attempts) throw RegistryError(what + ": token: " + e.what());
      sleep_or_interrupt(delay);
      delay *= 2;
      continue;
    }
    if (options_.debug) options_.debug(req.method + " " + redact_url(req.url) + " -> " + std::to_string(r.status));
    if (!retryable_status(r.status) || attempt >= options_.max_attempts) break;
    sleep_or_interrupt(retry_after(r).value_or(delay));
    delay *= 2;
  }
  if (r.status == 401 || r.status == 403)
    throw RegistryError(what + ": the token server of " + ep.registry +
                            (cred ? " rejected the credentials from " + cred->source : " refused anonymous access") +
                            " (" + describe_registry_error(r) + ")" + (cred ? " for " + cred->who() : ""),
                        r.status, "UNAUTHORIZED");
  if (r.status != 200)
    throw RegistryError(what + ": token server of " + ep.registry + ": " + describe_registry_error(r), r.status);
  json doc = json::parse(r.body, nullptr, false);
  std::string token;
  if (doc.is_object()) {
    if (doc.contains("token") && doc["token"].is_string())
      token = doc["token"];
    else if (doc.contains("access_token") && doc["access_token"].is_string())
      token = doc["access_token"];
  }
  if (token.empty()) throw RegistryError(what + ": the token server of " + ep.registry + " sent no token", r.status);
  // Tokens live 60 s unless told otherwise; renew a little early so a request
  // never leaves with a token that expires on the way.
  long lifetime = 60;
  if (doc.contains("expires_in") && doc["expires_in"].is_number_integer())
    lifetime = std::max<long>(1, doc["expires_in"]);
  return {token, Clock::now() + std::chrono::milliseconds(lifetime * 900)};
}

std::string RegistryTransport::base_url(const Reference& ref) {
  Endpoint& ep = endpoint(ref);
  std::lock_guard lock(ep.mutex);
  return ep.base;
}

}  // namespace imgbuild
