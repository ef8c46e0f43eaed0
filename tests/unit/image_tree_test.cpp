// Tests for the image tree the doctor reads: pulled layers applied from their
// blobs (whiteouts, opaque folders, hard links), lazily, and file bytes read
// back from the layer that holds them.
#include "layer/image_tree.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <vector>

#include "layer/unpack.hpp"
#include "test_support.hpp"

using imgbuild::ImageTree;
using imgbuild::LayerEntry;
using namespace imgbuild::test;

namespace {

struct TarEntry {
  std::string path;
  char type = 'f';   ///< f file, d dir, l symlink, h hard link
  std::string data;  ///< file contents, or the link target
  unsigned mode = 0644;
};

/// A gzip tar layer at `path` with `entries`, in that order.
void write_layer(const std::filesystem::path& path, const std::vector<TarEntry>& entries) {
  std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(), archive_write_free);
  archive_write_set_format_pax_restricted(a.get());
  archive_write_add_filter_gzip(a.get());
  REQUIRE(archive_write_open_filename(a.get(), path.c_str()) == ARCHIVE_OK);
  for (auto& t : entries) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), t.path.c_str());
    archive_entry_set_perm(e.get(), t.mode);
    switch (t.type) {
      case 'd':
        archive_entry_set_filetype(e.get(), AE_IFDIR);
        break;
      case 'l':
        archive_entry_set_filetype(e.get(), AE_IFLNK);
        archive_entry_set_symlink(e.get(), t.data.c_str());
        break;
      case 'h':
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_hardlink(e.get(), t.data.c_str());
        break;
      default:
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_size(e.get(), static_cast<la_int64_t>(t.data.size()));
    }
    REQUIRE(archive_write_header(a.get(), e.get()) == ARCHIVE_OK);
    if (t.type == 'f') archive_write_data(a.get(), t.data.data(), t.data.size());
  }
  REQUIRE(archive_write_close(a.get()) == ARCHIVE_OK);
}

bool exists(const ImageTree& tree, const std::string& path) { return tree.resolve(path).has_value(); }

}  // namespace

TEST_CASE("pulled layers apply with whiteouts, opaque folders and hard links", "[image_tree]") {
  ScratchDir s;
  write_layer(s.path / "1", {{"bin/", 'd', "", 0755},
                             {"bin/busybox", 'f',
                              "\x7f"
                              "ELF...",
                              0755},
                             {"bin/sh", 'l', "busybox"},
                             {"etc/passwd", 'f', "root:x:0:0::/:/bin/sh\n"},
                             {"etc/old", 'f', "old"},
                             {"var/cache/a", 'f', "a"},
                             {"var/cache/b", 'f', "b"},
                             {"opt/x", 'f', "x"}});
  // Whiteouts and the opaque marker hide only lower layers' files, wherever
  // they stand in the tar; the new cache file comes before the marker.
  write_layer(s.path / "2", {{"var/cache/new", 'f', "n"},
                             {"var/cache/.wh..wh..opq", 'f', ""},
                             {"etc/.wh.old", 'f', ""},
                             {".wh.opt", 'f', ""},
                             {"bin/ash", 'h', "bin/busybox"}});
  write_layer(s.path / "3", {{"app", 'f', "app", 0755}});
  ImageTree tree;
  tree.apply_layer_blob(s.path / "1");
  tree.apply_layer_blob(s.path / "2");
  tree.apply_layer_blob(s.path / "3");

  CHECK(exists(tree, "/etc/passwd"));
  CHECK_FALSE(exists(tree, "/etc/old"));
  CHECK_FALSE(exists(tree, "/opt/x"));
  CHECK_FALSE(exists(tree, "/opt"));
  CHECK_FALSE(exists(tree, "/var/cache/a"));
  CHECK_FALSE(exists(tree, "/var/cache/b"));
  CHECK(exists(tree, "/var/cache/new"));
  CHECK_FALSE(exists(tree, "/var/cache/.wh..wh..opq"));
  CHECK_FALSE(exists(tree, "/etc/.wh.old"));
  CHECK(exists(tree, "/app"));

  auto sh = tree.resolve("/bin/sh");
  REQUIRE(sh);
  CHECK(sh->path == "/bin/busybox");
  CHECK(sh->file->mode == 0755);
  CHECK(tree.contents(*sh->file, 100) ==
        "\x7f"
        "ELF...");
  CHECK(tree.contents(*sh->file, 4) ==
        "\x7f"
        "ELF");
  // A hard link reads the bytes of the file it links to.
  auto ash = tree.resolve("/bin/ash");
  REQUIRE(ash);
  CHECK(tree.contents(*ash->file, 100) ==
        "\x7f"
        "ELF...");
}

TEST_CASE("a pulled layer is read only when the tree is asked something", "[image_tree]") {
  ScratchDir s;
  spit(s.path / "not-a-tar", "this is not a tar archive at all, not even compressed");
  write_layer(s.path / "app", {{"app", 'f', "app", 0755}});
  ImageTree tree;
  tree.apply_layer_blob(s.path / "not-a-tar");
  tree.apply_layer_blob(s.path / "app");
  // Nothing read yet; the first question reads it and fails, naming the blob.
  std::string error = error_of([&] { tree.resolve("/app"); });
  CHECK(error.starts_with((s.path / "not-a-tar").string() + ": "));
}

TEST_CASE("a layer replaces lower paths; a copy of a tree keeps what it had", "[image_tree]") {
  ScratchDir s;
  write_layer(s.path / "1", {{"a/", 'd', "", 0755},
                             {"a/x", 'f', "x1"},
                             {"a.txt", 'f', "t"},
                             {"a-b/y", 'f', "y"},
                             {"keep/z", 'f', "z"},
                             {"f", 'f', "old"}});
  // A file where a folder stood drops the folder's contents, but not "a.txt" or "a-b/y",
  // which sort between "a" and "a/x"; a folder where a folder stood keeps them.
  write_layer(s.path / "2", {{"a", 'f', "now a file", 0600}, {"keep/", 'd', "", 0700}, {"f", 'f', "new"}});
  ImageTree lower;
  lower.apply_layer_blob(s.path / "1");
  REQUIRE(exists(lower, "/a/x"));  // read before the copy: the copy shares these nodes
  ImageTree upper = lower;
  upper.apply_layer_blob(s.path / "2");

  CHECK_FALSE(exists(upper, "/a/x"));
  auto a = upper.resolve("/a");
  REQUIRE(a);
  CHECK(a->file->type == LayerEntry::Type::File);
  CHECK(a->file->mode == 0600);
  CHECK(upper.contents(*a->file, 100) == "now a file");
  CHECK(exists(upper, "/a.txt"));
  CHECK(exists(upper, "/a-b/y"));
  CHECK(exists(upper, "/keep/z"));
  CHECK(upper.resolve("/keep")->file->mode == 0700);
  CHECK(upper.contents(*upper.resolve("/f")->file, 100) == "new");

  CHECK(exists(lower, "/a/x"));
  CHECK(lower.resolve("/a")->file->type == LayerEntry::Type::Directory);
  CHECK(lower.contents(*lower.resolve("/f")->file, 100) == "old");
}

TEST_CASE("paths resolve by the unpacker's rules: only through folders, and an empty target names nothing",
          "[image_tree]") {
  ScratchDir s;
  write_layer(s.path / "1", {{"etc/passwd", 'f', "root"},
                             {"etc/empty", 'l', ""},
                             {"etc/dot", 'l', "passwd/."},
                             {"etc/up", 'l', "passwd/.."},
                             {"usr/bin/sh", 'f', "sh"},
                             {"bin", 'l', "usr/bin"}});
  ImageTree tree;
  tree.apply_layer_blob(s.path / "1");
  CHECK(exists(tree, "/etc/passwd"));
  // These were /etc/passwd and /etc: a file is no folder to walk through,
  // as the kernel and the unpacker say (ENOTDIR).
  CHECK_FALSE(exists(tree, "/etc/passwd/."));
  CHECK_FALSE(exists(tree, "/etc/passwd/.."));
  CHECK_FALSE(exists(tree, "/etc/dot"));
  CHECK_FALSE(exists(tree, "/etc/up"));
  // This was the link's own folder: an empty target names nothing (ENOENT).
  CHECK_FALSE(exists(tree, "/etc/empty"));
  CHECK_FALSE(exists(tree, "/etc/empty/passwd"));
  // ".." after a symlink goes up from where the link led.
  CHECK(tree.resolve("/bin/..")->path == "/usr");
  CHECK(tree.resolve("/bin/../bin/sh")->path == "/usr/bin/sh");
  CHECK(tree.resolve("/../../etc/passwd")->path == "/etc/passwd");
}

TEST_CASE("member names are cleaned as the unpacker cleans them; one that climbs out is no path of the image",
          "[image_tree]") {
  ScratchDir s;
  // These were kept as written ("/a//b/../c"), so no path found them, while
  // the unpacked root has them at the clean path.
  write_layer(s.path / "1",
              {{"./a//b/../c", 'f', "c"}, {"d/./e", 'f', "e"}, {"../x", 'f', "x"}, {"f/../../y", 'f', "y"}});
  ImageTree tree;
  tree.apply_layer_blob(s.path / "1");
  auto c = tree.resolve("/a/c");
  REQUIRE(c);
  CHECK(tree.contents(*c->file, 10) == "c");
  CHECK(exists(tree, "/d/e"));
  CHECK_FALSE(exists(tree, "/x"));
  CHECK_FALSE(exists(tree, "/y"));
}

TEST_CASE("a layer's listing is read from its blob once, kept on disk, and handed over by the writer", "[image_tree]") {
  ScratchDir s;
  const std::filesystem::path blob = s.path / "blobs" / "1111";
  std::filesystem::create_directories(blob.parent_path());
  write_layer(blob, {{"app/", 'd', "", 0755}, {"app/run", 'f', "#!/bin/sh\n", 0755}, {"lnk", 'l', "app"}});
  const std::filesystem::path kept = s.path / "listings";
  {
    auto listings = std::make_shared<imgbuild::LayerListings>(kept);
    CHECK_FALSE(listings->known(blob));
    ImageTree tree(listings);
    tree.apply_layer_blob(blob);
    CHECK(exists(tree, "/lnk/run"));
    CHECK(listings->known(blob));
  }
  // The next build knows it without the blob (which a cached build may never fetch).
  std::filesystem::rename(blob, s.path / "elsewhere");
  {
    auto listings = std::make_shared<imgbuild::LayerListings>(kept);
    CHECK(listings->known(blob));
    ImageTree tree(listings);
    tree.apply_layer_blob(blob);
    auto run = tree.resolve("/lnk/run");
    REQUIRE(run);
    CHECK(run->path == "/app/run");
    CHECK(run->file->mode == 0755);
    CHECK(tree.folder_mode("/app") == 0755u);
  }
  // A damaged listing is no listing: made again from the blob.
  std::filesystem::rename(s.path / "elsewhere", blob);
  std::string damaged = slurp(kept / "1111");
  spit(kept / "1111", damaged.substr(0, damaged.size() - 3));
  {
    auto listings = std::make_shared<imgbuild::LayerListings>(kept);
    CHECK_FALSE(listings->known(blob));
    ImageTree tree(listings);
    tree.apply_layer_blob(blob);
    CHECK(exists(tree, "/app/run"));
  }
  // One kept for another digest is not taken for this one.
  spit(kept / "2222", slurp(kept / "1111"));
  CHECK_FALSE(imgbuild::LayerListings(kept).known(s.path / "blobs" / "2222"));

  // The writer's hand-over: the entries are the listing, the blob is never read for it.
  auto listings = std::make_shared<imgbuild::LayerListings>();
  LayerEntry dir{.path = "srv", .type = LayerEntry::Type::Directory, .mode = 01777};
  LayerEntry file{.path = "srv/a", .mode = 0644};
  LayerEntry gone{.path = "etc/.wh.passwd"};
  listings->put(s.path / "never-written", {dir, file, gone});
  ImageTree tree(listings);
  tree.apply_layer_blob(blob);
  tree.apply_layer_blob(s.path / "never-written");
  CHECK(exists(tree, "/srv/a"));
  CHECK(tree.folder_mode("/srv") == 01777u);
  CHECK(exists(tree, "/app/run"));

  // Kept on disk, every mode comes back as it was handed over.
  {
    imgbuild::LayerListings keeper(kept);
    LayerEntry none{.path = "m/none", .mode = 0};
    LayerEntry all{.path = "m/all", .mode = 07777};
    LayerEntry setuid{.path = "m/setuid", .mode = 04755};
    LayerEntry m{.path = "m", .type = LayerEntry::Type::Directory, .mode = 0700};
    keeper.put(s.path / "blobs" / "3333", {m, all, none, setuid});
  }
  ImageTree reread(std::make_shared<imgbuild::LayerListings>(kept));
  reread.apply_layer_blob(s.path / "blobs" / "3333");
  for (auto [path, mode] : {std::pair{"/m/none", 0u}, {"/m/all", 07777u}, {"/m/setuid", 04755u}}) {
    INFO(path);
    auto r = reread.resolve(path);
    REQUIRE(r);
    REQUIRE(r->file);
    CHECK(r->file->mode == mode);
  }
  CHECK(reread.folder_mode("/m") == 0700u);
}

TEST_CASE("a listing kept on disk is decoded once a build, however many trees ask in turn", "[image_tree]") {
  ScratchDir s;
  const std::filesystem::path blob = s.path / "blobs" / "1111";
  std::filesystem::create_directories(blob.parent_path());
  write_layer(blob, {{"app/", 'd', "", 0755}, {"app/run", 'f', "#!/bin/sh\n", 0755}});
  const std::filesystem::path kept = s.path / "listings";
  {
    ImageTree tree(std::make_shared<imgbuild::LayerListings>(kept));
    tree.apply_layer_blob(blob);
    REQUIRE(exists(tree, "/app/run"));
  }
  auto listings = std::make_shared<imgbuild::LayerListings>(kept);
  REQUIRE(listings->known(blob));  // what a copy asks first; nothing holds the listing since
  // Neither the kept listing nor the blob is read again: a read would fail now.
  std::filesystem::remove(kept / "1111");
  std::filesystem::remove(blob);
  for (int i = 0; i < 2; ++i) {
    ImageTree tree(listings);
    tree.apply_layer_blob(blob);
    CHECK(exists(tree, "/app/run"));
  }
}

TEST_CASE("the unpacker lists a layer on its way, as a read of the blob would, and the hook lets it first",
          "[image_tree]") {
  ScratchDir s;
  const std::filesystem::path blob = s.path / "blobs" / "3333";
  std::filesystem::create_directories(blob.parent_path());
  // Every kind of member a listing tells apart, and a path named twice.
  const std::vector<TarEntry> members = {
      {"bin/", 'd', "", 0755},         {"bin/busybox", 'f', "elf", 0755},   {"bin/sh", 'l', "busybox"},
      {"bin/ash", 'h', "bin/busybox"}, {"var/cache/.wh..wh..opq", 'f', ""}, {"etc/.wh.old", 'f', ""},
      {"etc/motd", 'f', "first"},      {"etc/motd", 'f', "second", 0600}};
  auto unpack_recording = [&](imgbuild::LayerListings& listings, const std::filesystem::path& root) {
    imgbuild::LayerListings::Recording recording(listings, blob);
    imgbuild::UnpackOptions options;
    options.on_member = [&](archive_entry* header) { recording.member(header); };
    std::filesystem::create_directories(root);
    imgbuild::apply_layer(root, blob, "layer 1", options);
    recording.keep();
  };
  SECTION("the same listing, byte for byte, as the one read from the blob") {
    imgbuild::LayerListings recorded(s.path / "recorded"), read(s.path / "read");
    // The unpacker refuses a member that climbs out: a read cut short keeps nothing.
    std::vector<TarEntry> escaping = members;
    escaping.push_back({"../escapes", 'f', "x"});
    write_layer(blob, escaping);
    CHECK(error_of([&] { unpack_recording(recorded, s.path / "root"); }).find("escapes") != std::string::npos);
    CHECK_FALSE(recorded.known(blob));
    write_layer(blob, members);
    unpack_recording(recorded, s.path / "root2");
    REQUIRE(recorded.known(blob));
    read.of(blob);
    CHECK(slurp(s.path / "recorded" / "3333") == slurp(s.path / "read" / "3333"));
  }
  SECTION("of() asks the hook before it reads the blob, and reads nothing once the hook recorded it") {
    write_layer(blob, {{"app/", 'd', "", 0755}, {"app/run", 'f', "run", 0755}});
    auto listings = std::make_shared<imgbuild::LayerListings>();
    int asked = 0;
    listings->before_reading([&](const std::filesystem::path& named) {
      ++asked;
      CHECK(named == blob);
      unpack_recording(*listings, s.path / "root");
      std::filesystem::remove(blob);  // whatever of() does next, it cannot read the blob
    });
    ImageTree tree(listings);
    tree.apply_layer_blob(blob);
    CHECK(exists(tree, "/app/run"));
    CHECK(asked == 1);
    CHECK(slurp(s.path / "root" / "app" / "run") == "run");
  }
  SECTION("a hook that records nothing leaves of() to read the blob") {
    write_layer(blob, {{"app", 'f', "app", 0755}});
    auto listings = std::make_shared<imgbuild::LayerListings>();
    int asked = 0;
    listings->before_reading([&](const std::filesystem::path&) { ++asked; });
    ImageTree tree(listings);
    tree.apply_layer_blob(blob);
    CHECK(exists(tree, "/app"));
    CHECK(asked == 1);
  }
}

TEST_CASE("place finds where a copy lands: through the image's symlinks, missing folders made", "[image_tree]") {
  ScratchDir s;
  write_layer(s.path / "1", {{"usr/bin/", 'd', "", 0755},
                             {"bin", 'l', "usr/bin"},
                             {"app/", 'd', "", 0700},
                             {"lnk", 'l', "/app"},
                             {"etc/passwd", 'f', "root"},
                             {"loop", 'l', "loop"},
                             {"dangling", 'l', "nowhere/at/all"}});
  ImageTree tree;
  tree.apply_layer_blob(s.path / "1");
  std::string error;
  CHECK(tree.place("/bin/tool", error) == "/usr/bin/tool");
  CHECK(tree.place("/lnk", error) == "/app");
  CHECK(tree.place("/lnk/x/y", error) == "/app/x/y");
  CHECK(tree.place("/new/deep/file", error) == "/new/deep/file");
  CHECK(tree.place("/etc/passwd", error) == "/etc/passwd");
  CHECK(tree.folder_mode("/app") == 0700u);
  CHECK(tree.folder_mode("/usr") == 0755u);
  CHECK_FALSE(tree.folder_mode("/etc/passwd"));
  CHECK_FALSE(tree.place("/etc/passwd/x", error));
  CHECK(error == "/etc/passwd: a file in the image stands on the way");
  CHECK_FALSE(tree.place("/loop/x", error));
  CHECK(error == "/loop: a symlink loop in the image stands on the way");
  CHECK_FALSE(tree.place("/dangling/x", error));
  CHECK(error == "/dangling: a symlink to nothing in the image stands on the way");
}

TEST_CASE("contents with a magic stops reading a file that does not start with it", "[image_tree]") {
  ScratchDir s;
  write_layer(s.path / "1", {{"elf", 'f',
                              std::string("\x7f"
                                          "ELF") +
                                  std::string(200000, 'x'),
                              0755},
                             {"script", 'f', "#!/bin/sh\n" + std::string(200000, 'y'), 0755}});
  ImageTree tree;
  tree.apply_layer_blob(s.path / "1");
  CHECK(tree.contents(*tree.resolve("/elf")->file, 1 << 20,
                      "\x7f"
                      "ELF")
            .size() == 200004);
  CHECK(tree.contents(*tree.resolve("/script")->file, 1 << 20,
                      "\x7f"
                      "ELF")
            .size() < 200010);
}
