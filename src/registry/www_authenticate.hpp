#pragma once
// WWW-Authenticate challenges (RFC 7235): what a registry's 401 says about how
// to authenticate ("Bearer realm=...,service=...,scope=..."). The header comes
// from the network, so the parser is total: garbage gives fewer challenges, never
// an exception, in time linear in the header's length.
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace imgbuild {

/// One challenge of a WWW-Authenticate header.
struct AuthChallenge {
  /// Lowercased ("bearer", "basic"): schemes are case-insensitive.
  std::string scheme;
  /// auth-params with lowercased names (realm, service, scope, error, ...) and
  /// values unquoted and unescaped.
  std::map<std::string, std::string> params;
  /// The other form a challenge can take, "Negotiate <token68>"; then params is empty.
  std::string token68;

  friend bool operator==(const AuthChallenge&, const AuthChallenge&) = default;
};

/// Parses a WWW-Authenticate header value: challenges separated by commas, each
/// a scheme followed by a token68 or by comma-separated auth-params
/// (name=token or name="quoted \"string\""). Extra spaces and empty list
/// elements are skipped. A challenge with a malformed or repeated parameter is
/// dropped whole, since half a challenge could send credentials to the wrong realm.
std::vector<AuthChallenge> parse_www_authenticate(std::string_view header);

}  // namespace imgbuild
