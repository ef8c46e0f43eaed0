#include "store/layout.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>

#include "base/fs.hpp"
#include "store/image_records.hpp"

namespace imgbuild {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {
constexpr const char* kLockName = ".imgbuild.lock";

fs::path xdg_dir(const char* var, const char* fallback) {
  const char* v = std::getenv(var);
  if (v && *v && fs::path(v).is_absolute()) return fs::path(v) / "imgbuild";
  const char* home = std::getenv("HOME");
  if (!home || !*home) throw std::runtime_error(std::string("neither $") + var + " nor $HOME is set");
  return fs::path(home) / fallback / "imgbuild";
}

std::string ref_name(const Descriptor& d) {
  auto it = d.annotations.find(kRefNameAnnotation);
  return it != d.annotations.end() ? it->second : std::string();
}

IndexEntry parse_entry(const json& m) {
  IndexEntry e;
  if (m.is_object())
    if (auto type = m.find("artifactType"); type != m.end() && type->is_string()) e.artifact_type = *type;
  if (m.is_object())
    if (auto ann = m.find("annotations"); ann != m.end() && ann->is_object())
      if (auto name = ann->find(kRefNameAnnotation); name != ann->end() && name->is_string()) e.name = *name;
  try {
    e.descriptor = Descriptor::from_json(m);
  } catch (const std::runtime_error& err) {
    e.problem = err.what();
  }
  return e;
}

/// The descriptor `j` is, or none: blobs_of skips what it cannot follow.
std::optional<Descriptor> descriptor_in(const json& j) {
  try {
    return Descriptor::from_json(j);
  } catch (const std::runtime_error&) {
    return std::nullopt;
  }
}
}  // namespace

fs::path default_store_dir() { return xdg_dir("XDG_DATA_HOME", ".local/share"); }
fs::path default_cache_dir() { return xdg_dir("XDG_CACHE_HOME", ".cache"); }

Layout::Layout(fs::path root) : root_(std::move(root)) {
  fs::create_directories(blob_dir());
  if (fs::exists(root_ / "oci-layout") && fs::exists(root_ / "index.json")) return;
  FileLock lock(root_ / kLockName);
  if (!fs::exists(root_ / "oci-layout")) write_file_atomic(root_ / "oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  if (!fs::exists(root_ / "index.json"))
    write_file_atomic(
        root_ / "index.json",
        json{{"schemaVersion", 2}, {"mediaType", media_type::kIndex}, {"manifests", json::array()}}.dump());
}

bool Layout::has_blob(const Digest& d) const {
  struct stat st {};
  return ::stat(blob_path(d).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

Descriptor Layout::put_document(const std::string& data, const MediaType& media_type) {
  check_document_size("the " + media_type.str() + " document", data.size());
  Digest d = sha256_of(data);
  if (!verify_blob(d, data.size())) {
    write_file_atomic(blob_path(d), data);
    note_verified(d);
  }
  return Descriptor{media_type, d, data.size(), {}};
}

std::string Layout::read_document(const Descriptor& d) const {
  check_document_size("the document " + d.digest.str(), d.size);
  std::string data = read_file(blob_path(d.digest));
  if (data.size() != d.size || sha256_of(data) != d.digest)
    throw std::runtime_error(root_.string() + ": blob " + d.digest.str() + " is corrupt (digest or size mismatch)");
  return data;
}

json Layout::read_index() const {
  fs::path p = root_ / "index.json";
  json idx = json::parse(read_file(p), nullptr, false);
  // A list that is there but is no list is damage, not an empty layout: the
  // next set_ref would write over every name it held.
  if (idx.is_discarded() || !idx.is_object() || (idx.contains("manifests") && !idx["manifests"].is_array()))
    throw std::runtime_error(p.string() +
                             ": not a valid index (a JSON object with a \"manifests\" list): the layout's list of "
                             "images is damaged; restore the file, or remove it to start with no images (the blobs "
                             "stay)");
  if (!idx.contains("manifests")) idx["manifests"] = json::array();
  return idx;
}

void Layout::set_ref(const std::string& name, Descriptor manifest) {
  manifest.annotations[kRefNameAnnotation] = name;
  FileLock lock(root_ / kLockName);
  json idx = read_index();
  const json named = manifest.to_json();
  json kept = json::array(), replaced = json::array();
  for (auto& m : idx["manifests"]) {
    IndexEntry entry = parse_entry(m);
    // A damaged entry of this name goes too: the new image is what the name means now.
    bool same_platform = !entry.descriptor || entry.descriptor->platform == manifest.platform;
    (entry.name == name && same_platform ? replaced : kept).push_back(m);
  }
  // Named so already: the file stays as it is (an output written again is
  // the same file, the artifacts listed after the image still after it).
  if (replaced == json::array({named})) return;
  kept.push_back(named);
  idx["manifests"] = kept;
  write_file_atomic(root_ / "index.json", idx.dump(2) + "\n");
}

std::vector<IndexEntry> Layout::entries() const {
  json index = read_index();
  std::vector<IndexEntry> out;
  for (auto& m : index["manifests"]) out.push_back(parse_entry(m));
  return out;
}

std::vector<Descriptor> Layout::refs() const {
  std::vector<Descriptor> out;
  for (auto& e : entries())
    if (e.descriptor && e.artifact_type.empty()) out.push_back(std::move(*e.descriptor));
  return out;
}

std::optional<Digest> Layout::subject_of(const Descriptor& d) const {
  if (!d.media_type.is_manifest() || !has_blob(d.digest)) return std::nullopt;
  try {
    json doc = json::parse(read_document(d), nullptr, false);
    if (auto subject = doc.is_object() ? doc.find("subject") : doc.end(); subject != doc.end())
      if (auto described = descriptor_in(*subject)) return described->digest;
  } catch (const std::runtime_error&) {
    // damaged: about nothing that can be known
  }
  return std::nullopt;
}

void Layout::add_artifacts(const std::vector<json>& entries) {
  FileLock lock(root_ / kLockName);
  json idx = read_index();
  // What an artifact can be about: the images named, the manifests they list, and the artifacts.
  std::set<Digest> present;
  for (auto& m : idx["manifests"]) {
    IndexEntry entry = parse_entry(m);
    if (!entry.descriptor) continue;
    if (entry.artifact_type.empty())
      present.merge(blobs_of(*entry.descriptor));
    else
      present.insert(entry.descriptor->digest);
  }
  for (auto& e : entries) present.insert(Descriptor::from_json(e).digest);
  json kept = json::array();
  std::set<Digest> listed;
  for (auto& m : idx["manifests"]) {
    IndexEntry entry = parse_entry(m);
    if (entry.descriptor && !entry.artifact_type.empty())
      if (std::optional<Digest> subject = subject_of(*entry.descriptor); subject && !present.count(*subject)) continue;
    if (entry.descriptor) listed.insert(entry.descriptor->digest);
    kept.push_back(m);
  }
  for (auto& e : entries)
    if (listed.insert(Descriptor::from_json(e).digest).second) kept.push_back(e);
  if (kept == idx["manifests"]) return;
  idx["manifests"] = kept;
  write_file_atomic(root_ / "index.json", idx.dump(2) + "\n");
}

std::vector<IndexEntry> Layout::remove_entries(const std::function<bool(const IndexEntry&)>& remove) {
  FileLock lock(root_ / kLockName);
  json idx = read_index();
  json kept = json::array();
  std::vector<IndexEntry> removed;
  for (auto& m : idx["manifests"]) {
    IndexEntry entry = parse_entry(m);
    if (remove(entry))
      removed.push_back(std::move(entry));
    else
      kept.push_back(m);
  }
  if (removed.empty()) return removed;
  idx["manifests"] = kept;
  write_file_atomic(root_ / "index.json", idx.dump(2) + "\n");
  return removed;
}

std::optional<Descriptor> Layout::find_ref(const std::string& name, const std::optional<Platform>& platform) const {
  for (auto& d : refs()) {
    auto it = d.annotations.find(kRefNameAnnotation);
    if (it != d.annotations.end() && it->second == name && d.platform == platform) return d;
  }
  return std::nullopt;
}

StoredImage Layout::load(const Descriptor& manifest) const {
  auto document = [&](const Descriptor& d) {
    json doc = json::parse(read_document(d), nullptr, false);
    if (!doc.is_object())
      throw std::runtime_error(root_.string() + ": blob " + d.digest.str() + " is not a JSON object");
    return doc;
  };
  std::string name = ref_name(manifest);
  try {
    if (!manifest.media_type.is_manifest())
      throw std::runtime_error("its index entry's media type is " + manifest.media_type.str() +
                               ", not an image manifest's");
    StoredImage img{manifest, document(manifest), {}};
    auto config = img.manifest_json.find("config");
    if (config == img.manifest_json.end())
      throw std::runtime_error(root_.string() + ": manifest " + manifest.digest.str() + " has no config");
    img.config_json = document(Descriptor::from_json(*config));
    try {
      img.total_size();
    } catch (const json::exception&) {
      throw std::runtime_error(root_.string() + ": manifest " + manifest.digest.str() +
                               " lists a config or layer without a size");
    }
    return img;
  } catch (const std::runtime_error& e) {
    throw DamagedImage(name, (name.empty() ? "the unnamed image " + manifest.digest.str() : "image '" + name + "'") +
                                 " is damaged: " + e.what());
  }
}

std::set<Digest> Layout::blobs_of(const Descriptor& top) const {
  std::set<Digest> out;
  std::vector<Descriptor> pending{top};
  while (!pending.empty()) {
    Descriptor d = pending.back();
    pending.pop_back();
    if (!out.insert(d.digest).second || !has_blob(d.digest)) continue;
    json doc;
    try {
      doc = json::parse(read_document(d), nullptr, false);
    } catch (const std::runtime_error&) {
      continue;  // damaged: what it needed cannot be known, and it cannot be used
    }
    if (!doc.is_object()) continue;
    // An index's manifests are read in turn; a manifest's config and layers are leaves.
    if (auto it = doc.find("manifests"); it != doc.end() && it->is_array())
      for (auto& item : *it)
        if (auto m = descriptor_in(item)) pending.push_back(*m);
    if (auto it = doc.find("layers"); it != doc.end() && it->is_array())
      for (auto& item : *it)
        if (auto layer = descriptor_in(item)) out.insert(layer->digest);
    if (auto config = doc.find("config"); config != doc.end())
      if (auto c = descriptor_in(*config)) out.insert(c->digest);
  }
  return out;
}

std::set<Digest> Layout::live_blobs() const {
  std::set<Digest> live;
  for (auto& e : entries())
    if (e.descriptor) live.merge(blobs_of(*e.descriptor));
  return live;
}

std::pair<size_t, uint64_t> Layout::remove_unused(const std::set<Digest>& candidates,
                                                  const std::set<Digest>& keep) const {
  std::set<Digest> live = live_blobs();
  drop_image_records(root_, live);
  size_t removed = 0;
  uint64_t bytes = 0;
  for (auto& d : candidates) {
    if (live.count(d) || keep.count(d)) continue;
    struct stat st {};
    if (::lstat(blob_path(d).c_str(), &st) != 0) continue;
    std::error_code ec;
    if (fs::remove(blob_path(d), ec)) {
      ++removed;
      bytes += S_ISREG(st.st_mode) ? static_cast<uint64_t>(st.st_size) : 0;
    }
  }
  return {removed, bytes};
}

std::pair<size_t, uint64_t> Layout::collect_garbage(const std::set<Digest>& keep) const {
  std::set<Digest> live = live_blobs();
  live.insert(keep.begin(), keep.end());
  drop_image_records(root_, live);
  size_t removed = 0;
  uint64_t bytes = 0;
  for (auto& f : fs::directory_iterator(blob_dir())) {
    std::string name = f.path().filename().string();
    if (name.size() == 64) try {
        if (live.count(Digest::parse("sha256:" + name))) continue;
      } catch (const std::runtime_error&) {
        // not a blob name: a stray file, removed below
      }
    std::error_code ec;
    uint64_t size = f.is_regular_file(ec) ? f.file_size(ec) : 0;
    if (fs::remove(f.path(), ec)) {
      ++removed;
      bytes += size;
    }
  }
  // Records of what was verified go with their blobs.
  std::error_code ec;
  for (auto& f : fs::directory_iterator(record_dir(), ec)) {
    std::string name = f.path().stem().string();
    if (name.size() == 64) try {
        if (live.count(Digest::parse("sha256:" + name)) && has_blob(Digest::parse("sha256:" + name))) continue;
      } catch (const std::runtime_error&) {
        // not a record's name: removed below
      }
    fs::remove(f.path(), ec);
  }
  return {removed, bytes};
}

namespace {

/// Puts the blob `from` at `to`, replacing what stands there: a hard link
/// where possible (shared bytes), a copy through a temporary otherwise.
void place_blob(const fs::path& from, const fs::path& to) {
  fs::path temp = to;
  temp += ".link-" + std::to_string(::getpid());
  std::error_code ec;
  fs::remove(temp, ec);
  if (::link(from.c_str(), temp.c_str()) == 0) {
    fs::rename(temp, to);
    return;
  }
  AtomicFile out(to);
  Fd in = open_read(from);
  char buf[1 << 16];
  for (;;) {
    ssize_t n = ::read(in.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(from.string());
    if (n == 0) break;
    out.write(std::string_view(buf, static_cast<size_t>(n)));
  }
  out.commit();
}

}  // namespace

Descriptor Layout::put_index(const std::vector<Descriptor>& manifests,
                             const std::map<std::string, std::string>& annotations) {
  json index = {{"schemaVersion", 2}, {"mediaType", media_type::kIndex.str()}, {"manifests", json::array()}};
  for (auto& m : manifests) index["manifests"].push_back(m.to_json());
  if (!annotations.empty()) index["annotations"] = annotations;
  return put_document(index.dump(), media_type::kIndex);
}

std::vector<Descriptor> Layout::index_manifests(const Descriptor& index) const {
  std::string name = ref_name(index);
  try {
    json doc = json::parse(read_document(index), nullptr, false);
    auto list = doc.is_object() ? doc.find("manifests") : doc.end();
    if (list == doc.end() || !list->is_array())
      throw std::runtime_error(root_.string() + ": index " + index.digest.str() + " lists no manifests");
    std::vector<Descriptor> out;
    for (auto& item : *list) out.push_back(Descriptor::from_json(item));
    return out;
  } catch (const std::runtime_error& e) {
    throw DamagedImage(
        name, (name.empty() ? "the unnamed index " + index.digest.str() : "image '" + name + "'") + ": " + e.what());
  }
}

void Layout::import_image(const Layout& src, const Descriptor& top, const std::string& name) {
  std::vector<Descriptor> blobs, manifests{top};
  if (top.media_type.is_index()) {
    blobs.push_back(top);
    manifests = src.index_manifests(top);
  }
  for (auto& manifest : manifests) {
    StoredImage img = src.load(manifest);
    blobs.push_back(manifest);
    blobs.push_back(Descriptor::from_json(img.manifest_json.at("config")));
    for (auto& l : img.manifest_json.at("layers")) blobs.push_back(Descriptor::from_json(l));
  }
  for (auto& blob : blobs) {
    fs::path from = src.verified_blob(blob.digest, blob.size, kRebuildHint);
    fs::path to = blob_path(blob.digest);
    // What the folder holds already is kept only when it is this blob: the
    // same file, or the same bytes. Anything else under the name is replaced.
    struct stat have {
    }, want{};
    if (::lstat(to.c_str(), &have) == 0 && ::stat(from.c_str(), &want) == 0) {
      if (have.st_dev == want.st_dev && have.st_ino == want.st_ino) continue;
      if (S_ISREG(have.st_mode) && static_cast<uint64_t>(have.st_size) == blob.size && sha256_file(to) == blob.digest)
        continue;
    }
    place_blob(from, to);
  }
  Descriptor named = top;
  named.annotations.clear();
  set_ref(name, named);
}

}  // namespace imgbuild
