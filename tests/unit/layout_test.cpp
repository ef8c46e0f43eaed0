// Tests for the OCI image layout: creation, documents, refs in index.json,
// importing images between layouts, concurrent writers and the XDG defaults;
// blobs verified against their digests (a tampered store, a planted output
// file, an image that lies about its diff_ids) and `store verify`.
#include "store/layout.hpp"
#include "store/image_records.hpp"
#include "store/verified.hpp"

#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "layer/layer.hpp"
#include "layer/unpack.hpp"
#include "oci/digest.hpp"
#include "oci/image.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using imgbuild::Descriptor;
using imgbuild::Digest;
using imgbuild::ImageRecord;
using imgbuild::Layout;
using imgbuild::sha256_of;
using namespace imgbuild::test;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;
using json = nlohmann::json;

namespace {

// A manifest descriptor that needs no blob (set_ref does not read it).
Descriptor fake_manifest(const std::string& seed) {
  std::string doc = "{\"fake\":\"" + seed + "\"}";
  return Descriptor{imgbuild::media_type::kManifest, sha256_of(doc), doc.size(), {}};
}

std::vector<std::string> ref_names(const Layout& l) {
  std::vector<std::string> out;
  for (auto& d : l.refs()) out.push_back(d.annotations.at(imgbuild::kRefNameAnnotation));
  return out;
}

// A complete image (one layer, config, manifest) stored in `layout`.
struct StoredFixture {
  Descriptor manifest;
  Descriptor config;
  imgbuild::LayerBlob layer;
};

StoredFixture store_image(Layout& layout, const fs::path& scratch) {
  fs::create_directories(scratch / "src");
  spit(scratch / "src" / "hello", "hello from the layer\n");
  imgbuild::LayerEntry e;
  e.path = "hello";
  e.source = scratch / "src" / "hello";
  e.size = fs::file_size(e.source);
  imgbuild::LayerOptions opts;
  opts.mtime = 1000;
  imgbuild::Image img;
  img.platform = imgbuild::Platform::parse("linux/amd64");
  img.created = 1000;
  img.config.cmd = std::vector<std::string>{"/hello"};
  img.layers.push_back(imgbuild::write_layer({e}, layout.blob_dir(), opts));
  img.history.push_back({"copy hello", false});
  Descriptor cfg = layout.put_document(img.config_document(), imgbuild::media_type::kConfig);
  Descriptor man = layout.put_document(img.manifest_document(cfg), imgbuild::media_type::kManifest);
  return {man, cfg, img.layers[0]};
}

// Sets an environment variable for a scope and restores the old value.
class EnvGuard {
public:
  explicit EnvGuard(const char* name) : name_(name) {
    if (const char* v = std::getenv(name)) old_ = v;
  }
  ~EnvGuard() {
    if (old_)
      ::setenv(name_, old_->c_str(), 1);
    else
      ::unsetenv(name_);
  }
  void set(const char* value) const { ::setenv(name_, value, 1); }
  void unset() const { ::unsetenv(name_); }
  EnvGuard(const EnvGuard&) = delete;
  EnvGuard& operator=(const EnvGuard&) = delete;

private:
  const char* name_;
  std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("a new layout has oci-layout and an empty index.json", "[layout]") {
  ScratchDir s;
  fs::path root = s.path / "store" / "nested";
  Layout l(root);
  REQUIRE(l.root() == root);
  REQUIRE(fs::is_directory(root / "blobs" / "sha256"));
  REQUIRE(l.blob_dir() == root / "blobs" / "sha256");

  json layout = json::parse(slurp(root / "oci-layout"));
  REQUIRE(layout == json{{"imageLayoutVersion", "1.0.0"}});

  json index = json::parse(slurp(root / "index.json"));
  REQUIRE(index["schemaVersion"] == 2);
  REQUIRE(index["mediaType"] == "application/vnd.oci.image.index.v1+json");
  REQUIRE(index["manifests"].is_array());
  REQUIRE(index["manifests"].empty());
  REQUIRE(l.refs().empty());
  REQUIRE_FALSE(l.find_ref("anything").has_value());

  // Reopening an existing layout keeps what it holds.
  l.set_ref("app", fake_manifest("app"));
  Layout again(root);
  REQUIRE(ref_names(again) == std::vector<std::string>{"app"});
}

TEST_CASE("put_document and read_document round trip", "[layout]") {
  ScratchDir s;
  Layout l(s.path);
  std::string doc = R"({"schemaVersion":2,"x":"y"})";
  REQUIRE_FALSE(l.has_blob(sha256_of(doc)));
  Descriptor d = l.put_document(doc, imgbuild::media_type::kConfig);
  REQUIRE(d.media_type == imgbuild::media_type::kConfig);
  REQUIRE(d.digest == sha256_of(doc));
  REQUIRE(d.size == doc.size());
  REQUIRE(d.annotations.empty());
  REQUIRE(l.has_blob(d.digest));
  REQUIRE(l.blob_path(d.digest) == s.path / "blobs" / "sha256" / std::string(d.digest.hex()));
  REQUIRE(slurp(l.blob_path(d.digest)) == doc);
  REQUIRE(l.read_document(d) == doc);

  // Storing it again is harmless and gives the same descriptor.
  Descriptor again = l.put_document(doc, imgbuild::media_type::kConfig);
  REQUIRE(again.digest == d.digest);
  REQUIRE(again.size == d.size);
  REQUIRE(l.read_document(again) == doc);

  // A directory where a blob should be is not a blob.
  Digest dir_digest = sha256_of("not a blob");
  fs::create_directories(l.blob_path(dir_digest));
  REQUIRE_FALSE(l.has_blob(dir_digest));
}

TEST_CASE("read_document detects corrupt, missing and oversized blobs", "[layout]") {
  ScratchDir s;
  Layout l(s.path);
  std::string doc = R"({"config":{"Cmd":["/bin/sh"]}})";
  Descriptor d = l.put_document(doc, imgbuild::media_type::kConfig);

  SECTION("bytes overwritten, same size") {
    std::string bad = doc;
    bad[3] = 'X';
    spit(l.blob_path(d.digest), bad);
    REQUIRE(fs::file_size(l.blob_path(d.digest)) == doc.size());
    REQUIRE_THROWS_AS(l.read_document(d), std::runtime_error);
    REQUIRE_THROWS_WITH(l.read_document(d), Contains("corrupt") && Contains(d.digest.str()));
  }
  SECTION("truncated") {
    spit(l.blob_path(d.digest), doc.substr(0, 5));
    REQUIRE_THROWS_WITH(l.read_document(d), Contains("corrupt"));
  }
  SECTION("descriptor size disagrees with the blob") {
    Descriptor wrong = d;
    wrong.size = d.size + 1;
    REQUIRE_THROWS_WITH(l.read_document(wrong), Contains("corrupt"));
  }
  SECTION("missing blob") {
    Descriptor other{imgbuild::media_type::kConfig, sha256_of("absent"), 6, {}};
    REQUIRE_THROWS(l.read_document(other));
  }
  SECTION("larger than a document may be") {
    Descriptor huge = d;
    huge.size = imgbuild::kMaxDocumentSize + 1;
    REQUIRE_THROWS_WITH(l.read_document(huge), Contains("too large"));
  }
}

TEST_CASE("set_ref replaces an image of the same name and keeps the others", "[layout]") {
  ScratchDir s;
  Layout l(s.path);
  l.set_ref("a:1", fake_manifest("a1"));
  l.set_ref("b:1", fake_manifest("b1"));
  l.set_ref("c:1", fake_manifest("c1"));
  REQUIRE(ref_names(l) == std::vector<std::string>{"a:1", "b:1", "c:1"});

  Descriptor newer = fake_manifest("b2");
  l.set_ref("b:1", newer);
  REQUIRE(l.refs().size() == 3);
  REQUIRE(ref_names(l) == std::vector<std::string>{"a:1", "c:1", "b:1"});

  auto b = l.find_ref("b:1");
  REQUIRE(b.has_value());
  REQUIRE(b->digest == newer.digest);
  REQUIRE(b->size == newer.size);
  REQUIRE(b->media_type == imgbuild::media_type::kManifest);
  REQUIRE(b->annotations.at(imgbuild::kRefNameAnnotation) == "b:1");
  REQUIRE(l.find_ref("a:1")->digest == fake_manifest("a1").digest);
  REQUIRE(l.find_ref("c:1")->digest == fake_manifest("c1").digest);
  REQUIRE_FALSE(l.find_ref("b").has_value());
  REQUIRE_FALSE(l.find_ref("d:1").has_value());

  // The same manifest under two names is two entries.
  l.set_ref("alias", newer);
  REQUIRE(l.refs().size() == 4);
  REQUIRE(l.find_ref("alias")->digest == newer.digest);

  // Annotations already on the descriptor are kept, the name is overwritten.
  Descriptor annotated = fake_manifest("ann");
  annotated.annotations["org.example.note"] = "kept";
  annotated.annotations[imgbuild::kRefNameAnnotation] = "wrong-name";
  l.set_ref("named", annotated);
  auto named = l.find_ref("named");
  REQUIRE(named.has_value());
  REQUIRE(named->annotations.at("org.example.note") == "kept");
  REQUIRE_FALSE(l.find_ref("wrong-name").has_value());

  json index = json::parse(slurp(s.path / "index.json"));
  REQUIRE(index["schemaVersion"] == 2);
  REQUIRE(index["manifests"].size() == 5);
  REQUIRE(index["manifests"][0]["annotations"][imgbuild::kRefNameAnnotation] == "a:1");
  REQUIRE(index["manifests"][0]["digest"] == fake_manifest("a1").digest.str());
}

TEST_CASE("one name holds one image per platform", "[layout]") {
  ScratchDir s;
  Layout l(s.path);
  Descriptor amd = fake_manifest("amd64"), arm = fake_manifest("arm64"), built = fake_manifest("built");
  amd.platform = imgbuild::Platform{"linux", "amd64", ""};
  arm.platform = imgbuild::Platform{"linux", "arm64", "v8"};
  l.set_ref("docker.io/library/alpine:3.20", amd);
  l.set_ref("docker.io/library/alpine:3.20", arm);
  l.set_ref("docker.io/library/alpine:3.20", built);
  REQUIRE(l.refs().size() == 3);
  CHECK(l.find_ref("docker.io/library/alpine:3.20", amd.platform)->digest == amd.digest);
  CHECK(l.find_ref("docker.io/library/alpine:3.20", arm.platform)->digest == arm.digest);
  CHECK(l.find_ref("docker.io/library/alpine:3.20")->digest == built.digest);
  CHECK_FALSE(l.find_ref("docker.io/library/alpine:3.20", imgbuild::Platform{"linux", "arm64", ""}));

  // Replacing one platform's image leaves the others.
  Descriptor newer = fake_manifest("arm64-newer");
  newer.platform = arm.platform;
  l.set_ref("docker.io/library/alpine:3.20", newer);
  REQUIRE(l.refs().size() == 3);
  CHECK(l.find_ref("docker.io/library/alpine:3.20", arm.platform)->digest == newer.digest);
  json index = json::parse(slurp(s.path / "index.json"));
  CHECK(index["manifests"][2]["platform"] == json{{"os", "linux"}, {"architecture", "arm64"}, {"variant", "v8"}});
}

TEST_CASE("a broken index.json is reported", "[layout]") {
  ScratchDir s;
  Layout l(s.path);
  spit(s.path / "index.json", "{not json");
  REQUIRE_THROWS_WITH(l.refs(), Contains("not a valid index"));
  REQUIRE_THROWS_WITH(l.set_ref("x", fake_manifest("x")), Contains("not a valid index"));
  REQUIRE(slurp(s.path / "index.json") == "{not json");  // a failed set_ref changed nothing
}

TEST_CASE("load reads a stored image's manifest and config", "[layout]") {
  ScratchDir s;
  Layout l(s.path / "store");
  StoredFixture img = store_image(l, s.path);
  imgbuild::StoredImage loaded = l.load(img.manifest);
  REQUIRE(loaded.manifest_json["config"]["digest"] == img.config.digest.str());
  REQUIRE(loaded.manifest_json["layers"].size() == 1);
  REQUIRE(loaded.manifest_json["layers"][0]["digest"] == img.layer.digest.str());
  REQUIRE(loaded.config_json["rootfs"]["diff_ids"][0] == img.layer.diff_id.str());
  REQUIRE(loaded.total_size() == img.manifest.size + img.config.size + img.layer.size);
}

TEST_CASE("import_image copies blobs into another layout and names it", "[layout]") {
  ScratchDir s;
  Layout src(s.path / "src");
  StoredFixture img = store_image(src, s.path);
  src.set_ref("original:tag", img.manifest);
  Descriptor from_src = *src.find_ref("original:tag");  // carries the source's name annotation

  auto check_import = [&](Layout& dst) {
    dst.import_image(src, from_src, "imported:v1");
    for (const Digest& d : {img.manifest.digest, img.config.digest, img.layer.digest}) {
      INFO(d.str());
      REQUIRE(dst.has_blob(d));
      REQUIRE(slurp(dst.blob_path(d)) == slurp(src.blob_path(d)));
    }
    REQUIRE(dst.refs().size() == 1);
    auto named = dst.find_ref("imported:v1");
    REQUIRE(named.has_value());
    REQUIRE(named->digest == img.manifest.digest);
    REQUIRE(named->size == img.manifest.size);
    REQUIRE(named->annotations.size() == 1);  // the source's name does not travel
    REQUIRE_FALSE(dst.find_ref("original:tag").has_value());
    REQUIRE(dst.load(*named).config_json["config"]["Cmd"][0] == "/hello");
    // The source is untouched.
    REQUIRE(ref_names(src) == std::vector<std::string>{"original:tag"});

    // Importing again under another name reuses the blobs.
    dst.import_image(src, from_src, "imported:v2");
    REQUIRE(ref_names(dst) == std::vector<std::string>{"imported:v1", "imported:v2"});
  };

  SECTION("same file system: hard links") {
    Layout dst(s.path / "dst");
    check_import(dst);
    struct stat a {
    }, b{};
    REQUIRE(::stat(src.blob_path(img.layer.digest).c_str(), &a) == 0);
    REQUIRE(::stat(dst.blob_path(img.layer.digest).c_str(), &b) == 0);
    REQUIRE(a.st_ino == b.st_ino);
  }
  SECTION("another file system: copies") {
    struct stat shm {
    }, tmp{};
    if (::stat("/dev/shm", &shm) != 0 || ::stat(s.path.c_str(), &tmp) != 0 || shm.st_dev == tmp.st_dev) {
      WARN("no second file system at /dev/shm; copy path not exercised");
      return;
    }
    ScratchDir other("/dev/shm");
    Layout dst(other.path / "dst");
    check_import(dst);
    struct stat a {
    }, b{};
    REQUIRE(::stat(src.blob_path(img.layer.digest).c_str(), &a) == 0);
    REQUIRE(::stat(dst.blob_path(img.layer.digest).c_str(), &b) == 0);
    REQUIRE(a.st_dev != b.st_dev);
    // No temporary is left next to the blobs.
    size_t n = 0;
    for (auto& de : fs::directory_iterator(dst.blob_dir())) {
      INFO(de.path().filename().string());
      REQUIRE(de.path().filename().string().front() != '.');
      ++n;
    }
    REQUIRE(n == 3);
  }
}

TEST_CASE("import_image fails on a corrupt source manifest", "[layout]") {
  ScratchDir s;
  Layout src(s.path / "src");
  StoredFixture img = store_image(src, s.path);
  std::string m = slurp(src.blob_path(img.manifest.digest));
  m[m.size() / 2] ^= 0x20;
  spit(src.blob_path(img.manifest.digest), m);
  Layout dst(s.path / "dst");
  REQUIRE_THROWS_WITH(dst.import_image(src, img.manifest, "x"), Contains("corrupt"));
  REQUIRE(dst.refs().empty());
}

TEST_CASE("concurrent set_ref from two processes loses no name", "[layout]") {
  ScratchDir s;
  fs::path root = s.path / "store";
  bool create_in_children = GENERATE(false, true);
  INFO("layout created by " << (create_in_children ? "the racing children" : "the parent"));
  if (!create_in_children) Layout pre(root);

  constexpr int kPerChild = 50;
  std::vector<pid_t> children;
  for (int c = 0; c < 2; ++c) {
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      int rc = 0;
      try {
        Layout l(root);
        for (int i = 0; i < kPerChild; ++i) {
          std::string name = "p" + std::to_string(c) + "-" + std::to_string(i);
          l.set_ref(name, fake_manifest(name));
        }
      } catch (...) {
        rc = 1;
      }
      ::_exit(rc);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    REQUIRE(WEXITSTATUS(status) == 0);
  }

  json index = json::parse(slurp(root / "index.json"), nullptr, false);
  REQUIRE_FALSE(index.is_discarded());
  REQUIRE(index["manifests"].size() == 2 * kPerChild);

  Layout l(root);
  std::set<std::string> names;
  for (auto& d : l.refs()) names.insert(d.annotations.at(imgbuild::kRefNameAnnotation));
  REQUIRE(names.size() == 2 * kPerChild);
  for (int c = 0; c < 2; ++c)
    for (int i = 0; i < kPerChild; ++i) {
      std::string name = "p" + std::to_string(c) + "-" + std::to_string(i);
      INFO(name);
      auto d = l.find_ref(name);
      REQUIRE(d.has_value());
      REQUIRE(d->digest == fake_manifest(name).digest);
    }
  // No temporaries left in the layout root.
  for (auto& de : fs::directory_iterator(root)) {
    std::string n = de.path().filename().string();
    INFO(n);
    REQUIRE((n == "blobs" || n == "index.json" || n == "oci-layout" || n == ".imgbuild.lock"));
  }
}

TEST_CASE("default_store_dir and default_cache_dir follow XDG, then HOME", "[layout]") {
  EnvGuard home("HOME"), data("XDG_DATA_HOME"), cache("XDG_CACHE_HOME");
  home.set("/home/tester");

  SECTION("XDG variables win") {
    data.set("/xdg/data");
    cache.set("/xdg/cache");
    REQUIRE(imgbuild::default_store_dir() == fs::path("/xdg/data/imgbuild"));
    REQUIRE(imgbuild::default_cache_dir() == fs::path("/xdg/cache/imgbuild"));
  }
  SECTION("unset XDG variables fall back to HOME") {
    data.unset();
    cache.unset();
    REQUIRE(imgbuild::default_store_dir() == fs::path("/home/tester/.local/share/imgbuild"));
    REQUIRE(imgbuild::default_cache_dir() == fs::path("/home/tester/.cache/imgbuild"));
  }
  SECTION("empty or relative XDG variables are ignored") {
    data.set("");
    cache.set("relative/cache");
    REQUIRE(imgbuild::default_store_dir() == fs::path("/home/tester/.local/share/imgbuild"));
    REQUIRE(imgbuild::default_cache_dir() == fs::path("/home/tester/.cache/imgbuild"));
  }
  SECTION("each variable only affects its own directory") {
    data.set("/xdg/data");
    cache.unset();
    REQUIRE(imgbuild::default_store_dir() == fs::path("/xdg/data/imgbuild"));
    REQUIRE(imgbuild::default_cache_dir() == fs::path("/home/tester/.cache/imgbuild"));
  }
  SECTION("neither set is an error") {
    data.unset();
    cache.unset();
    home.unset();
    REQUIRE_THROWS_WITH(imgbuild::default_store_dir(), "neither $XDG_DATA_HOME nor $HOME is set");
    REQUIRE_THROWS_WITH(imgbuild::default_cache_dir(), "neither $XDG_CACHE_HOME nor $HOME is set");
    home.set("");
    REQUIRE_THROWS_AS(imgbuild::default_store_dir(), std::runtime_error);
  }
}

// --- Blobs trusted by what they hold (verified.cpp) -------------------------

namespace {

/// Replaces `path` by a new file (another inode) holding `bytes`, with the
/// old file's access and modification times: only its inode and ctime tell.
void swap_in(const fs::path& path, const std::string& bytes) {
  struct stat old {};
  REQUIRE(::stat(path.c_str(), &old) == 0);
  fs::path temp = path.string() + ".swap";
  spit(temp, bytes);
  struct timespec times[2] = {old.st_atim, old.st_mtim};
  REQUIRE(::utimensat(AT_FDCWD, temp.c_str(), times, 0) == 0);
  fs::rename(temp, path);
}

}  // namespace

TEST_CASE("a recorded blob is trusted only while its file is the one verified", "[layout][verified]") {
  ScratchDir s;
  Layout l(s.path / "store");
  std::vector<std::string> warnings;
  l.set_warning([&](const std::string& m) { warnings.push_back(m); });
  StoredFixture img = store_image(l, s.path);
  l.note_layer(img.layer);
  const Digest& d = img.layer.digest;
  const fs::path path = l.blob_path(d);
  const std::string bytes = slurp(path);
  REQUIRE(l.verify_blob(d, img.layer.size));
  REQUIRE(l.known_diff_id(d) == img.layer.diff_id);

  std::string changed = bytes;
  SECTION("a byte flipped in place") {
    changed[changed.size() / 2] ^= 0x01;
    spit(path, changed);
  }
  SECTION("another file of the same size, with the same times") {
    changed.assign(bytes.size(), 'x');
    swap_in(path, changed);
  }
  SECTION("another blob of the store swapped in") { swap_in(path, slurp(l.blob_path(img.config.digest))); }
  SECTION("a symlink to a file with the right bytes") {
    spit(s.path / "elsewhere", bytes);
    fs::remove(path);
    fs::create_symlink(s.path / "elsewhere", path);
  }
  CHECK_FALSE(l.verify_blob(d));
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Contains("store blob " + d.str() + " (" + path.string() + ") "));
  CHECK_THAT(warnings[0], Contains("damaged or replaced; removed it"));
  // Gone, with what was recorded about it: the next copy is verified afresh.
  CHECK_FALSE(fs::exists(fs::symlink_status(path)));
  CHECK_FALSE(l.known_diff_id(d));
  CHECK(error_of([&] { l.verified_blob(d, img.layer.size, "pull it again"); }) ==
        "blob " + d.str() + " (" + path.string() + ") is missing from the store: pull it again");
}

TEST_CASE("verified_blob names the damaged blob, its path and the way back", "[layout][verified]") {
  ScratchDir s;
  Layout l(s.path / "store");
  StoredFixture img = store_image(l, s.path);
  const fs::path path = l.blob_path(img.layer.digest);
  CHECK(l.verified_blob(img.layer.digest, img.layer.size, "-") == path);
  std::string bytes = slurp(path);
  bytes[0] ^= 0x01;
  spit(path, bytes);
  CHECK(error_of([&] { l.verified_blob(img.layer.digest, img.layer.size, "build it again"); }) ==
        "blob " + img.layer.digest.str() + " (" + path.string() +
            ") did not match its digest (damaged or replaced) and was removed: build it again");
  CHECK_FALSE(l.has_blob(img.layer.digest));
}

TEST_CASE("a layer's diff_id is its uncompressed stream's digest, recorded once read", "[layout][verified]") {
  ScratchDir s;
  Layout l(s.path / "store");
  StoredFixture img = store_image(l, s.path);
  CHECK_FALSE(l.known_diff_id(img.layer.digest));
  imgbuild::TarStream tar = imgbuild::read_tar_stream(l.blob_path(img.layer.digest));
  CHECK(tar.digest == img.layer.diff_id);
  CHECK(tar.size == img.layer.uncompressed_size);
  l.note_diff_id(img.layer.digest, tar.digest);
  CHECK(l.known_diff_id(img.layer.digest) == img.layer.diff_id);
  // A torn or edited record is nothing known, never a wrong answer.
  spit(s.path / "store" / ".imgbuild-verified" / (std::string(img.layer.digest.hex()) + ".diff_id"), "sha256:12");
  CHECK_FALSE(l.known_diff_id(img.layer.digest));
  // Records are written unsynced: a crash can leave one empty.
  spit(s.path / "store" / ".imgbuild-verified" / (std::string(img.layer.digest.hex()) + ".diff_id"), "");
  CHECK_FALSE(l.known_diff_id(img.layer.digest));
}

TEST_CASE("import_image never keeps a file that does not match its name", "[layout][verified]") {
  ScratchDir s;
  Layout src(s.path / "src");
  StoredFixture img = store_image(src, s.path);
  Layout dst(s.path / "dst");
  // Planted before the export: wrong bytes of the right size, other bytes, a symlink.
  std::string layer_bytes = slurp(src.blob_path(img.layer.digest));
  spit(dst.blob_path(img.layer.digest), std::string(layer_bytes.size(), 'x'));
  spit(dst.blob_path(img.config.digest), "{}");
  spit(s.path / "manifest-elsewhere", slurp(src.blob_path(img.manifest.digest)));
  fs::create_symlink(s.path / "manifest-elsewhere", dst.blob_path(img.manifest.digest));
  dst.import_image(src, img.manifest, "out");
  for (const Descriptor& d :
       {img.manifest, img.config, Descriptor{img.layer.media_type, img.layer.digest, img.layer.size, {}}}) {
    INFO(d.digest.str());
    CHECK(fs::is_regular_file(fs::symlink_status(dst.blob_path(d.digest))));
    CHECK(imgbuild::sha256_file(dst.blob_path(d.digest)) == d.digest);
  }
  CHECK(dst.find_ref("out"));
  // A right file already there (its own copy) is kept as it is.
  struct stat before {
  }, after{};
  fs::remove(dst.blob_path(img.layer.digest));
  spit(dst.blob_path(img.layer.digest), layer_bytes);
  REQUIRE(::stat(dst.blob_path(img.layer.digest).c_str(), &before) == 0);
  dst.import_image(src, img.manifest, "out");
  REQUIRE(::stat(dst.blob_path(img.layer.digest).c_str(), &after) == 0);
  CHECK(before.st_ino == after.st_ino);
}

TEST_CASE("import_image refuses a damaged source blob and names nothing", "[layout][verified]") {
  ScratchDir s;
  Layout src(s.path / "src");
  StoredFixture img = store_image(src, s.path);
  std::string bytes = slurp(src.blob_path(img.layer.digest));
  bytes[bytes.size() / 2] ^= 0x01;
  spit(src.blob_path(img.layer.digest), bytes);
  Layout dst(s.path / "dst");
  CHECK_THAT(error_of([&] { dst.import_image(src, img.manifest, "out"); }),
             Contains("blob " + img.layer.digest.str() + " (" + src.blob_path(img.layer.digest).string() +
                      ") did not match its digest (damaged or replaced) and was removed: " + imgbuild::kRebuildHint));
  CHECK_FALSE(dst.has_blob(img.layer.digest));
  CHECK(dst.refs().empty());
}

TEST_CASE("verify_store reads every blob and every image's diff_ids", "[layout][verified]") {
  ScratchDir s;
  Layout l(s.path / "store");
  StoredFixture img = store_image(l, s.path);
  l.set_ref("good", img.manifest);

  imgbuild::StoreCheck clean = imgbuild::verify_store(l);
  CHECK(clean.problems.empty());
  CHECK(clean.blobs == 3);
  CHECK(clean.images == 1);
  CHECK(clean.layers_read == 1);
  CHECK(imgbuild::verify_store(l).layers_read == 0);  // recorded: not read again

  SECTION("an image whose config copies another's diff_ids") {
    // The liar: good's layer, under a config that claims another file system.
    imgbuild::Image liar = imgbuild::image_from_documents(json::parse(slurp(l.blob_path(img.manifest.digest))),
                                                          json::parse(slurp(l.blob_path(img.config.digest))));
    Digest claimed = sha256_of("the trusted base's layer");
    liar.layers[0].diff_id = claimed;
    Descriptor cfg = l.put_document(liar.config_document(), imgbuild::media_type::kConfig);
    l.set_ref("liar", l.put_document(liar.manifest_document(cfg), imgbuild::media_type::kManifest));
    imgbuild::StoreCheck check = imgbuild::verify_store(l);
    REQUIRE(check.problems.size() == 1);
    CHECK(check.problems[0] == "liar: layer 1 (" + img.layer.digest.str() +
                                   ") is not what the image's config says: diff_id " + claimed.str() +
                                   " in the config, " + img.layer.diff_id.str() +
                                   " in the layer; the image lies about its layers");
  }
  SECTION("a damaged blob: removed, and the image that needs it told") {
    std::string bytes = slurp(l.blob_path(img.layer.digest));
    bytes[1] ^= 0x01;
    spit(l.blob_path(img.layer.digest), bytes);
    imgbuild::StoreCheck check = imgbuild::verify_store(l);
    REQUIRE(check.problems.size() == 2);
    CHECK(check.problems[0] == "blob " + img.layer.digest.str() + " (" + l.blob_path(img.layer.digest).string() +
                                   ") did not match its digest (damaged or replaced) and was removed");
    CHECK(check.problems[1] == "good: layer 1 (" + img.layer.digest.str() + ") is missing");
    CHECK_FALSE(l.has_blob(img.layer.digest));
  }
  SECTION("a pulled base may lack layers no build needed yet") {
    fs::remove(l.blob_path(img.layer.digest));
    Descriptor pulled = img.manifest;
    pulled.platform = imgbuild::Platform::parse("linux/amd64");
    l.set_ref("base", pulled);
    imgbuild::StoreCheck check = imgbuild::verify_store(l);
    REQUIRE(check.problems.size() == 1);  // the built image's, not the base's
    CHECK(check.problems[0] == "good: layer 1 (" + img.layer.digest.str() + ") is missing");
  }
  SECTION("a missing config") {
    fs::remove(l.blob_path(img.config.digest));
    imgbuild::StoreCheck check = imgbuild::verify_store(l);
    REQUIRE(check.problems.size() == 1);
    CHECK_THAT(check.problems[0], Contains("good: ") && Contains(std::string(img.config.digest.hex())));
  }
}

TEST_CASE("put_document refuses a document over the limit and writes nothing", "[layout][entries]") {
  ScratchDir s;
  Layout l(s.path);
  std::string at_limit(imgbuild::kMaxDocumentSize, ' ');
  CHECK(l.has_blob(l.put_document(at_limit, imgbuild::media_type::kConfig).digest));
  fs::remove(l.blob_path(sha256_of(at_limit)));
  std::string over = at_limit + " ";
  REQUIRE_THROWS_AS(l.put_document(over, imgbuild::media_type::kConfig), imgbuild::DocumentTooLarge);
  REQUIRE_THROWS_WITH(l.put_document(over, imgbuild::media_type::kManifest),
                      Contains("4194305 bytes, over the limit of 4194304 bytes (4 MiB)"));
  CHECK(fs::is_empty(l.blob_dir()));
}

namespace {

// The index entry of a document written straight into the blobs, as a damaged
// or hostile store would hold it.
Descriptor planted(Layout& l, const std::string& content, imgbuild::MediaType type = imgbuild::media_type::kManifest) {
  Digest d = sha256_of(content);
  spit(l.blob_path(d), content);
  return Descriptor{type, d, content.size(), {}};
}

std::vector<std::string> entry_names(const Layout& l) {
  std::vector<std::string> out;
  for (auto& e : l.entries()) out.push_back(e.name);
  return out;
}

}  // namespace

TEST_CASE("a store with damaged entries lists them all and loads the good ones", "[layout][entries]") {
  ScratchDir s;
  Layout l(s.path / "store");
  StoredFixture good = store_image(l, s.path);
  l.set_ref("good:1", good.manifest);
  l.set_ref("missing:1", fake_manifest("gone"));
  l.set_ref("garbage:1", planted(l, "\x01not json"));
  l.set_ref("no-config:1", planted(l, R"({"schemaVersion":2,"layers":[]})"));
  l.set_ref("huge:1", planted(l, "{\"pad\":\"" + std::string(imgbuild::kMaxDocumentSize, 'x') + "\"}"));
  Descriptor foreign = good.manifest;
  foreign.media_type = imgbuild::MediaType::parse("application/x-not-an-image");
  l.set_ref("foreign:1", foreign);
  // Entries no descriptor parser would take, added by hand.
  json index = json::parse(slurp(l.root() / "index.json"));
  index["manifests"].push_back({{"annotations", {{imgbuild::kRefNameAnnotation, "malformed:1"}}}, {"digest", 42}});
  index["manifests"].push_back(42);
  spit(l.root() / "index.json", index.dump());

  auto entries = l.entries();
  REQUIRE(entries.size() == 8);
  CHECK(entry_names(l) == std::vector<std::string>{"good:1", "missing:1", "garbage:1", "no-config:1", "huge:1",
                                                   "foreign:1", "malformed:1", ""});
  CHECK_FALSE(entries[6].descriptor);
  CHECK_THAT(entries[6].problem, Contains("mediaType"));
  CHECK_FALSE(entries[7].descriptor);
  CHECK(l.refs().size() == 6);

  CHECK(l.load(*l.find_ref("good:1")).config_json["config"]["Cmd"][0] == "/hello");
  auto damage = [&](const std::string& name) {
    try {
      l.load(*l.find_ref(name));
    } catch (const imgbuild::DamagedImage& e) {
      CHECK(e.name() == name);
      return std::string(e.what());
    }
    return std::string("loaded");
  };
  CHECK_THAT(damage("missing:1"), StartsWith("image 'missing:1' is damaged: ") && Contains("No such file"));
  CHECK_THAT(damage("garbage:1"), Contains("is not a JSON object"));
  CHECK_THAT(damage("no-config:1"), Contains("has no config"));
  CHECK_THAT(damage("huge:1"), Contains("over the limit of 4194304 bytes"));
  CHECK_THAT(damage("foreign:1"), Contains("media type is application/x-not-an-image, not an image manifest's"));

  // Writing goes on: a new name is added and a damaged one replaced, the
  // entries nothing can parse kept as they were.
  l.set_ref("new:1", good.manifest);
  l.set_ref("missing:1", good.manifest);
  CHECK(l.load(*l.find_ref("missing:1")).manifest.digest == good.manifest.digest);
  CHECK(entry_names(l) == std::vector<std::string>{"good:1", "garbage:1", "no-config:1", "huge:1", "foreign:1",
                                                   "malformed:1", "", "new:1", "missing:1"});
  CHECK(json::parse(slurp(l.root() / "index.json"))["manifests"][6] == 42);
  // Garbage collection keeps every blob a good image needs, and does not fail on the others.
  l.collect_garbage({});
  for (const Digest& d : {good.manifest.digest, good.config.digest, good.layer.digest}) CHECK(l.has_blob(d));
}

TEST_CASE("an image's provenance and SBOM records go with it, and nothing else does", "[layout][records]") {
  ScratchDir s;
  Layout l(s.path / "store");
  StoredFixture a = store_image(l, s.path);
  l.set_ref("a:1", a.manifest);
  l.set_ref("alias:1", a.manifest);
  const Digest gone = imgbuild::sha256_of("an image no longer in the store");
  auto record = [&](ImageRecord kind, const Digest& manifest) {
    return imgbuild::image_record_path(l.root(), kind, manifest);
  };
  CHECK(record(ImageRecord::Sbom, a.manifest.digest) ==
        l.root() / "sbom" / ("sha256-" + std::string(a.manifest.digest.hex()) + ".spdx.json"));
  CHECK(record(ImageRecord::Provenance, a.manifest.digest) ==
        l.root() / "provenance" / ("sha256-" + std::string(a.manifest.digest.hex()) + ".intoto.json"));
  auto write_records = [&] {
    for (ImageRecord kind : {ImageRecord::Provenance, ImageRecord::Sbom})
      for (const Digest& d : {a.manifest.digest, gone}) {
        std::filesystem::create_directories(record(kind, d).parent_path());
        spit(record(kind, d), "{}");
      }
    // Not a record's name, or one about no digest: no record of a live image.
    spit(l.root() / "sbom" / "stray.tmp", "x");
    spit(l.root() / "sbom" / "sha256-zz.spdx.json", "x");
  };
  auto kept = [&] {
    std::set<std::string> names;
    for (const char* folder : {"provenance", "sbom"})
      for (const auto& f : std::filesystem::directory_iterator(l.root() / folder))
        names.insert(std::string(folder) + "/" + f.path().filename().string());
    return names;
  };
  const std::set<std::string> live{
      "provenance/" + record(ImageRecord::Provenance, a.manifest.digest).filename().string(),
      "sbom/" + record(ImageRecord::Sbom, a.manifest.digest).filename().string()};
  // cache prune's collection keeps the named image's and drops the rest.
  write_records();
  l.collect_garbage({});
  CHECK(kept() == live);
  // rmi: a name of an image that has another keeps them; the last name drops them.
  write_records();
  auto remove = [&](const std::string& name) {
    std::set<Digest> candidates;
    for (auto& e : l.remove_entries([&](const imgbuild::IndexEntry& e) { return e.name == name; }))
      candidates.merge(l.blobs_of(*e.descriptor));
    return l.remove_unused(candidates, {});
  };
  remove("a:1");
  CHECK(kept() == live);
  remove("alias:1");
  CHECK(kept().empty());
}

TEST_CASE("an index.json whose list is not a list is damage, not an empty store", "[layout][entries]") {
  ScratchDir s;
  Layout l(s.path);
  std::string damaged = R"({"schemaVersion":2,"manifests":{"a":1}})";
  spit(s.path / "index.json", damaged);
  REQUIRE_THROWS_WITH(l.entries(), Contains("not a valid index") && Contains("restore the file"));
  REQUIRE_THROWS_WITH(l.set_ref("x", fake_manifest("x")), Contains("not a valid index"));
  REQUIRE_THROWS_WITH(l.remove_entries([](auto&) { return true; }), Contains("not a valid index"));
  CHECK(slurp(s.path / "index.json") == damaged);
}

TEST_CASE("remove_entries and remove_unused free only what nothing else needs", "[layout][entries]") {
  ScratchDir s;
  Layout l(s.path / "store");
  StoredFixture a = store_image(l, s.path);
  // Another image on the same layer: a config and a manifest of its own.
  imgbuild::StoredImage loaded = l.load(a.manifest);
  json other_config = loaded.config_json;
  other_config["config"]["Cmd"] = {"/other"};
  Descriptor b_config = l.put_document(other_config.dump(), imgbuild::media_type::kConfig);
  json other_manifest = loaded.manifest_json;
  other_manifest["config"] = b_config.to_json();
  Descriptor b = l.put_document(other_manifest.dump(), imgbuild::media_type::kManifest);
  l.set_ref("a:1", a.manifest);
  l.set_ref("alias:1", a.manifest);
  l.set_ref("b:1", b);
  l.set_ref("missing:1", fake_manifest("gone"));
  CHECK(l.blobs_of(a.manifest) == std::set<Digest>{a.manifest.digest, a.config.digest, a.layer.digest});

  auto remove = [&](const std::string& name) {
    auto removed = l.remove_entries([&](const imgbuild::IndexEntry& e) { return e.name == name; });
    std::set<Digest> candidates;
    for (auto& e : removed) candidates.merge(l.blobs_of(*e.descriptor));
    return candidates;
  };
  // A name of an image that has another keeps every blob.
  auto freed = l.remove_unused(remove("a:1"), {});
  CHECK(freed.first == 0);
  CHECK(entry_names(l) == std::vector<std::string>{"alias:1", "b:1", "missing:1"});
  // The last name frees the manifest and config; the layer b needs stays.
  freed = l.remove_unused(remove("alias:1"), {});
  CHECK(freed == std::pair<size_t, uint64_t>{2, a.manifest.size + a.config.size});
  CHECK_FALSE(l.has_blob(a.manifest.digest));
  CHECK(l.has_blob(a.layer.digest));
  // A blob the step cache keeps stays when the last image goes.
  freed = l.remove_unused(remove("b:1"), {a.layer.digest});
  CHECK(freed.first == 2);
  CHECK(l.has_blob(a.layer.digest));
  // A damaged entry goes, with nothing to free.
  freed = l.remove_unused(remove("missing:1"), {});
  CHECK(freed.first == 0);
  CHECK(l.entries().empty());
  CHECK(remove("missing:1").empty());
}
