#include "store/step_cache.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <ctime>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "layer/unpack.hpp"
#include "store/layout.hpp"
#include "store/run_cache.hpp"

namespace imgbuild {

using json = nlohmann::json;

namespace {

/// Changes whenever the engine would produce different bytes (or a different
/// image) for the same inputs: older entries then simply stop matching.
/// 3: steps on a base run only on layers verified against their diff_ids;
/// older entries may have been made on files an image lied about.
/// 4: gzip layers at libdeflate level 5 (ParallelGzipSink::kLevel), not 6:
/// an older entry's layer holds the same tar in other gzip bytes, and a build
/// from the cache must give the digests a build without it gives.
constexpr const char* kFormat = "imgbuild-step-4";

const char* type_name(LayerEntry::Type t) {
  switch (t) {
    case LayerEntry::Type::File:
      return "file";
    case LayerEntry::Type::Directory:
      return "dir";
    case LayerEntry::Type::Symlink:
      return "symlink";
    case LayerEntry::Type::CharDevice:
      return "chardev";
    case LayerEntry::Type::BlockDevice:
      return "blockdev";
    case LayerEntry::Type::Fifo:
      return "fifo";
  }
  return "?";
}

}  // namespace

Digest step_key(json inputs) {
  inputs["format"] = kFormat;
  // nlohmann's objects are ordered maps: dump() is canonical.
  return sha256_of(inputs.dump());
}

namespace {

/// Whether `known` is the digest of the file at `path` still: its stamp matches.
bool reusable(const std::string& path, const std::optional<FileDigest>& known) {
  struct ::stat st {};
  return known && ::stat(path.c_str(), &st) == 0 && FileStamp::of(st) == known->stamp;
}

/// A file's digest, read and hashed, with its stamp from before the read.
FileDigest hash_file(const std::string& path) {
  struct ::stat st {};
  Fd fd = open_read(path, FollowLink::Yes, &st);
  Sha256 hash;
  hash.update_fd(fd.get(), path);
  return {hash.finish_raw(), FileStamp::of(st)};
}

}  // namespace

FileDigests hash_files(const std::vector<LayerEntry>& entries, FileDigests known, size_t* files_read) {
  // On every core: for a large context this read is most of what a cache hit costs.
  std::vector<size_t> files;
  for (size_t i = 0; i < entries.size(); ++i)
    if (entries[i].type == LayerEntry::Type::File) files.push_back(i);
  // In place: what is known stays, what changed is replaced (one list, not two).
  FileDigests contents = known.size() == entries.size() ? std::move(known) : FileDigests(entries.size());
  std::atomic<size_t> next{0}, read{0};
  std::exception_ptr error;
  std::mutex error_mutex;
  auto hash = [&] {
    for (size_t n; (n = next++) < files.size();) try {
        std::optional<FileDigest>& digest = contents[files[n]];
        if (!reusable(entries[files[n]].source, digest)) {
          digest = hash_file(entries[files[n]].source);
          ++read;
        }
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
        next = files.size();
      }
  };
  size_t threads = std::min<size_t>(std::max(1u, std::thread::hardware_concurrency()), files.size() / 16 + 1);
  std::vector<std::thread> workers;
  for (size_t t = 1; t < threads; ++t) workers.emplace_back(hash);
  hash();
  for (auto& w : workers) w.join();
  if (error) std::rethrow_exception(error);
  if (files_read) *files_read = read;
  return contents;
}

namespace {

/// Appends `s` as nlohmann's dump() spells a JSON string: the bytes of the
/// step keys in users' caches. Most names need no escape and are copied as
/// they are; the others go through nlohmann itself, so its escapes and its
/// UTF-8 check stay the only ones. `what` names `s` in the error for a string
/// that is not UTF-8: JSON cannot carry it, and libarchive would write it as
/// a PAX name with hdrcharset=BINARY, which tar tools warn about.
void append_json_string(std::string& out, const std::string& s, const LayerEntry& e, const char* what) {
  auto plain = [](unsigned char c) { return c >= 0x20 && c < 0x80 && c != '"' && c != '\\'; };
  if (std::all_of(s.begin(), s.end(), plain)) {
    out += '"';
    out += s;
    out += '"';
    return;
  }
  try {
    out += json(s).dump();
  } catch (const json::type_error&) {
    // Shown with U+FFFD for the bad bytes and control characters escaped.
    std::string path = json("/" + e.path).dump(-1, ' ', false, json::error_handler_t::replace);
    throw std::runtime_error(path.substr(1, path.size() - 2) + ": " + what + " is not valid UTF-8");
  }
}

template <class Int>
void append_number(std::string& out, Int n) {
  char digits[24];
  out.append(digits, std::to_chars(digits, digits + sizeof digits, n).ptr);
}

/// One line per entry, as json{...}.dump() made it when keys were first
/// computed (keys sorted, no spaces): built as a string, without a JSON
/// object per entry, and hashed in blocks as it is made, so a context of many
/// files costs no description held in memory. Without `contents`, files are
/// described by their size alone (a shape).
Digest describe(const std::vector<LayerEntry>& entries, const FileDigests* contents) {
  Sha256 hash;
  std::string text;
  for (size_t i = 0; i < entries.size(); ++i) {
    if (text.size() >= (1 << 16)) {
      hash.update(text);
      text.clear();
    }
    const LayerEntry& e = entries[i];
    text += "{\"gid\":";
    append_number(text, e.gid);
    text += ",\"mode\":";
    append_number(text, e.mode);
    text += ",\"path\":";
    append_json_string(text, e.path, e, "the name");
    if (e.type == LayerEntry::Type::File) {
      if (contents) {
        text += ",\"sha256\":\"sha256:";
        text += to_hex((*contents)[i].value().sha256);
        text += '"';
      }
      text += ",\"size\":";
      append_number(text, e.size);
    }
    if (e.type == LayerEntry::Type::Symlink) {
      text += ",\"target\":";
      append_json_string(text, e.link_target, e, "the symlink target");
    }
    text += ",\"type\":\"";
    text += type_name(e.type);
    text += "\",\"uid\":";
    append_number(text, e.uid);
    // Only when there are some, so that the keys of every other entry stay
    // what they were before layers carried xattrs. Values are bytes: hex.
    if (!e.xattrs.empty()) {
      text += ",\"xattrs\":{";
      for (size_t x = 0; x < e.xattrs.size(); ++x) {
        if (x) text += ',';
        append_json_string(text, e.xattrs[x].first, e, "an extended attribute's name");
        text += ":\"";
        const std::string& value = e.xattrs[x].second;
        text += to_hex({reinterpret_cast<const unsigned char*>(value.data()), value.size()});
        text += '"';
      }
      text += '}';
    }
    text += "}\n";
  }
  hash.update(text);
  return hash.finish();
}

}  // namespace

Digest describe_entries(const std::vector<LayerEntry>& entries, const FileDigests& contents) {
  return describe(entries, &contents);
}

Digest describe_shape(const std::vector<LayerEntry>& entries) { return describe(entries, nullptr); }

json layer_to_json(const LayerBlob& l) {
  return {{"mediaType", l.media_type},
          {"digest", l.digest.str()},
          {"size", l.size},
          {"diffID", l.diff_id.str()},
          {"uncompressedSize", l.uncompressed_size}};
}

LayerBlob layer_from_json(const json& j) {
  return LayerBlob{Digest::parse(j.at("digest").get<std::string>()), j.at("size").get<uint64_t>(),
                   Digest::parse(j.at("diffID").get<std::string>()), j.value("uncompressedSize", uint64_t{0}),
                   MediaType::parse(j.at("mediaType").get<std::string>())};
}

json CachedStep::to_json() const {
  json j = {{"key", key.str()}, {"step", step}, {"created", created}, {"layer", nullptr}};
  if (layer) j["layer"] = layer_to_json(*layer);
  if (!source.empty()) j["source"] = source;
  return j;
}

CachedStep CachedStep::from_json(const json& j) {
  CachedStep s{Digest::parse(j.at("key").get<std::string>()), j.at("step").get<std::string>(), std::nullopt,
               j.value("created", int64_t{0}), j.value("source", std::string())};
  if (!j.at("layer").is_null()) s.layer = layer_from_json(j.at("layer"));
  return s;
}

StepCache::StepCache(fs::path cache_dir) : dir_(cache_dir / "steps"), shapes_dir_(cache_dir / "shapes") {
  fs::create_directories(dir_);
}

fs::path StepCache::shape_path(const Digest& shape) const { return shapes_dir_ / shape.hex(); }

bool StepCache::knows_shape(const Digest& shape) const { return ::access(shape_path(shape).c_str(), F_OK) == 0; }

namespace {

constexpr std::string_view kShapeFormat = "imgbuild-shape-1";

/// Parses 64 lowercase hex digits into `out`; false for anything else.
bool from_hex(std::string_view hex, std::array<unsigned char, 32>& out) {
  // A table, not comparisons: a shape record has a digest per file.
  static constexpr auto nibbles = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    for (int i = 0; i < 10; ++i) t['0' + i] = static_cast<int8_t>(i);
    for (int i = 0; i < 6; ++i) t['a' + i] = static_cast<int8_t>(10 + i);
    return t;
  }();
  if (hex.size() != 64) return false;
  int bad = 0;
  for (size_t i = 0; i < 32; ++i) {
    int hi = nibbles[static_cast<unsigned char>(hex[2 * i])], lo = nibbles[static_cast<unsigned char>(hex[2 * i + 1])];
    bad |= hi | lo;
    out[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  return bad >= 0;
}

/// Parses the number that starts `fields` and the space after it, and drops
/// both; false for anything else.
template <class Int>
bool take_number(std::string_view& fields, Int& value) {
  const char* end = fields.data() + fields.size();
  auto [at, error] = std::from_chars(fields.data(), end, value);
  if (error != std::errc() || at == end || *at != ' ') return false;
  fields.remove_prefix(static_cast<size_t>(at - fields.data()) + 1);
  return true;
}

}  // namespace

FileDigests StepCache::shape_files(const Digest& shape, size_t entries) const {
  // Anything unexpected is "nothing known": the files are read, never trusted.
  FileDigests out;
  std::string text;
  try {
    text = read_file(shape_path(shape));
  } catch (const std::exception&) {
    return {};
  }
  std::string_view rest = text;
  auto take_line = [&](std::string_view& line) {
    size_t end = rest.find('\n');
    if (end == std::string_view::npos) return false;
    line = rest.substr(0, end);
    rest.remove_prefix(end + 1);
    return true;
  };
  std::string_view line;
  if (!take_line(line) || line != kShapeFormat) return {};
  out.reserve(entries);
  while (take_line(line)) {
    if (line == "-") {
      out.emplace_back();
      continue;
    }
    FileDigest f{};
    FileStamp& st = f.stamp;
    if (!take_number(line, st.dev) || !take_number(line, st.ino) || !take_number(line, st.size) ||
        !take_number(line, st.mtime_ns) || !take_number(line, st.ctime_ns) || !from_hex(line, f.sha256))
      return {};
    out.push_back(f);
  }
  if (!rest.empty()) return {};
  if (out.size() != entries) return {};
  return out;
}

void StepCache::add_shape(const Digest& shape, const FileDigests& files, int64_t read_since_ns) const {
  fs::create_directories(shapes_dir_);
  AtomicFile file(shape_path(shape));
  // Written as it is made, in pieces: a line per entry of a million-file
  // context would otherwise be a hundred megabytes held at once.
  std::string text = std::string(kShapeFormat) + "\n";
  for (auto& f : files) {
    if (text.size() >= (1 << 16)) {
      file.write(text);
      text.clear();
    }
    // A file changed within a second of being read could have changed again
    // within the same tick of a coarse clock, keeping its stamp: it is read
    // again next time rather than trusted.
    if (!f || f->stamp.ctime_ns + 1'000'000'000 > read_since_ns) {
      text += "-\n";
      continue;
    }
    auto field = [&](auto n) {
      append_number(text, n);
      text += ' ';
    };
    const FileStamp& st = f->stamp;
    field(st.dev);
    field(st.ino);
    field(st.size);
    field(st.mtime_ns);
    field(st.ctime_ns);
    text += to_hex(f->sha256);
    text += '\n';
  }
  file.write(text);
  file.commit();
}

fs::path StepCache::entry_path(const Digest& key) const { return dir_ / (std::string(key.hex()) + ".json"); }

namespace {

/// Reads an entry file; nullopt for one that is damaged (and is then removed:
/// a torn or edited entry must cost a rebuild, never an error or a wrong image).
std::optional<CachedStep> read_entry(const fs::path& path, const std::optional<Digest>& expected_key) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  try {
    json j = json::parse(read_file(path));
    CachedStep entry = CachedStep::from_json(j);
    if (expected_key && entry.key != *expected_key) throw std::runtime_error("entry under the wrong key");
    entry.last_used = st.st_mtim.tv_sec;
    entry.entry_bytes = static_cast<uint64_t>(st.st_size);
    return entry;
  } catch (const std::exception&) {
    std::error_code ec;
    fs::remove(path, ec);
    return std::nullopt;
  }
}

}  // namespace

std::optional<CachedStep> StepCache::find(const Digest& key) const {
  fs::path path = entry_path(key);
  auto entry = read_entry(path, key);
  if (entry) {
    // The entry's mtime is its last use: what prune --older-than and the
    // least-recently-used order go by.
    mark_used(path);
    entry->last_used = std::time(nullptr);
  }
  return entry;
}

void StepCache::put(const CachedStep& entry) const {
  // Unsynced: the layer it names was fsynced when written, and a record a
  // crash left empty is read as none (read_entry), which only runs the step again.
  write_record_atomic(entry_path(entry.key), entry.to_json().dump() + "\n");
}

void StepCache::remove(const Digest& key) const {
  std::error_code ec;
  fs::remove(entry_path(key), ec);
}

std::vector<CachedStep> StepCache::list() const {
  std::vector<CachedStep> out;
  std::error_code ec;
  for (auto& f : fs::directory_iterator(dir_, ec)) {
    if (f.path().extension() != ".json") continue;
    if (auto entry = read_entry(f.path(), std::nullopt)) out.push_back(std::move(*entry));
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.last_used < b.last_used; });
  return out;
}

fs::path usage_lock_path(const fs::path& dir) { return dir / ".imgbuild-usage.lock"; }

namespace {

/// Calls `visit` with the lstat of `dir` and of everything below it, never
/// following a symlink.
template <class Visit>
void walk_tree(const fs::path& dir, Visit&& visit) {
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) return;
  visit(st);
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    if (::lstat(it->path().c_str(), &st) == 0) visit(st);
  }
}

uint64_t disk_bytes(const struct stat& st) { return static_cast<uint64_t>(st.st_blocks) * 512; }

/// A file with several links: trees can share it.
bool linked(const struct stat& st) { return !S_ISDIR(st.st_mode) && st.st_nlink > 1; }

using InodeId = std::pair<dev_t, ino_t>;

/// The folders of the cache's trees, by kind. An archive is what `:add`
/// extracted of a tarball; a download a file `:add` fetched by its checksum.
constexpr std::pair<const char*, const char*> kTreeFolders[] = {{"roots", "root"},
                                                                {"files", "file"},
                                                                {"run-cache", "run-cache"},
                                                                {"archives", "archive"},
                                                                {"downloads", "download"}};

/// Calls `visit(path, kind, stat)` for each tree of the cache: a folder, or a
/// download's file. ".unpack-" folders are unpacks in progress (or killed):
/// not trees yet; the ".bytes" files beside the trees are their records.
template <class Visit>
void for_each_tree(const fs::path& cache_dir, Visit&& visit) {
  for (auto [folder, kind] : kTreeFolders) {
    std::error_code ec;
    for (auto& d : fs::directory_iterator(cache_dir / folder, ec)) {
      if (d.path().filename().string().starts_with(".") || d.path().extension() == ".bytes") continue;
      struct stat st {};
      if (::lstat(d.path().c_str(), &st) == 0 && (S_ISDIR(st.st_mode) || S_ISREG(st.st_mode)))
        visit(d.path(), kind, st);
    }
  }
}

fs::path record_path(const fs::path& tree) {
  fs::path p = tree;
  p += ".bytes";
  return p;
}

/// The numbers of a record, one a line: the bytes written by
/// record_tree_bytes (or the carried bytes), then a root's layers; empty when
/// missing or damaged.
std::vector<uint64_t> read_record(const fs::path& path) {
  std::vector<uint64_t> numbers;
  try {
    std::string text = read_file(path);
    for (std::string_view rest = text; !rest.empty();) {
      uint64_t n = 0;
      auto [end, error] = std::from_chars(rest.data(), rest.data() + rest.size(), n);
      if (error != std::errc() || end == rest.data() + rest.size() || *end != '\n') return {};
      numbers.push_back(n);
      rest.remove_prefix(static_cast<size_t>(end - rest.data()) + 1);
    }
  } catch (const std::exception&) {
  }
  return numbers;
}

std::optional<uint64_t> read_bytes_record(const fs::path& path) {
  std::vector<uint64_t> numbers = read_record(path);
  return numbers.empty() ? std::nullopt : std::optional(numbers[0]);
}

/// What `tree` holds on its own, from its record when that is still true (a
/// root never changes once made; a run cache may have been used since), else
/// walked and recorded now: once for a tree an older engine made, or one a
/// killed step used.
uint64_t recorded_bytes(const fs::path& tree, const std::string& kind, const struct stat& tree_st) {
  fs::path record = record_path(tree);
  struct stat st {};
  // A run cache's record is current only when written after its last use
  // (mark_used): strictly, to the nanosecond, as a use in the same tick may
  // have followed it.
  auto after = [](const timespec& a, const timespec& b) {
    return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
  };
  bool current = ::stat(record.c_str(), &st) == 0 && (kind != "run-cache" || after(st.st_mtim, tree_st.st_mtim));
  if (current)
    if (auto bytes = read_bytes_record(record)) return *bytes;
  uint64_t bytes = own_bytes(tree);
  record_tree_bytes(tree, bytes);
  return bytes;
}

}  // namespace

uint64_t own_bytes(const fs::path& tree) {
  uint64_t own = 0;
  std::map<InodeId, nlink_t> links_seen;
  walk_tree(tree, [&](const struct stat& st) {
    // A file linked from elsewhere is this tree's only when its last link is.
    if (!linked(st) || ++links_seen[{st.st_dev, st.st_ino}] == st.st_nlink) own += disk_bytes(st);
  });
  return own;
}

void record_tree_bytes(const fs::path& tree, uint64_t bytes, std::optional<size_t> layers) {
  // Unsynced: a record lost in a crash reads as none, and the tree is walked again.
  write_record_atomic(record_path(tree), std::to_string(bytes) + "\n" + (layers ? std::to_string(*layers) + "\n" : ""));
}

std::optional<fs::path> root_like(const fs::path& roots, size_t layers) {
  std::optional<fs::path> found;
  int64_t found_used = 0;
  std::error_code ec;
  for (auto& d : fs::directory_iterator(roots, ec)) {
    if (d.path().extension() != ".bytes" || d.path().filename().string().starts_with(".")) continue;
    std::vector<uint64_t> record = read_record(d.path());
    fs::path root = d.path().parent_path() / d.path().stem();
    struct stat st {};
    if (record.size() != 2 || record[1] != layers || ::lstat(root.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    if (!found || st.st_mtim.tv_sec > found_used) {
      found = root;
      found_used = st.st_mtim.tv_sec;
    }
  }
  return found;
}

CacheTrees cache_trees(const fs::path& cache_dir) {
  CacheTrees out;
  // Each linked file, with the trees that hold it (in walk order: a tree's
  // index is pushed once).
  struct Shared {
    uint64_t bytes = 0;
    std::vector<size_t> trees;
  };
  std::map<InodeId, Shared> shared;
  for_each_tree(cache_dir, [&](const fs::path& path, const char* kind, const struct stat& st) {
    size_t index = out.trees.size();
    out.trees.push_back({path, kind, 0, 0, st.st_mtim.tv_sec});
    walk_tree(path, [&](const struct stat& f) {
      if (!linked(f)) {
        out.trees[index].bytes += disk_bytes(f);
        return;
      }
      Shared& s = shared[{f.st_dev, f.st_ino}];
      s.bytes = disk_bytes(f);
      if (s.trees.empty() || s.trees.back() != index) s.trees.push_back(index);
    });
  });
  for (auto& [id, s] : shared) {
    out.bytes += s.bytes;
    if (s.trees.size() == 1) {
      out.trees[s.trees[0]].bytes += s.bytes;
    } else {
      for (size_t t : s.trees) out.trees[t].shared_bytes += s.bytes;
    }
  }
  for (auto& t : out.trees) out.bytes += t.bytes;
  std::sort(out.trees.begin(), out.trees.end(), [](auto& a, auto& b) { return a.last_used < b.last_used; });
  return out;
}

PruneReport prune_cache(const fs::path& cache_dir, const Layout& store, const PruneOptions& options,
                        const std::function<void()>& on_wait) {
  fs::create_directories(cache_dir);
  FileLock cache_lock(usage_lock_path(cache_dir), FileLock::Mode::Exclusive, on_wait);
  FileLock store_lock(usage_lock_path(store.root()), FileLock::Mode::Exclusive, on_wait);
  StepCache cache(cache_dir);
  PruneReport report;

  // Entries and trees in one least-recently-used order, run caches last.
  struct Item {
    int64_t last_used;
    uint64_t bytes;  ///< an entry's file; a tree's record
    std::optional<CachedStep> entry;
    fs::path tree;
    std::string kind{};  ///< a tree's
  };
  std::vector<Item> items;
  // A layer counts once, however many entries name it, until the last goes.
  std::map<Digest, std::pair<uint64_t, size_t>> layers;  // size, entries naming it
  uint64_t total = 0;
  for (auto& e : cache.list()) {
    total += e.entry_bytes;
    if (e.layer) {
      auto& [size, users] = layers[e.layer->digest];
      if (users++ == 0) total += size = e.layer->size;
    }
    items.push_back({e.last_used, e.entry_bytes, e, {}});
  }
  for_each_tree(cache_dir, [&](const fs::path& path, const std::string& kind, const struct stat& st) {
    uint64_t bytes = recorded_bytes(path, kind, st);
    total += bytes;
    items.push_back({st.st_mtim.tv_sec, bytes, std::nullopt, path, kind});
  });
  // Files of removed roots that roots made from them still link: on disk,
  // in no tree's record.
  fs::path carried_path = cache_dir / "roots" / ".carried.bytes";
  uint64_t carried = read_bytes_record(carried_path).value_or(0);
  total += carried;
  std::stable_sort(items.begin(), items.end(), [](auto& a, auto& b) {
    return std::pair(a.kind == "run-cache", a.last_used) < std::pair(b.kind == "run-cache", b.last_used);
  });

  const bool everything = !options.keep_bytes && !options.older_than;
  const int64_t now = std::time(nullptr);
  std::set<Digest> kept_layers;
  uint64_t removed_root_records = 0, freed_from_roots = 0, freed = 0;
  for (auto& item : items) {
    bool stale = options.older_than && item.last_used < now - *options.older_than;
    bool over = options.keep_bytes && total > *options.keep_bytes;
    if (!(everything || stale || over)) {
      if (item.entry && item.entry->layer) kept_layers.insert(item.entry->layer->digest);
      continue;
    }
    if (item.entry) {
      cache.remove(item.entry->key);
      ++report.entries;
      total -= item.bytes;
      if (item.entry->layer) {
        auto& [size, users] = layers[item.entry->layer->digest];
        if (--users == 0) total -= size;
      }
      continue;
    }
    // Measured as it goes: what is freed is what no remaining tree links.
    uint64_t bytes = own_bytes(item.tree);
    remove_tree(item.tree);
    std::error_code ec;
    fs::remove(record_path(item.tree), ec);
    if (item.kind == "run-cache") remove_run_cache_marks(item.tree);
    ++report.trees;
    freed += bytes;
    if (item.kind == "root") {
      removed_root_records += item.bytes;
      freed_from_roots += bytes;
    }
    total -= std::min(total, bytes);
  }
  std::error_code ec;
  int64_t still_carried = static_cast<int64_t>(carried + removed_root_records) - static_cast<int64_t>(freed_from_roots);
  if (everything || still_carried <= 0) {
    fs::remove(carried_path, ec);
  } else {
    write_file_atomic(carried_path, std::to_string(still_carried) + "\n");
  }
  // Shapes only speed up first builds; one outliving its entries costs a
  // file read before a build, never a wrong result.
  if (everything) fs::remove_all(cache_dir / "shapes", ec);
  // What killed builds left: their step folders, half-unpacked roots, and
  // records of trees that are gone.
  fs::remove_all(cache_dir / "tmp", ec);
  for (auto [folder, kind] : kTreeFolders)
    for (auto& d : fs::directory_iterator(cache_dir / folder, ec)) {
      std::string name = d.path().filename().string();
      if (name.starts_with(".unpack-")) remove_tree(d.path());
      if (d.path().extension() == ".bytes" && !name.starts_with(".") &&
          !fs::exists(d.path().parent_path() / d.path().stem()))
        fs::remove(d.path(), ec);
    }

  auto [blobs, bytes] = store.collect_garbage(kept_layers);
  // A layer's listing (what it adds, removes and empties) is worth keeping
  // only while the store holds the layer.
  for (auto& d : fs::directory_iterator(cache_dir / "layer-listings", ec))
    if (everything || !fs::exists(store.blob_dir() / d.path().filename())) fs::remove(d.path(), ec);
  report.blobs = blobs;
  report.bytes = bytes + freed;
  return report;
}

}  // namespace imgbuild
