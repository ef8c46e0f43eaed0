// Tests for the SBOM: the package databases of a base image, and the SPDX
// document of an image made of a base layer and a layer of the recipe's.
#include "inspect/sbom.hpp"

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "elf_builder.hpp"
#include "test_support.hpp"

using namespace imgbuild;
using namespace imgbuild::test;
using namespace imgbuild::test::elf;
using json = nlohmann::json;

TEST_CASE("apk's installed database: one package per record", "[sbom]") {
  const std::string db =
      "C:Q1abc=\nP:musl\nV:1.2.4-r2\nA:x86_64\nL:MIT\no:musl\n\n"
      "P:ca-certificates-bundle\nV:20230506-r0\nA:x86_64\nL:MPL-2.0 AND MIT\no:ca-certificates\n"
      "R:etc/ssl/certs/ca-certificates.crt\n\n\n"
      "P:\nV:ignored, no name\n";
  CHECK(parse_apk_installed(db) ==
        std::vector<OsPackage>{
            {"musl", "1.2.4-r2", "x86_64", "", "MIT"},
            {"ca-certificates-bundle", "20230506-r0", "x86_64", "ca-certificates", "MPL-2.0 AND MIT"},
        });
  CHECK(parse_apk_installed("").empty());
}

TEST_CASE("dpkg's status file: installed packages only, continuation lines skipped", "[sbom]") {
  const std::string status =
      "Package: base-files\nStatus: install ok installed\nVersion: 12.4+deb12u5\nArchitecture: amd64\n"
      "Description: Debian base system miscellaneous files\n This package contains\n .\n more\n\n"
      "Package: libssl3\nStatus: install ok installed\nSource: openssl (3.0.11-1~deb12u2)\n"
      "Version: 3.0.11-1~deb12u2\nArchitecture: amd64\n\n"
      "Package: removed-one\nStatus: deinstall ok config-files\nVersion: 1\n\n"
      "Package: tzdata\nStatus: install ok installed\nVersion: 2024a-0+deb12u1\nArchitecture: all";
  CHECK(parse_dpkg_status(status) == std::vector<OsPackage>{
                                         {"base-files", "12.4+deb12u5", "amd64", "", ""},
                                         {"libssl3", "3.0.11-1~deb12u2", "amd64", "openssl", ""},
                                         {"tzdata", "2024a-0+deb12u1", "all", "", ""},
                                     });
}

namespace {

/// A layer blob of `files` (path -> contents, mode) written as the builder writes layers.
LayerBlob layer_of(const ScratchDir& dir, const std::string& name,
                   const std::vector<std::tuple<std::string, std::string, uint32_t>>& files) {
  std::vector<LayerEntry> entries;
  for (auto& [path, data, mode] : files) {
    std::filesystem::path source = dir.path / "src" / name / path;
    std::filesystem::create_directories(source.parent_path());
    spit(source, data);
    LayerEntry entry;
    entry.path = path;
    entry.mode = mode;
    entry.source = source.string();
    entry.size = data.size();
    entries.push_back(std::move(entry));
  }
  std::filesystem::create_directories(dir.path / "blobs");
  return write_layer(entries, dir.path / "blobs", {});
}

json find_by(const json& list, const std::string& key, const std::string& value) {
  for (const json& item : list)
    if (item.value(key, "") == value) return item;
  FAIL("no element with " << key << " = " << value);
  return {};
}

std::string purl_of(const json& package) { return package.at("externalRefs").at(0).at("referenceLocator"); }

}  // namespace

TEST_CASE("SPDX document of an image: base by digest, Go modules, base packages, the recipe's files", "[sbom]") {
  ScratchDir dir;
  ByteVec program = dynamic_fixture().builder.build().bytes;
  std::string go(program.begin(), program.end());
  LayerBlob base =
      layer_of(dir, "base",
               {{"etc/os-release", "ID=debian\nVERSION_ID=\"12\"\n", 0644},
                {"var/lib/dpkg/status",
                 "Package: libc6\nStatus: install ok installed\nVersion: 2:2.36-9\nArchitecture: amd64\n", 0644},
                {"usr/bin/tool", "#!/bin/sh\n", 0755}});
  LayerBlob mine = layer_of(dir, "mine", {{"app/svc", go, 0755}, {"etc/svc.conf", "port=80\n", 0644}});
  ImageTree tree;
  for (const LayerBlob& l : {base, mine}) tree.apply_layer_blob(dir.path / "blobs" / std::string(l.digest.hex()));
  Digest manifest = sha256_of("manifest");
  SbomSubject subject{"registry.example/team/svc:v1",
                      manifest,
                      "2023-11-14T22:13:20Z",
                      "amd64",
                      "docker.io/library/debian:12",
                      "sha256:" + std::string(64, 'b'),
                      tree,
                      1,
                      "imgbuild-test"};
  const std::string text = spdx_document(subject);
  CHECK(spdx_document(subject) == text);  // the same image, the same bytes
  json doc = json::parse(text);

  CHECK(doc["spdxVersion"] == "SPDX-2.3");
  CHECK(doc["documentNamespace"] == "https://imgbuild.dev/spdx/svc/sha256-" + std::string(manifest.hex()));
  CHECK(doc["creationInfo"]["created"] == "2023-11-14T22:13:20Z");
  CHECK(doc["creationInfo"]["creators"] == json::array({"Tool: imgbuild-test"}));
  const json& packages = doc["packages"];
  json img = find_by(packages, "SPDXID", "SPDXRef-Image");
  CHECK(img["versionInfo"] == manifest.str());
  CHECK(purl_of(img) == "pkg:oci/svc@sha256%3A" + std::string(manifest.hex()) + "?arch=amd64");
  json base_pkg = find_by(packages, "SPDXID", "SPDXRef-Base");
  CHECK(base_pkg["name"] == "docker.io/library/debian:12");
  CHECK(purl_of(base_pkg) == "pkg:oci/debian@sha256%3A" + std::string(64, 'b'));

  json program_pkg = find_by(packages, "name", "example.com/svc");
  CHECK(program_pkg["packageFileName"] == "/app/svc");
  CHECK(program_pkg["versionInfo"] == "v1.2.3");
  CHECK(purl_of(program_pkg) == "pkg:golang/example.com/svc@v1.2.3");
  CHECK(program_pkg["comment"].get<std::string>().rfind("built by go1.99 with -compiler=gc ", 0) == 0);
  CHECK(purl_of(find_by(packages, "name", "stdlib")) == "pkg:golang/stdlib@1.99");
  json sys = find_by(packages, "name", "golang.org/x/sys");
  CHECK(purl_of(sys) == "pkg:golang/golang.org/x/sys@v0.1.0");
  CHECK(sys["comment"] == "go.sum h1:def=");
  CHECK_FALSE(sys.contains("checksums"));  // "h1:def=" is no SHA-256
  json old = find_by(packages, "name", "example.com/old");
  CHECK(purl_of(old) == "pkg:golang/example.com/new@v1.1.0");
  CHECK(old["comment"] == "go.mod replaces example.com/old v1.0.0 with example.com/new v1.1.0 (h1:ghi=)");

  json libc = find_by(packages, "name", "libc6");
  CHECK(purl_of(libc) == "pkg:deb/debian/libc6@2%3A2.36-9?arch=amd64&distro=debian-12");

  // Only the recipe's files are listed one by one; the shell script in the
  // base is neither a file of the recipe's nor a Go program.
  REQUIRE(doc["files"].size() == 2);
  json svc = find_by(doc["files"], "fileName", "./app/svc");
  CHECK(svc["checksums"][0] == json{{"algorithm", "SHA1"}, {"checksumValue", [&] {
                                                              Hasher h("sha1");
                                                              h.update(go);
                                                              return h.finish_hex();
                                                            }()}});
  CHECK(svc["checksums"][1]["checksumValue"] == std::string(sha256_of(go).hex()));
  CHECK(find_by(doc["files"], "fileName", "./etc/svc.conf")["checksums"][1]["checksumValue"] ==
        std::string(sha256_of("port=80\n").hex()));

  auto related = [&](const std::string& from, const std::string& type, const std::string& to) {
    for (const json& r : doc["relationships"])
      if (r["spdxElementId"] == from && r["relationshipType"] == type && r["relatedSpdxElement"] == to) return true;
    return false;
  };
  CHECK(related("SPDXRef-DOCUMENT", "DESCRIBES", "SPDXRef-Image"));
  CHECK(related("SPDXRef-Image", "DESCENDANT_OF", "SPDXRef-Base"));
  CHECK(related("SPDXRef-Image", "CONTAINS", program_pkg["SPDXID"]));
  CHECK(related(program_pkg["SPDXID"], "DEPENDS_ON", sys["SPDXID"]));
  CHECK(related("SPDXRef-Image", "CONTAINS", libc["SPDXID"]));
  CHECK(related("SPDXRef-Image", "CONTAINS", svc["SPDXID"]));
}
