#include "store/step_cache.hpp"

#include <sys/stat.h>
#include <utime.h>

#include <limits>

#include <catch2/catch.hpp>

#include "layer/layer.hpp"
#include "store/layout.hpp"
#include "test_support.hpp"

using namespace imgbuild;
using imgbuild::test::error_of;
using imgbuild::test::ScratchDir;
using imgbuild::test::slurp;
using imgbuild::test::spit;
namespace fs = std::filesystem;

namespace {

/// Sets a path's mtime `age` seconds into the past: its last use.
void age(const fs::path& p, long seconds) {
  struct utimbuf times {};
  times.actime = times.modtime = std::time(nullptr) - seconds;
  REQUIRE(::utime(p.c_str(), &times) == 0);
}

/// The entries' description with their files read now, as a key reads them.
Digest described(const std::vector<LayerEntry>& entries) { return describe_entries(entries, hash_files(entries)); }

LayerBlob layer_in(Layout& store, const std::string& file_content, const fs::path& scratch) {
  spit(scratch / "f", file_content);
  LayerEntry e{"f", LayerEntry::Type::File, 0644, 0, 0, scratch / "f", file_content.size(), {}};
  return write_layer({e}, store.blob_dir(), LayerOptions{});
}

}  // namespace

TEST_CASE("step keys are canonical and cover every input", "[step_cache]") {
  nlohmann::json a = {{"op", "run"}, {"argv", {"go", "build"}}, {"env", {"A=1"}}};
  nlohmann::json reordered = {{"env", {"A=1"}}, {"argv", {"go", "build"}}, {"op", "run"}};
  CHECK(step_key(a) == step_key(reordered));
  nlohmann::json other_env = a;
  other_env["env"] = {"A=2"};
  CHECK(step_key(a) != step_key(other_env));
  nlohmann::json other_argv = a;
  other_argv["argv"] = {"go", "vet"};
  CHECK(step_key(a) != step_key(other_argv));
}

TEST_CASE("layer entries are described by content, not by where they are read from", "[step_cache]") {
  ScratchDir dir;
  spit(dir.path / "one", "same bytes");
  spit(dir.path / "two", "same bytes");
  spit(dir.path / "three", "other bytes");
  LayerEntry e{"app/main.go", LayerEntry::Type::File, 0644, 0, 0, dir.path / "one", 10, {}};
  LayerEntry link{"bin/sh", LayerEntry::Type::Symlink, 0777, 0, 0, {}, 0, "busybox"};
  Digest first = described({e, link});
  e.source = dir.path / "two";
  CHECK(described({e, link}) == first);
  e.source = dir.path / "three";
  e.size = 11;
  CHECK(described({e, link}) != first);
  e.source = dir.path / "one";
  e.size = 10;
  e.mode = 0755;
  CHECK(described({e, link}) != first);
  e.mode = 0644;
  link.link_target = "toybox";
  CHECK(described({e, link}) != first);
  link.link_target = "busybox";
  CHECK(described({link, e}) != first);  // order is part of it
  CHECK(described({e, link}) == first);
}

TEST_CASE("describing many files reads each one, on every core", "[step_cache]") {
  ScratchDir dir;
  std::vector<LayerEntry> entries;
  for (int i = 0; i < 200; ++i) {
    std::string name = "f" + std::to_string(i);
    spit(dir.path / name, "content " + std::to_string(i));
    entries.push_back(
        LayerEntry{name, LayerEntry::Type::File, 0644, 0, 0, dir.path / name, std::to_string(i).size() + 8, {}});
  }
  Digest all = described(entries);
  spit(dir.path / "f150", "content 15x");  // same size, other bytes
  CHECK(described(entries) != all);
  fs::remove(dir.path / "f99");
  CHECK_THROWS_WITH(described(entries), Catch::Matchers::Contains("f99"));
}

TEST_CASE("the step cache keeps results by key and survives damage", "[step_cache]") {
  ScratchDir dir;
  Layout store(dir.path / "store");
  StepCache cache(dir.path / "cache");
  LayerBlob layer = layer_in(store, "hello", dir.path);
  Digest key = step_key({{"op", "copy"}});
  Digest empty_key = step_key({{"op", "run"}});

  CHECK_FALSE(cache.find(key));
  cache.put(CachedStep{key, "copy f /", layer, 100});
  cache.put(CachedStep{empty_key, "run true", std::nullopt, 100});
  auto found = cache.find(key);
  REQUIRE(found);
  CHECK(found->step == "copy f /");
  REQUIRE(found->layer);
  CHECK(found->layer->digest == layer.digest);
  CHECK(found->layer->diff_id == layer.diff_id);
  CHECK(found->layer->size == layer.size);
  auto empty = cache.find(empty_key);
  REQUIRE(empty);
  CHECK_FALSE(empty->layer);
  CHECK(cache.list().size() == 2);

  SECTION("a torn entry is a miss and is removed") {
    fs::path file = dir.path / "cache" / "steps" / (std::string(key.hex()) + ".json");
    std::string text = slurp(file);
    spit(file, text.substr(0, text.size() / 2));
    CHECK_FALSE(cache.find(key));
    CHECK_FALSE(fs::exists(file));
  }
  SECTION("an entry a crash left empty (entries are written unsynced) is a miss and is removed") {
    fs::path file = dir.path / "cache" / "steps" / (std::string(key.hex()) + ".json");
    spit(file, "");
    CHECK_FALSE(cache.find(key));
    CHECK_FALSE(fs::exists(file));
    CHECK(cache.list().size() == 1);
  }
  SECTION("an entry filed under another key is a miss") {
    fs::copy_file(dir.path / "cache" / "steps" / (std::string(key.hex()) + ".json"),
                  dir.path / "cache" / "steps" / (std::string(step_key({{"op", "x"}}).hex()) + ".json"));
    CHECK_FALSE(cache.find(step_key({{"op", "x"}})));
  }
  SECTION("finding an entry renews its last use") {
    fs::path file = dir.path / "cache" / "steps" / (std::string(key.hex()) + ".json");
    age(file, 3600);
    REQUIRE(cache.find(key));
    struct stat st {};
    REQUIRE(::stat(file.c_str(), &st) == 0);
    CHECK(st.st_mtime >= std::time(nullptr) - 5);
  }
}

TEST_CASE("a damaged blob fails verification and leaves the store", "[step_cache]") {
  ScratchDir dir;
  Layout store(dir.path / "store");
  LayerBlob layer = layer_in(store, "hello", dir.path);
  CHECK(store.verify_blob(layer.digest, layer.size));
  CHECK_FALSE(store.verify_blob(layer.digest, layer.size + 1));
  CHECK_FALSE(store.has_blob(layer.digest));

  LayerBlob again = layer_in(store, "hello", dir.path);
  REQUIRE(again.digest == layer.digest);
  std::string bytes = slurp(store.blob_path(layer.digest));
  bytes[bytes.size() / 2] ^= 0x20;
  spit(store.blob_path(layer.digest), bytes);
  CHECK_FALSE(store.verify_blob(layer.digest, layer.size));
  CHECK_FALSE(store.has_blob(layer.digest));
}

TEST_CASE("prune removes entries by age and size, and blobs nothing needs", "[step_cache]") {
  ScratchDir dir;
  Layout store(dir.path / "store");
  fs::path cache_dir = dir.path / "cache";
  StepCache cache(cache_dir);
  LayerBlob old_layer = layer_in(store, "old", dir.path);
  LayerBlob new_layer = layer_in(store, "new", dir.path);
  LayerBlob image_layer = layer_in(store, "image", dir.path);
  Digest old_key = step_key({{"n", 1}}), new_key = step_key({{"n", 2}});
  cache.put(CachedStep{old_key, "old", old_layer, 1});
  cache.put(CachedStep{new_key, "new", new_layer, 2});
  age(cache_dir / "steps" / (std::string(old_key.hex()) + ".json"), 10 * 86400);
  fs::create_directories(cache_dir / "roots" / "abc" / "bin");
  spit(cache_dir / "roots" / "abc" / "bin" / "sh", std::string(10000, 'x'));
  age(cache_dir / "roots" / "abc", 20 * 86400);
  fs::create_directories(cache_dir / "tmp" / "run-killed");
  spit(store.blob_dir() / ".layer.tmp-abcdef", "torn");

  // A stored image needs its own layer, whatever the cache holds.
  Image image;
  image.layers.push_back(image_layer);
  Descriptor config = store.put_document(image.config_document(), media_type::kConfig);
  store.set_ref("kept", store.put_document(image.manifest_document(config), media_type::kManifest));

  SECTION("--older-than") {
    PruneReport r = prune_cache(cache_dir, store, PruneOptions{std::nullopt, 7 * 86400});
    CHECK(r.entries == 1);
    CHECK(r.trees == 1);
    CHECK_FALSE(cache.find(old_key));
    CHECK(cache.find(new_key));
    CHECK_FALSE(store.has_blob(old_layer.digest));
    CHECK(store.has_blob(new_layer.digest));
    CHECK(store.has_blob(image_layer.digest));
    CHECK_FALSE(fs::exists(cache_dir / "roots" / "abc"));
    CHECK_FALSE(fs::exists(cache_dir / "tmp"));
    CHECK_FALSE(fs::exists(store.blob_dir() / ".layer.tmp-abcdef"));
  }
  SECTION("--keep-bytes removes the least recently used first") {
    uint64_t newest = new_layer.size + fs::file_size(cache_dir / "steps" / (std::string(new_key.hex()) + ".json"));
    PruneReport r = prune_cache(cache_dir, store, PruneOptions{newest, std::nullopt});
    CHECK(r.entries == 1);
    CHECK(r.trees == 1);
    CHECK(cache.find(new_key));
    CHECK(store.has_blob(new_layer.digest));
  }
  SECTION("no option: everything the stored images do not need") {
    prune_cache(cache_dir, store, PruneOptions{});
    CHECK(cache.list().empty());
    CHECK_FALSE(store.has_blob(old_layer.digest));
    CHECK_FALSE(store.has_blob(new_layer.digest));
    CHECK(store.has_blob(image_layer.digest));
    CHECK(store.load(*store.find_ref("kept")).config_json.is_object());
  }
}

namespace {

/// The disk a path takes, as prune and `cache ls` count it.
uint64_t disk(const fs::path& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

/// Two roots as image_root makes them: `a` from a layer, `b` linked from
/// `a` (its file `shared`) plus a layer of its own (`b/own`), each with its
/// record, `a` used longest ago.
struct TwoRoots {
  fs::path a, b;
  uint64_t a_own, b_own, shared;  ///< disk bytes: only in a, only in b, in both
  explicit TwoRoots(const fs::path& cache_dir) : a(cache_dir / "roots" / "a.v"), b(cache_dir / "roots" / "b.v") {
    fs::create_directories(a);
    spit(a / "shared", std::string(100000, 's'));
    spit(a / "only-a", std::string(30000, 'a'));
    record_tree_bytes(a, own_bytes(a));
    fs::create_directories(b);
    fs::create_hard_link(a / "shared", b / "shared");
    spit(b / "own", std::string(50000, 'b'));
    record_tree_bytes(b, own_bytes(b));
    a_own = disk(a) + disk(a / "only-a");
    b_own = disk(b) + disk(b / "own");
    shared = disk(a / "shared");
    age(a, 20 * 86400);
    age(b, 10 * 86400);
  }
};

}  // namespace

TEST_CASE("cache trees count a file that several trees link once", "[step_cache][cache_trees]") {
  ScratchDir dir;
  TwoRoots roots(dir.path / "cache");
  fs::create_directories(dir.path / "cache" / "run-cache" / "go");
  spit(dir.path / "cache" / "run-cache" / "go" / "o", std::string(20000, 'o'));
  uint64_t run_cache =
      disk(dir.path / "cache" / "run-cache" / "go") + disk(dir.path / "cache" / "run-cache" / "go" / "o");

  CacheTrees trees = cache_trees(dir.path / "cache");
  REQUIRE(trees.trees.size() == 3);
  CHECK(trees.trees[0].path == roots.a);  // oldest use first
  CHECK(trees.trees[0].bytes == roots.a_own);
  CHECK(trees.trees[0].shared_bytes == roots.shared);
  CHECK(trees.trees[1].path == roots.b);
  CHECK(trees.trees[1].bytes == roots.b_own);
  CHECK(trees.trees[1].shared_bytes == roots.shared);
  CHECK(trees.trees[2].kind == "run-cache");
  CHECK(trees.trees[2].bytes == run_cache);
  CHECK(trees.bytes == roots.a_own + roots.b_own + roots.shared + run_cache);
  // A root records what it added when it was made: the shared file is a's.
  CHECK(own_bytes(roots.a) == roots.a_own);
  CHECK(own_bytes(roots.b) == roots.b_own);
}

TEST_CASE("prune evicts the least recently used first and run caches last", "[step_cache][prune]") {
  ScratchDir dir;
  Layout store(dir.path / "store");
  fs::path cache_dir = dir.path / "cache";
  StepCache cache(cache_dir);
  TwoRoots roots(cache_dir);
  // The run cache is the oldest of all: used 30 days ago.
  fs::path run_cache = cache_dir / "run-cache" / "go-build";
  fs::create_directories(run_cache);
  spit(run_cache / "o", std::string(20000, 'o'));
  record_tree_bytes(run_cache, own_bytes(run_cache));
  age(run_cache, 30 * 86400);
  age(run_cache.string() + ".bytes", 30 * 86400);
  uint64_t run_cache_bytes = own_bytes(run_cache);
  Digest key = step_key({{"n", 1}});
  cache.put(CachedStep{key, "old", std::nullopt, 1});
  fs::path entry = cache_dir / "steps" / (std::string(key.hex()) + ".json");
  age(entry, 5 * 86400);

  SECTION("a file both roots link is freed with the last of them") {
    // Room for everything but a: a goes, its shared file stays (b links it).
    uint64_t all = roots.a_own + roots.b_own + roots.shared + run_cache_bytes + fs::file_size(entry);
    PruneReport r = prune_cache(cache_dir, store, PruneOptions{all - roots.a_own, std::nullopt});
    CHECK(r.trees == 1);
    CHECK(r.entries == 0);
    CHECK(r.bytes == roots.a_own);
    CHECK_FALSE(fs::exists(roots.a));
    CHECK_FALSE(fs::exists(roots.a.string() + ".bytes"));
    CHECK(slurp(roots.b / "shared") == std::string(100000, 's'));
    // Still counted: the next prune knows the shared file is on disk, in no
    // record, and frees it with b.
    CHECK(slurp(cache_dir / "roots" / ".carried.bytes") == std::to_string(roots.shared) + "\n");
    r = prune_cache(cache_dir, store, PruneOptions{run_cache_bytes + fs::file_size(entry), std::nullopt});
    CHECK(r.trees == 1);
    CHECK(r.bytes == roots.b_own + roots.shared);
    CHECK_FALSE(fs::exists(cache_dir / "roots" / ".carried.bytes"));
    CHECK(fs::exists(run_cache));
    CHECK(cache.find(key));
  }
  SECTION("the run cache goes last, though it was used longest ago") {
    PruneReport r = prune_cache(cache_dir, store, PruneOptions{run_cache_bytes, std::nullopt});
    CHECK(r.trees == 2);
    CHECK(r.entries == 1);
    CHECK(fs::exists(run_cache));
    r = prune_cache(cache_dir, store, PruneOptions{run_cache_bytes - 1, std::nullopt});
    CHECK(r.trees == 1);
    CHECK_FALSE(fs::exists(run_cache));
  }
  SECTION("--older-than removes an old run cache like anything else") {
    PruneReport r = prune_cache(cache_dir, store, PruneOptions{std::nullopt, 25 * 86400});
    CHECK(r.trees == 1);
    CHECK_FALSE(fs::exists(run_cache));
    CHECK(fs::exists(roots.a));
  }
  SECTION("a kept tree is known by its record, not walked") {
    // A record that says a holds nothing: prune believes it, and finds that
    // the cache fits without removing anything.
    record_tree_bytes(roots.a, 0);
    age(roots.a, 20 * 86400);
    PruneReport r =
        prune_cache(cache_dir, store, PruneOptions{roots.b_own + run_cache_bytes + fs::file_size(entry), std::nullopt});
    CHECK(r.trees == 0);
    CHECK(r.entries == 0);
    CHECK(fs::exists(roots.a));
  }
  SECTION("a run cache used since its record was written is measured again") {
    spit(run_cache / "p", std::string(400000, 'p'));
    mark_used(run_cache);
    uint64_t grown = own_bytes(run_cache);
    PruneReport r = prune_cache(cache_dir, store, PruneOptions{grown, std::nullopt});
    CHECK(r.trees == 2);
    CHECK(fs::exists(run_cache));
    CHECK(slurp(run_cache.string() + ".bytes") == std::to_string(grown) + "\n");
  }
}

TEST_CASE("a shape describes entries by size, without reading them", "[step_cache]") {
  ScratchDir dir;
  spit(dir.path / "one", "same bytes");
  LayerEntry e{"app/main.go", LayerEntry::Type::File, 0644, 0, 0, dir.path / "one", 10, {}};
  Digest first = describe_shape({e});
  spit(dir.path / "one", "SAME BYTES");
  CHECK(describe_shape({e}) == first);
  fs::remove(dir.path / "one");
  CHECK(describe_shape({e}) == first);  // nothing is read
  e.size = 11;
  CHECK(describe_shape({e}) != first);
  e.size = 10;
  e.mode = 0755;
  CHECK(describe_shape({e}) != first);
}

namespace {

/// Entries with every field and every kind of name a description must keep
/// apart: owners, setuid/setgid/sticky modes, sizes up to the largest, names
/// with spaces, quotes, backslashes, control characters and UTF-8.
std::vector<LayerEntry> varied_entries() {
  using T = LayerEntry::Type;
  auto file = [](std::string path, uint32_t mode, uint64_t size, uint32_t uid = 0, uint32_t gid = 0) {
    return LayerEntry{std::move(path), T::File, mode, uid, gid, "/nonexistent", size, {}};
  };
  auto dir = [](std::string path, uint32_t mode, uint32_t uid = 0, uint32_t gid = 0) {
    return LayerEntry{std::move(path), T::Directory, mode, uid, gid, {}, 0, {}};
  };
  auto link = [](std::string path, std::string target) {
    return LayerEntry{std::move(path), T::Symlink, 0777, 0, 0, {}, 0, std::move(target)};
  };
  return {
      dir("app", 0755),
      file("app/main.go", 0644, 10),
      file("app/with space.txt", 0600, 0, 1000, 1000),
      dir("home/nobody", 0700, 65534, 65534),
      file("bin/su", 04755, 123456789012),
      file("bin/wall", 02755, 4096, 0, 5),
      dir("tmp", 01777),
      link("bin/sh", "busybox"),
      link("etc/localtime", "/usr/share/zoneinfo/Europe/Z\xc3\xbcrich"),
      file("quote\"back\\slash/", 0644, 1),
      file("ctl\x01\x08\t\n\x0b\f\r\x1b\x1f\x7f", 0644, 2),
      file("caf\xc3\xa9/\xe6\x97\xa5\xe6\x9c\xac/\xf0\x9f\x98\x80.txt", 0644, 3),
      link("odd", "a \"quoted\" \\ target\n"),
      file("<html> & 'js' </script>", 0644, 4),
      file("max", 07777, std::numeric_limits<uint64_t>::max(), 4294967295u, 4294967295u),
      file(std::string("nul\0inside", 10), 0644, 5),
      // One reason to escape each, alone in its name.
      file("only\\backslash", 0644, 6),
      file("only\"quote", 0644, 7),
      file("only\ttab", 0644, 8),
      file("only-\xc3\xa9", 0644, 9),
      link("only-\x7f", "only\\backslash"),
  };
}

/// Made-up file digests (nothing is read), a different one per file.
FileDigests varied_digests(const std::vector<LayerEntry>& entries) {
  FileDigests out(entries.size());
  for (size_t i = 0; i < entries.size(); ++i)
    if (entries[i].type == LayerEntry::Type::File) {
      FileDigest f{};
      for (size_t b = 0; b < f.sha256.size(); ++b) f.sha256[b] = static_cast<unsigned char>(i * 37 + b * 11);
      out[i] = f;
    }
  return out;
}

}  // namespace

TEST_CASE("descriptions keep their exact bytes: the step keys in users' caches stay valid", "[step_cache]") {
  // Pinned when these digests were made with nlohmann::json: a change here
  // would orphan every cached copy step.
  std::vector<LayerEntry> entries = varied_entries();
  CHECK(describe_shape(entries).str() == "sha256:ca7640be10b738088dd8e2bf5841993327d1c9e484811d97de7aeb2fa66db4b8");
  CHECK(describe_entries(entries, varied_digests(entries)).str() ==
        "sha256:db6e670811d26ff52872e6da606d8cecdde5b09404ce55428dc18343ac3b6a8a");
  // The form of one line, readable: keys sorted, JSON escapes, one line per entry.
  LayerEntry e{"a \"b\"\\\n\x01", LayerEntry::Type::File, 04755, 1, 2, "/x", 7, {}};
  CHECK(describe_shape({e}) == sha256_of("{\"gid\":2,\"mode\":2541,\"path\":\"a \\\"b\\\"\\\\\\n\\u0001\",\"size\":7,"
                                         "\"type\":\"file\",\"uid\":1}\n"));
  LayerEntry l{"l", LayerEntry::Type::Symlink, 0777, 0, 0, {}, 0, "t"};
  CHECK(describe_shape({l, l}) ==
        sha256_of("{\"gid\":0,\"mode\":511,\"path\":\"l\",\"target\":\"t\",\"type\":\"symlink\",\"uid\":0}\n"
                  "{\"gid\":0,\"mode\":511,\"path\":\"l\",\"target\":\"t\",\"type\":\"symlink\",\"uid\":0}\n"));
}

TEST_CASE("an entry's xattrs are part of its description, and only an entry with some changes", "[step_cache]") {
  LayerEntry plain{"bin/ping", LayerEntry::Type::File, 0755, 0, 0, "/x", 3, {}, {}};
  LayerEntry capable = plain;
  capable.xattrs = {{"security.capability", std::string("\x01\x00", 2)}, {"user.a", "b"}};
  // Without xattrs, the line is the one step keys were made of before layers had them.
  CHECK(describe_shape({plain}) ==
        sha256_of("{\"gid\":0,\"mode\":493,\"path\":\"bin/ping\",\"size\":3,\"type\":\"file\",\"uid\":0}\n"));
  // With them, after "uid" (keys sorted), values in hex: setcap alone is a change.
  CHECK(describe_shape({capable}) ==
        sha256_of("{\"gid\":0,\"mode\":493,\"path\":\"bin/ping\",\"size\":3,\"type\":\"file\",\"uid\":0,"
                  "\"xattrs\":{\"security.capability\":\"0100\",\"user.a\":\"62\"}}\n"));
  LayerEntry other = capable;
  other.xattrs[1].second = "c";
  CHECK(describe_shape({other}) != describe_shape({capable}));
}

TEST_CASE("a name or link target that is not UTF-8 cannot be described, and the error says which", "[step_cache]") {
  // JSON (the key) carries only UTF-8; the bad bytes are shown as U+FFFD and
  // control characters escaped, so the message is safe on a terminal.
  LayerEntry latin1{"dir/caf\xe9", LayerEntry::Type::File, 0644, 0, 0, "/x", 1, {}};
  CHECK(error_of([&] { describe_shape({latin1}); }) == "/dir/caf\xef\xbf\xbd: the name is not valid UTF-8");
  LayerEntry link{"new\nline", LayerEntry::Type::Symlink, 0777, 0, 0, {}, 0, "\xc3"};
  CHECK(error_of([&] { describe_entries({link}, FileDigests(1)); }) ==
        "/new\\nline: the symlink target is not valid UTF-8");
}

TEST_CASE("prune counts and removes what :add extracted and fetched, and listings of layers gone",
          "[step_cache][prune]") {
  ScratchDir dir;
  Layout store(dir.path / "store");
  fs::path cache_dir = dir.path / "cache";
  LayerBlob kept_layer = layer_in(store, "kept", dir.path);
  LayerBlob lost_layer = layer_in(store, "lost", dir.path);
  Image image;
  image.layers.push_back(kept_layer);
  Descriptor config = store.put_document(image.config_document(), media_type::kConfig);
  store.set_ref("kept", store.put_document(image.manifest_document(config), media_type::kManifest));
  fs::path archive = cache_dir / "archives" / "aa";
  fs::create_directories(archive / "etc");
  spit(archive / "etc" / "zone", std::string(40000, 'z'));
  age(archive, 20 * 86400);
  fs::path download = cache_dir / "downloads" / "bb";
  fs::create_directories(download.parent_path());
  spit(download, std::string(30000, 'd'));
  age(download, 10 * 86400);
  fs::path listings = cache_dir / "layer-listings";
  fs::create_directories(listings);
  spit(listings / std::string(kept_layer.digest.hex()), "f\t644\t/a\ta\n");
  spit(listings / std::string(lost_layer.digest.hex()), "f\t644\t/b\tb\n");

  CacheTrees trees = cache_trees(cache_dir);
  REQUIRE(trees.trees.size() == 2);
  CHECK(trees.trees[0].kind == "archive");
  CHECK(trees.trees[1].kind == "download");
  CHECK(trees.trees[1].bytes == disk(download));

  SECTION("--older-than: the old extraction goes, the newer download stays") {
    PruneReport r = prune_cache(cache_dir, store, PruneOptions{std::nullopt, 15 * 86400});
    CHECK(r.trees == 1);
    CHECK_FALSE(fs::exists(archive));
    CHECK(fs::exists(download));
    CHECK_FALSE(fs::exists(listings / std::string(lost_layer.digest.hex())));
    CHECK(fs::exists(listings / std::string(kept_layer.digest.hex())));
  }
  SECTION("no option: all of them") {
    PruneReport r = prune_cache(cache_dir, store, PruneOptions{});
    CHECK(r.trees == 2);
    CHECK_FALSE(fs::exists(archive));
    CHECK_FALSE(fs::exists(download));
    CHECK(fs::is_empty(listings));
  }
}

TEST_CASE("shapes are remembered until the whole cache is pruned", "[step_cache]") {
  ScratchDir dir;
  Layout store(dir.path / "store");
  StepCache cache(dir.path / "cache");
  Digest shape = step_key({{"shape", "a"}});
  CHECK_FALSE(cache.knows_shape(shape));
  cache.add_shape(shape, {}, 0);
  cache.add_shape(shape, {}, 0);  // again: no error
  CHECK(cache.knows_shape(shape));
  CHECK_FALSE(cache.knows_shape(step_key({{"shape", "b"}})));
  SECTION("a partial prune keeps them") {
    prune_cache(dir.path / "cache", store, PruneOptions{uint64_t{1} << 30, std::nullopt});
    CHECK(cache.knows_shape(shape));
  }
  SECTION("pruning everything removes them") {
    prune_cache(dir.path / "cache", store, PruneOptions{});
    CHECK_FALSE(cache.knows_shape(shape));
  }
}

namespace {
int64_t now_ns() {
  struct timespec ts {};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return ts.tv_sec * 1'000'000'000LL + ts.tv_nsec;
}
}  // namespace

TEST_CASE("a file whose stamp is unchanged is not read again for a key", "[step_cache]") {
  ScratchDir dir;
  spit(dir.path / "a", "alpha");
  spit(dir.path / "b", "bravo");
  std::vector<LayerEntry> entries{
      LayerEntry{"a", LayerEntry::Type::File, 0644, 0, 0, dir.path / "a", 5, {}},
      LayerEntry{"d", LayerEntry::Type::Directory, 0755, 0, 0, {}, 0, {}},
      LayerEntry{"b", LayerEntry::Type::File, 0644, 0, 0, dir.path / "b", 5, {}},
  };
  FileDigests read = hash_files(entries);
  REQUIRE(read[0]);
  CHECK_FALSE(read[1]);
  CHECK(read[0]->digest() == sha256_of("alpha"));
  // A known digest with a matching stamp is taken as it is: a wrong one shows
  // that the file was not read.
  FileDigests known = read;
  known[0]->sha256.fill(0);
  known[2]->stamp.ctime_ns -= 1;  // b changed since
  size_t files_read = 0;
  FileDigests again = hash_files(entries, known, &files_read);
  CHECK(files_read == 1);
  CHECK(again[0]->sha256 == known[0]->sha256);
  CHECK(again[2]->digest() == sha256_of("bravo"));
  CHECK(again[2]->stamp == read[2]->stamp);
}

TEST_CASE("a shape keeps its files' digests, but not those of files changed just before", "[step_cache]") {
  ScratchDir dir;
  StepCache cache(dir.path / "cache");
  spit(dir.path / "a", "alpha");
  std::vector<LayerEntry> entries{
      LayerEntry{"a", LayerEntry::Type::File, 0644, 0, 0, dir.path / "a", 5, {}},
      LayerEntry{"d", LayerEntry::Type::Directory, 0755, 0, 0, {}, 0, {}},
  };
  Digest shape = step_key({{"shape", describe_shape(entries).str()}});
  FileDigests read = hash_files(entries);
  CHECK(cache.shape_files(shape, 2).empty());

  SECTION("a file changed over a second before it was read is trusted next time") {
    cache.add_shape(shape, read, read[0]->stamp.ctime_ns + 1'000'000'001);
    CHECK(cache.knows_shape(shape));
    CHECK(cache.shape_files(shape, 2) == read);
    CHECK(cache.shape_files(shape, 3).empty());  // another number of entries: not this record
  }
  SECTION("one changed within the second may change again unseen (a coarse clock): read again") {
    cache.add_shape(shape, read, now_ns());
    CHECK(cache.knows_shape(shape));
    CHECK(cache.shape_files(shape, 2) == FileDigests(2));
  }
  SECTION("the record is a line per entry, read back as written, older mtimes included") {
    FileDigest f{};
    for (size_t b = 0; b < f.sha256.size(); ++b) f.sha256[b] = static_cast<unsigned char>(b * 8 + 1);
    f.stamp = FileStamp{2049, 18446744073709551615u, 5, -1'000'000'001, 1'700'000'000'123'456'789};
    cache.add_shape(shape, {f, std::nullopt}, std::numeric_limits<int64_t>::max());
    fs::path file = dir.path / "cache" / "shapes" / std::string(shape.hex());
    CHECK(slurp(file) ==
          "imgbuild-shape-1\n"
          "2049 18446744073709551615 5 -1000000001 1700000000123456789 "
          "0109111921293139414951596169717981899199a1a9b1b9c1c9d1d9e1e9f1f9\n"
          "-\n");
    CHECK(cache.shape_files(shape, 2) == FileDigests{f, std::nullopt});
  }
  SECTION("a damaged record is nothing known") {
    cache.add_shape(shape, read, read[0]->stamp.ctime_ns + 2'000'000'000);
    fs::path file = dir.path / "cache" / "shapes" / std::string(shape.hex());
    std::string text = slurp(file);
    spit(file, text.substr(0, text.size() - 10) + "\n");
    CHECK(cache.shape_files(shape, 2).empty());
    spit(file, text.substr(0, text.size() - 6) + "A" + text.substr(text.size() - 5));  // not lowercase hex
    CHECK(cache.shape_files(shape, 2).empty());
    spit(file, text.substr(0, text.size() - 1));  // no final newline: cut short
    CHECK(cache.shape_files(shape, 2).empty());
    spit(file, text);
    CHECK(cache.shape_files(shape, 2).size() == 2);
    spit(file, "imgbuild-shape-0\n-\n-\n");
    CHECK(cache.shape_files(shape, 2).empty());
  }
}
