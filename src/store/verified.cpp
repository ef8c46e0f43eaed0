// Blobs verified against their digests, and what was verified recorded so that
// it is not hashed again: the Layout methods of layout.hpp's second part.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <stdexcept>

#include "base/fs.hpp"
#include "layer/layer.hpp"
#include "layer/unpack.hpp"
#include "store/verified.hpp"

namespace imgbuild {

namespace fs = std::filesystem;

namespace {

std::string stamp_text(const FileStamp& st) {
  return std::to_string(st.dev) + " " + std::to_string(st.ino) + " " + std::to_string(st.size) + " " +
         std::to_string(st.mtime_ns) + " " + std::to_string(st.ctime_ns) + "\n";
}

/// The record's text, or empty when there is none (or it cannot be read:
/// then the blob is hashed again, never trusted).
std::string read_record(const fs::path& path) {
  try {
    return read_file(path);
  } catch (const std::exception&) {
    return {};
  }
}

void write_record(const fs::path& path, const std::string& text) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  // A record that cannot be written costs a hash next time, never a build.
  try {
    write_record_atomic(path, text);
  } catch (const std::exception&) {
  }
}

int64_t now_ns() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return nanoseconds(ts);
}

}  // namespace

fs::path Layout::record_path(const Digest& d, const char* kind) const {
  return record_dir() / (std::string(d.hex()) + kind);
}

void Layout::drop_damaged(const Digest& d, const std::string& why, const struct ::stat* checked) const {
  std::error_code ec;
  struct ::stat now {};
  // Only the file found damaged: another build may have put a whole copy there since.
  if (!checked ||
      (::lstat(blob_path(d).c_str(), &now) == 0 && now.st_dev == checked->st_dev && now.st_ino == checked->st_ino))
    fs::remove(blob_path(d), ec);
  fs::remove(record_path(d, ".stamp"), ec);
  fs::remove(record_path(d, ".diff_id"), ec);
  if (warn_)
    warn_("store blob " + d.str() + " (" + blob_path(d).string() + ") " + why + ": damaged or replaced; removed it");
}

bool Layout::verify_blob(const Digest& d, std::optional<uint64_t> size, bool rehash) const {
  fs::path path = blob_path(d);
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) {
    if (errno == ENOENT) return false;
    if (errno != ELOOP) throw_errno(path.string());
    drop_damaged(d, "is a symlink");
    return false;
  }
  struct ::stat before {};
  if (::fstat(fd.get(), &before) != 0) throw_errno(path.string());
  if (!S_ISREG(before.st_mode)) {
    drop_damaged(d, "is not a regular file", &before);
    return false;
  }
  if (size && static_cast<uint64_t>(before.st_size) != *size) {
    drop_damaged(d,
                 "holds " + std::to_string(before.st_size) + " bytes where " + std::to_string(*size) + " are expected",
                 &before);
    return false;
  }
  FileStamp stamp = FileStamp::of(before);
  if (!rehash && read_record(record_path(d, ".stamp")) == stamp_text(stamp)) return true;
  const int64_t started = now_ns();
  Sha256 hash;
  hash.update_fd(fd.get(), path.string());
  Digest actual = hash.finish();
  if (actual != d) {
    drop_damaged(d, "holds content whose digest is " + actual.str(), &before);
    return false;
  }
  struct ::stat after {};
  // A file changed while it was read, or within a clock tick before, could
  // keep its stamp through a later change: it is hashed again next time.
  if (::fstat(fd.get(), &after) == 0 && FileStamp::of(after) == stamp && stamp.ctime_ns + 1'000'000'000 <= started)
    write_record(record_path(d, ".stamp"), stamp_text(stamp));
  return true;
}

fs::path Layout::verified_blob(const Digest& d, std::optional<uint64_t> size, const std::string& recover) const {
  const bool present = has_blob(d);
  if (verify_blob(d, size)) return blob_path(d);
  throw std::runtime_error(
      "blob " + d.str() + " (" + blob_path(d).string() + ") " +
      (present ? "did not match its digest (damaged or replaced) and was removed" : "is missing from the store") +
      ": " + recover);
}

void Layout::note_verified(const Digest& d) const {
  struct ::stat st {};
  if (::lstat(blob_path(d).c_str(), &st) == 0 && S_ISREG(st.st_mode))
    write_record(record_path(d, ".stamp"), stamp_text(FileStamp::of(st)));
}

std::optional<Digest> Layout::known_diff_id(const Digest& d) const {
  std::string text = read_record(record_path(d, ".diff_id"));
  try {
    if (!text.empty() && text.back() == '\n') return Digest::parse(text.substr(0, text.size() - 1));
  } catch (const std::runtime_error&) {
    // a torn or edited record: nothing known
  }
  return std::nullopt;
}

void Layout::note_diff_id(const Digest& d, const Digest& diff_id) const {
  write_record(record_path(d, ".diff_id"), diff_id.str() + "\n");
}

void Layout::note_layer(const LayerBlob& layer) const {
  note_verified(layer.digest);
  note_diff_id(layer.digest, layer.diff_id);
}

namespace {

/// Follows one named image (or an index, recursively) through `store`,
/// adding what is wrong to `check`; `name` says which image, `pulled` whether
/// it is a base whose layers come when needed.
void check_image(const Layout& store, const Descriptor& d, const std::string& name, bool pulled, StoreCheck& check) {
  auto problem = [&](const std::string& what) { check.problems.push_back(name + ": " + what); };
  if (!store.has_blob(d.digest)) return problem("its manifest " + d.digest.str() + " is missing");
  nlohmann::json doc = nlohmann::json::parse(store.read_document(d), nullptr, false);
  if (!doc.is_object()) return problem("its manifest " + d.digest.str() + " is not a JSON object");
  if (auto list = doc.find("manifests"); list != doc.end() && list->is_array()) {
    for (auto& m : *list) check_image(store, Descriptor::from_json(m), name, pulled, check);
    return;
  }
  StoredImage stored = store.load(d);
  // A step cache exported for --cache-to has no image config: only its blobs count.
  std::vector<Descriptor> layers;
  for (auto& l : stored.manifest_json.at("layers")) layers.push_back(Descriptor::from_json(l));
  std::vector<LayerBlob> claimed;
  if (Descriptor::from_json(stored.manifest_json.at("config")).media_type == media_type::kConfig)
    claimed = image_from_documents(stored.manifest_json, stored.config_json).layers;
  for (size_t i = 0; i < layers.size(); ++i) {
    const Descriptor& layer = layers[i];
    std::string which = "layer " + std::to_string(i + 1) + " (" + layer.digest.str() + ")";
    if (!store.has_blob(layer.digest)) {
      if (!pulled) problem(which + " is missing");
      continue;
    }
    if (i >= claimed.size()) continue;
    std::optional<Digest> diff_id = store.known_diff_id(layer.digest);
    if (!diff_id) {
      diff_id = read_tar_stream(store.blob_path(layer.digest)).digest;
      store.note_diff_id(layer.digest, *diff_id);
      ++check.layers_read;
    }
    if (*diff_id != claimed[i].diff_id)
      problem(which + " is not what the image's config says: diff_id " + claimed[i].diff_id.str() + " in the config, " +
              diff_id->str() + " in the layer; the image lies about its layers");
  }
}

}  // namespace

StoreCheck verify_store(const Layout& store) {
  StoreCheck check;
  std::error_code ec;
  for (auto& f : fs::directory_iterator(store.blob_dir(), ec)) {
    std::optional<Digest> d;
    try {
      d = Digest::parse("sha256:" + f.path().filename().string());
    } catch (const std::runtime_error&) {
      continue;  // a temporary file of a write in progress, or a stray one: not a blob
    }
    ++check.blobs;
    if (!store.verify_blob(*d, std::nullopt, true))
      check.problems.push_back("blob " + d->str() + " (" + f.path().string() +
                               ") did not match its digest (damaged or replaced) and was removed");
  }
  for (auto& ref : store.refs()) {
    auto it = ref.annotations.find(kRefNameAnnotation);
    std::string name = it != ref.annotations.end() ? it->second : ref.digest.str();
    ++check.images;
    try {
      check_image(store, ref, name, ref.platform.has_value(), check);
    } catch (const std::exception& e) {
      check.problems.push_back(name + ": " + e.what());
    }
  }
  return check;
}

}  // namespace imgbuild
