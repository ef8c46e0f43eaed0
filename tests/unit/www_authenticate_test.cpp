// Tests for WWW-Authenticate parsing: real registries' headers, several
// challenges in one header, token68, and garbage that must not throw.
#include "registry/www_authenticate.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

using imgbuild::AuthChallenge;
using imgbuild::parse_www_authenticate;

namespace {

using Params = std::map<std::string, std::string>;

AuthChallenge challenge(std::string scheme, Params params, std::string token68 = {}) {
  return AuthChallenge{std::move(scheme), std::move(params), std::move(token68)};
}

}  // namespace

TEST_CASE("real registries' challenges", "[www-authenticate]") {
  SECTION("Docker Hub") {
    auto got = parse_www_authenticate(
        R"(Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull")");
    REQUIRE(got == std::vector{challenge("bearer", {{"realm", "https://auth.docker.io/token"},
                                                    {"service", "registry.docker.io"},
                                                    {"scope", "repository:library/alpine:pull"}})});
  }
  SECTION("GHCR") {
    auto got =
        parse_www_authenticate(R"(Bearer realm="https://ghcr.io/token",service="ghcr.io",scope="repository:o/r:pull")");
    REQUIRE(got == std::vector{challenge("bearer", {{"realm", "https://ghcr.io/token"},
                                                    {"service", "ghcr.io"},
                                                    {"scope", "repository:o/r:pull"}})});
  }
  SECTION("ECR asks for basic auth") {
    auto got = parse_www_authenticate(
        R"(Basic realm="https://123456789012.dkr.ecr.us-east-1.amazonaws.com/",service="ecr.amazonaws.com")");
    REQUIRE(got == std::vector{challenge("basic", {{"realm", "https://123456789012.dkr.ecr.us-east-1.amazonaws.com/"},
                                                   {"service", "ecr.amazonaws.com"}})});
  }
  SECTION("GitLab") {
    auto got = parse_www_authenticate(
        R"(Bearer realm="https://gitlab.com/jwt/auth",service="container_registry",scope="repository:group/sub/project:pull")");
    REQUIRE(got == std::vector{challenge("bearer", {{"realm", "https://gitlab.com/jwt/auth"},
                                                    {"service", "container_registry"},
                                                    {"scope", "repository:group/sub/project:pull"}})});
  }
  SECTION("Harbor, push: the scope's comma is inside the quotes") {
    auto got = parse_www_authenticate(
        R"(Bearer realm="https://harbor.example.com/service/token",service="harbor-registry",scope="repository:a/b:pull,push")");
    REQUIRE(got == std::vector{challenge("bearer", {{"realm", "https://harbor.example.com/service/token"},
                                                    {"service", "harbor-registry"},
                                                    {"scope", "repository:a/b:pull,push"}})});
  }
  SECTION("distribution's insufficient_scope, with spaces after the commas") {
    auto got = parse_www_authenticate(
        R"(Bearer realm="https://auth.example.com/token", service="reg", scope="repository:a/b:pull,push repository:c/d:pull", error="insufficient_scope")");
    REQUIRE(got == std::vector{challenge("bearer", {{"realm", "https://auth.example.com/token"},
                                                    {"service", "reg"},
                                                    {"scope", "repository:a/b:pull,push repository:c/d:pull"},
                                                    {"error", "insufficient_scope"}})});
  }
  SECTION("the docker registry with htpasswd") {
    auto got = parse_www_authenticate(R"(Basic realm="Registry Realm")");
    REQUIRE(got == std::vector{challenge("basic", {{"realm", "Registry Realm"}})});
  }
}

TEST_CASE("schemes and parameter names are case-insensitive", "[www-authenticate]") {
  auto got = parse_www_authenticate(R"(BEARER Realm="https://a/token",SERVICE=Reg)");
  REQUIRE(got == std::vector{challenge("bearer", {{"realm", "https://a/token"}, {"service", "Reg"}})});
}

TEST_CASE("several challenges in one header", "[www-authenticate]") {
  SECTION("basic then bearer") {
    auto got = parse_www_authenticate(R"(Basic realm="r1", Bearer realm="https://t",service="s")");
    REQUIRE(got == std::vector{challenge("basic", {{"realm", "r1"}}),
                               challenge("bearer", {{"realm", "https://t"}, {"service", "s"}})});
  }
  SECTION("schemes without parameters") {
    auto got = parse_www_authenticate("Negotiate, NTLM, Basic realm=x");
    REQUIRE(got ==
            std::vector{challenge("negotiate", {}), challenge("ntlm", {}), challenge("basic", {{"realm", "x"}})});
  }
  SECTION("a scheme alone at the end") {
    auto got = parse_www_authenticate(R"(Basic realm="x", Negotiate)");
    REQUIRE(got == std::vector{challenge("basic", {{"realm", "x"}}), challenge("negotiate", {})});
  }
}

TEST_CASE("token68 challenges", "[www-authenticate]") {
  CHECK(parse_www_authenticate(
            "Negotiate "
            "YIIGhgYJKoZIhvcSAQICAQBuggZ1MIIGcaADAgEFoQMCAQ6iBwMFACAAAACjggS+"
            "YYIEujCCBLagAwIBBaENGwtFWEFNUExFLkNPTaIgMB6gAwIBAqEXMBUbBEhUVFAbDXdlYi5leGFtcGxlLmNvbQ==") ==
        std::vector{
            challenge("negotiate", {},
                      "YIIGhgYJKoZIhvcSAQICAQBuggZ1MIIGcaADAgEFoQMCAQ6iBwMFACAAAACjggS+"
                      "YYIEujCCBLagAwIBBaENGwtFWEFNUExFLkNPTaIgMB6gAwIBAqEXMBUbBEhUVFAbDXdlYi5leGFtcGxlLmNvbQ==")});
  // "abc=" cannot be a parameter (a value is never empty), so it is a token68.
  CHECK(parse_www_authenticate("Custom abc=, Basic realm=r") ==
        std::vector{challenge("custom", {}, "abc="), challenge("basic", {{"realm", "r"}})});
  CHECK(parse_www_authenticate("Custom a/b+c~d.e-f_g") == std::vector{challenge("custom", {}, "a/b+c~d.e-f_g")});
}

TEST_CASE("quoted strings", "[www-authenticate]") {
  CHECK(parse_www_authenticate(R"(Basic realm="say \"hi\" \\ bye")") ==
        std::vector{challenge("basic", {{"realm", R"(say "hi" \ bye)"}})});
  CHECK(parse_www_authenticate(R"(Basic realm="")") == std::vector{challenge("basic", {{"realm", ""}})});
  CHECK(parse_www_authenticate(R"(Basic realm="a,b=c, Bearer d")") ==
        std::vector{challenge("basic", {{"realm", "a,b=c, Bearer d"}})});
}

TEST_CASE("extra spaces and empty list elements are tolerated", "[www-authenticate]") {
  CHECK(parse_www_authenticate(R"( ,, Bearer   realm = "r" ,, service= s ,  ,)") ==
        std::vector{challenge("bearer", {{"realm", "r"}, {"service", "s"}})});
  CHECK(parse_www_authenticate("Bearer , realm=r") == std::vector{challenge("bearer", {{"realm", "r"}})});
  CHECK(parse_www_authenticate("\tBasic\trealm=r\t") == std::vector{challenge("basic", {{"realm", "r"}})});
  CHECK(parse_www_authenticate("").empty());
  CHECK(parse_www_authenticate(" , ,").empty());
}

TEST_CASE("malformed challenges are dropped, the rest is kept", "[www-authenticate]") {
  const auto basic_r = challenge("basic", {{"realm", "r"}});
  SECTION("an unquoted value that is not a token") {
    CHECK(parse_www_authenticate("Bearer realm=https://a/token,service=s, Basic realm=r") == std::vector{basic_r});
  }
  SECTION("a parameter without a value") {
    CHECK(parse_www_authenticate(R"(Bearer realm="a",service=, Basic realm=r)") == std::vector{basic_r});
    CHECK(parse_www_authenticate(R"(Bearer realm="a",service= ,scope="s", Basic realm=r)") == std::vector{basic_r});
  }
  SECTION("a repeated parameter") {
    CHECK(parse_www_authenticate(R"(Bearer realm="a",realm="b", Basic realm=r)") == std::vector{basic_r});
  }
  SECTION("an unterminated quoted string swallows the rest") {
    CHECK(parse_www_authenticate(R"(Basic realm=r, Bearer realm="https://a, Basic realm=x)") == std::vector{basic_r});
  }
  SECTION("a control character in a quoted string") {
    CHECK(parse_www_authenticate("Bearer realm=\"https://a\nHost: evil\", Basic realm=r") == std::vector{basic_r});
  }
  SECTION("parameters without a scheme") {
    CHECK(parse_www_authenticate(R"(realm="a",service="b", Basic realm=r)") == std::vector{basic_r});
  }
  SECTION("garbage between challenges") {
    CHECK(parse_www_authenticate(R"(Basic realm=r, "junk" , =, @@@)") == std::vector{basic_r});
    CHECK(parse_www_authenticate(R"(Bearer realm="x" trailing, Basic realm=r)") == std::vector{basic_r});
  }
  SECTION("a trailing backslash inside a quote") {
    CHECK(parse_www_authenticate("Basic realm=r, Bearer realm=\"abc\\").size() == 1);
  }
}

TEST_CASE("pathological headers take linear time", "[www-authenticate]") {
  // Each would make a backtracking parser quadratic or worse.
  std::string commas(1 << 20, ',');
  CHECK(parse_www_authenticate(commas).empty());
  std::string quotes = "Basic realm=\"" + std::string(1 << 20, '\\');
  CHECK(parse_www_authenticate(quotes).empty());
  std::string many;
  for (int i = 0; i < 20000; ++i) many += "a" + std::to_string(i) + "=b,";
  CHECK(parse_www_authenticate("Bearer " + many).at(0).params.size() == 20000);
  std::string schemes;
  for (int i = 0; i < 20000; ++i) schemes += "S" + std::to_string(i) + ", ";
  CHECK(parse_www_authenticate(schemes).size() == 20000);
}
