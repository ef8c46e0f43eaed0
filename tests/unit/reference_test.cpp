// Tests for image references: Docker's normalisation, exact rejections, the
// derived forms and loopback detection.
#include "oci/reference.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "test_support.hpp"

using imgbuild::Digest;
using imgbuild::is_loopback_host;
using imgbuild::Reference;
using imgbuild::ReferenceError;
using namespace imgbuild::test;

namespace {

const std::string kHex = "86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
const std::string kDigest = "sha256:" + kHex;

// The message Reference::parse throws for `text`, or "" when it accepts it.
std::string parse_error(const std::string& text) {
  return error_of([&] { Reference::parse(text); });
}

std::string rejected(const std::string& text, const std::string& why) {
  return "invalid image reference \"" + text + "\": " + why;
}

}  // namespace

TEST_CASE("references normalise as in Docker", "[reference]") {
  struct Case {
    std::string input, full, registry, repository, tag;
  };
  const std::vector<Case> cases = {
      // A single component is an official image on Docker Hub.
      {"alpine", "docker.io/library/alpine:latest", "docker.io", "library/alpine", "latest"},
      {"alpine:3.20", "docker.io/library/alpine:3.20", "docker.io", "library/alpine", "3.20"},
      {"library/alpine", "docker.io/library/alpine:latest", "docker.io", "library/alpine", "latest"},
      {"docker.io/alpine", "docker.io/library/alpine:latest", "docker.io", "library/alpine", "latest"},
      {"docker.io/library/alpine:3.20", "docker.io/library/alpine:3.20", "docker.io", "library/alpine", "3.20"},
      // The legacy index name is Docker Hub.
      {"index.docker.io/library/debian", "docker.io/library/debian:latest", "docker.io", "library/debian", "latest"},
      {"index.docker.io/debian", "docker.io/library/debian:latest", "docker.io", "library/debian", "latest"},
      // registry-1.docker.io is only an API host: Docker keeps it as written.
      {"registry-1.docker.io/library/x", "registry-1.docker.io/library/x:latest", "registry-1.docker.io", "library/x",
       "latest"},
      // Two components on Docker Hub: a user's repository, no library/.
      {"dmcgowan/myapp", "docker.io/dmcgowan/myapp:latest", "docker.io", "dmcgowan/myapp", "latest"},
      {"library/foo/bar", "docker.io/library/foo/bar:latest", "docker.io", "library/foo/bar", "latest"},
      {"docker.io/store/foo/bar:1", "docker.io/store/foo/bar:1", "docker.io", "store/foo/bar", "1"},
      // A first component without '.', ':' or uppercase, and not localhost, is a path.
      {"test_com/foo", "docker.io/test_com/foo:latest", "docker.io", "test_com/foo", "latest"},
      {"localhost/foo", "localhost/foo:latest", "localhost", "foo", "latest"},
      {"localhost:5000/a/b:tag", "localhost:5000/a/b:tag", "localhost:5000", "a/b", "tag"},
      {"test-com:8080/foo", "test-com:8080/foo:latest", "test-com:8080", "foo", "latest"},
      {"127.0.0.1:5000/debian", "127.0.0.1:5000/debian:latest", "127.0.0.1:5000", "debian", "latest"},
      {"[::1]:5000/a/b", "[::1]:5000/a/b:latest", "[::1]:5000", "a/b", "latest"},
      {"[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000/library/debian:latest",
       "[fc00:1:2:3:4:5:6:7]:5000", "library/debian", "latest"},
      {"xn--n3h.com:18080/foo", "xn--n3h.com:18080/foo:latest", "xn--n3h.com:18080", "foo", "latest"},
      // Elsewhere a single component stays as it is: no library/.
      {"ghcr.io/o/r:v1", "ghcr.io/o/r:v1", "ghcr.io", "o/r", "v1"},
      {"example.com/privatebase", "example.com/privatebase:latest", "example.com", "privatebase", "latest"},
      // An uppercase first component is a registry and keeps its case.
      {"Foo/bar", "Foo/bar:latest", "Foo", "bar", "latest"},
      {"DOCKER/docker", "DOCKER/docker:latest", "DOCKER", "docker", "latest"},
      // Without a '/', "host:port" is a name and a tag, and a dotted name a path.
      {"localhost:5000", "docker.io/library/localhost:5000", "docker.io", "library/localhost", "5000"},
      {"192.168.0.1:80", "docker.io/library/192.168.0.1:80", "docker.io", "library/192.168.0.1", "80"},
      // Separators: one '.', one or two '_', any number of '-'.
      {"docker---rules/dock__er.x_y", "docker.io/docker---rules/dock__er.x_y:latest", "docker.io",
       "docker---rules/dock__er.x_y", "latest"},
      {"ubuntu-12.04-base", "docker.io/library/ubuntu-12.04-base:latest", "docker.io", "library/ubuntu-12.04-base",
       "latest"},
      // Tags: \w first, then \w, '.' and '-', up to 128; case is kept.
      {"a:_V1.2-rc", "docker.io/library/a:_V1.2-rc", "docker.io", "library/a", "_V1.2-rc"},
      {"a:" + std::string(128, 'x'), "docker.io/library/a:" + std::string(128, 'x'), "docker.io", "library/a",
       std::string(128, 'x')},
      // One hex character short of an image ID is a name.
      {kHex.substr(1), "docker.io/library/" + kHex.substr(1) + ":latest", "docker.io", "library/" + kHex.substr(1),
       "latest"},
      {"docker.io/" + kHex, "docker.io/library/" + kHex + ":latest", "docker.io", "library/" + kHex, "latest"},
      // Path length is counted after library/ is added: 247 + 8 = 255.
      {std::string(247, 'a'), "docker.io/library/" + std::string(247, 'a') + ":latest", "docker.io",
       "library/" + std::string(247, 'a'), "latest"},
      {"example.com/" + std::string(255, 'a'), "example.com/" + std::string(255, 'a') + ":latest", "example.com",
       std::string(255, 'a'), "latest"},
  };
  for (const Case& c : cases) {
    INFO("input: " << c.input);
    Reference r = Reference::parse(c.input);
    CHECK(r.str() == c.full);
    CHECK(r.registry == c.registry);
    CHECK(r.repository == c.repository);
    CHECK(r.tag == c.tag);
    CHECK_FALSE(r.digest);
    CHECK(Reference::parse(r.str()) == r);
  }
}

TEST_CASE("digests, alone or with a tag", "[reference]") {
  SECTION("digest only: no default tag") {
    Reference r = Reference::parse("ghcr.io/o/r@" + kDigest);
    REQUIRE(r.registry == "ghcr.io");
    REQUIRE(r.repository == "o/r");
    REQUIRE(r.tag.empty());
    REQUIRE(r.digest == Digest::parse(kDigest));
    REQUIRE(r.str() == "ghcr.io/o/r@" + kDigest);
    REQUIRE(r.manifest_ref() == kDigest);
  }
  SECTION("tag and digest are both kept; the digest is what is fetched") {
    Reference r = Reference::parse("busybox:latest@" + kDigest);
    REQUIRE(r.str() == "docker.io/library/busybox:latest@" + kDigest);
    REQUIRE(r.familiar() == "busybox:latest@" + kDigest);
    REQUIRE(r.tag == "latest");
    REQUIRE(r.manifest_ref() == kDigest);
    REQUIRE(Reference::parse(r.str()) == r);
  }
  SECTION("a port and a digest") {
    Reference r = Reference::parse("localhost:5000/x/y:t@" + kDigest);
    REQUIRE(r.registry == "localhost:5000");
    REQUIRE(r.str() == "localhost:5000/x/y:t@" + kDigest);
  }
}

TEST_CASE("invalid references are rejected with a specific reason", "[reference]") {
  struct Case {
    std::string input, why;
  };
  const std::vector<Case> cases = {
      {"", "empty"},
      {" alpine", "leading or trailing whitespace"},
      {kHex, "a 64-character hex string is an image ID, not a repository name"},
      {"Alpine", "repository name must be lowercase"},
      {"docker/Docker", "repository name must be lowercase"},
      {"ghcr.io/Owner/repo", "repository name must be lowercase"},
      {"a:b:c", "invalid character ':' in tag \"b:c\" (letters, digits, '_', '.' and '-')"},
      {"a//b", "repository name has an empty component (\"//\")"},
      {"docker///docker", "repository name has an empty component (\"//\")"},
      {"ghcr.io//a", "repository name has an empty component (\"//\")"},
      {"/a", "repository name must not start with '/'"},
      {"docker/", "repository name must not end with '/'"},
      {"ghcr.io/", "missing repository name after the registry"},
      {"ghcr.io/:v1", "missing repository name after the registry"},
      {":v1", "missing repository name"},
      {"@" + kDigest, "missing repository name"},
      {"-a", "repository name component \"-a\" must start with a lowercase letter or digit"},
      {"docker-/docker", "repository name component \"docker-\" must end with a lowercase letter or digit"},
      {"____/____", "repository name component \"____\" must start with a lowercase letter or digit"},
      {"docker/dock..er",
       "invalid separator \"..\" in repository name component \"dock..er\" (one '.', one or two '_', or any "
       "number of '-')"},
      {"dock_.er",
       "invalid separator \"_.\" in repository name component \"dock_.er\" (one '.', one or two '_', or any "
       "number of '-')"},
      // With a '.' the first component is a registry, as in Docker.
      {"dock..er/docker", "registry \"dock..er\": empty label in host name (\"..\" or a leading or trailing '.')"},
      {"a___b",
       "invalid separator \"___\" in repository name component \"a___b\" (one '.', one or two '_', or any number "
       "of '-')"},
      {"a!b", "invalid character '!' in repository name component \"a!b\""},
      {"a:", "missing tag after ':'"},
      {"a:-x", "tag \"-x\" must start with a letter, digit or '_'"},
      {"a:" + std::string(129, 'x'), "tag is 129 characters long (at most 128)"},
      {"a@", "missing digest after '@'"},
      {"a@sha256:short", "invalid digest \"sha256:short\" (expected sha256: and 64 lowercase hex digits)"},
      {"a@sha256:" + std::string(64, 'A'),
       "invalid digest \"sha256:" + std::string(64, 'A') + "\" (expected sha256: and 64 lowercase hex digits)"},
      {"a@" + kHex, "invalid digest \"" + kHex + "\" (expected sha256: and 64 lowercase hex digits)"},
      {"a@sha512:" + kHex + kHex, "unsupported digest algorithm \"sha512\" (only sha256 is supported)"},
      {"a_b.c/x", "registry \"a_b.c\": invalid character '_' in host name"},
      {"-docker.io/docker/docker", "registry \"-docker.io\": a host name label must not start or end with '-'"},
      {"a..b/x", "registry \"a..b\": empty label in host name (\"..\" or a leading or trailing '.')"},
      {"https://github.com/docker/docker", "registry \"https:\": missing port after ':'"},
      {"host:port/x", "registry \"host:port\": port \"port\" is not a number"},
      {"fc00::1:5000/debian", "registry \"fc00::1:5000\": an IPv6 address must be in brackets, as in [::1]:5000"},
      {"[fe80::1%eth0]:5000/debian", "registry \"[fe80::1%eth0]:5000\": invalid character '%' in IPv6 address"},
      {"[2001:db8::192.0.2.33]:5000/debian",
       "registry \"[2001:db8::192.0.2.33]:5000\": invalid character '.' in IPv6 address"},
      {"[::1:5000/x", "registry \"[::1:5000\": missing ']' after the IPv6 address"},
      {"[]:5000/x", "registry \"[]:5000\": empty IPv6 address"},
      // Without a '/' the brackets are part of a path and ":1]:5000" a tag.
      {"[fc00::1]:5000", "invalid character '[' in repository name component \"[fc00\""},
      {std::string(248, 'a'), "repository name is 256 characters long (at most 255)"},
      {"example.com/" + std::string(256, 'a'), "repository name is 256 characters long (at most 255)"},
  };
  for (const Case& c : cases) {
    INFO("input: " << c.input);
    CHECK(parse_error(c.input) == rejected(c.input, c.why));
  }
  // Bytes that would not print are escaped, in the input and in the reason.
  CHECK(parse_error("alpine\n") == "invalid image reference \"alpine\\x0a\": leading or trailing whitespace");
  CHECK(parse_error("caf\xc3\xa9") ==
        "invalid image reference \"caf\\xc3\\xa9\": invalid character '\\xc3' in repository name component "
        "\"caf\\xc3\\xa9\"");
  CHECK(parse_error("a\"b") ==
        "invalid image reference \"a\\\"b\": invalid character '\\\"' in repository name component \"a\\\"b\"");
}

TEST_CASE("rejections are ReferenceErrors and quote long input shortened", "[reference]") {
  REQUIRE_THROWS_AS(Reference::parse("UPPER"), ReferenceError);
  std::string huge(5000, '!');
  std::string message = parse_error(huge);
  REQUIRE(message.starts_with("invalid image reference \"" + std::string(300, '!') + "\"...: "));
  // The input and the component it names are each cut at 300 bytes.
  REQUIRE(message.size() < 700);
}

TEST_CASE("familiar names are Docker's short form", "[reference]") {
  CHECK(Reference::parse("docker.io/library/alpine:3.20").familiar() == "alpine:3.20");
  CHECK(Reference::parse("alpine").familiar() == "alpine:latest");
  CHECK(Reference::parse("docker.io/o/r:t").familiar() == "o/r:t");
  // library/ with more below it is not an official image: the prefix stays.
  CHECK(Reference::parse("library/foo/bar").familiar() == "library/foo/bar:latest");
  CHECK(Reference::parse("ghcr.io/o/r:t").familiar() == "ghcr.io/o/r:t");
  CHECK(Reference::parse("localhost:5000/a").familiar() == "localhost:5000/a:latest");
  CHECK(Reference::parse("alpine@" + kDigest).familiar() == "alpine@" + kDigest);
  // Shortened, these would name registries "a.b" and "localhost" (the fuzzer's find).
  CHECK(Reference::parse("docker.io/a.b/c").familiar() == "docker.io/a.b/c:latest");
  CHECK(Reference::parse("docker.io/localhost/c").familiar() == "docker.io/localhost/c:latest");
  CHECK(Reference::parse("docker.io/library/a.b").familiar() == "a.b:latest");
  for (const char* text : {"alpine", "o/r:t", "library/foo/bar", "ghcr.io/o/r:t", "Foo/bar", "docker.io/a.b/c",
                           "docker.io/localhost/c", "library/a.b"}) {
    Reference r = Reference::parse(text);
    CHECK(Reference::parse(r.familiar()) == r);
  }
}

TEST_CASE("name, api_host and manifest_ref", "[reference]") {
  Reference hub = Reference::parse("alpine:3.20");
  CHECK(hub.name() == "docker.io/library/alpine");
  CHECK(hub.api_host() == "registry-1.docker.io");
  CHECK(hub.manifest_ref() == "3.20");
  Reference local = Reference::parse("localhost:5000/a/b");
  CHECK(local.name() == "localhost:5000/a/b");
  CHECK(local.api_host() == "localhost:5000");
  CHECK(local.manifest_ref() == "latest");
}

TEST_CASE("with_tag and with_digest", "[reference]") {
  Reference pinned = Reference::parse("ghcr.io/o/r:v1@" + kDigest);
  Reference retagged = pinned.with_tag("v2");
  CHECK(retagged.str() == "ghcr.io/o/r:v2");
  CHECK(retagged.manifest_ref() == "v2");

  Reference plain = Reference::parse("ghcr.io/o/r:v1");
  Reference with_digest = plain.with_digest(Digest::parse(kDigest));
  CHECK(with_digest.str() == "ghcr.io/o/r:v1@" + kDigest);
  CHECK(with_digest.manifest_ref() == kDigest);
  CHECK(plain.str() == "ghcr.io/o/r:v1");

  CHECK(error_of([&] { plain.with_tag("-bad"); }) ==
        "invalid tag for ghcr.io/o/r: tag \"-bad\" must start with a letter, digit or '_'");
  CHECK(error_of([&] { plain.with_tag(""); }) == "invalid tag for ghcr.io/o/r: empty tag");
  CHECK(error_of([&] { plain.with_tag("a/b"); }) ==
        "invalid tag for ghcr.io/o/r: invalid character '/' in tag \"a/b\" (letters, digits, '_', '.' and '-')");
}

TEST_CASE("is_loopback_host", "[reference]") {
  for (const char* host : {"localhost", "localhost:5000", "LocalHost:5000", "127.0.0.1", "127.0.0.1:5000",
                           "127.3.4.5:80", "[::1]:5000", "[::1]", "[0:0:0:0:0:0:0:1]:443"})
    CHECK(is_loopback_host(host));
  for (const char* host : {"docker.io", "ghcr.io", "128.0.0.1:5000", "10.0.0.1", "[::2]:5000", "[fc00::1]",
                           "localhost.example.com", "127.0.0.1.nip.io:5000", "[::1", "", "localhostx:1"})
    CHECK_FALSE(is_loopback_host(host));
}
