// Tests for the URL handling the registry client's security rests on: what is
// shown of a URL, which origin it belongs to, where a Location leads.
#include "registry/http.hpp"

#include "base/text.hpp"

#include <catch2/catch.hpp>

using imgbuild::is_internal_address;
using imgbuild::redact_url;
using imgbuild::resolve_url;
using imgbuild::url_encode;
using imgbuild::url_origin;

TEST_CASE("redact_url drops query strings and userinfo: the secrets of signed URLs", "[http]") {
  CHECK(redact_url("https://s3.example.com/blob/abc?X-Amz-Signature=secret&X-Amz-Credential=key") ==
        "https://s3.example.com/blob/abc");
  CHECK(redact_url("https://user:pass@registry.example.com/v2/") == "https://registry.example.com/v2/");
  CHECK(redact_url("https://user:pass@registry.example.com") == "https://registry.example.com");
  CHECK(redact_url("http://127.0.0.1:5000/v2/a/blobs/uploads/uuid?_state=token#frag") ==
        "http://127.0.0.1:5000/v2/a/blobs/uploads/uuid");
  CHECK(redact_url("/relative?x=1") == "/relative");
}

TEST_CASE("url_origin is scheme and authority, lowercased, without userinfo", "[http]") {
  CHECK(url_origin("HTTPS://Registry.Example.com:443/v2/x?y") == "https://registry.example.com:443");
  CHECK(url_origin("http://u:p@127.0.0.1:5000") == "http://127.0.0.1:5000");
  CHECK(url_origin("https://auth.docker.io/token?scope=x") == "https://auth.docker.io");
  CHECK(url_origin("/v2/") == "");
  // A different port or scheme is a different origin: credentials do not follow.
  CHECK(url_origin("http://localhost:5000/") != url_origin("http://localhost:5001/"));
  CHECK(url_origin("http://h/") != url_origin("https://h/"));
}

TEST_CASE("resolve_url follows every form of Location", "[http]") {
  std::string base = "http://127.0.0.1:5000/v2/a/blobs/uploads/?mount=x";
  CHECK(resolve_url(base, "https://cdn.example.com/b?sig=1") == "https://cdn.example.com/b?sig=1");
  CHECK(resolve_url(base, "//cdn.example.com/b") == "http://cdn.example.com/b");
  CHECK(resolve_url(base, "/v2/a/blobs/uploads/uuid?_state=s") ==
        "http://127.0.0.1:5000/v2/a/blobs/uploads/uuid?_state=s");
  CHECK(resolve_url(base, "uuid?_state=s") == "http://127.0.0.1:5000/v2/a/blobs/uploads/uuid?_state=s");
  CHECK(resolve_url("http://h/v2/a/blobs/uploads/uuid", "next") == "http://h/v2/a/blobs/uploads/next");
  // A path that merely contains "://" is still relative.
  CHECK(resolve_url("http://h/a/b", "/x?u=http://evil") == "http://h/x?u=http://evil");
}

TEST_CASE("url_encode escapes everything outside the unreserved set", "[http]") {
  CHECK(url_encode("repository:a/b:pull,push") == "repository%3Aa%2Fb%3Apull%2Cpush");
  CHECK(url_encode("sha256:abc") == "sha256%3Aabc");
  CHECK(url_encode("A-z_0.9~") == "A-z_0.9~");
  CHECK(url_encode("a b&c=d") == "a%20b%26c%3Dd");
}

TEST_CASE("internal addresses: where a public registry may not send this client", "[http]") {
  for (const char* a : {"127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                        "169.254.169.254", "0.0.0.0", "100.64.0.1", "::1", "::", "fe80::1", "febf::1", "fc00::1",
                        "fd12:3456::1", "fec0::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254"}) {
    INFO(a);
    CHECK(is_internal_address(a));
  }
  for (const char* a :
       {"8.8.8.8", "172.32.0.1", "172.15.255.255", "192.169.0.1", "100.128.0.1", "169.255.0.1", "2001:db8::1",
        "2606:4700::1111", "fe00::1", "::ffff:8.8.8.8", "localhost", "example.com", ""}) {
    INFO(a);
    CHECK_FALSE(is_internal_address(a));
  }
}
