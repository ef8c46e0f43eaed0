// Tests for the OCI image model: the config and manifest documents, runtime
// config helpers, platforms, descriptors and time formatting.
#include "oci/image.hpp"

#include <catch2/catch.hpp>

#include <sys/utsname.h>

#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/digest.hpp"
#include "test_support.hpp"

using imgbuild::Descriptor;
using imgbuild::Digest;
using imgbuild::Image;
using imgbuild::LayerBlob;
using imgbuild::Platform;
using imgbuild::rfc3339;
using imgbuild::RuntimeConfig;
using imgbuild::sha256_of;
using namespace imgbuild::test;
using Catch::Matchers::Contains;
using json = nlohmann::json;

namespace {

Digest dg(char c) { return Digest::parse("sha256:" + std::string(64, c)); }

// Two layers whose digests sort opposite to their order, so order is visible.
std::vector<LayerBlob> two_layers() {
  return {LayerBlob{dg('f'), 300, dg('e'), 1024}, LayerBlob{dg('1'), 200, dg('0'), 2048}};
}

std::string platform_error(const std::string& text) {
  return error_of([&] { Platform::parse(text); });
}

}  // namespace

TEST_CASE("rfc3339 formats epoch seconds in UTC", "[image]") {
  REQUIRE(rfc3339(0) == "1970-01-01T00:00:00Z");
  REQUIRE(rfc3339(1700000000) == "2023-11-14T22:13:20Z");
  REQUIRE(rfc3339(951782400) == "2000-02-29T00:00:00Z");
  REQUIRE(rfc3339(-1) == "1969-12-31T23:59:59Z");
  REQUIRE(rfc3339(253402300799) == "9999-12-31T23:59:59Z");
}

TEST_CASE("config_document of a fully configured image is canonical", "[image]") {
  Image img;
  img.platform = Platform::parse("linux/arm64/v8");
  img.created = 1700000000;
  img.config.env = {"PATH=/usr/bin", "APORT=8080"};
  img.config.entrypoint = std::vector<std::string>{"/server"};
  img.config.cmd = std::vector<std::string>{"--port", "8080"};
  img.config.workdir = "/srv";
  img.config.user = "1000:1000";
  img.config.stop_signal = "SIGTERM";
  img.config.exposed_ports = {"8080/tcp", "53/udp"};
  img.config.labels = {{"b", "2"}, {"a", "1"}};
  img.config.volumes = {"/data"};
  img.layers = two_layers();
  img.history = {{"copy a", false}, {"env PORT", true}};

  const std::string expected =
      R"({"architecture":"arm64",)"
      R"("config":{"Cmd":["--port","8080"],"Entrypoint":["/server"],"Env":["PATH=/usr/bin","APORT=8080"],)"
      R"("ExposedPorts":{"53/udp":{},"8080/tcp":{}},"Labels":{"a":"1","b":"2"},"StopSignal":"SIGTERM",)"
      R"("User":"1000:1000","Volumes":{"/data":{}},"WorkingDir":"/srv"},)"
      R"("created":"2023-11-14T22:13:20Z",)"
      R"("history":[{"created":"2023-11-14T22:13:20Z","created_by":"copy a"},)"
      R"({"created":"2023-11-14T22:13:20Z","created_by":"env PORT","empty_layer":true}],)"
      R"("os":"linux",)"
      R"("rootfs":{"diff_ids":["sha256:eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",)"
      R"("sha256:0000000000000000000000000000000000000000000000000000000000000000"],"type":"layers"},)"
      R"("variant":"v8"})";
  std::string doc = img.config_document();
  REQUIRE(doc == expected);
  // Canonical: re-serialising the parsed document gives the same bytes.
  REQUIRE(json::parse(doc).dump() == doc);
  // The same image gives the same bytes every time.
  REQUIRE(img.config_document() == doc);
}

TEST_CASE("config_document includes runtime fields only when set", "[image]") {
  Image img;
  img.platform = Platform::parse("linux/amd64");
  json doc = json::parse(img.config_document());
  REQUIRE(doc["config"] == json::object());
  REQUIRE(doc["architecture"] == "amd64");
  REQUIRE(doc["os"] == "linux");
  REQUIRE_FALSE(doc.contains("variant"));
  REQUIRE(doc["created"] == "1970-01-01T00:00:00Z");
  REQUIRE(doc["rootfs"] == json{{"type", "layers"}, {"diff_ids", json::array()}});
  REQUIRE(doc["history"] == json::array());

  struct Case {
    const char* key;
    void (*set)(RuntimeConfig&);
  };
  const Case cases[] = {
      {"Env", [](RuntimeConfig& c) { c.set_env("A", "1"); }},
      {"Entrypoint", [](RuntimeConfig& c) { c.entrypoint = std::vector<std::string>{"/e"}; }},
      {"Cmd", [](RuntimeConfig& c) { c.cmd = std::vector<std::string>{"c"}; }},
      {"WorkingDir", [](RuntimeConfig& c) { c.workdir = "/w"; }},
      {"User", [](RuntimeConfig& c) { c.user = "nobody"; }},
      {"ExposedPorts", [](RuntimeConfig& c) { c.exposed_ports.insert("80/tcp"); }},
      {"Labels", [](RuntimeConfig& c) { c.labels["k"] = "v"; }},
      {"Volumes", [](RuntimeConfig& c) { c.volumes.insert("/v"); }},
      {"StopSignal", [](RuntimeConfig& c) { c.stop_signal = "SIGINT"; }},
  };
  for (auto& c : cases) {
    INFO(c.key);
    Image one = img;
    c.set(one.config);
    json cfg = json::parse(one.config_document())["config"];
    REQUIRE(cfg.size() == 1);
    REQUIRE(cfg.contains(c.key));
  }

  // An entrypoint or cmd explicitly set to nothing is still set (it clears a base's).
  Image cleared = img;
  cleared.config.entrypoint = std::vector<std::string>{};
  json cfg = json::parse(cleared.config_document())["config"];
  REQUIRE(cfg == json{{"Entrypoint", json::array()}});
}

TEST_CASE("config_document history and diff_ids", "[image]") {
  Image img;
  img.platform = Platform::parse("linux/amd64");
  img.created = 951782400;
  img.layers = two_layers();
  img.history = {{"first", false}, {"config", true}, {"second", false}};
  json doc = json::parse(img.config_document());
  REQUIRE(doc["created"] == "2000-02-29T00:00:00Z");
  REQUIRE(doc["rootfs"]["diff_ids"] == json::array({dg('e').str(), dg('0').str()}));
  REQUIRE(doc["history"].size() == 3);
  for (auto& h : doc["history"]) REQUIRE(h["created"] == "2000-02-29T00:00:00Z");
  REQUIRE(doc["history"][0] == json{{"created", "2000-02-29T00:00:00Z"}, {"created_by", "first"}});
  REQUIRE(doc["history"][1]["empty_layer"] == true);
  REQUIRE_FALSE(doc["history"][2].contains("empty_layer"));
  REQUIRE(doc["history"][2]["created_by"] == "second");
}

TEST_CASE("manifest_document describes the config and the compressed layers", "[image]") {
  Image img;
  img.platform = Platform::parse("linux/amd64");
  img.layers = two_layers();
  Descriptor cfg{imgbuild::media_type::kConfig, dg('c'), 1234, {}};
  std::string doc = img.manifest_document(cfg);
  const std::string expected =
      R"({"config":{"digest":"sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",)"
      R"("mediaType":"application/vnd.oci.image.config.v1+json","size":1234},)"
      R"("layers":[{"digest":"sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",)"
      R"("mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":300},)"
      R"({"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111",)"
      R"("mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","size":200}],)"
      R"("mediaType":"application/vnd.oci.image.manifest.v1+json","schemaVersion":2})";
  REQUIRE(doc == expected);

  Image empty;
  json e = json::parse(empty.manifest_document(cfg));
  REQUIRE(e["layers"] == json::array());
  REQUIRE(e["config"]["digest"] == dg('c').str());
}

TEST_CASE("RuntimeConfig::set_env replaces in place", "[image]") {
  RuntimeConfig c;
  c.set_env("PATH", "/bin");
  c.set_env("HOME", "/root");
  c.set_env("LANG", "C");
  REQUIRE(c.env == std::vector<std::string>{"PATH=/bin", "HOME=/root", "LANG=C"});
  c.set_env("HOME", "/home/app");
  REQUIRE(c.env == std::vector<std::string>{"PATH=/bin", "HOME=/home/app", "LANG=C"});
  // A name that is a prefix of another is a different variable.
  c.set_env("PA", "x");
  REQUIRE(c.env == std::vector<std::string>{"PATH=/bin", "HOME=/home/app", "LANG=C", "PA=x"});
  c.set_env("PATH", "");
  REQUIRE(c.env[0] == "PATH=");
  REQUIRE(c.env.size() == 4);

  REQUIRE(c.get_env("HOME") == std::optional<std::string>("/home/app"));
  REQUIRE(c.get_env("PA") == std::optional<std::string>("x"));
  REQUIRE(c.get_env("PATH") == std::optional<std::string>(""));
  REQUIRE_FALSE(c.get_env("P").has_value());
  REQUIRE_FALSE(c.get_env("MISSING").has_value());
  c.set_env("EQ", "a=b");
  REQUIRE(c.get_env("EQ") == std::optional<std::string>("a=b"));
}

TEST_CASE("Platform::parse and str", "[image]") {
  Platform amd = Platform::parse("linux/amd64");
  REQUIRE(amd.os == "linux");
  REQUIRE(amd.architecture == "amd64");
  REQUIRE(amd.variant.empty());
  REQUIRE(amd.str() == "linux/amd64");

  Platform arm = Platform::parse("linux/arm/v7");
  REQUIRE(arm.architecture == "arm");
  REQUIRE(arm.variant == "v7");
  REQUIRE(arm.str() == "linux/arm/v7");
  REQUIRE_FALSE(arm == Platform::parse("linux/arm/v6"));
  REQUIRE(arm == Platform::parse("linux/arm/v7"));

  REQUIRE(Platform::parse("windows/amd64").os == "windows");

  auto msg = [](const std::string& t) {
    return "invalid platform '" + t + "' (expected os/arch[/variant], e.g. linux/arm64)";
  };
  for (std::string bad : {"", "linux", "linux/", "/amd64", "linux//v7", "linux/arm/", "linux/arm/v7/x", "//"}) {
    INFO(bad);
    REQUIRE(platform_error(bad) == msg(bad));
  }
}

TEST_CASE("Platform::host names this machine in OCI terms", "[image]") {
  Platform p = Platform::host();
  REQUIRE(p.os == "linux");
  REQUIRE_FALSE(p.architecture.empty());
  struct utsname u {};
  REQUIRE(::uname(&u) == 0);
  std::string m = u.machine;
  if (m == "x86_64")
    REQUIRE(p.str() == "linux/amd64");
  else if (m == "aarch64")
    REQUIRE(p.str() == "linux/arm64");
  REQUIRE(Platform::parse(p.str()) == p);
}

TEST_CASE("Descriptor JSON round trip and errors", "[image]") {
  Descriptor d{imgbuild::media_type::kManifest, sha256_of("m"), 42, {{"org.opencontainers.image.ref.name", "x"}}};
  json j = d.to_json();
  REQUIRE(j.dump() == R"({"annotations":{"org.opencontainers.image.ref.name":"x"},"digest":")" + d.digest.str() +
                          R"(","mediaType":"application/vnd.oci.image.manifest.v1+json","size":42})");
  Descriptor back = Descriptor::from_json(j);
  REQUIRE(back.media_type == d.media_type);
  REQUIRE(back.digest == d.digest);
  REQUIRE(back.size == 42);
  REQUIRE(back.annotations == d.annotations);
  REQUIRE_FALSE(Descriptor{imgbuild::MediaType::parse("t"), d.digest, 1, {}}.to_json().contains("annotations"));

  REQUIRE_THROWS_WITH(Descriptor::from_json(json::array()), "descriptor is not an object");
  json no_size = j;
  no_size.erase("size");
  REQUIRE_THROWS_WITH(Descriptor::from_json(no_size), "descriptor has no size");
  json neg = j;
  neg["size"] = -1;
  REQUIRE_THROWS_WITH(Descriptor::from_json(neg), "descriptor size is not a non-negative integer");
  json bad_digest = j;
  bad_digest["digest"] = "sha256:abc";
  REQUIRE_THROWS_WITH(Descriptor::from_json(bad_digest), Contains("invalid digest 'sha256:abc'"));
  json mt = j;
  mt["mediaType"] = 3;
  REQUIRE_THROWS_WITH(Descriptor::from_json(mt), "descriptor mediaType is not a string");
}

TEST_CASE("media types: known ones parsed to their constant, others kept verbatim", "[image]") {
  using imgbuild::MediaType;
  namespace media_type = imgbuild::media_type;
  CHECK(MediaType::parse("application/vnd.oci.image.index.v1+json") == media_type::kIndex);
  CHECK(MediaType::parse("application/vnd.docker.distribution.manifest.list.v2+json").is_index());
  CHECK(MediaType::parse("application/vnd.docker.distribution.manifest.v2+json").is_manifest());
  CHECK(!media_type::kConfig.is_manifest());
  CHECK(!media_type::kConfig.is_index());
  // Types are compared byte for byte: another spelling is another type, kept as it was.
  MediaType upper = MediaType::parse("Application/vnd.oci.image.index.v1+json");
  CHECK(upper != media_type::kIndex);
  CHECK(!upper.is_index());
  CHECK(upper.str() == "Application/vnd.oci.image.index.v1+json");
  MediaType artifact = MediaType::parse("application/vnd.example.sbom.v1+json");
  CHECK(artifact == MediaType::parse("application/vnd.example.sbom.v1+json"));
  CHECK(artifact != MediaType::parse("application/vnd.example.sbom.v2+json"));
  CHECK(json(artifact).dump() == R"("application/vnd.example.sbom.v1+json")");
  CHECK(json(media_type::kStepCache).dump() == R"("application/vnd.imgbuild.step-cache.v1+json")");
  // An unknown type in an index passes through byte for byte: its digest stays.
  json index_entry = json::parse(R"({"digest":")" + sha256_of("a").str() +
                                 R"(","mediaType":"application/vnd.example.sbom.v1+json","size":1})");
  CHECK(Descriptor::from_json(index_entry).to_json().dump() == index_entry.dump());
}

TEST_CASE("StoredImage::total_size sums manifest, config and layers", "[image]") {
  imgbuild::StoredImage s{Descriptor{imgbuild::media_type::kManifest, dg('a'), 500, {}},
                          json{{"config", {{"size", 1000}}}, {"layers", json::array({{{"size", 20}}, {{"size", 3}}})}},
                          json::object()};
  REQUIRE(s.total_size() == 1523);
}

TEST_CASE("image_from_documents reads a Docker base image to build on", "[image]") {
  json manifest = {
      {"schemaVersion", 2},
      {"mediaType", imgbuild::media_type::kDockerManifest},
      {"config", {{"mediaType", imgbuild::media_type::kDockerConfig}, {"digest", dg('c').str()}, {"size", 10u}}},
      {"layers",
       {{{"mediaType", imgbuild::media_type::kDockerLayerGzip}, {"digest", dg('1').str()}, {"size", 100u}},
        {{"mediaType", imgbuild::media_type::kLayerZstd}, {"digest", dg('2').str()}, {"size", 200u}}}}};
  json config = {{"architecture", "arm64"},
                 {"os", "linux"},
                 {"variant", "v8"},
                 {"config",
                  {{"Env", {"PATH=/bin"}},
                   {"Cmd", {"/bin/sh"}},
                   {"Entrypoint", nullptr},
                   {"WorkingDir", "/w"},
                   {"User", ""},
                   {"ExposedPorts", {{"80/tcp", json::object()}}},
                   {"Labels", {{"a", "b"}}},
                   {"Healthcheck", {{"Test", {"CMD", "true"}}}},
                   {"OnBuild", nullptr},
                   {"ArgsEscaped", false},
                   {"Shell", {"/bin/ash", "-c"}}}},
                 {"rootfs", {{"type", "layers"}, {"diff_ids", {dg('a').str(), dg('b').str()}}}},
                 {"history",
                  {{{"created", "2024-01-01T00:00:00Z"}, {"created_by", "ADD rootfs"}, {"author", "x"}},
                   {{"created", "2024-01-02T00:00:00Z"}, {"created_by", "CMD sh"}, {"empty_layer", true}}}}};
  Image image = imgbuild::image_from_documents(manifest, config);
  CHECK(image.platform == Platform{"linux", "arm64", "v8"});
  CHECK(image.config.env == std::vector<std::string>{"PATH=/bin"});
  CHECK(image.config.cmd == std::vector<std::string>{"/bin/sh"});
  CHECK(!image.config.entrypoint);
  CHECK(image.config.workdir == "/w");
  CHECK(image.config.exposed_ports == std::set<std::string>{"80/tcp"});
  // What the model does not know is carried through; empty Docker defaults are not.
  CHECK(image.inherited_config == json{{"Healthcheck", {{"Test", {"CMD", "true"}}}}, {"Shell", {"/bin/ash", "-c"}}});
  REQUIRE(image.layers.size() == 2);
  CHECK(image.layers[0].media_type == imgbuild::media_type::kLayerGzip);  // Docker's gzip is OCI's gzip
  CHECK(image.layers[1].media_type == imgbuild::media_type::kLayerZstd);
  CHECK(image.layers[1].diff_id == dg('b'));
  REQUIRE(image.history.size() == 2);
  CHECK(image.history[0].author == "x");
  CHECK(image.history[1].empty_layer);

  // Written back: the base's history keeps its times, the inherited fields stay.
  json written = json::parse(image.config_document());
  CHECK(written["history"][0]["created"] == "2024-01-01T00:00:00Z");
  CHECK(written["config"]["Shell"] == json{"/bin/ash", "-c"});
  CHECK(written["config"]["Healthcheck"] == json{{"Test", {"CMD", "true"}}});
  // A recipe's check replaces the base's, in docker's encoding: nanoseconds,
  // zero fields left out.
  image.config.healthcheck = imgbuild::HealthConfig{{"CMD-SHELL", "curl -f localhost || exit 1"}, 0, 3000000000};
  CHECK(json::parse(image.config_document())["config"]["Healthcheck"] ==
        json{{"Test", {"CMD-SHELL", "curl -f localhost || exit 1"}}, {"Timeout", 3000000000}});
  json m = json::parse(image.manifest_document(Descriptor{imgbuild::media_type::kConfig, dg('c'), 10, {}, {}}));
  CHECK(m["layers"][0]["mediaType"] == imgbuild::media_type::kLayerGzip);
  CHECK(m["layers"][1]["mediaType"] == imgbuild::media_type::kLayerZstd);
}

TEST_CASE("image_from_documents rejects what it cannot build on", "[image]") {
  json config = {{"os", "linux"}, {"architecture", "amd64"}, {"rootfs", {{"diff_ids", {dg('a').str()}}}}};
  auto layers = [](const json& type) {
    return json{{"layers", {{{"mediaType", type}, {"digest", dg('1').str()}, {"size", 1u}}}}};
  };
  CHECK(error_of([&] {
          imgbuild::image_from_documents(layers("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"), config);
        }) == "unsupported layer type 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip'");
  json two = layers(imgbuild::media_type::kLayerGzip);
  two["layers"].push_back(two["layers"][0]);
  CHECK(error_of([&] { imgbuild::image_from_documents(two, config); }) ==
        "the config lists 1 layer diff IDs for 2 layers");
  CHECK(error_of([&] { imgbuild::image_from_documents(json::object(), config); }) == "the manifest has no layer list");
  json bad_env = config;
  bad_env["config"] = {{"Env", "PATH=/bin"}};
  CHECK(error_of([&] { imgbuild::image_from_documents(layers(imgbuild::media_type::kLayerGzip), bad_env); }) ==
        "config Env is not a list");
}

TEST_CASE("descriptors carry a platform through JSON", "[image]") {
  Descriptor d{imgbuild::media_type::kManifest, dg('1'), 5, {}, Platform{"linux", "arm", "v7"}};
  json j = d.to_json();
  CHECK(j["platform"] == json{{"os", "linux"}, {"architecture", "arm"}, {"variant", "v7"}});
  CHECK(Descriptor::from_json(j).platform == d.platform);
  CHECK(!Descriptor::from_json(Descriptor{imgbuild::media_type::kManifest, dg('1'), 5, {}, {}}.to_json()).platform);
}

TEST_CASE("built_annotations: when, from what and on what base, a label the recipe set replacing one",
          "[image][annotations]") {
  using imgbuild::built_annotations;
  using imgbuild::ImageOrigin;
  Image img;
  img.created = 1700000000;
  img.annotations = {{"org.opencontainers.image.base.name", "docker.io/library/alpine:3.20"},
                     {"org.opencontainers.image.base.digest", dg('a').str()},
                     {"org.example.other", "not kept"}};
  ImageOrigin origin{"https://git.example.com/team/app.git", std::string(40, 'c'), "v1.2.3"};
  using Map = std::map<std::string, std::string>;
  CHECK(built_annotations(img, origin, {}) ==
        Map{{"org.opencontainers.image.created", "2023-11-14T22:13:20Z"},
            {"org.opencontainers.image.source", "https://git.example.com/team/app.git"},
            {"org.opencontainers.image.revision", std::string(40, 'c')},
            {"org.opencontainers.image.version", "v1.2.3"},
            {"org.opencontainers.image.base.name", "docker.io/library/alpine:3.20"},
            {"org.opencontainers.image.base.digest", dg('a').str()}});

  SECTION("an empty origin and no base (scratch): the creation time alone") {
    Image scratch;
    CHECK(built_annotations(scratch, {}, {}) == Map{{"org.opencontainers.image.created", "1970-01-01T00:00:00Z"}});
  }
  SECTION("a label the recipe set replaces the annotation; an empty one drops it") {
    img.config.labels = {{"org.opencontainers.image.version", "2.0"},
                         {"org.opencontainers.image.source", ""},
                         {"org.opencontainers.image.title", "labels of other names stay labels"}};
    Map a = built_annotations(img, origin, {});
    CHECK(a.at("org.opencontainers.image.version") == "2.0");
    CHECK(!a.contains("org.opencontainers.image.source"));
    CHECK(!a.contains("org.opencontainers.image.title"));
    CHECK(a.at("org.opencontainers.image.revision") == std::string(40, 'c'));
  }
  SECTION("a base's own label says nothing of this image, unless the recipe changed it") {
    Map base = {{"org.opencontainers.image.version", "3.20.0"}, {"org.opencontainers.image.source", "https://alpine"}};
    img.config.labels = {{"org.opencontainers.image.version", "3.20.0"},
                         {"org.opencontainers.image.source", "https://mine"}};
    Map a = built_annotations(img, origin, base);
    CHECK(a.at("org.opencontainers.image.version") == "v1.2.3");
    CHECK(a.at("org.opencontainers.image.source") == "https://mine");
  }
}
