// Tests for the SBOM: the package databases of a base image, and the SPDX
// document of an image made of a base layer and a layer of the recipe's.
#include "inspect/sbom.hpp"

#include <catch2/catch.hpp>

#include <functional>
#include <set>

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
  const std::string text = spdx_document(gather_sbom(subject));
  CHECK(spdx_document(gather_sbom(subject)) == text);  // the same image, the same bytes
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

namespace {

/// A small SBOM by hand: an image on a base, one Go program with a module
/// and a replaced one, an apk package and a file.
Sbom small_sbom() {
  Sbom s{.name = "svc",
         .manifest = Digest::parse("sha256:" + std::string(64, 'a')),
         .created = "2023-11-14T22:13:20Z",
         .architecture = "amd64",
         .tool = "imgbuild-0.9.0",
         .purl = "pkg:oci/svc@sha256%3A" + std::string(64, 'a') + "?arch=amd64",
         .short_name = "svc",
         .base_name = "docker.io/library/alpine:3.20",
         .base_digest = "sha256:" + std::string(64, 'b'),
         .base_sha256 = std::string(64, 'b'),
         .base_purl = "pkg:oci/alpine@sha256%3A" + std::string(64, 'b')};
  GoBuildInfo go;
  go.go_version = "go1.22.1";
  go.main_path = "example.com/svc";
  go.main_module = {"example.com/svc", "(devel)", ""};
  go.settings = {{"CGO_ENABLED", "0"}, {"-trimpath", "true"}};
  go.deps = {{{"golang.org/x/sys", "v0.1.0", "h1:def="}, std::nullopt},
             {{"example.com/old", "v1.0.0", ""}, GoModule{"example.com/new", "v1.1.0", "h1:ghi="}}};
  s.programs.push_back({"Go-1-example.com-svc", "/svc", go, "pkg:golang/example.com/svc", "", 0, {0, 1}});
  s.toolchains.push_back({"GoStdlib-1-go1.22.1", "go1.22.1", "pkg:golang/stdlib@1.22.1"});
  s.modules.push_back({"GoModule-1-golang.org-x-sys", go.deps[0], "pkg:golang/golang.org/x/sys@v0.1.0", ""});
  s.modules.push_back({"GoModule-2-example.com-old", go.deps[1], "pkg:golang/example.com/new@v1.1.0", ""});
  s.packages.push_back({"Apk-1-musl",
                        "apk",
                        "pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3",
                        {"musl", "1.2.5-r0", "x86_64", "", "MIT"}});
  s.files.push_back({"File-1--svc", "/svc", std::string(40, '1'), std::string(64, '2')});
  return s;
}

}  // namespace

TEST_CASE("CycloneDX 1.6 document of the SBOM model: exact bytes", "[sbom]") {
  // One line in the document; a line here per element, <a> and <b> for the
  // image's and the base's 64 hex digits.
  std::string expected = R"J({"$schema":"http://cyclonedx.org/schema/bom-1.6.schema.json","bomFormat":"CycloneDX",
"components":[{"bom-ref":"Go-1-example.com-svc","evidence":{"occurrences":[{"location":"/svc"}]},"name":"example.com/svc","properties":[{"name":"imgbuild:go:toolchain","value":"go1.22.1"},{"name":"cdx:gomod:build:env:CGO_ENABLED","value":"0"},{"name":"imgbuild:go:build:-trimpath","value":"true"}],"purl":"pkg:golang/example.com/svc","type":"application","version":"(devel)"},
{"bom-ref":"GoStdlib-1-go1.22.1","name":"stdlib","purl":"pkg:golang/stdlib@1.22.1","type":"library","version":"go1.22.1"},
{"bom-ref":"GoModule-1-golang.org-x-sys","name":"golang.org/x/sys","properties":[{"name":"imgbuild:go:sum","value":"h1:def="}],"purl":"pkg:golang/golang.org/x/sys@v0.1.0","type":"library","version":"v0.1.0"},
{"bom-ref":"GoModule-2-example.com-old","name":"example.com/old","properties":[{"name":"imgbuild:go:sum","value":"h1:ghi="},{"name":"imgbuild:go:replaces","value":"example.com/old v1.0.0"}],"purl":"pkg:golang/example.com/new@v1.1.0","type":"library","version":"v1.1.0"},
{"bom-ref":"Apk-1-musl","licenses":[{"license":{"name":"MIT"}}],"name":"musl","purl":"pkg:apk/alpine/musl@1.2.5-r0?arch=x86_64&distro=alpine-3.20.3","type":"library","version":"1.2.5-r0"},
{"bom-ref":"File-1--svc","hashes":[{"alg":"SHA-1","content":"1111111111111111111111111111111111111111"},{"alg":"SHA-256","content":"2222222222222222222222222222222222222222222222222222222222222222"}],"name":"/svc","type":"file"}],
"dependencies":[{"dependsOn":["Go-1-example.com-svc","Apk-1-musl","File-1--svc"],"ref":"Image"},
{"dependsOn":["GoModule-1-golang.org-x-sys","GoModule-2-example.com-old","GoStdlib-1-go1.22.1"],"ref":"Go-1-example.com-svc"},
{"dependsOn":[],"ref":"GoStdlib-1-go1.22.1"},{"dependsOn":[],"ref":"GoModule-1-golang.org-x-sys"},{"dependsOn":[],"ref":"GoModule-2-example.com-old"}],
"metadata":{"component":{"bom-ref":"Image","hashes":[{"alg":"SHA-256","content":"<a>"}],"name":"svc",
"pedigree":{"ancestors":[{"bom-ref":"Base","hashes":[{"alg":"SHA-256","content":"<b>"}],"name":"docker.io/library/alpine:3.20","purl":"pkg:oci/alpine@sha256%3A<b>","type":"container","version":"sha256:<b>"}]},
"purl":"pkg:oci/svc@sha256%3A<a>?arch=amd64","type":"container","version":"sha256:<a>"},
"timestamp":"2023-11-14T22:13:20Z","tools":{"components":[{"name":"imgbuild","type":"application","version":"0.9.0"}]}},
"serialNumber":"urn:uuid:c00d7291-2792-570e-8965-3e7d26addace","specVersion":"1.6","version":1})J";
  expected = replace_all(replace_all(replace_all(expected, "\n", ""), "<a>", std::string(64, 'a')), "<b>",
                         std::string(64, 'b'));
  CHECK(cyclonedx_document(small_sbom()) == expected);
}

TEST_CASE("the two formats of one SBOM name the same elements", "[sbom]") {
  const Sbom s = small_sbom();
  json spdx = json::parse(spdx_document(s)), cdx = json::parse(cyclonedx_document(s));
  std::set<std::string> spdx_purls, cdx_purls;
  for (const json& p : spdx["packages"])
    for (const json& r : p.value("externalRefs", json::array())) spdx_purls.insert(r["referenceLocator"]);
  for (const json& c : cdx["components"])
    if (c.contains("purl")) cdx_purls.insert(c["purl"]);
  cdx_purls.insert(cdx["metadata"]["component"]["purl"]);
  cdx_purls.insert(cdx["metadata"]["component"]["pedigree"]["ancestors"][0]["purl"]);
  CHECK(spdx_purls == cdx_purls);
  CHECK(spdx["files"][0]["fileName"] == "." + cdx["components"].back()["name"].get<std::string>());
}

TEST_CASE("CycloneDX serial number: a version 5 UUID of the image, the same on every run", "[sbom]") {
  Sbom s = small_sbom();
  std::string serial = json::parse(cyclonedx_document(s))["serialNumber"];
  // uuid.uuid5(uuid.NAMESPACE_URL, "https://imgbuild.dev/cyclonedx/svc/sha256-" + "a" * 64)
  CHECK(serial == "urn:uuid:c00d7291-2792-570e-8965-3e7d26addace");
  s.manifest = Digest::parse("sha256:" + std::string(64, 'c'));
  CHECK(json::parse(cyclonedx_document(s))["serialNumber"] != serial);
}

TEST_CASE("a kept SPDX document is taken only when it describes that image under that name", "[sbom]") {
  const Sbom s = small_sbom();
  const std::string text = spdx_document(s);
  const Digest other = Digest::parse("sha256:" + std::string(64, 'c'));
  CHECK(spdx_describes(text, "svc", s.manifest, "imgbuild-0.9.0"));
  // Another image, another name for it, another imgbuild's document.
  CHECK_FALSE(spdx_describes(text, "svc", other, "imgbuild-0.9.0"));
  CHECK_FALSE(spdx_describes(text, "registry.example/svc:v1", s.manifest, "imgbuild-0.9.0"));
  CHECK_FALSE(spdx_describes(text, "svc", s.manifest, "imgbuild-0.9.1"));
  // Damaged: cut short, emptied, not canonical, not an object, members of
  // the wrong type, the image package not first or about another digest.
  for (size_t cut : {size_t{0}, size_t{1}, text.size() / 2, text.size() - 1})
    CHECK_FALSE(spdx_describes(text.substr(0, cut), "svc", s.manifest, "imgbuild-0.9.0"));
  const json doc = json::parse(text);
  CHECK_FALSE(spdx_describes(doc.dump(1), "svc", s.manifest, "imgbuild-0.9.0"));
  CHECK_FALSE(spdx_describes(text + "\n", "svc", s.manifest, "imgbuild-0.9.0"));
  for (const char* junk : {"null", "[]", "{}", "\"svc\"", "42"})
    CHECK_FALSE(spdx_describes(junk, "svc", s.manifest, "imgbuild-0.9.0"));
  auto edited = [&](const std::function<void(json&)>& edit) {
    json d = doc;
    edit(d);
    return d.dump();
  };
  CHECK(spdx_describes(edited([](json&) {}), "svc", s.manifest, "imgbuild-0.9.0"));
  CHECK_FALSE(spdx_describes(edited([](json& d) { d["packages"] = 5; }), "svc", s.manifest, "imgbuild-0.9.0"));
  CHECK_FALSE(spdx_describes(edited([](json& d) { d["creationInfo"] = "x"; }), "svc", s.manifest, "imgbuild-0.9.0"));
  CHECK_FALSE(
      spdx_describes(edited([](json& d) { d["spdxVersion"] = "SPDX-2.2"; }), "svc", s.manifest, "imgbuild-0.9.0"));
  CHECK_FALSE(
      spdx_describes(edited([](json& d) { d["packages"][0]["versionInfo"] = "sha256:" + std::string(64, 'c'); }), "svc",
                     s.manifest, "imgbuild-0.9.0"));
  CHECK_FALSE(spdx_describes(edited([](json& d) { std::swap(d["packages"][0], d["packages"][1]); }), "svc", s.manifest,
                             "imgbuild-0.9.0"));
}
