#include "oci/image.hpp"

#include <sys/utsname.h>

#include <ctime>
#include <stdexcept>

namespace imgbuild {

using json = nlohmann::json;

json Descriptor::to_json() const {
  json j = {{"mediaType", media_type}, {"digest", digest.str()}, {"size", size}};
  if (!annotations.empty()) j["annotations"] = annotations;
  if (platform) {
    j["platform"] = {{"os", platform->os}, {"architecture", platform->architecture}};
    if (!platform->variant.empty()) j["platform"]["variant"] = platform->variant;
  }
  return j;
}

Descriptor Descriptor::from_json(const json& j) {
  if (!j.is_object()) throw std::runtime_error("descriptor is not an object");
  auto field = [&](const char* name) -> const json& {
    auto it = j.find(name);
    if (it == j.end()) throw std::runtime_error(std::string("descriptor has no ") + name);
    return *it;
  };
  const json& mt = field("mediaType");
  const json& size = field("size");
  if (!mt.is_string()) throw std::runtime_error("descriptor mediaType is not a string");
  if (!size.is_number_unsigned()) throw std::runtime_error("descriptor size is not a non-negative integer");
  const json& digest = field("digest");
  if (!digest.is_string()) throw std::runtime_error("descriptor digest is not a string");
  Descriptor d{
      MediaType::parse(mt.get<std::string>()), Digest::parse(digest.get<std::string>()), size.get<uint64_t>(), {}};
  if (auto it = j.find("annotations"); it != j.end() && it->is_object())
    for (auto& [k, v] : it->items())
      if (v.is_string()) d.annotations[k] = v.get<std::string>();
  if (auto it = j.find("platform"); it != j.end() && it->is_object()) {
    auto text = [&](const char* key) {
      auto v = it->find(key);
      return v != it->end() && v->is_string() ? v->get<std::string>() : std::string();
    };
    d.platform = Platform{text("os"), text("architecture"), text("variant")};
  }
  return d;
}

Platform Platform::host() {
  struct utsname u {};
  ::uname(&u);
  std::string m = u.machine;
  Platform p;
  if (m == "x86_64")
    p.architecture = "amd64";
  else if (m == "aarch64" || m == "arm64")
    p.architecture = "arm64";
  else if (m.starts_with("armv7")) {
    p.architecture = "arm";
    p.variant = "v7";
  } else if (m.starts_with("armv6")) {
    p.architecture = "arm";
    p.variant = "v6";
  } else if (m == "i386" || m == "i686")
    p.architecture = "386";
  else if (m == "ppc64le" || m == "s390x" || m == "riscv64")
    p.architecture = m;
  else
    p.architecture = m;
  return p;
}

Platform Platform::parse(const std::string& text) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (;;) {
    size_t slash = text.find('/', start);
    parts.push_back(text.substr(start, slash - start));
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  bool ok = (parts.size() == 2 || parts.size() == 3);
  for (auto& p : parts) ok = ok && !p.empty();
  if (!ok) throw std::runtime_error("invalid platform '" + text + "' (expected os/arch[/variant], e.g. linux/arm64)");
  Platform p{parts[0], parts[1], parts.size() == 3 ? parts[2] : ""};
  return p;
}

std::string Platform::str() const { return os + "/" + architecture + (variant.empty() ? "" : "/" + variant); }

void RuntimeConfig::set_env(const std::string& name, const std::string& value) {
  std::string entry = name + "=" + value;
  for (auto& e : env)
    if (e.compare(0, name.size() + 1, name + "=") == 0) {
      e = entry;
      return;
    }
  env.push_back(entry);
}

std::optional<std::string> RuntimeConfig::get_env(const std::string& name) const {
  for (auto& e : env)
    if (e.compare(0, name.size() + 1, name + "=") == 0) return e.substr(name.size() + 1);
  return std::nullopt;
}

void to_json(json& j, const HealthConfig& check) {
  j = {{"Test", check.test}};
  if (check.interval) j["Interval"] = check.interval;
  if (check.timeout) j["Timeout"] = check.timeout;
  if (check.start_period) j["StartPeriod"] = check.start_period;
  if (check.retries) j["Retries"] = check.retries;
}

std::string rfc3339(int64_t seconds) {
  time_t t = static_cast<time_t>(seconds);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {
json string_set(const std::set<std::string>& s) {
  json j = json::object();
  for (auto& k : s) j[k] = json::object();
  return j;
}
}  // namespace

void check_document_size(const std::string& what, uint64_t size) {
  if (size <= kMaxDocumentSize) return;
  throw DocumentTooLarge(what + " is too large: " + std::to_string(size) + " bytes, over the limit of " +
                         std::to_string(kMaxDocumentSize) + " bytes (" + std::to_string(kMaxDocumentSize >> 20) +
                         " MiB) on an image document");
}

std::string Image::config_document() const {
  json cfg = inherited_config;
  if (!config.env.empty()) cfg["Env"] = config.env;
  if (config.entrypoint) cfg["Entrypoint"] = *config.entrypoint;
  if (config.cmd) cfg["Cmd"] = *config.cmd;
  if (!config.workdir.empty()) cfg["WorkingDir"] = config.workdir;
  if (!config.user.empty()) cfg["User"] = config.user;
  if (!config.stop_signal.empty()) cfg["StopSignal"] = config.stop_signal;
  if (!config.exposed_ports.empty()) cfg["ExposedPorts"] = string_set(config.exposed_ports);
  if (!config.volumes.empty()) cfg["Volumes"] = string_set(config.volumes);
  if (!config.labels.empty()) cfg["Labels"] = config.labels;
  if (config.healthcheck) cfg["Healthcheck"] = *config.healthcheck;

  json diff_ids = json::array();
  for (auto& l : layers) diff_ids.push_back(l.diff_id.str());
  json hist = json::array();
  const std::string built_at = rfc3339(created);
  for (auto& h : history) {
    json e = {{"created", h.created.empty() ? built_at : h.created}};
    if (!h.created_by.empty()) e["created_by"] = h.created_by;
    if (!h.author.empty()) e["author"] = h.author;
    if (!h.comment.empty()) e["comment"] = h.comment;
    if (h.empty_layer) e["empty_layer"] = true;
    hist.push_back(e);
  }
  json doc = {{"created", built_at},
              {"architecture", platform.architecture},
              {"os", platform.os},
              {"config", cfg},
              {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}},
              {"history", hist}};
  if (!platform.variant.empty()) doc["variant"] = platform.variant;
  return doc.dump();
}

std::map<std::string, std::string> built_annotations(const Image& image, const ImageOrigin& origin,
                                                     const std::map<std::string, std::string>& base_labels,
                                                     const std::map<std::string, std::string>& overrides) {
  std::map<std::string, std::string> out;
  out[kCreatedAnnotation] = rfc3339(image.created);
  for (auto [name, value] :
       {std::pair{kSourceAnnotation, &origin.source}, std::pair{kRevisionAnnotation, &origin.revision},
        std::pair{kVersionAnnotation, &origin.version}})
    if (!value->empty()) out[name] = *value;
  for (const char* name : {kBaseNameAnnotation, kBaseDigestAnnotation})
    if (auto it = image.annotations.find(name); it != image.annotations.end()) out[name] = it->second;
  for (const char* name : {kCreatedAnnotation, kSourceAnnotation, kRevisionAnnotation, kVersionAnnotation,
                           kBaseNameAnnotation, kBaseDigestAnnotation}) {
    auto label = image.config.labels.find(name);
    if (label == image.config.labels.end()) continue;
    // A base's own label (its version, its source) says nothing of this image.
    if (auto inherited = base_labels.find(name); inherited != base_labels.end() && inherited->second == label->second)
      continue;
    if (label->second.empty())
      out.erase(name);
    else
      out[name] = label->second;
  }
  for (const auto& [name, value] : overrides)
    if (value.empty())
      out.erase(name);
    else
      out[name] = value;
  return out;
}

std::map<std::string, std::string> index_annotations(const std::vector<std::map<std::string, std::string>>& images) {
  if (images.empty()) return {};
  std::map<std::string, std::string> out = images.front();
  for (const auto& image : images)
    std::erase_if(out, [&](const auto& entry) {
      auto it = image.find(entry.first);
      return it == image.end() || it->second != entry.second;
    });
  return out;
}

std::string Image::manifest_document(const Descriptor& cfg) const {
  json layer_list = json::array();
  for (auto& l : layers) layer_list.push_back(Descriptor{l.media_type, l.digest, l.size, {}}.to_json());
  json doc = {
      {"schemaVersion", 2}, {"mediaType", media_type::kManifest}, {"config", cfg.to_json()}, {"layers", layer_list}};
  if (!annotations.empty()) doc["annotations"] = annotations;
  return doc.dump();
}

namespace {

std::vector<std::string> string_list(const json& j, const char* what) {
  std::vector<std::string> out;
  if (j.is_null()) return out;
  if (!j.is_array()) throw std::runtime_error(std::string("config ") + what + " is not a list");
  for (auto& v : j) {
    if (!v.is_string()) throw std::runtime_error(std::string("config ") + what + " has a non-string entry");
    out.push_back(v.get<std::string>());
  }
  return out;
}

std::set<std::string> key_set(const json& j, const char* what) {
  std::set<std::string> out;
  if (j.is_null()) return out;
  if (!j.is_object()) throw std::runtime_error(std::string("config ") + what + " is not an object");
  for (auto& [k, v] : j.items()) out.insert(k);
  return out;
}

std::string string_field(const json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return "";
  if (!it->is_string()) throw std::runtime_error(std::string("config field ") + name + " is not a string");
  return it->get<std::string>();
}

MediaType oci_layer_type(const MediaType& type) {
  if (type == media_type::kLayerGzip || type == media_type::kLayerTar || type == media_type::kLayerZstd) return type;
  if (type == media_type::kDockerLayerGzip) return media_type::kLayerGzip;
  throw std::runtime_error("unsupported layer type '" + type.str() + "'");
}

}  // namespace

Image image_from_documents(const json& manifest, const json& config) {
  if (!config.is_object()) throw std::runtime_error("the image config is not a JSON object");
  Image image;
  image.platform =
      Platform{string_field(config, "os"), string_field(config, "architecture"), string_field(config, "variant")};
  if (config.contains("config") && config["config"].is_object()) {
    json c = config["config"];
    RuntimeConfig& rc = image.config;
    rc.env = string_list(c.value("Env", json()), "Env");
    if (c.contains("Entrypoint") && !c["Entrypoint"].is_null())
      rc.entrypoint = string_list(c["Entrypoint"], "Entrypoint");
    if (c.contains("Cmd") && !c["Cmd"].is_null()) rc.cmd = string_list(c["Cmd"], "Cmd");
    rc.workdir = string_field(c, "WorkingDir");
    rc.user = string_field(c, "User");
    rc.stop_signal = string_field(c, "StopSignal");
    rc.exposed_ports = key_set(c.value("ExposedPorts", json()), "ExposedPorts");
    rc.volumes = key_set(c.value("Volumes", json()), "Volumes");
    if (c.contains("Labels") && c["Labels"].is_object())
      for (auto& [k, v] : c["Labels"].items())
        if (v.is_string()) rc.labels[k] = v.get<std::string>();
    for (const char* known :
         {"Env", "Entrypoint", "Cmd", "WorkingDir", "User", "StopSignal", "ExposedPorts", "Volumes", "Labels"})
      c.erase(known);
    // Docker writes empty values for every field it knows; only real ones carry on.
    for (auto it = c.begin(); it != c.end();)
      it = (it->is_null() || (it->is_string() && it->get<std::string>().empty()) || (it->is_boolean() && !*it))
               ? c.erase(it)
               : std::next(it);
    image.inherited_config = std::move(c);
  }
  if (config.contains("history") && config["history"].is_array())
    for (auto& h : config["history"]) {
      if (!h.is_object()) continue;
      image.history.push_back(
          HistoryEntry{string_field(h, "created_by"), h.value("empty_layer", json(false)) == json(true),
                       string_field(h, "created"), string_field(h, "author"), string_field(h, "comment")});
    }
  json diff_ids = json::array();
  if (auto rootfs = config.find("rootfs");
      rootfs != config.end() && rootfs->is_object() && rootfs->contains("diff_ids"))
    diff_ids = (*rootfs)["diff_ids"];
  if (!manifest.contains("layers") || !manifest["layers"].is_array())
    throw std::runtime_error("the manifest has no layer list");
  const json& layers = manifest["layers"];
  if (!diff_ids.is_array() || diff_ids.size() != layers.size())
    throw std::runtime_error("the config lists " + std::to_string(diff_ids.is_array() ? diff_ids.size() : 0) +
                             " layer diff IDs for " + std::to_string(layers.size()) + " layers");
  for (size_t i = 0; i < layers.size(); ++i) {
    Descriptor d = Descriptor::from_json(layers[i]);
    if (!diff_ids[i].is_string()) throw std::runtime_error("a layer diff ID is not a string");
    image.layers.push_back(
        LayerBlob{d.digest, d.size, Digest::parse(diff_ids[i].get<std::string>()), 0, oci_layer_type(d.media_type)});
  }
  return image;
}

uint64_t StoredImage::total_size() const {
  return manifest.size + manifest_json.at("config").at("size").get<uint64_t>() + layers_size();
}

uint64_t StoredImage::layers_size() const {
  uint64_t total = 0;
  for (auto& l : manifest_json.at("layers")) total += l.at("size").get<uint64_t>();
  return total;
}

}  // namespace imgbuild
