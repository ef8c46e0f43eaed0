// Tests for build provenance: the exact statement of a small build, and that
// no secret reaches it (a secret --set parameter's value, a password in the
// checkout's remote URL).
#include "build/provenance.hpp"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "test_support.hpp"

using namespace imgbuild;
using namespace imgbuild::test;
using json = nlohmann::json;

namespace {

ProvenanceFacts small_facts() {
  return {.name = "svc",
          .manifest = Digest::parse("sha256:" + std::string(64, 'a')),
          .platform = "linux/amd64",
          .images = {{"docker.io/library/alpine:3.20", "sha256:" + std::string(64, 'b')},
                     {"registry.example/team/builder:go-1234", "sha256:" + std::string(64, 'e')}},
          .build = {
              .recipe = "deploy/recipe.lua",
              .recipe_digest = Digest::parse("sha256:" + std::string(64, 'c')),
              .targets = {"svc"},
              .parameters = {{"version", "1.2"}, {"registry_token", "s3cr3t-value"}},
              .checkout = Checkout{1700000000, std::string(40, 'd'), "https://ci:s3cr3t-pass@git.example/team/svc.git"},
              .cache_from = {"registry.example/team/cache:main"},
              .version = "0.9.0"}};
}

}  // namespace

TEST_CASE("provenance: an in-toto statement with an SLSA v1 predicate, exact bytes", "[provenance]") {
  // One line in the statement; a line here per part, <a> for 64 a (<d>: 40 d).
  std::string expected = R"J({"_type":"https://in-toto.io/Statement/v1","predicate":{"buildDefinition":{
"buildType":"https://imgbuild.dev/provenance/recipe/v1","externalParameters":{
"parameters":{"registry_token":"<redacted>","version":"1.2"},"platform":"linux/amd64",
"recipe":{"digest":{"sha256":"<c>"},"path":"deploy/recipe.lua"},"targets":["svc"]},
"resolvedDependencies":[{"digest":{"gitCommit":"<d>"},"name":"context","uri":"git+https://git.example/team/svc.git"},
{"digest":{"sha256":"<b>"},"name":"docker.io/library/alpine:3.20","uri":"docker://docker.io/library/alpine:3.20"},
{"digest":{"sha256":"<e>"},"name":"registry.example/team/builder:go-1234","uri":"docker://registry.example/team/builder:go-1234"},
{"name":"cache-from","uri":"docker://registry.example/team/cache:main"}]},
"runDetails":{"builder":{"id":"https://imgbuild.dev/builder/v1","version":{"imgbuild":"0.9.0"}}}},
"predicateType":"https://slsa.dev/provenance/v1","subject":[{"digest":{"sha256":"<a>"},"name":"svc"}]})J";
  expected = replace_all(expected, "\n", "");
  for (char c : std::string("abce"))
    expected = replace_all(expected, "<" + std::string(1, c) + ">", std::string(64, c));
  expected = replace_all(expected, "<d>", std::string(40, 'd'));
  CHECK(provenance_json(small_facts()) == expected);
}

TEST_CASE("provenance: the same facts, the same bytes; no time but the facts'", "[provenance]") {
  CHECK(provenance_json(small_facts()) == provenance_json(small_facts()));
  ProvenanceFacts later = small_facts();
  later.build.checkout->commit_time = 1800000000;  // the commit time is the image's created, not the statement's
  CHECK(provenance_json(later) == provenance_json(small_facts()));
}

TEST_CASE("provenance: a secret parameter's value never appears, whatever its name's case", "[provenance]") {
  const std::string value = "hunter2-very-secret";
  for (const char* name : {"token", "GITHUB_TOKEN", "npm_Auth", "dbPassword", "db_passwd", "api_key", "APIKEY",
                           "aws_secret_access_key", "credentials", "Secret"}) {
    ProvenanceFacts f = small_facts();
    f.build.parameters = {{name, value}};
    std::string statement = provenance_json(f);
    INFO(name);
    CHECK(statement.find(value) == std::string::npos);
    CHECK(json::parse(statement)["predicate"]["buildDefinition"]["externalParameters"]["parameters"][name] ==
          "<redacted>");
  }
  CHECK_FALSE(secret_parameter("version"));
  CHECK_FALSE(secret_parameter("replicas"));
}

TEST_CASE("provenance: the checkout's remote without user or password; a local one not at all", "[provenance]") {
  auto uri_of = [](const std::string& remote) {
    ProvenanceFacts f = small_facts();
    f.build.checkout->remote = remote;
    json context = json::parse(provenance_json(f))["predicate"]["buildDefinition"]["resolvedDependencies"][0];
    CHECK(context["digest"]["gitCommit"] == std::string(40, 'd'));
    return context.value("uri", "");
  };
  CHECK(uri_of("https://oauth2:glpat-XYZ@gitlab.example/g/p.git") == "git+https://gitlab.example/g/p.git");
  CHECK(uri_of("https://user@host.example:8443/r.git") == "git+https://host.example:8443/r.git");
  CHECK(uri_of("ssh://git@host.example/r.git") == "git+ssh://host.example/r.git");
  CHECK(uri_of("git@github.com:team/svc.git") == "git+ssh://github.com/team/svc.git");
  CHECK(uri_of("https://host.example/r@v1.git") == "git+https://host.example/r@v1.git");
  CHECK(uri_of("/srv/git/svc.git") == "");
  CHECK(uri_of("file:///srv/git/svc.git") == "");
  CHECK(uri_of("../svc") == "");
  CHECK(uri_of("") == "");
}

TEST_CASE("provenance: kept in the store by the image's digest", "[provenance]") {
  CHECK(provenance_path("/store", Digest::parse("sha256:" + std::string(64, 'a'))) ==
        "/store/provenance/sha256-" + std::string(64, 'a') + ".intoto.json");
}
