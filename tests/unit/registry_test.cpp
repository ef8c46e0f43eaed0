// Tests for the registry transport's decisions that need no server: where
// credentials may go, and how a registry's error reaches the user.
#include "registry/transport.hpp"

#include <catch2/catch.hpp>

using imgbuild::describe_registry_error;
using imgbuild::HttpResponse;
using imgbuild::token_realm_refusal;

TEST_CASE("token realms: https, or plain HTTP only from a plain-HTTP registry to an allowed host", "[registry]") {
  std::set<std::string> none;
  CHECK(!token_realm_refusal("https://registry-1.docker.io", "https://auth.docker.io/token", none));
  CHECK(!token_realm_refusal("https://ghcr.io", "https://ghcr.io/token", none));
  CHECK(token_realm_refusal("https://registry.example.com", "http://auth.example.com/token", none) ==
        "refused the plain-HTTP token realm http://auth.example.com/token of a registry reached over https");
  // A loopback registry over https still gets no plain-HTTP realm: no downgrade.
  CHECK(token_realm_refusal("https://127.0.0.1:5000", "http://127.0.0.1:5001/token", none).has_value());
  CHECK(!token_realm_refusal("http://127.0.0.1:5000", "http://127.0.0.1:5001/token", none));
  CHECK(!token_realm_refusal("http://localhost:5000", "http://localhost:5001/token?x=1", none));
  CHECK(token_realm_refusal("http://reg.lan:5000", "http://auth.lan/token", {"reg.lan:5000"}) ==
        "refused to send credentials to the plain-HTTP token realm http://auth.lan/token");
  CHECK(!token_realm_refusal("http://reg.lan:5000", "http://auth.lan/token", {"reg.lan:5000", "auth.lan"}));
  CHECK(token_realm_refusal("https://r.example.com", "ftp://r.example.com/token", none) ==
        "the token realm ftp://r.example.com/token is not an http(s) URL");
  CHECK(token_realm_refusal("https://r.example.com", "/token", none) ==
        "the token realm '/token' is not an absolute URL");
}

TEST_CASE("token realms: a public registry cannot send credentials to a private address", "[registry]") {
  std::set<std::string> none;
  for (const char* realm : {"https://10.0.0.1/token", "https://192.168.1.10/token", "https://172.16.0.1/token",
                            "https://169.254.169.254/latest", "https://127.0.0.1/token", "https://localhost/token",
                            "https://[::1]/token", "https://[fd00::1]:8443/token"})
    CHECK(token_realm_refusal("https://registry.example.com", realm, none) ==
          std::string("refused the token realm ") + realm + ": a private address named by the public registry " +
              "registry.example.com");
  // Internal however it is spelled: IPv4 mapped into IPv6, shared and site-local ranges.
  for (const char* realm : {"https://[::ffff:10.0.0.1]/token", "https://[::ffff:127.0.0.1]:8443/token",
                            "https://100.64.1.1/token", "https://[fec0::1]/token", "https://[fe90::1]/token"})
    CHECK(token_realm_refusal("https://registry.example.com", realm, none).has_value());
  CHECK(!token_realm_refusal("https://172.32.0.1", "https://172.32.0.1/token", none));   // outside 172.16/12
  CHECK(!token_realm_refusal("https://10.1.2.3:5000", "https://10.1.2.4/token", none));  // private names private
  CHECK(!token_realm_refusal("https://registry.example.com", "https://10.0.0.1/token", {"10.0.0.1"}));
  // The query (where signed URLs keep secrets) is never repeated.
  CHECK(token_realm_refusal("https://r.example.com", "http://r.example.com/token?sig=secret", none)->find("secret") ==
        std::string::npos);
}

TEST_CASE("registry errors are reported with their code and message only", "[registry]") {
  HttpResponse r;
  r.status = 404;
  r.body = R"({"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]})";
  CHECK(describe_registry_error(r) == "MANIFEST_UNKNOWN: manifest unknown (HTTP 404)");
  r.status = 401;
  r.body = R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"},{"code":"DENIED"}]})";
  CHECK(describe_registry_error(r) == "UNAUTHORIZED: authentication required; DENIED (HTTP 401)");
  r.status = 502;
  r.body = "<html>Bad Gateway</html>";
  CHECK(describe_registry_error(r) == "HTTP 502");
  r.body = R"({"errors":[{"code":7,"message":["x"]}, 3]})";
  CHECK(describe_registry_error(r) == "HTTP 502");
}
