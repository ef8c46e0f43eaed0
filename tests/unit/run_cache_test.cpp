// Tests for the archives of `:run` cache mounts (store/run_cache.hpp): the
// same folder makes the same blob whatever its mtimes and creation order, an
// archive seeds a fresh folder with what the folder held, a folder a secret
// was exposed to is never archived, and hostile archives (climbing out, a
// symlink out, device nodes, a zstd bomb, not zstd) are refused with nothing
// written outside the cache folder.
#include "store/run_cache.hpp"

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/time.h>
#include <zstd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "layer/layer.hpp"
#include "layer/unpack.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace imgbuild;
using namespace imgbuild::test;

namespace {

/// A cache as a Go build leaves one: files in folders, a symlink, an empty folder.
void fill_cache(const fs::path& dir, bool reversed) {
  std::vector<std::pair<std::string, std::string>> files = {
      {"00/0a-d", "compiled"}, {"01/1b-a", "action"}, {"trim.txt", "1700000000\n"}, {"README", "go cache"}};
  if (reversed) std::reverse(files.begin(), files.end());
  for (auto& [path, data] : files) {
    fs::create_directories((dir / path).parent_path());
    spit(dir / path, data);
  }
  fs::create_directories(dir / "empty");
  fs::create_symlink("../README", dir / "00/readme-link");
  ::chmod((dir / "01/1b-a").c_str(), 0600);
}

/// A zstd blob of the tar of `entries` (written as given, not checked), in `dir`.
fs::path hostile_blob(const fs::path& dir, const std::vector<LayerEntry>& entries) {
  std::string tar;
  write_tar(
      entries, [&](const void* data, size_t size) { tar.append(static_cast<const char*>(data), size); }, 0);
  std::string zst(ZSTD_compressBound(tar.size()), '\0');
  size_t n = ZSTD_compress(zst.data(), zst.size(), tar.data(), tar.size(), 19);
  REQUIRE_FALSE(ZSTD_isError(n));
  zst.resize(n);
  fs::path blob = dir / "hostile.tar.zst";
  spit(blob, zst);
  return blob;
}

LayerEntry file_entry(const std::string& path, const fs::path& source) {
  LayerEntry e;
  e.path = path;
  e.source = source.string();
  e.size = fs::file_size(source);
  return e;
}

/// What `dir` holds: each path, its type and mode, and a file's bytes or a link's target.
std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> out;
  for (auto& e : fs::recursive_directory_iterator(dir)) {
    struct stat st {};
    ::lstat(e.path().c_str(), &st);
    std::string line = e.path().lexically_relative(dir).string() + " " + std::to_string(st.st_mode);
    if (S_ISREG(st.st_mode)) line += " " + slurp(e.path());
    if (S_ISLNK(st.st_mode)) line += " -> " + fs::read_symlink(e.path()).string();
    out.push_back(line);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST_CASE("a cache folder's archive depends on its files alone, and seeds a fresh folder with them", "[run-cache]") {
  ScratchDir t;
  fs::create_directories(t.path / "blobs");
  fill_cache(t.path / "a", false);
  fill_cache(t.path / "b", true);
  // Other mtimes, as another runner's: the archive fixes them.
  struct timeval times[2] = {{1000, 0}, {2000, 0}};
  ::utimes((t.path / "b/README").c_str(), times);

  RunCacheArchive a = archive_run_cache(t.path / "a", t.path / "blobs");
  RunCacheArchive b = archive_run_cache(t.path / "b", t.path / "blobs");
  REQUIRE(a.blob);
  REQUIRE(b.blob);
  CHECK(a.skipped.empty());
  CHECK(a.blob->digest == b.blob->digest);
  CHECK(a.blob->media_type == media_type::kLayerZstd);
  // Twice the same folder: the same bytes.
  CHECK(archive_run_cache(t.path / "a", t.path / "blobs").blob->digest == a.blob->digest);

  fs::path blob = t.path / "blobs" / std::string(a.blob->digest.hex());
  fs::path fresh = t.path / "cache/run-cache/0123";
  fs::create_directories(fresh.parent_path());
  CHECK(run_cache_needs_seed(fresh));
  CHECK(seed_run_cache(blob, fresh, "cache"));
  CHECK(listing(fresh) == listing(t.path / "a"));
  CHECK_FALSE(run_cache_needs_seed(fresh));
  // A folder with files keeps them: this machine's cache wins.
  spit(fresh / "mine", "local");
  CHECK_FALSE(seed_run_cache(blob, fresh, "cache"));
  CHECK(slurp(fresh / "mine") == "local");
  // Nothing is left beside it.
  std::vector<std::string> beside;
  for (auto& e : fs::directory_iterator(fresh.parent_path())) beside.push_back(e.path().filename().string());
  CHECK(beside == std::vector<std::string>{"0123"});
}

TEST_CASE("a missing or empty cache folder has no archive, a too big one says why", "[run-cache]") {
  ScratchDir t;
  CHECK_FALSE(archive_run_cache(t.path / "missing", t.path).blob);
  CHECK(archive_run_cache(t.path / "missing", t.path).skipped.empty());
  fill_cache(t.path / "big", false);
  RunCacheArchive big = archive_run_cache(t.path / "big", t.path, 10);
  CHECK_FALSE(big.blob);
  CHECK(big.skipped == "holds 33 B, over the 10 B a cache mount may export");
}

TEST_CASE("a cache folder a secret was exposed to is never archived, until it is removed", "[run-cache]") {
  ScratchDir t;
  fs::path folder = t.path / "run-cache/abcd";
  fill_cache(folder, false);
  spit(folder / "leak", "canary-secret");
  CHECK_FALSE(secret_exposed(folder));
  mark_secret_exposed(folder);
  CHECK(secret_exposed(folder));
  RunCacheArchive made = archive_run_cache(folder, t.path);
  CHECK_FALSE(made.blob);
  CHECK(made.skipped == "a step with a secret mounted it");
  // No blob was written at all.
  for (auto& e : fs::directory_iterator(t.path)) CHECK(e.path().filename() == "run-cache");
  remove_run_cache_marks(folder);
  CHECK_FALSE(secret_exposed(folder));
}

TEST_CASE("hostile cache archives are refused and write nothing outside the cache folder", "[run-cache]") {
  ScratchDir t;
  fs::path outside = t.path / "outside";
  fs::create_directories(outside);
  fs::path caches = t.path / "cache/run-cache";
  fs::create_directories(caches);
  fs::path folder = caches / "0123";
  spit(t.path / "payload", "pwned");

  auto refused = [&](const fs::path& blob, const std::string& message, uint64_t limit = kRunCacheLimit) {
    CHECK_THROWS_WITH(seed_run_cache(blob, folder, "the cache at /c", limit), Catch::Contains(message));
    CHECK(fs::is_empty(outside));
    CHECK_FALSE(fs::exists(folder));
    CHECK(fs::is_empty(caches));  // no half-unpacked folder stays
  };

  SECTION("a path climbing out") {
    refused(hostile_blob(t.path, {file_entry("../../outside/x", t.path / "payload")}), "escapes");
  }
  SECTION("a symlink out, then a file through it: written inside, or refused") {
    LayerEntry link{.path = "out", .type = LayerEntry::Type::Symlink, .link_target = outside.string()};
    fs::path blob = hostile_blob(t.path, {link, file_entry("out/x", t.path / "payload")});
    try {
      seed_run_cache(blob, folder, "the cache at /c");
    } catch (const UnpackError&) {
    }
    CHECK(fs::is_empty(outside));
  }
  SECTION("a device node") {
    LayerEntry dev{.path = "disk", .type = LayerEntry::Type::BlockDevice, .mode = 0600};
    dev.device_major = 8;
    refused(hostile_blob(t.path, {dev}), "the cache at /c");
  }
  SECTION("a stream over the limit, however small its blob") {
    spit(t.path / "zeros", std::string(1 << 20, '\0'));
    refused(hostile_blob(t.path, {file_entry("zeros", t.path / "zeros")}),
            "the cache at /c: holds more than 100.0 kB unpacked", 100'000);
  }
  SECTION("not zstd") {
    spit(t.path / "plain", "just some bytes, not an archive");
    refused(t.path / "plain", "the cache at /c: not a zstd archive");
  }
}
