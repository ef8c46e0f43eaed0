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

/// SPDX identifiers allow letters, digits, '.' and '-' only.
std::string spdx_id(std::string_view kind, std::string_view name, size_t n) {
  std::string out = "SPDXRef-" + std::string(kind) + "-" + std::to_string(n) + "-";
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

/// A Go `h1:` sum is the base64 of a SHA-256: as SPDX's hex checksum.
std::optional<std::string> h1_sha256(const std::string& sum) {
  if (sum.rfind("h1:", 0) != 0) return std::nullopt;
  std::optional<std::string> raw = base64_decode(std::string_view(sum).substr(3));
  if (!raw || raw->size() != 32) return std::nullopt;
  return to_hex({reinterpret_cast<const unsigned char*>(raw->data()), raw->size()});
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

  void begin(size_t k) override {
    active_.erase(streamed_[k]);
    active_.try_emplace(streamed_[k]);
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

std::string spdx_document(const SbomSubject& s) {
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

  const std::string manifest_hex(s.manifest.hex());
  json packages = json::array(), spdx_files = json::array(), relationships = json::array();
  auto relate = [&](const std::string& from, const char* type, const std::string& to) {
    relationships.push_back({{"spdxElementId", from}, {"relationshipType", type}, {"relatedSpdxElement", to}});
  };
  const std::string image_id = "SPDXRef-Image";
  relate("SPDXRef-DOCUMENT", "DESCRIBES", image_id);
  const std::string short_name = image_short_name(s.name);
  packages.push_back({
      {"SPDXID", image_id},
      {"name", s.name},
      {"versionInfo", s.manifest.str()},
      {"downloadLocation", "NOASSERTION"},
      {"filesAnalyzed", false},
      {"primaryPackagePurpose", "CONTAINER"},
      {"checksums", json::array({{{"algorithm", "SHA256"}, {"checksumValue", manifest_hex}}})},
      {"externalRefs", purl_ref("pkg:oci/" + purl_part(short_name) + "@sha256%3A" + manifest_hex +
                                "?arch=" + purl_part(s.architecture))},
  });

  if (!s.base_digest.empty()) {
    const std::string base_name = s.base_name.empty() ? "base" : s.base_name;
    json pkg = {{"SPDXID", "SPDXRef-Base"},          {"name", base_name},      {"versionInfo", s.base_digest},
                {"downloadLocation", "NOASSERTION"}, {"filesAnalyzed", false}, {"primaryPackagePurpose", "CONTAINER"}};
    if (s.base_digest.rfind("sha256:", 0) == 0) {
      std::string hex = s.base_digest.substr(7);
      pkg["checksums"] = json::array({{{"algorithm", "SHA256"}, {"checksumValue", hex}}});
      pkg["externalRefs"] = purl_ref("pkg:oci/" + purl_part(image_short_name(base_name)) + "@sha256%3A" + hex);
    }
    packages.push_back(std::move(pkg));
    relate(image_id, "DESCENDANT_OF", "SPDXRef-Base");
  }

  // Go programs, and the modules and toolchains they were built from, each
  // listed once however many programs share it.
  std::map<std::tuple<std::string, std::string, std::string>, std::string> module_ids;
  std::map<std::string, std::string> stdlib_ids;
  size_t programs = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    if (!facts[i].go) continue;
    const GoBuildInfo& go = *facts[i].go;
    std::string id = spdx_id("Go", go.main_path, ++programs);
    std::string settings;
    for (const auto& [k, v] : go.settings) settings += (settings.empty() ? "" : " ") + k + "=" + v;
    const GoModule& main = go.main_module;
    json pkg = {{"SPDXID", id},
                {"name", go.main_path},
                {"downloadLocation", "NOASSERTION"},
                {"filesAnalyzed", false},
                {"primaryPackagePurpose", "APPLICATION"},
                {"packageFileName", files[i].path},
                {"comment", "built by " + go.go_version + (settings.empty() ? "" : " with " + settings)}};
    if (!main.version.empty()) pkg["versionInfo"] = main.version;
    if (!main.path.empty())
      pkg["externalRefs"] =
          purl_ref("pkg:golang/" + purl_path(main.path) +
                   (main.version.empty() || main.version == "(devel)" ? "" : "@" + purl_part(main.version)));
    if (auto hex = h1_sha256(main.sum))
      pkg["checksums"] = json::array({{{"algorithm", "SHA256"}, {"checksumValue", *hex}}});
    packages.push_back(std::move(pkg));
    relate(image_id, "CONTAINS", id);

    if (!go.go_version.empty()) {
      auto [it, added] =
          stdlib_ids.try_emplace(go.go_version, spdx_id("GoStdlib", go.go_version, stdlib_ids.size() + 1));
      if (added) {
        std::string version = go.go_version.rfind("go", 0) == 0 ? go.go_version.substr(2) : go.go_version;
        packages.push_back({{"SPDXID", it->second},
                            {"name", "stdlib"},
                            {"versionInfo", go.go_version},
                            {"downloadLocation", "NOASSERTION"},
                            {"filesAnalyzed", false},
                            {"externalRefs", purl_ref("pkg:golang/stdlib@" + purl_part(version))}});
      }
      relate(id, "DEPENDS_ON", it->second);
    }
    for (const GoDependency& dep : go.deps) {
      // What was built: the replacement when go.mod names one.
      const GoModule& used = dep.replacement ? *dep.replacement : dep.module;
      auto key = std::make_tuple(dep.module.path, used.path, used.version);
      auto [it, added] = module_ids.try_emplace(key, spdx_id("GoModule", dep.module.path, module_ids.size() + 1));
      if (added) {
        const bool local = used.version.empty();  // replaced by a folder of the build's own
        json m = {{"SPDXID", it->second},
                  {"name", dep.module.path},
                  {"downloadLocation", "NOASSERTION"},
                  {"filesAnalyzed", false}};
        if (!local) {
          m["versionInfo"] = used.version;
          m["externalRefs"] = purl_ref("pkg:golang/" + purl_path(used.path) + "@" + purl_part(used.version));
        }
        if (auto hex = h1_sha256(used.sum))
          m["checksums"] = json::array({{{"algorithm", "SHA256"}, {"checksumValue", *hex}}});
        if (dep.replacement)
          m["comment"] = "go.mod replaces " + dep.module.path + " " + dep.module.version + " with " + used.path +
                         (local ? "" : " " + used.version) + (used.sum.empty() ? "" : " (" + used.sum + ")");
        else if (!used.sum.empty())
          m["comment"] = "go.sum " + used.sum;
        packages.push_back(std::move(m));
      }
      relate(id, "DEPENDS_ON", it->second);
    }
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
  size_t n = 0;
  for (const auto& [type, p] : os_packages) {
    std::string id = spdx_id(type == "apk" ? "Apk" : "Deb", p.name, ++n);
    std::string purl = "pkg:" + type + "/" + purl_part(ns) + "/" + purl_part(p.name) + "@" + purl_part(p.version);
    std::string qualifiers;
    if (!p.architecture.empty()) qualifiers += "arch=" + purl_part(p.architecture);
    if (!distro_version.empty())
      qualifiers += (qualifiers.empty() ? "" : "&") + std::string("distro=") + purl_part(ns + "-" + distro_version);
    if (!qualifiers.empty()) purl += "?" + qualifiers;
    json pkg = {{"SPDXID", id},
                {"name", p.name},
                {"versionInfo", p.version},
                {"downloadLocation", "NOASSERTION"},
                {"filesAnalyzed", false},
                {"externalRefs", purl_ref(purl)}};
    if (!p.source.empty()) pkg["sourceInfo"] = "built from source package " + p.source;
    if (!p.license.empty()) {
      pkg["licenseDeclared"] = "NOASSERTION";
      pkg["licenseComments"] = type + " database: " + p.license;
    }
    packages.push_back(std::move(pkg));
    relate(image_id, "CONTAINS", id);
  }

  // The files the recipe put in the image.
  size_t file_count = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    if (!hash[i]) continue;
    std::string id = spdx_id("File", files[i].path, ++file_count);
    spdx_files.push_back({{"SPDXID", id},
                          {"fileName", "." + files[i].path},
                          {"checksums", json::array({{{"algorithm", "SHA1"}, {"checksumValue", facts[i].sha1}},
                                                     {{"algorithm", "SHA256"}, {"checksumValue", facts[i].sha256}}})}});
    relate(image_id, "CONTAINS", id);
  }

  json doc = {
      {"spdxVersion", "SPDX-2.3"},
      {"dataLicense", "CC0-1.0"},
      {"SPDXID", "SPDXRef-DOCUMENT"},
      {"name", s.name},
      // Unique per image, and the same for the same image on any machine.
      {"documentNamespace", "https://imgbuild.dev/spdx/" + purl_part(short_name) + "/sha256-" + manifest_hex},
      {"creationInfo", {{"created", s.created}, {"creators", json::array({"Tool: " + s.tool})}}},
      {"packages", std::move(packages)},
      {"relationships", std::move(relationships)},
  };
  if (!spdx_files.empty()) doc["files"] = std::move(spdx_files);
  // Paths and package fields are bytes; JSON wants UTF-8: invalid sequences
  // become U+FFFD, the same way on every machine.
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace imgbuild
