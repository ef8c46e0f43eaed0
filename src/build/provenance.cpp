#include "build/provenance.hpp"

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "store/image_records.hpp"

namespace imgbuild {

using json = nlohmann::json;

namespace {

/// The URI an SLSA resource descriptor names a git checkout's origin by
/// ("git+https://host/repo.git"), without any user or password the remote's
/// URL holds; "" for a remote on this machine (a path names nothing elsewhere).
std::string git_uri(std::string remote) {
  if (remote.empty()) return "";
  size_t scheme = remote.find("://");
  if (scheme == std::string::npos) {
    // scp-like "user@host:path" is ssh; a bare path is local.
    size_t colon = remote.find(':');
    if (colon == std::string::npos || remote.find('/') < colon) return "";
    size_t at = remote.rfind('@', colon);
    std::string host =
        remote.substr(at == std::string::npos ? 0 : at + 1, colon - (at == std::string::npos ? 0 : at + 1));
    return "git+ssh://" + host + "/" + remote.substr(colon + 1);
  }
  std::string protocol = remote.substr(0, scheme);
  if (protocol == "file" || protocol == "git+file") return "";
  size_t authority = scheme + 3;
  size_t path = remote.find('/', authority);
  size_t at = remote.rfind('@', path == std::string::npos ? std::string::npos : path);
  if (at != std::string::npos && at >= authority) remote.erase(authority, at + 1 - authority);
  return protocol.rfind("git+", 0) == 0 ? remote : "git+" + remote;
}

}  // namespace

bool secret_parameter(const std::string& name) {
  std::string lower(name);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  for (const char* word : {"secret", "token", "password", "passwd", "credential", "key", "auth"})
    if (lower.find(word) != std::string::npos) return true;
  return false;
}

std::string provenance_json(const ProvenanceFacts& image) {
  const BuildFacts& f = image.build;
  json parameters = json::object();
  for (const auto& [name, value] : f.parameters) parameters[name] = secret_parameter(name) ? "<redacted>" : value;

  json dependencies = json::array();
  if (f.checkout) {
    json git = {{"name", "context"}, {"digest", {{"gitCommit", f.checkout->revision}}}};
    if (std::string uri = git_uri(f.checkout->remote); !uri.empty()) git["uri"] = uri;
    dependencies.push_back(std::move(git));
  }
  for (const BuildInput& input : image.images) {
    json d = {{"name", input.reference}, {"uri", "docker://" + input.reference}};
    if (size_t colon = input.digest.find(':'); colon != std::string::npos)
      d["digest"] = {{input.digest.substr(0, colon), input.digest.substr(colon + 1)}};
    dependencies.push_back(std::move(d));
  }
  for (const std::string& ref : f.cache_from)
    dependencies.push_back({{"name", "cache-from"}, {"uri", "docker://" + ref}});

  json statement = {
      {"_type", kInTotoStatementType},
      {"subject", json::array({{{"name", image.name}, {"digest", {{"sha256", std::string(image.manifest.hex())}}}}})},
      {"predicateType", kSlsaProvenanceType},
      {"predicate",
       {{"buildDefinition",
         {{"buildType", "https://imgbuild.dev/provenance/recipe/v1"},
          {"externalParameters",
           {{"recipe", {{"path", f.recipe}, {"digest", {{"sha256", std::string(f.recipe_digest.hex())}}}}},
            {"targets", f.targets},
            {"parameters", std::move(parameters)},
            {"platform", image.platform}}},
          {"resolvedDependencies", std::move(dependencies)}}},
        {"runDetails",
         {{"builder", {{"id", "https://imgbuild.dev/builder/v1"}, {"version", {{"imgbuild", f.version}}}}}}}}},
  };
  return statement.dump(-1, ' ', false, json::error_handler_t::replace);
}

std::filesystem::path provenance_path(const std::filesystem::path& store_root, const Digest& manifest) {
  return image_record_path(store_root, ImageRecord::Provenance, manifest);
}

}  // namespace imgbuild
