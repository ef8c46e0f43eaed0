#include "inspect/sbom.hpp"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "base/text.hpp"
#include "inspect/elf.hpp"

namespace imgbuild {

using json = nlohmann::json;

namespace {

/// Calls `line` with each line of `text` (dpkg's control format and apk's
/// `K:value` records: paragraphs with blank lines between them).
template <typename Line>
void for_each_line(std::string_view text, Line&& line) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    line(text.substr(0, nl));
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
  }
}

/// A purl's name, namespace segment or version: percent-encoded but for the
/// unreserved characters (`:` of a Debian epoch, `+` of a revision encoded).
std::string purl_part(std::string_view s) { return url_encode(s); }

/// A Go module path as a purl namespace and name: each segment encoded.
std::string purl_path(std::string_view path) {
  std::string out;
  for (const std::string& segment : split(std::string(path), '/')) out += (out.empty() ? "" : "/") + purl_part(segment);
  return out;
}

/// An element's identifier, numbered in path order: SPDX identifiers allow
/// letters, digits, '.' and '-' only, and CycloneDX's bom-refs take them as they are.
std::string element_id(std::string_view kind, std::string_view name, size_t n) {
  std::string out = std::string(kind) + "-" + std::to_string(n) + "-";
  for (char c : name) out += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' ? c : '-';
  return out;
}

json purl_ref(const std::string& purl) {
  return json::array(
      {{{"referenceCategory", "PACKAGE-MANAGER"}, {"referenceType", "purl"}, {"referenceLocator", purl}}});
}

/// The last component of an image name without tag or digest, as an OCI purl
/// names it: "registry.example/team/svc:v1" is "svc".
std::string image_short_name(const std::string& name) {
  std::string last = name.substr(name.rfind('/') + 1);
  return last.substr(0, last.find_first_of(":@"));
}

/// An SPDX document's namespace: unique per image, and the same for the same
/// image on any machine.
std::string spdx_namespace(const std::string& short_name, const Digest& manifest) {
  return "https://imgbuild.dev/spdx/" + purl_part(short_name) + "/sha256-" + std::string(manifest.hex());
}

/// An SPDX document's creators: the tool that wrote it.
json spdx_creators(const std::string& tool) { return json::array({"Tool: " + tool}); }

/// A Go `h1:` sum is the base64 of a SHA-256: as SPDX's hex checksum.
std::optional<std::string> h1_sha256(const std::string& sum) {
  if (sum.rfind("h1:", 0) != 0) return std::nullopt;
  std::optional<std::string> raw = base64_decode(std::string_view(sum).substr(3));
  if (!raw || raw->size() != 32) return std::nullopt;
  return to_hex({reinterpret_cast<const unsigned char*>(raw->data()), raw->size()});
}

/// A document as bytes: sorted keys, no whitespace. Paths and package fields
/// are bytes; JSON wants UTF-8: invalid sequences become U+FFFD, the same way
/// on every machine.
std::string canonical(const json& doc) { return doc.dump(-1, ' ', false, json::error_handler_t::replace); }

/// "imgbuild-1.2.3" as a tool's name and version.
std::pair<std::string, std::string> split_tool(const std::string& tool) {
  size_t dash = tool.find('-');
  return {tool.substr(0, dash), dash == std::string::npos ? "" : tool.substr(dash + 1)};
}

/// A name-based (version 5, SHA-1) UUID of `name` in RFC 4122's URL namespace:
/// the same name, the same UUID.
std::string name_uuid(const std::string& name) {
  static constexpr unsigned char kUrlNamespace[16] = {0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1,
                                                      0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};
  Hasher sha1("sha1");
  sha1.update(kUrlNamespace, sizeof kUrlNamespace);
  sha1.update(name);
  std::string hex = sha1.finish_hex().substr(0, 32);
  hex[12] = '5';                                                    // version 5
  hex[16] = "89ab"[std::stoi(hex.substr(16, 1), nullptr, 16) & 3];  // the RFC 4122 variant
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
         hex.substr(20);
}

/// What a stream of one file gave: its checksums when the recipe added it,
/// its Go build info when it is a Go program.
struct FileFacts {
  std::string sha1, sha256;
  std::optional<GoBuildInfo> go;
};

/// Hashes the files the recipe added and reads the Go build info of the
/// executables that are ELF files, as the image's files stream past: it is
/// handed `streamed` (indexes into hash and exec) and gives facts by index.
class FileReader : public ImageTree::ContentSink {
public:
  FileReader(const std::vector<bool>& hash, const std::vector<bool>& exec)
      : hash_(hash), exec_(exec), facts_(hash.size()) {
    for (size_t i = 0; i < hash.size(); ++i)
      if (hash[i] || exec[i]) streamed_.push_back(i);
  }
  /// The files to stream, by their index in hash and exec.
  const std::vector<size_t>& streamed() const { return streamed_; }

  void begin(size_t k, uint64_t size) override {
    active_.erase(streamed_[k]);
    active_.try_emplace(streamed_[k], size);
  }
  void chunk(size_t k, std::string_view data) override {
    const size_t i = streamed_[k];
    Active& a = active_.at(i);
    if (hash_[i]) {
      a.sha1.update(data);
      a.sha256.update(data);
    }
    if (exec_[i]) a.program.add(data);
  }
  void end(size_t k) override {
    const size_t i = streamed_[k];
    Active& a = active_.at(i);
    FileFacts& f = facts_[i];
    if (hash_[i]) {
      f.sha1 = a.sha1.finish_hex();
      f.sha256 = std::string(a.sha256.finish().hex());
    }
    f.go.reset();
    try {
      if (std::optional<ElfInfo> info = a.program.inspect()) f.go = std::move(info->go);
    } catch (const std::runtime_error&) {
      // A malformed program is the doctor's to report; the SBOM lists what it can read.
    }
    active_.erase(i);
  }
  std::vector<FileFacts> take() { return std::move(facts_); }

private:
  struct Active {
    explicit Active(uint64_t size) : program(size) {}
    Hasher sha1{"sha1"};
    Sha256 sha256;
    ElfCandidate program;
  };
  const std::vector<bool>& hash_;
  const std::vector<bool>& exec_;
  std::vector<FileFacts> facts_;
  std::vector<size_t> streamed_;
  std::map<size_t, Active> active_;  ///< the files being streamed: one, or a member's several names
};

/// The distribution an image says it is (`/etc/os-release`): ID and VERSION_ID.
std::pair<std::string, std::string> os_release(const ImageTree& tree) {
  for (const char* path : {"/etc/os-release", "/usr/lib/os-release"}) {
    auto r = tree.resolve(path);
    if (!r || !r->file || r->file->type != LayerEntry::Type::File) continue;
    std::string id, version;
    for_each_line(tree.contents(*r->file, 64 << 10), [&](std::string_view line) {
      auto eq = line.find('=');
      if (eq == std::string_view::npos) return;
      std::string_view key = line.substr(0, eq), value = line.substr(eq + 1);
      if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front())
        value = value.substr(1, value.size() - 2);
      if (key == "ID") id = value;
      if (key == "VERSION_ID") version = value;
    });
    return {id, version};
  }
  return {};
}

/// The text of a regular file of the image, or "" when there is none.
std::string file_text(const ImageTree& tree, const std::string& path, size_t max) {
  auto r = tree.resolve(path);
  return r && r->file && r->file->type == LayerEntry::Type::File ? tree.contents(*r->file, max) : "";
}

}  // namespace

std::vector<OsPackage> parse_apk_installed(std::string_view text) {
  std::vector<OsPackage> out;
  OsPackage p;
  auto flush = [&] {
    if (!p.name.empty()) out.push_back(std::move(p));
    p = {};
  };
  for_each_line(text, [&](std::string_view line) {
    if (line.empty()) return flush();
    if (line.size() < 2 || line[1] != ':') return;
    std::string value(line.substr(2));
    switch (line[0]) {
      case 'P':
        p.name = value;
        break;
      case 'V':
        p.version = value;
        break;
      case 'A':
        p.architecture = value;
        break;
      case 'L':
        p.license = value;
        break;
      case 'o':
        p.source = value;
        break;
      default:
        break;
    }
  });
  flush();
  for (OsPackage& q : out)
    if (q.source == q.name) q.source.clear();
  return out;
}

std::vector<OsPackage> parse_dpkg_status(std::string_view text) {
  std::vector<OsPackage> out;
  OsPackage p;
  bool installed = false;
  auto flush = [&] {
    if (!p.name.empty() && installed) out.push_back(std::move(p));
    p = {};
    installed = false;
  };
  for_each_line(text, [&](std::string_view line) {
    if (line.empty()) return flush();
    if (line.front() == ' ' || line.front() == '\t') return;  // a field's continuation
    auto colon = line.find(':');
    if (colon == std::string_view::npos) return;
    std::string_view key = line.substr(0, colon), value = line.substr(colon + 1);
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    if (key == "Package") p.name = value;
    if (key == "Version") p.version = value;
    if (key == "Architecture") p.architecture = value;
    if (key == "Source") p.source = value.substr(0, value.find(' '));  // "name (version)"
    // "want flag status": only "installed" means the files are there.
    if (key == "Status") installed = value.size() >= 10 && value.substr(value.size() - 10) == " installed";
  });
  flush();
  return out;
}

Sbom gather_sbom(const SbomSubject& s) {
  const ImageTree& tree = s.tree;
  std::vector<ImageTree::Resolved> files = tree.files_in("/", true);
  std::vector<bool> hash(files.size()), exec(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    const ImageTree::File& f = *files[i].file;
    hash[i] = f.layer >= s.base_layers;
    exec[i] = (f.mode & 0111) != 0;
  }
  // One pass over each layer that holds a file to hash or a possible program.
  FileReader reader(hash, exec);
  std::vector<const ImageTree::File*> streamed;
  for (size_t i : reader.streamed()) streamed.push_back(files[i].file);
  tree.stream_contents(streamed, reader);
  std::vector<FileFacts> facts = reader.take();

  Sbom sbom{.name = s.name,
            .manifest = s.manifest,
            .created = s.created,
            .architecture = s.architecture,
            .tool = s.tool,
            .short_name = image_short_name(s.name),
            .base_name = s.base_name,
            .base_digest = s.base_digest};
  const std::string manifest_hex(s.manifest.hex());
  sbom.purl =
      "pkg:oci/" + purl_part(sbom.short_name) + "@sha256%3A" + manifest_hex + "?arch=" + purl_part(s.architecture);
  if (s.base_digest.rfind("sha256:", 0) == 0) {
    sbom.base_sha256 = s.base_digest.substr(7);
    sbom.base_purl = "pkg:oci/" + purl_part(image_short_name(s.base_name.empty() ? "base" : s.base_name)) +
                     "@sha256%3A" + sbom.base_sha256;
  }

  // Go programs, and the modules and toolchains they were built from, each
  // listed once however many programs share it.
  std::map<std::tuple<std::string, std::string, std::string>, size_t> module_index;
  std::map<std::string, size_t> toolchain_index;
  for (size_t i = 0; i < files.size(); ++i) {
    if (!facts[i].go) continue;
    SbomProgram program{.id = element_id("Go", facts[i].go->main_path, sbom.programs.size() + 1),
                        .path = files[i].path,
                        .go = std::move(*facts[i].go)};
    const GoBuildInfo& go = program.go;
    const GoModule& main = go.main_module;
    if (!main.path.empty())
      program.purl = "pkg:golang/" + purl_path(main.path) +
                     (main.version.empty() || main.version == "(devel)" ? "" : "@" + purl_part(main.version));
    program.sha256 = h1_sha256(main.sum).value_or("");
    if (!go.go_version.empty()) {
      auto [it, added] = toolchain_index.try_emplace(go.go_version, sbom.toolchains.size());
      if (added) {
        std::string version = go.go_version.rfind("go", 0) == 0 ? go.go_version.substr(2) : go.go_version;
        sbom.toolchains.push_back({element_id("GoStdlib", go.go_version, sbom.toolchains.size() + 1), go.go_version,
                                   "pkg:golang/stdlib@" + purl_part(version)});
      }
      program.toolchain = it->second;
    }
    for (const GoDependency& dep : go.deps) {
      const GoModule& used = dep.replacement ? *dep.replacement : dep.module;
      auto [it, added] =
          module_index.try_emplace(std::make_tuple(dep.module.path, used.path, used.version), sbom.modules.size());
      if (added) {
        SbomModule m{.id = element_id("GoModule", dep.module.path, sbom.modules.size() + 1), .dep = dep};
        if (!used.version.empty())  // empty: replaced by a folder of the build's own
          m.purl = "pkg:golang/" + purl_path(used.path) + "@" + purl_part(used.version);
        m.sha256 = h1_sha256(used.sum).value_or("");
        sbom.modules.push_back(std::move(m));
      }
      program.modules.push_back(it->second);
    }
    sbom.programs.push_back(std::move(program));
  }

  // Packages of the distribution the image holds, from its package databases.
  auto [distro, distro_version] = os_release(tree);
  std::vector<std::pair<std::string, OsPackage>> os_packages;  // type, package
  for (OsPackage& p : parse_apk_installed(file_text(tree, "/lib/apk/db/installed", size_t{64} << 20)))
    os_packages.emplace_back("apk", std::move(p));
  for (OsPackage& p : parse_dpkg_status(file_text(tree, "/var/lib/dpkg/status", size_t{64} << 20)))
    os_packages.emplace_back("deb", std::move(p));
  for (const ImageTree::Resolved& f : tree.files_in("/var/lib/dpkg/status.d", false))
    for (OsPackage& p : parse_dpkg_status(tree.contents(*f.file, size_t{1} << 20)))
      os_packages.emplace_back("deb", std::move(p));
  std::sort(os_packages.begin(), os_packages.end(), [](const auto& a, const auto& b) {
    return std::tie(a.first, a.second.name, a.second.version, a.second.architecture) <
           std::tie(b.first, b.second.name, b.second.version, b.second.architecture);
  });
  os_packages.erase(std::unique(os_packages.begin(), os_packages.end()), os_packages.end());
  const std::string ns = distro.empty() ? (os_packages.empty()                  ? ""
                                           : os_packages.front().first == "apk" ? "alpine"
                                                                                : "debian")
                                        : distro;
  for (auto& [type, p] : os_packages) {
    std::string purl = "pkg:" + type + "/" + purl_part(ns) + "/" + purl_part(p.name) + "@" + purl_part(p.version);
    std::string qualifiers;
    if (!p.architecture.empty()) qualifiers += "arch=" + purl_part(p.architecture);
    if (!distro_version.empty())
      qualifiers += (qualifiers.empty() ? "" : "&") + std::string("distro=") + purl_part(ns + "-" + distro_version);
    if (!qualifiers.empty()) purl += "?" + qualifiers;
    std::string id = element_id(type == "apk" ? "Apk" : "Deb", p.name, sbom.packages.size() + 1);
    sbom.packages.push_back({std::move(id), type, std::move(purl), std::move(p)});
  }

  // The files the recipe put in the image.
  for (size_t i = 0; i < files.size(); ++i)
    if (hash[i])
      sbom.files.push_back({element_id("File", files[i].path, sbom.files.size() + 1), files[i].path,
                            std::move(facts[i].sha1), std::move(facts[i].sha256)});
  return sbom;
}

std::string spdx_document(const Sbom& sbom) {
  auto spdx_ref = [](const std::string& id) { return "SPDXRef-" + id; };
  json packages = json::array(), spdx_files = json::array(), relationships = json::array();
  auto relate = [&](const std::string& from, const char* type, const std::string& to) {
    relationships.push_back({{"spdxElementId", from}, {"relationshipType", type}, {"relatedSpdxElement", to}});
  };
  const std::string image_id = "SPDXRef-Image";
  relate("SPDXRef-DOCUMENT", "DESCRIBES", image_id);
  packages.push_back({
      {"SPDXID", image_id},
      {"name", sbom.name},
      {"versionInfo", sbom.manifest.str()},
      {"downloadLocation", "NOASSERTION"},
      {"filesAnalyzed", false},
      {"primaryPackagePurpose", "CONTAINER"},
      {"checksums", json::array({{{"algorithm", "SHA256"}, {"checksumValue", std::string(sbom.manifest.hex())}}})},
      {"externalRefs", purl_ref(sbom.purl)},
  });

  if (!sbom.base_digest.empty()) {
    json pkg = {{"SPDXID", "SPDXRef-Base"},        {"name", sbom.base_name.empty() ? "base" : sbom.base_name},
                {"versionInfo", sbom.base_digest}, {"downloadLocation", "NOASSERTION"},
                {"filesAnalyzed", false},          {"primaryPackagePurpose", "CONTAINER"}};
    if (!sbom.base_sha256.empty()) {
      pkg["checksums"] = json::array({{{"algorithm", "SHA256"}, {"checksumValue", sbom.base_sha256}}});
      pkg["externalRefs"] = purl_ref(sbom.base_purl);
    }
    packages.push_back(std::move(pkg));
    relate(image_id, "DESCENDANT_OF", "SPDXRef-Base");
  }

  // Each toolchain and module right after the first program built from it.
  size_t toolchains_listed = 0, modules_listed = 0;
  for (const SbomProgram& program : sbom.programs) {
    const GoBuildInfo& go = program.go;
    const std::string id = spdx_ref(program.id);
    std::string settings;
    for (const auto& [k, v] : go.settings) settings += (settings.empty() ? "" : " ") + k + "=" + v;
    json pkg = {{"SPDXID", id},
                {"name", go.main_path},
                {"downloadLocation", "NOASSERTION"},
                {"filesAnalyzed", false},
                {"primaryPackagePurpose", "APPLICATION"},
                {"packageFileName", program.path},
                {"comment", "built by " + go.go_version + (settings.empty() ? "" : " with " + settings)}};
    if (!go.main_module.version.empty()) pkg["versionInfo"] = go.main_module.version;
    if (!program.purl.empty()) pkg["externalRefs"] = purl_ref(program.purl);
    if (!program.sha256.empty())
      pkg["checksums"] = json::array({{{"algorithm", "SHA256"}, {"checksumValue", program.sha256}}});
    packages.push_back(std::move(pkg));
    relate(image_id, "CONTAINS", id);

    if (program.toolchain) {
      const SbomToolchain& t = sbom.toolchains[*program.toolchain];
      if (*program.toolchain == toolchains_listed) {
        ++toolchains_listed;
        packages.push_back({{"SPDXID", spdx_ref(t.id)},
                            {"name", "stdlib"},
                            {"versionInfo", t.go_version},
                            {"downloadLocation", "NOASSERTION"},
                            {"filesAnalyzed", false},
                            {"externalRefs", purl_ref(t.purl)}});
      }
      relate(id, "DEPENDS_ON", spdx_ref(t.id));
    }
    for (size_t index : program.modules) {
      const SbomModule& module = sbom.modules[index];
      if (index == modules_listed) {
        ++modules_listed;
        const GoDependency& dep = module.dep;
        const GoModule& used = module.used();
        const bool local = used.version.empty();
        json m = {{"SPDXID", spdx_ref(module.id)},
                  {"name", dep.module.path},
                  {"downloadLocation", "NOASSERTION"},
                  {"filesAnalyzed", false}};
        if (!local) {
          m["versionInfo"] = used.version;
          m["externalRefs"] = purl_ref(module.purl);
        }
        if (!module.sha256.empty())
          m["checksums"] = json::array({{{"algorithm", "SHA256"}, {"checksumValue", module.sha256}}});
        if (dep.replacement)
          m["comment"] = "go.mod replaces " + dep.module.path + " " + dep.module.version + " with " + used.path +
                         (local ? "" : " " + used.version) + (used.sum.empty() ? "" : " (" + used.sum + ")");
        else if (!used.sum.empty())
          m["comment"] = "go.sum " + used.sum;
        packages.push_back(std::move(m));
      }
      relate(id, "DEPENDS_ON", spdx_ref(module.id));
    }
  }

  for (const SbomPackage& p : sbom.packages) {
    json pkg = {{"SPDXID", spdx_ref(p.id)},          {"name", p.package.name}, {"versionInfo", p.package.version},
                {"downloadLocation", "NOASSERTION"}, {"filesAnalyzed", false}, {"externalRefs", purl_ref(p.purl)}};
    if (!p.package.source.empty()) pkg["sourceInfo"] = "built from source package " + p.package.source;
    if (!p.package.license.empty()) {
      pkg["licenseDeclared"] = "NOASSERTION";
      pkg["licenseComments"] = p.type + " database: " + p.package.license;
    }
    packages.push_back(std::move(pkg));
    relate(image_id, "CONTAINS", spdx_ref(p.id));
  }

  for (const SbomFile& f : sbom.files) {
    spdx_files.push_back({{"SPDXID", spdx_ref(f.id)},
                          {"fileName", "." + f.path},
                          {"checksums", json::array({{{"algorithm", "SHA1"}, {"checksumValue", f.sha1}},
                                                     {{"algorithm", "SHA256"}, {"checksumValue", f.sha256}}})}});
    relate(image_id, "CONTAINS", spdx_ref(f.id));
  }

  json doc = {
      {"spdxVersion", "SPDX-2.3"},
      {"dataLicense", "CC0-1.0"},
      {"SPDXID", "SPDXRef-DOCUMENT"},
      {"name", sbom.name},
      {"documentNamespace", spdx_namespace(sbom.short_name, sbom.manifest)},
      {"creationInfo", {{"created", sbom.created}, {"creators", spdx_creators(sbom.tool)}}},
      {"packages", std::move(packages)},
      {"relationships", std::move(relationships)},
  };
  if (!spdx_files.empty()) doc["files"] = std::move(spdx_files);
  return canonical(doc);
}

bool spdx_describes(std::string_view document, const std::string& name, const Digest& manifest,
                    const std::string& tool) {
  // Whatever a damaged document holds: null where it has no such member.
  auto member = [](const json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() ? *it : json();
  };
  const json doc = json::parse(document, nullptr, false);
  if (doc.is_discarded() || canonical(doc) != document) return false;
  const json packages = member(doc, "packages");
  // spdx_document() lists the image first.
  const json image = packages.is_array() && !packages.empty() ? packages.front() : json();
  return member(doc, "spdxVersion") == "SPDX-2.3" && member(doc, "name") == name &&
         member(doc, "documentNamespace") == spdx_namespace(image_short_name(name), manifest) &&
         member(member(doc, "creationInfo"), "creators") == spdx_creators(tool) &&
         member(image, "SPDXID") == "SPDXRef-Image" && member(image, "name") == name &&
         member(image, "versionInfo") == manifest.str();
}

std::string cyclonedx_document(const Sbom& sbom) {
  auto property = [](const std::string& name, const std::string& value) {
    return json{{"name", name}, {"value", value}};
  };
  auto sha256 = [](const std::string& hex) { return json{{"alg", "SHA-256"}, {"content", hex}}; };

  json image = {{"type", "container"}, {"bom-ref", "Image"},
                {"name", sbom.name},   {"version", sbom.manifest.str()},
                {"purl", sbom.purl},   {"hashes", json::array({sha256(std::string(sbom.manifest.hex()))})}};
  if (!sbom.base_digest.empty()) {
    json base = {{"type", "container"},
                 {"bom-ref", "Base"},
                 {"name", sbom.base_name.empty() ? "base" : sbom.base_name},
                 {"version", sbom.base_digest}};
    if (!sbom.base_sha256.empty()) {
      base["hashes"] = json::array({sha256(sbom.base_sha256)});
      base["purl"] = sbom.base_purl;
    }
    image["pedigree"] = {{"ancestors", json::array({std::move(base)})}};
  }

  json components = json::array(), dependencies = json::array();
  json contained = json::array();  // what the image holds, for its dependencies entry
  for (const SbomProgram& program : sbom.programs) {
    const GoBuildInfo& go = program.go;
    json properties = json::array();
    if (!go.go_version.empty()) properties.push_back(property("imgbuild:go:toolchain", go.go_version));
    // Go's environment settings under the CycloneDX taxonomy's names, its flags under ours.
    for (const auto& [k, v] : go.settings)
      properties.push_back(
          property((!k.empty() && std::isupper(static_cast<unsigned char>(k[0])) ? "cdx:gomod:build:env:"
                                                                                 : "imgbuild:go:build:") +
                       k,
                   v));
    json c = {{"type", "application"},
              {"bom-ref", program.id},
              {"name", go.main_path},
              {"evidence", {{"occurrences", json::array({{{"location", program.path}}})}}}};
    if (!go.main_module.version.empty()) c["version"] = go.main_module.version;
    if (!program.purl.empty()) c["purl"] = program.purl;
    if (!program.sha256.empty()) c["hashes"] = json::array({sha256(program.sha256)});
    if (!properties.empty()) c["properties"] = std::move(properties);
    components.push_back(std::move(c));
    contained.push_back(program.id);

    std::vector<std::string> uses;
    if (program.toolchain) uses.push_back(sbom.toolchains[*program.toolchain].id);
    for (size_t index : program.modules) uses.push_back(sbom.modules[index].id);
    std::sort(uses.begin(), uses.end());
    uses.erase(std::unique(uses.begin(), uses.end()), uses.end());
    dependencies.push_back({{"ref", program.id}, {"dependsOn", uses}});
  }
  for (const SbomToolchain& t : sbom.toolchains) {
    components.push_back(
        {{"type", "library"}, {"bom-ref", t.id}, {"name", "stdlib"}, {"version", t.go_version}, {"purl", t.purl}});
    dependencies.push_back({{"ref", t.id}, {"dependsOn", json::array()}});
  }
  for (const SbomModule& module : sbom.modules) {
    const GoModule& used = module.used();
    json c = {{"type", "library"}, {"bom-ref", module.id}, {"name", module.dep.module.path}};
    if (!used.version.empty()) c["version"] = used.version;
    if (!module.purl.empty()) c["purl"] = module.purl;
    if (!module.sha256.empty()) c["hashes"] = json::array({sha256(module.sha256)});
    json properties = json::array();
    if (!used.sum.empty()) properties.push_back(property("imgbuild:go:sum", used.sum));
    if (module.dep.replacement)
      properties.push_back(property("imgbuild:go:replaces", module.dep.module.path + " " + module.dep.module.version));
    if (!properties.empty()) c["properties"] = std::move(properties);
    components.push_back(std::move(c));
    dependencies.push_back({{"ref", module.id}, {"dependsOn", json::array()}});
  }
  for (const SbomPackage& p : sbom.packages) {
    json c = {{"type", "library"},
              {"bom-ref", p.id},
              {"name", p.package.name},
              {"version", p.package.version},
              {"purl", p.purl}};
    // The database's own words: apk's are SPDX expressions mostly, not always.
    if (!p.package.license.empty()) c["licenses"] = json::array({{{"license", {{"name", p.package.license}}}}});
    if (!p.package.source.empty())
      c["properties"] = json::array({property("imgbuild:package:source", p.package.source)});
    components.push_back(std::move(c));
    contained.push_back(p.id);
  }
  for (const SbomFile& f : sbom.files) {
    components.push_back({{"type", "file"},
                          {"bom-ref", f.id},
                          {"name", f.path},
                          {"hashes", json::array({{{"alg", "SHA-1"}, {"content", f.sha1}}, sha256(f.sha256)})}});
    contained.push_back(f.id);
  }
  dependencies.insert(dependencies.begin(), json{{"ref", "Image"}, {"dependsOn", std::move(contained)}});

  const auto [tool_name, tool_version] = split_tool(sbom.tool);
  json metadata = {
      {"component", std::move(image)},
      {"tools",
       {{"components", json::array({{{"type", "application"}, {"name", tool_name}, {"version", tool_version}}})}}}};
  if (!sbom.created.empty()) metadata["timestamp"] = sbom.created;
  json doc = {
      {"$schema", "http://cyclonedx.org/schema/bom-1.6.schema.json"},
      {"bomFormat", "CycloneDX"},
      {"specVersion", "1.6"},
      // Unique per image, and the same for the same image on any machine.
      {"serialNumber", "urn:uuid:" + name_uuid("https://imgbuild.dev/cyclonedx/" + purl_part(sbom.short_name) +
                                               "/sha256-" + std::string(sbom.manifest.hex()))},
      {"version", 1},
      {"metadata", std::move(metadata)},
      {"components", std::move(components)},
      {"dependencies", std::move(dependencies)},
  };
  return canonical(doc);
}

}  // namespace imgbuild
