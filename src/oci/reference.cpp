#include "oci/reference.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include "base/text.hpp"

namespace imgbuild {

namespace {

constexpr std::string_view kDockerHub = "docker.io";
// Docker Hub's name in the v1 days; Docker still accepts it as an alias.
constexpr std::string_view kLegacyDockerHub = "index.docker.io";
constexpr std::string_view kDockerHubApi = "registry-1.docker.io";
constexpr std::string_view kOfficialPrefix = "library/";
constexpr std::string_view kDefaultTag = "latest";
// distribution/reference's RepositoryNameTotalLengthMax. Since v0.6 it bounds
// the path without the registry, and the "library/" Docker adds counts.
constexpr size_t kMaxRepositoryLength = 255;
constexpr size_t kMaxTagLength = 128;

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_upper(char c) { return c >= 'A' && c <= 'Z'; }
bool is_alnum(char c) { return is_lower_alnum(c) || is_upper(c); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
// Go's \w, which the tag grammar uses: ASCII only.
bool is_word(char c) { return is_alnum(c) || c == '_'; }
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

bool has_upper(std::string_view s) {
  for (char c : s)
    if (is_upper(c)) return true;
  return false;
}

/// A character for a message: 'x', or '\x01' for one that would not print.
std::string char_name(char c) {
  std::string q = quote(std::string_view(&c, 1));
  return "'" + q.substr(1, q.size() - 2) + "'";
}

// Each validator returns why its input is invalid, or "" when it is valid.

std::string port_error(std::string_view registry, std::string_view port) {
  if (port.empty()) return "registry " + quote(registry) + ": missing port after ':'";
  for (char c : port)
    if (!is_digit(c)) return "registry " + quote(registry) + ": port " + quote(port) + " is not a number";
  return {};
}

/// host[:port], host being a DNS-style name, dotted IPv4 or [IPv6]
/// (distribution/reference's domainAndPort).
std::string registry_error(std::string_view registry) {
  auto bad = [&](const std::string& why) { return "registry " + quote(registry) + ": " + why; };
  if (registry.starts_with('[')) {
    size_t close = registry.find(']');
    if (close == std::string_view::npos) return bad("missing ']' after the IPv6 address");
    std::string_view address = registry.substr(1, close - 1);
    if (address.empty()) return bad("empty IPv6 address");
    // Only hex and ':' as Docker allows: no zone ("%eth0"), no embedded IPv4.
    for (char c : address)
      if (!is_hex(c) && c != ':') return bad("invalid character " + char_name(c) + " in IPv6 address");
    std::string_view rest = registry.substr(close + 1);
    if (rest.empty()) return {};
    if (rest[0] != ':') return bad("unexpected " + quote(rest) + " after ']'");
    return port_error(registry, rest.substr(1));
  }
  std::string_view host = registry.substr(0, registry.find(':'));
  if (host.size() < registry.size()) {
    std::string_view port = registry.substr(host.size() + 1);
    if (port.find(':') != std::string_view::npos) return bad("an IPv6 address must be in brackets, as in [::1]:5000");
    if (std::string e = port_error(registry, port); !e.empty()) return e;
  }
  if (host.empty()) return bad("missing host name");
  for (size_t start = 0;;) {
    size_t dot = host.find('.', start);
    std::string_view label = host.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty()) return bad("empty label in host name (\"..\" or a leading or trailing '.')");
    for (char c : label)
      if (!is_alnum(c) && c != '-') return bad("invalid character " + char_name(c) + " in host name");
    if (label.front() == '-' || label.back() == '-') return bad("a host name label must not start or end with '-'");
    if (dot == std::string_view::npos) return {};
    start = dot + 1;
  }
}

/// One path component: lowercase alphanumeric runs joined by one '.', one or
/// two '_', or any number of '-'.
std::string component_error(std::string_view c) {
  for (char ch : c)
    if (!is_lower_alnum(ch) && ch != '.' && ch != '_' && ch != '-')
      return "invalid character " + char_name(ch) + " in repository name component " + quote(c);
  if (!is_lower_alnum(c.front()))
    return "repository name component " + quote(c) + " must start with a lowercase letter or digit";
  if (!is_lower_alnum(c.back()))
    return "repository name component " + quote(c) + " must end with a lowercase letter or digit";
  for (size_t i = 0; i < c.size();) {
    if (is_lower_alnum(c[i])) {
      ++i;
      continue;
    }
    size_t end = i;
    while (!is_lower_alnum(c[end])) ++end;  // stops: the component ends alphanumeric
    std::string_view sep = c.substr(i, end - i);
    bool ok = sep == "." || sep == "_" || sep == "__" || sep.find_first_not_of('-') == std::string_view::npos;
    if (!ok)
      return "invalid separator " + quote(sep) + " in repository name component " + quote(c) +
             " (one '.', one or two '_', or any number of '-')";
    i = end;
  }
  return {};
}

/// The repository path as written, before Docker Hub's "library/" is added.
std::string path_error(std::string_view path, bool explicit_registry) {
  if (path.empty()) return explicit_registry ? "missing repository name after the registry" : "missing repository name";
  // Docker checks case before the grammar, and says so for any uppercase letter.
  if (has_upper(path)) return "repository name must be lowercase";
  if (path.back() == '/') return "repository name must not end with '/'";
  for (size_t start = 0;;) {
    size_t slash = path.find('/', start);
    std::string_view c = path.substr(start, slash == std::string_view::npos ? std::string_view::npos : slash - start);
    if (c.empty())
      return start == 0 && !explicit_registry ? "repository name must not start with '/'"
                                              : "repository name has an empty component (\"//\")";
    if (std::string e = component_error(c); !e.empty()) return e;
    if (slash == std::string_view::npos) return {};
    start = slash + 1;
  }
}

/// [\w][\w.-]{0,127}
std::string tag_error(std::string_view tag) {
  if (tag.empty()) return "empty tag";
  for (char c : tag)
    if (!is_word(c) && c != '.' && c != '-')
      return "invalid character " + char_name(c) + " in tag " + quote(tag) + " (letters, digits, '_', '.' and '-')";
  if (!is_word(tag.front())) return "tag " + quote(tag) + " must start with a letter, digit or '_'";
  if (tag.size() > kMaxTagLength)
    return "tag is " + std::to_string(tag.size()) + " characters long (at most " + std::to_string(kMaxTagLength) + ")";
  return {};
}

/// distribution/reference's digest-algorithm: components of [A-Za-z][A-Za-z0-9]*
/// joined by one of "+._-". Tells "sha512" (well-formed, unsupported) from garbage.
bool is_digest_algorithm(std::string_view alg) {
  bool at_start = true;
  for (char c : alg) {
    if (at_start) {
      if (is_upper(c) || (c >= 'a' && c <= 'z'))
        at_start = false;
      else
        return false;
    } else if (c == '+' || c == '.' || c == '_' || c == '-') {
      at_start = true;
    } else if (!is_alnum(c)) {
      return false;
    }
  }
  return !at_start;
}

std::string digest_error(std::string_view text) {
  if (text.empty()) return "missing digest after '@'";
  size_t colon = text.find(':');
  std::string_view alg = text.substr(0, colon);
  if (colon != std::string_view::npos && alg != "sha256" && is_digest_algorithm(alg))
    return "unsupported digest algorithm " + quote(alg) + " (only sha256 is supported)";
  try {
    Digest::parse(text);
  } catch (const std::runtime_error&) {
    return "invalid digest " + quote(text) + " (expected sha256: and 64 lowercase hex digits)";
  }
  return {};
}

/// A bare image ID: Docker refuses it as a name so that `docker pull <id>`
/// cannot silently mean a repository.
bool is_image_id(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!is_digit(c) && !(c >= 'a' && c <= 'f')) return false;
  return true;
}

}  // namespace

Reference Reference::parse(std::string_view text) {
  auto fail = [&](const std::string& why) {
    return ReferenceError("invalid image reference " + quote(text) + ": " + why);
  };
  if (text.empty()) throw fail("empty");
  if (is_space(text.front()) || is_space(text.back())) throw fail("leading or trailing whitespace");
  if (is_image_id(text)) throw fail("a 64-character hex string is an image ID, not a repository name");

  // Docker's splitDockerDomain: the first component is a registry only when it
  // cannot be a path component, or is "localhost".
  Reference ref;
  std::string_view rest = text;
  bool explicit_registry = false;
  if (size_t slash = text.find('/'); slash != std::string_view::npos) {
    std::string_view first = text.substr(0, slash);
    if (first == "localhost" || first.find_first_of(".:") != std::string_view::npos || has_upper(first)) {
      explicit_registry = true;
      if (std::string e = registry_error(first); !e.empty()) throw fail(e);
      ref.registry = first == kLegacyDockerHub ? kDockerHub : first;
      rest = text.substr(slash + 1);
    }
  }
  if (!explicit_registry) ref.registry = kDockerHub;

  // A path has no ':' or '@', a tag no '@': the first '@' starts the digest,
  // the first ':' before it the tag.
  size_t at = rest.find('@');
  std::string_view before_digest = rest.substr(0, at);
  size_t colon = before_digest.find(':');
  std::string_view path = before_digest.substr(0, colon);
  if (std::string e = path_error(path, explicit_registry); !e.empty()) throw fail(e);
  if (colon != std::string_view::npos) {
    std::string_view tag = before_digest.substr(colon + 1);
    if (tag.empty()) throw fail("missing tag after ':'");
    if (std::string e = tag_error(tag); !e.empty()) throw fail(e);
    ref.tag = tag;
  }
  if (at != std::string_view::npos) {
    std::string_view digest = rest.substr(at + 1);
    if (std::string e = digest_error(digest); !e.empty()) throw fail(e);
    ref.digest = Digest::parse(digest);
  }

  ref.repository = path;
  if (ref.registry == kDockerHub && path.find('/') == std::string_view::npos)
    ref.repository = std::string(kOfficialPrefix) + ref.repository;
  if (ref.repository.size() > kMaxRepositoryLength)
    throw fail("repository name is " + std::to_string(ref.repository.size()) + " characters long (at most " +
               std::to_string(kMaxRepositoryLength) + ")");
  if (ref.tag.empty() && !ref.digest) ref.tag = kDefaultTag;
  return ref;
}

std::string Reference::name() const { return registry + "/" + repository; }

std::string Reference::str() const {
  std::string out = name();
  if (!tag.empty()) out += ":" + tag;
  if (digest) out += "@" + digest->str();
  return out;
}

std::string Reference::familiar() const {
  if (registry != kDockerHub) return str();
  std::string out = repository;
  // Only a single component under library/ is an official image: "library/a/b"
  // keeps its prefix, or it would read back as docker.io/a/b.
  if (out.starts_with(kOfficialPrefix) && out.find('/', kOfficialPrefix.size()) == std::string::npos)
    out.erase(0, kOfficialPrefix.size());
  // Docker shortens docker.io/a.b/c to "a.b/c", which reads back as registry
  // a.b. Here a first component that would be taken for a registry keeps the
  // full form, so the short form always names the same image.
  if (size_t slash = out.find('/'); slash != std::string::npos) {
    std::string_view first = std::string_view(out).substr(0, slash);
    if (first == "localhost" || first.find('.') != std::string_view::npos) return str();
  }
  if (!tag.empty()) out += ":" + tag;
  if (digest) out += "@" + digest->str();
  return out;
}

std::string Reference::api_host() const { return registry == kDockerHub ? std::string(kDockerHubApi) : registry; }

std::string Reference::manifest_ref() const { return digest ? digest->str() : tag; }

Reference Reference::with_tag(std::string new_tag) const {
  if (std::string e = tag_error(new_tag); !e.empty()) throw ReferenceError("invalid tag for " + name() + ": " + e);
  Reference out = *this;
  out.tag = std::move(new_tag);
  out.digest.reset();
  return out;
}

Reference Reference::with_digest(Digest d) const {
  Reference out = *this;
  out.digest = std::move(d);
  return out;
}

bool is_loopback_host(std::string_view registry) {
  std::string host;
  if (registry.starts_with('[')) {
    size_t close = registry.find(']');
    if (close == std::string_view::npos) return false;
    host = registry.substr(1, close - 1);
    in6_addr a6{};
    return ::inet_pton(AF_INET6, host.c_str(), &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
  }
  host = registry.substr(0, registry.find(':'));
  std::string lower;
  for (char c : host) lower += is_upper(c) ? static_cast<char>(c - 'A' + 'a') : c;
  if (lower == "localhost") return true;
  in_addr a4{};
  return ::inet_pton(AF_INET, host.c_str(), &a4) == 1 && (ntohl(a4.s_addr) >> 24) == 127;
}

}  // namespace imgbuild
