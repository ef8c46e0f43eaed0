#include "store/layout.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>

#include "base/fs.hpp"

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
  Digest d = sha256_of(data);
  if (!verify_blob(d, data.size())) {
    write_file_atomic(blob_path(d), data);
    note_verified(d);
  }
  return Descriptor{media_type, d, data.size(), {}};
}

std::string Layout::read_document(const Descriptor& d) const {
  if (d.size > kMaxDocumentSize)
    throw std::runtime_error(d.digest.str() + ": document of " + std::to_string(d.size) + " bytes is too large");
  std::string data = read_file(blob_path(d.digest));
  if (data.size() != d.size || sha256_of(data) != d.digest)
    throw std::runtime_error(root_.string() + ": blob " + d.digest.str() + " is corrupt (digest or size mismatch)");
  return data;
}

json Layout::read_index() const {
  fs::path p = root_ / "index.json";
  json idx = json::parse(read_file(p), nullptr, false);
  if (idx.is_discarded() || !idx.is_object()) throw std::runtime_error(p.string() + ": not a valid index");
  if (!idx.contains("manifests") || !idx["manifests"].is_array()) idx["manifests"] = json::array();
  return idx;
}

void Layout::set_ref(const std::string& name, Descriptor manifest) {
  manifest.annotations[kRefNameAnnotation] = name;
  FileLock lock(root_ / kLockName);
  json idx = read_index();
  json kept = json::array();
  for (auto& m : idx["manifests"]) {
    auto ann = m.find("annotations");
    bool same_name = ann != m.end() && ann->is_object() && ann->value(kRefNameAnnotation, "") == name;
    bool same_platform = Descriptor::from_json(m).platform == manifest.platform;
    if (!(same_name && same_platform)) kept.push_back(m);
  }
  kept.push_back(manifest.to_json());
  idx["manifests"] = kept;
  write_file_atomic(root_ / "index.json", idx.dump(2) + "\n");
}

std::vector<Descriptor> Layout::refs() const {
  json index = read_index();
  std::vector<Descriptor> out;
  for (auto& m : index["manifests"]) out.push_back(Descriptor::from_json(m));
  return out;
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
  StoredImage img{manifest, document(manifest), {}};
  auto config = img.manifest_json.find("config");
  if (config == img.manifest_json.end())
    throw std::runtime_error(root_.string() + ": manifest " + manifest.digest.str() + " has no config");
  img.config_json = document(Descriptor::from_json(*config));
  return img;
}

std::pair<size_t, uint64_t> Layout::collect_garbage(const std::set<Digest>& keep) const {
  std::set<Digest> live = keep;
  // Named images, and the manifests an index names, with their configs and layers.
  std::vector<Descriptor> pending = refs();
  while (!pending.empty()) {
    Descriptor d = pending.back();
    pending.pop_back();
    if (!live.insert(d.digest).second || !has_blob(d.digest)) continue;
    json doc = json::parse(read_document(d), nullptr, false);
    if (!doc.is_object()) continue;
    if (auto it = doc.find("manifests"); it != doc.end() && it->is_array())
      for (auto& item : *it) pending.push_back(Descriptor::from_json(item));
    if (auto it = doc.find("layers"); it != doc.end() && it->is_array())
      for (auto& item : *it) live.insert(Descriptor::from_json(item).digest);
    if (auto config = doc.find("config"); config != doc.end()) live.insert(Descriptor::from_json(*config).digest);
  }
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

void Layout::import_image(const Layout& src, const Descriptor& manifest, const std::string& name) {
  StoredImage img = src.load(manifest);
  std::vector<Descriptor> blobs{manifest, Descriptor::from_json(img.manifest_json.at("config"))};
  for (auto& l : img.manifest_json.at("layers")) blobs.push_back(Descriptor::from_json(l));
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
  Descriptor named = manifest;
  named.annotations.clear();
  set_ref(name, named);
}

}  // namespace imgbuild
