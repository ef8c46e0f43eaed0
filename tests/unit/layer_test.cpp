// Tests for layer assembly: the blob is named by its digest, both digests and
// sizes are right, the tar holds exactly the planned entries in sorted order
// with the fixed metadata, and equal inputs give equal bytes.
#include "layer/layer.hpp"

#include <catch2/catch.hpp>

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/interrupt.hpp"
#include "layer/image_tree.hpp"
#include "oci/digest.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using imgbuild::Digest;
using imgbuild::LayerBlob;
using imgbuild::LayerEntry;
using imgbuild::LayerOptions;
using imgbuild::Sha256;
using imgbuild::sha256_of;
using namespace imgbuild::test;
using Catch::Matchers::Contains;

namespace {

LayerEntry file_entry(const std::string& path, const fs::path& source, uint32_t mode = 0644, uint32_t uid = 0,
                      uint32_t gid = 0) {
  LayerEntry e;
  e.path = path;
  e.type = LayerEntry::Type::File;
  e.mode = mode;
  e.uid = uid;
  e.gid = gid;
  e.source = source;
  e.size = fs::file_size(source);
  return e;
}

LayerEntry dir_entry(const std::string& path, uint32_t mode = 0755, uint32_t uid = 0, uint32_t gid = 0) {
  LayerEntry e;
  e.path = path;
  e.type = LayerEntry::Type::Directory;
  e.mode = mode;
  e.uid = uid;
  e.gid = gid;
  return e;
}

LayerEntry link_entry(const std::string& path, const std::string& target, uint32_t uid = 0, uint32_t gid = 0) {
  LayerEntry e;
  e.path = path;
  e.type = LayerEntry::Type::Symlink;
  e.mode = 0777;
  e.uid = uid;
  e.gid = gid;
  e.link_target = target;
  return e;
}

// sha256 and size of a whole file, read in chunks.
std::pair<Digest, uint64_t> hash_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  Sha256 h;
  uint64_t size = 0;
  std::vector<char> buf(1 << 16);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    auto n = static_cast<size_t>(in.gcount());
    h.update(buf.data(), n);
    size += n;
  }
  return {h.finish(), size};
}

struct Gunzipped {
  Digest digest;
  uint64_t size;
  int members = 1;
};

// Decompresses the gzip file `gz` into `tar_out` with zlib, returning the tar's
// sha256 and size. Layers are a run of gzip members (one per compressed chunk),
// which every gzip reader joins, so this does too. Fails on a truncated stream
// or on trailing bytes that are not another member.
Gunzipped gunzip_to(const fs::path& gz, const fs::path& tar_out) {
  std::string input = slurp(gz);
  std::ofstream out(tar_out, std::ios::binary);
  z_stream z{};
  if (inflateInit2(&z, 15 + 16) != Z_OK) throw std::runtime_error("inflateInit2");
  z.next_in = reinterpret_cast<Bytef*>(input.data());
  z.avail_in = static_cast<uInt>(input.size());
  std::vector<char> obuf(1 << 16);
  Sha256 h;
  uint64_t size = 0;
  int members = 1;
  int rc = Z_OK;
  for (;;) {
    z.next_out = reinterpret_cast<Bytef*>(obuf.data());
    z.avail_out = static_cast<uInt>(obuf.size());
    rc = inflate(&z, Z_NO_FLUSH);
    size_t produced = obuf.size() - z.avail_out;
    h.update(obuf.data(), produced);
    out.write(obuf.data(), static_cast<std::streamsize>(produced));
    size += produced;
    if (rc == Z_STREAM_END) {
      if (z.avail_in == 0) break;
      inflateReset(&z);  // the next member
      ++members;
      continue;
    }
    if (rc != Z_OK) {
      inflateEnd(&z);
      throw std::runtime_error(rc == Z_BUF_ERROR ? "truncated gzip stream" : "inflate failed");
    }
  }
  inflateEnd(&z);
  return {h.finish(), size, members};
}

// Decompresses the zstd file `zst` into `tar_out` with libzstd, returning the
// tar's sha256 and size. Fails on a truncated stream.
Gunzipped unzstd_to(const fs::path& zst, const fs::path& tar_out) {
  std::string input = slurp(zst);
  std::ofstream out(tar_out, std::ios::binary);
  std::unique_ptr<ZSTD_DCtx, size_t (*)(ZSTD_DCtx*)> ctx(ZSTD_createDCtx(), ZSTD_freeDCtx);
  ZSTD_inBuffer in{input.data(), input.size(), 0};
  std::vector<char> obuf(ZSTD_DStreamOutSize());
  Sha256 h;
  uint64_t size = 0;
  size_t rc = 1;
  while (in.pos < in.size || rc != 0) {
    ZSTD_outBuffer o{obuf.data(), obuf.size(), 0};
    size_t before = in.pos;
    rc = ZSTD_decompressStream(ctx.get(), &o, &in);
    if (ZSTD_isError(rc)) throw std::runtime_error(ZSTD_getErrorName(rc));
    h.update(obuf.data(), o.pos);
    out.write(obuf.data(), static_cast<std::streamsize>(o.pos));
    size += o.pos;
    if (o.pos == 0 && in.pos == before && rc != 0) throw std::runtime_error("truncated zstd stream");
  }
  return {h.finish(), size};
}

// Bytes that look like source code, and bytes that look random (compressed
// data), from a fixed seed: a layer of both exercises every path of the
// compressors.
std::string mixed_bytes(size_t size, uint64_t seed) {
  std::string out;
  out.reserve(size);
  static const char* words[] = {"func ", "return ", "if err != nil {\n", "}\n", "x := ", "ctx", "\t", "0, "};
  uint64_t x = seed;
  auto next = [&] {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    return x >> 33;
  };
  while (out.size() < size) {
    bool random = (out.size() / (300 << 10)) % 3 == 1;  // every third 300 KiB is random
    if (random)
      out.push_back(static_cast<char>(next()));
    else
      out += words[next() % 8];
  }
  out.resize(size);
  return out;
}

struct TarRecord {
  std::string path;  // without a trailing '/'
  unsigned filetype = 0;
  unsigned perm = 0;
  int64_t uid = -1, gid = -1;
  int64_t mtime = -1;
  int64_t size = -1;
  std::string link;
  std::string content_sha;  // hex sha256 of the data, for regular files
  std::string content;      // the data itself when small
};

// Reads a plain tar with libarchive.
std::vector<TarRecord> read_tar(const fs::path& tar) {
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), &archive_read_free);
  archive_read_support_format_tar(a.get());
  if (archive_read_open_filename(a.get(), tar.c_str(), 65536) != ARCHIVE_OK)
    throw std::runtime_error(std::string("open tar: ") + archive_error_string(a.get()));
  std::vector<TarRecord> out;
  archive_entry* e = nullptr;
  for (;;) {
    int rc = archive_read_next_header(a.get(), &e);
    if (rc == ARCHIVE_EOF) break;
    if (rc != ARCHIVE_OK) throw std::runtime_error(std::string("read tar: ") + archive_error_string(a.get()));
    TarRecord r;
    const char* name = archive_entry_pathname(e);
    r.path = name ? name : "";
    if (r.path.size() > 1 && r.path.back() == '/') r.path.pop_back();
    r.filetype = archive_entry_filetype(e);
    r.perm = archive_entry_perm(e);
    r.uid = archive_entry_uid(e);
    r.gid = archive_entry_gid(e);
    r.mtime = archive_entry_mtime(e);
    r.size = archive_entry_size(e);
    if (const char* l = archive_entry_symlink(e)) r.link = l;
    if (r.filetype == AE_IFREG) {
      Sha256 h;
      std::vector<char> buf(1 << 16);
      for (;;) {
        la_ssize_t n = archive_read_data(a.get(), buf.data(), buf.size());
        if (n < 0) throw std::runtime_error("read data");
        if (n == 0) break;
        h.update(buf.data(), static_cast<size_t>(n));
        if (r.content.size() < 4096) r.content.append(buf.data(), static_cast<size_t>(n));
      }
      r.content_sha = h.finish_hex();
    }
    out.push_back(std::move(r));
  }
  return out;
}

// A small tree of sources on disk and the entries describing it.
struct Fixture {
  ScratchDir scratch;
  fs::path src = scratch.path / "src";
  fs::path blobs = scratch.path / "blobs" / "sha256";  // created by write_layer
  Fixture() {
    fs::create_directories(src);
    spit(src / "cert.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
    spit(src / "app", std::string("\x7f"
                                  "ELF binary\0\x01\x02",
                                  15));
    spit(src / "empty", "");
    spit(src / "readme", "hello layer\n");
  }
  std::vector<LayerEntry> entries() const {
    return {
        dir_entry("etc"),
        dir_entry("etc/ssl", 0700, 5, 6),
        file_entry("etc/ssl/cert.pem", src / "cert.pem", 0600, 1000, 1001),
        link_entry("bin", "usr/bin"),
        dir_entry("usr"),
        dir_entry("usr/bin"),
        file_entry("usr/bin/app", src / "app", 04755),
        file_entry("empty", src / "empty"),
        dir_entry("tmp", 01777),
        link_entry("etc/localtime", "/usr/share/zoneinfo/UTC", 7, 8),
        file_entry("a-b", src / "readme"),
        file_entry("usr/bin/app.txt", src / "readme"),
    };
  }
};

}  // namespace

TEST_CASE("write_layer names the blob by its digest and reports both digests", "[layer]") {
  Fixture fx;
  LayerOptions opts;
  opts.mtime = 1700000000;
  LayerBlob blob = imgbuild::write_layer(fx.entries(), fx.blobs, opts);

  REQUIRE(names_in(fx.blobs) == std::vector<std::string>{std::string(blob.digest.hex())});
  fs::path blob_path = fx.blobs / std::string(blob.digest.hex());
  auto [gz_digest, gz_size] = hash_file(blob_path);
  REQUIRE(gz_digest == blob.digest);
  REQUIRE(gz_size == blob.size);
  REQUIRE(fs::file_size(blob_path) == blob.size);
  struct stat st {};
  REQUIRE(::stat(blob_path.c_str(), &st) == 0);
  REQUIRE((st.st_mode & 07777) == 0644);

  // gzip header: magic, deflate, no flags (so no file name), mtime 0.
  std::string head = slurp(blob_path).substr(0, 10);
  REQUIRE(static_cast<unsigned char>(head[0]) == 0x1f);
  REQUIRE(static_cast<unsigned char>(head[1]) == 0x8b);
  REQUIRE(head[2] == 8);
  REQUIRE(head[3] == 0);
  REQUIRE(head.substr(4, 4) == std::string(4, '\0'));

  fs::path tar = fx.scratch.path / "layer.tar";
  Gunzipped g = gunzip_to(blob_path, tar);
  REQUIRE(g.digest == blob.diff_id);
  REQUIRE(g.size == blob.uncompressed_size);
  REQUIRE(blob.uncompressed_size % 512 == 0);
  REQUIRE(blob.diff_id != blob.digest);
}

TEST_CASE("write_sorted_layer hashes each file as it writes it, as a step key reads it", "[layer]") {
  Fixture fx;
  std::vector<LayerEntry> entries = fx.entries();
  imgbuild::sort_layer_entries(entries);
  imgbuild::FileDigests digests;
  LayerBlob blob = imgbuild::write_sorted_layer(entries, fx.blobs, LayerOptions{}, &digests);
  CHECK(blob.digest == imgbuild::write_layer(fx.entries(), fx.scratch.path / "plain", LayerOptions{}).digest);
  REQUIRE(digests.size() == entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    INFO(entries[i].path);
    if (entries[i].type == LayerEntry::Type::File) {
      REQUIRE(digests[i]);
      CHECK(digests[i]->digest() == imgbuild::sha256_file(entries[i].source));
      struct stat st {};
      REQUIRE(::stat(entries[i].source.c_str(), &st) == 0);
      CHECK(digests[i]->stamp == imgbuild::FileStamp::of(st));
    } else
      CHECK_FALSE(digests[i]);
  }
  std::swap(entries[0], entries[1]);
  CHECK_THROWS_AS(imgbuild::write_sorted_layer(entries, fx.blobs, LayerOptions{}), std::logic_error);
}

TEST_CASE("write_sorted_layer keeps the listing and runs the caller's records while the blob is committed", "[layer]") {
  Fixture fx;
  std::vector<LayerEntry> entries = fx.entries();
  imgbuild::sort_layer_entries(entries);
  imgbuild::FileDigests digests;
  auto listings = std::make_shared<imgbuild::LayerListings>(fx.scratch.path / "listings");
  std::optional<LayerBlob> seen;
  size_t hashed = 0;
  LayerBlob blob = imgbuild::write_sorted_layer(entries, fx.blobs, LayerOptions{}, &digests, listings.get(),
                                                [&](const LayerBlob& b) {
                                                  seen = b;
                                                  for (auto& d : digests) hashed += d ? 1 : 0;
                                                });
  // Run once, with the blob's digest and every file already hashed.
  REQUIRE(seen);
  CHECK(seen->digest == blob.digest);
  CHECK(hashed == static_cast<size_t>(std::count_if(entries.begin(), entries.end(), [](const LayerEntry& e) {
          return e.type == LayerEntry::Type::File;
        })));
  // The listing was kept on disk on the way: another build knows it without the blob.
  const fs::path path = fx.blobs / std::string(blob.digest.hex());
  CHECK(fs::exists(path));
  CHECK(imgbuild::LayerListings(fx.scratch.path / "listings").known(path));

  // The caller's error is the writer's, and the blob it ran alongside stays whole.
  CHECK_THROWS_WITH(imgbuild::write_sorted_layer(entries, fx.scratch.path / "other", LayerOptions{}, nullptr, nullptr,
                                                 [](const LayerBlob&) { throw std::runtime_error("record failed"); }),
                    "record failed");
  CHECK(imgbuild::sha256_file(fx.scratch.path / "other" / std::string(blob.digest.hex())) == blob.digest);
}

TEST_CASE("files read ahead on several threads reach the tar whole and in order", "[layer]") {
  // More batches than the read-ahead window (64), more bytes than its budget
  // (1 MiB), and files that end exactly on, just past and far past a 256 KiB
  // read piece, among hundreds of small ones and directories.
  ScratchDir s;
  std::vector<LayerEntry> entries;
  std::string pattern;
  for (int i = 0; i < 997; ++i) pattern += static_cast<char>((i * 131 + 7) % 251);
  auto sized = [&](size_t size, int salt) {
    std::string bytes;
    bytes.reserve(size);
    for (size_t at = 0; bytes.size() < size; ++at)
      bytes += static_cast<char>(pattern[(at + salt) % pattern.size()] ^ salt);
    return bytes;
  };
  const std::vector<size_t> big = {256 << 10, (256 << 10) + 1, (5 << 20) + 3, 0, (1 << 20) - 1};
  for (int i = 0; i < 700; ++i) {
    std::string name = "f" + std::to_string(1000 + i);
    if (i % 50 == 0) entries.push_back(dir_entry("d" + std::to_string(1000 + i)));
    size_t size = i % 150 == 7 ? big[static_cast<size_t>(i / 150)] : static_cast<size_t>(i * 37 % 9000);
    spit(s.path / name, sized(size, i));
    entries.push_back(file_entry(name, s.path / name));
  }
  imgbuild::sort_layer_entries(entries);
  imgbuild::FileDigests digests;
  LayerBlob blob = imgbuild::write_sorted_layer(entries, s.path / "blobs", LayerOptions{}, &digests);

  fs::path tar = s.path / "layer.tar";
  REQUIRE(gunzip_to(s.path / "blobs" / std::string(blob.digest.hex()), tar).digest == blob.diff_id);
  std::vector<TarRecord> recs = read_tar(tar);
  REQUIRE(recs.size() == entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    INFO(entries[i].path);
    REQUIRE(recs[i].path == entries[i].path);
    if (entries[i].type != LayerEntry::Type::File) continue;
    Digest expected = imgbuild::sha256_file(entries[i].source);
    CHECK(recs[i].content_sha == expected.hex());
    CHECK(recs[i].size == static_cast<int64_t>(entries[i].size));
    REQUIRE(digests[i]);
    CHECK(digests[i]->digest() == expected);
  }

  SECTION("a file that changed far into the layer fails the layer with its own name") {
    auto victim = std::find_if(entries.begin(), entries.end(), [](auto& e) { return e.path == "f1600"; });
    REQUIRE(victim != entries.end());
    victim->size += 1;
    REQUIRE_THROWS_WITH(imgbuild::write_sorted_layer(entries, s.path / "blobs2", LayerOptions{}),
                        Contains("shrank") && Contains(victim->source));
    victim->size -= 1;
    fs::remove(victim->source);
    REQUIRE_THROWS_WITH(imgbuild::write_sorted_layer(entries, s.path / "blobs2", LayerOptions{}),
                        Contains(victim->source));
  }
}

TEST_CASE("every file of a read-ahead batch gets its digest, however the threads interleave", "[layer]") {
  // Thousands of small files: a writer that could take a batch before its
  // reader has finished with it would find digests missing (or crash).
  ScratchDir s;
  std::vector<LayerEntry> entries;
  for (int i = 0; i < 4000; ++i) {
    std::string name = "f" + std::to_string(10000 + i);
    spit(s.path / name, std::string(static_cast<size_t>(i % 700), static_cast<char>('a' + i % 26)));
    entries.push_back(file_entry(name, s.path / name));
  }
  for (int round = 0; round < 5; ++round) {
    imgbuild::FileDigests digests;
    imgbuild::write_sorted_layer(entries, s.path / "blobs", LayerOptions{}, &digests);
    REQUIRE(digests.size() == entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      INFO(entries[i].path);
      REQUIRE(digests[i]);
      REQUIRE(digests[i]->digest() == imgbuild::sha256_file(entries[i].source));
    }
  }
}

TEST_CASE("write_layer writes sorted entries with the given metadata", "[layer]") {
  Fixture fx;
  LayerOptions opts;
  opts.mtime = 1700000000;
  LayerBlob blob = imgbuild::write_layer(fx.entries(), fx.blobs, opts);
  fs::path tar = fx.scratch.path / "layer.tar";
  gunzip_to(fx.blobs / std::string(blob.digest.hex()), tar);
  std::vector<TarRecord> recs = read_tar(tar);

  std::vector<std::string> order;
  for (auto& r : recs) order.push_back(r.path);
  REQUIRE(order == std::vector<std::string>{"a-b", "bin", "empty", "etc", "etc/localtime", "etc/ssl",
                                            "etc/ssl/cert.pem", "tmp", "usr", "usr/bin", "usr/bin/app",
                                            "usr/bin/app.txt"});
  // Parents come before their children.
  for (size_t i = 0; i < order.size(); ++i) {
    auto slash = order[i].rfind('/');
    if (slash == std::string::npos) continue;
    auto parent = std::find(order.begin(), order.end(), order[i].substr(0, slash));
    REQUIRE(parent != order.end());
    REQUIRE(parent < order.begin() + static_cast<std::ptrdiff_t>(i));
  }

  for (auto& r : recs) {
    INFO(r.path);
    REQUIRE(r.mtime == 1700000000);
  }
  auto rec = [&](const std::string& p) -> const TarRecord& {
    for (auto& r : recs)
      if (r.path == p) return r;
    throw std::runtime_error("no entry " + p);
  };

  const TarRecord& cert = rec("etc/ssl/cert.pem");
  REQUIRE(cert.filetype == AE_IFREG);
  REQUIRE(cert.perm == 0600);
  REQUIRE(cert.uid == 1000);
  REQUIRE(cert.gid == 1001);
  REQUIRE(cert.content == "-----BEGIN CERTIFICATE-----\nMIIB\n");
  REQUIRE(cert.size == static_cast<int64_t>(cert.content.size()));

  const TarRecord& ssl = rec("etc/ssl");
  REQUIRE(ssl.filetype == AE_IFDIR);
  REQUIRE(ssl.perm == 0700);
  REQUIRE(ssl.uid == 5);
  REQUIRE(ssl.gid == 6);

  REQUIRE(rec("etc").filetype == AE_IFDIR);
  REQUIRE(rec("etc").perm == 0755);
  REQUIRE(rec("etc").uid == 0);
  REQUIRE(rec("tmp").perm == 01777);

  const TarRecord& app = rec("usr/bin/app");
  REQUIRE(app.filetype == AE_IFREG);
  REQUIRE(app.perm == 04755);
  REQUIRE(app.content == std::string("\x7f"
                                     "ELF binary\0\x01\x02",
                                     15));

  const TarRecord& bin = rec("bin");
  REQUIRE(bin.filetype == AE_IFLNK);
  REQUIRE(bin.link == "usr/bin");
  const TarRecord& lt = rec("etc/localtime");
  REQUIRE(lt.filetype == AE_IFLNK);
  REQUIRE(lt.link == "/usr/share/zoneinfo/UTC");
  REQUIRE(lt.uid == 7);
  REQUIRE(lt.gid == 8);

  REQUIRE(rec("empty").filetype == AE_IFREG);
  REQUIRE(rec("empty").size == 0);
  REQUIRE(rec("empty").content.empty());
  REQUIRE(rec("a-b").content == "hello layer\n");
  REQUIRE(rec("usr/bin/app.txt").content == "hello layer\n");
}

TEST_CASE("write_layer is deterministic", "[layer]") {
  Fixture fx;
  LayerOptions opts;
  opts.mtime = 1234567890;
  auto entries = fx.entries();
  LayerBlob first = imgbuild::write_layer(entries, fx.blobs, opts);

  SECTION("the same entries in another order give the same bytes") {
    auto shuffled = entries;
    std::reverse(shuffled.begin(), shuffled.end());
    std::rotate(shuffled.begin(), shuffled.begin() + 5, shuffled.end());
    fs::path other = fx.scratch.path / "other";
    LayerBlob second = imgbuild::write_layer(shuffled, other, opts);
    REQUIRE(second.digest == first.digest);
    REQUIRE(second.diff_id == first.diff_id);
    REQUIRE(second.size == first.size);
    REQUIRE(second.uncompressed_size == first.uncompressed_size);
    REQUIRE(slurp(other / std::string(second.digest.hex())) == slurp(fx.blobs / std::string(first.digest.hex())));
  }
  SECTION("writing the same layer again into the same directory keeps one blob") {
    LayerBlob again = imgbuild::write_layer(entries, fx.blobs, opts);
    REQUIRE(again.digest == first.digest);
    REQUIRE(names_in(fx.blobs) == std::vector<std::string>{std::string(first.digest.hex())});
  }
  SECTION("a different mtime changes both digests") {
    LayerOptions later = opts;
    later.mtime = opts.mtime + 1;
    LayerBlob other = imgbuild::write_layer(entries, fx.scratch.path / "later", later);
    REQUIRE(other.diff_id != first.diff_id);
    REQUIRE(other.digest != first.digest);
    REQUIRE(other.uncompressed_size == first.uncompressed_size);
  }
  SECTION("a different owner changes the diff_id") {
    auto changed = entries;
    changed[0].uid = 1;
    LayerBlob other = imgbuild::write_layer(changed, fx.scratch.path / "owner", opts);
    REQUIRE(other.diff_id != first.diff_id);
  }
  SECTION("zstd changes the compression, not the tar") {
    LayerOptions zstd = opts;
    zstd.compression = imgbuild::Compression::Zstd;
    LayerBlob other = imgbuild::write_layer(entries, fx.scratch.path / "zstd", zstd);
    REQUIRE(other.digest != first.digest);
    REQUIRE(other.diff_id == first.diff_id);
    REQUIRE(other.uncompressed_size == first.uncompressed_size);
    REQUIRE(other.media_type.str() == "application/vnd.oci.image.layer.v1.tar+zstd");
    REQUIRE(first.media_type.str() == "application/vnd.oci.image.layer.v1.tar+gzip");
  }
}

TEST_CASE("write_layer of no entries is a valid empty tar", "[layer]") {
  ScratchDir s;
  LayerBlob blob = imgbuild::write_layer({}, s.path, LayerOptions{});
  fs::path tar = s.path / "empty.tar";
  Gunzipped g = gunzip_to(s.path / std::string(blob.digest.hex()), tar);
  REQUIRE(g.digest == blob.diff_id);
  REQUIRE(g.size == blob.uncompressed_size);
  REQUIRE(blob.uncompressed_size > 0);  // the end-of-archive blocks
  REQUIRE(read_tar(tar).empty());
}

TEST_CASE("write_layer refuses a file whose size changed", "[layer]") {
  Fixture fx;
  LayerOptions opts;

  SECTION("shrank: fewer bytes than planned") {
    auto e = file_entry("readme", fx.src / "readme");
    e.size += 10;
    REQUIRE_THROWS_AS(imgbuild::write_layer({dir_entry("d"), e}, fx.blobs, opts), std::runtime_error);
    REQUIRE_THROWS_WITH(imgbuild::write_layer({dir_entry("d"), e}, fx.blobs, opts),
                        Contains("shrank") && Contains((fx.src / "readme").string()));
  }
  SECTION("grew: more bytes than planned") {
    auto e = file_entry("readme", fx.src / "readme");
    e.size -= 1;
    REQUIRE_THROWS_AS(imgbuild::write_layer({e}, fx.blobs, opts), std::runtime_error);
    REQUIRE_THROWS_WITH(imgbuild::write_layer({e}, fx.blobs, opts),
                        Contains("grew") && Contains((fx.src / "readme").string()));
  }
  SECTION("grew from empty") {
    auto e = file_entry("readme", fx.src / "readme");
    e.size = 0;
    REQUIRE_THROWS_WITH(imgbuild::write_layer({e}, fx.blobs, opts), Contains("grew"));
  }
  SECTION("a missing source") {
    auto e = file_entry("readme", fx.src / "readme");
    e.source = fx.src / "gone";
    REQUIRE_THROWS_WITH(imgbuild::write_layer({e}, fx.blobs, opts), Contains((fx.src / "gone").string()));
  }
  // A failed layer leaves no blob and no temporary behind.
  REQUIRE(fs::is_directory(fx.blobs));
  REQUIRE(fs::is_empty(fx.blobs));
}

TEST_CASE("write_layer refuses duplicate paths", "[layer]") {
  Fixture fx;
  auto entries = fx.entries();
  entries.push_back(dir_entry("etc/ssl"));
  REQUIRE_THROWS_WITH(imgbuild::write_layer(entries, fx.blobs, LayerOptions{}),
                      Contains("duplicate") && Contains("etc/ssl"));
  auto files = std::vector<LayerEntry>{file_entry("x", fx.src / "readme"), file_entry("x", fx.src / "app")};
  REQUIRE_THROWS(imgbuild::write_layer(files, fx.scratch.path / "dup", LayerOptions{}));
  REQUIRE_FALSE(fs::exists(fx.scratch.path / "dup" / "layer"));
  if (fs::exists(fx.blobs)) REQUIRE(fs::is_empty(fx.blobs));
}

TEST_CASE("write_layer keeps long names, big ids and non-ASCII names", "[layer]") {
  Fixture fx;
  std::string long_dir(120, 'd');
  std::string long_file = long_dir + "/" + std::string(150, 'f') + ".txt";
  std::string utf8 = "caf\xc3\xa9-\xe6\x97\xa5\xe6\x9c\xac.txt";
  std::vector<LayerEntry> entries{dir_entry(long_dir),
                                  file_entry(long_file, fx.src / "readme", 0644, 100000000, 3000000),
                                  file_entry(utf8, fx.src / "cert.pem")};
  LayerOptions opts;
  opts.mtime = 42;
  LayerBlob blob = imgbuild::write_layer(entries, fx.blobs, opts);
  fs::path tar = fx.scratch.path / "layer.tar";
  gunzip_to(fx.blobs / std::string(blob.digest.hex()), tar);
  auto recs = read_tar(tar);
  REQUIRE(recs.size() == 3);
  REQUIRE(recs[0].path == utf8);
  REQUIRE(recs[0].content == "-----BEGIN CERTIFICATE-----\nMIIB\n");
  REQUIRE(recs[1].path == long_dir);
  REQUIRE(recs[2].path == long_file);
  REQUIRE(recs[2].uid == 100000000);
  REQUIRE(recs[2].gid == 3000000);
  REQUIRE(recs[2].content == "hello layer\n");
  for (auto& r : recs) REQUIRE(r.mtime == 42);
}

TEST_CASE("write_tar writes entries in the order given", "[layer]") {
  Fixture fx;
  std::vector<LayerEntry> entries{file_entry("z", fx.src / "readme"), dir_entry("a"), link_entry("m", "z")};
  std::string tar_bytes;
  imgbuild::write_tar(
      entries, [&](const void* d, size_t n) { tar_bytes.append(static_cast<const char*>(d), n); }, 99);
  REQUIRE(tar_bytes.size() % 512 == 0);
  fs::path tar = fx.scratch.path / "plain.tar";
  spit(tar, tar_bytes);
  auto recs = read_tar(tar);
  REQUIRE(recs.size() == 3);
  REQUIRE(recs[0].path == "z");
  REQUIRE(recs[1].path == "a");
  REQUIRE(recs[2].path == "m");
  REQUIRE(recs[2].link == "z");
  for (auto& r : recs) REQUIRE(r.mtime == 99);

  // A failing sink surfaces its own exception.
  auto failing = [](const void*, size_t) { throw std::runtime_error("disk full"); };
  REQUIRE_THROWS_WITH(imgbuild::write_tar(entries, failing, 0), Contains("disk full"));
}

TEST_CASE("xattrs are PAX SCHILY.xattr records on files, folders and symlinks; others get no PAX header", "[layer]") {
  Fixture fx;
  LayerEntry d = dir_entry("d"), f = file_entry("d/f", fx.src / "readme"), l = link_entry("d/l", "f");
  d.xattrs = {{"user.dir", "1"}};
  f.xattrs = {{"security.capability", std::string("\x01\0\0\x02\0\x04", 6)}, {"user.z", "last"}};
  l.xattrs = {{"user.link", ""}};
  LayerEntry plain = file_entry("p", fx.src / "readme");
  std::string tar;
  imgbuild::write_tar(
      {d, f, l, plain}, [&](const void* data, size_t n) { tar.append(static_cast<const char*>(data), n); }, 0);
  // Records as Docker writes them (length, key, value), in the order given.
  CHECK(tar.find("27 SCHILY.xattr.user.dir=1\n") != std::string::npos);
  size_t cap = tar.find("SCHILY.xattr.security.capability=\x01"), z = tar.find("28 SCHILY.xattr.user.z=last\n");
  CHECK((cap != std::string::npos && z != std::string::npos && cap < z));
  CHECK(tar.find("27 SCHILY.xattr.user.link=\n") != std::string::npos);
  CHECK(tar.find("LIBARCHIVE") == std::string::npos);
  // The entry without xattrs is a plain ustar header, as before xattrs were kept.
  CHECK(tar.find("PaxHeader/p") == std::string::npos);
  CHECK(tar.find("PaxHeader/f") != std::string::npos);

  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), &archive_read_free);
  archive_read_support_format_tar(a.get());
  REQUIRE(archive_read_open_memory(a.get(), tar.data(), tar.size()) == ARCHIVE_OK);
  std::vector<std::vector<imgbuild::Xattr>> read;
  archive_entry* e = nullptr;
  while (archive_read_next_header(a.get(), &e) == ARCHIVE_OK) {
    read.emplace_back();
    const char* name;
    const void* value;
    size_t size;
    archive_entry_xattr_reset(e);
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK)
      read.back().emplace_back(name, std::string(static_cast<const char*>(value), size));
    // libarchive lists them backwards from the tar's order, checked above.
    std::sort(read.back().begin(), read.back().end());
  }
  CHECK(read == std::vector<std::vector<imgbuild::Xattr>>{d.xattrs, f.xattrs, l.xattrs, {}});
}

TEST_CASE("write_layer streams a 50 MB sparse file", "[layer]") {
  ScratchDir s;
  fs::path big = s.path / "big.img";
  constexpr uint64_t kSize = 50ull << 20;
  {
    int fd = ::open(big.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    REQUIRE(::ftruncate(fd, static_cast<off_t>(kSize)) == 0);
    // A few islands of data in the holes, including across the 1 MiB chunks.
    const std::string marks[] = {"start", "middle", "across-chunk", "end!"};
    const uint64_t offsets[] = {0, kSize / 2 + 12345, (3ull << 20) - 5, kSize - 4};
    for (int i = 0; i < 4; ++i)
      REQUIRE(::pwrite(fd, marks[i].data(), marks[i].size(), static_cast<off_t>(offsets[i])) ==
              static_cast<ssize_t>(marks[i].size()));
    ::close(fd);
  }
  REQUIRE(fs::file_size(big) == kSize);
  auto [file_digest, file_size] = hash_file(big);

  fs::path blobs = s.path / "blobs";
  LayerBlob blob =
      imgbuild::write_layer({dir_entry("data"), file_entry("data/big.img", big, 0600)}, blobs, LayerOptions{});
  fs::path blob_path = blobs / std::string(blob.digest.hex());
  REQUIRE(blob.uncompressed_size > kSize);
  REQUIRE(blob.uncompressed_size < kSize + 64 * 1024);
  REQUIRE(blob.size < kSize / 100);  // mostly zeros
  REQUIRE(hash_file(blob_path).first == blob.digest);

  fs::path tar = s.path / "big.tar";
  Gunzipped g = gunzip_to(blob_path, tar);
  REQUIRE(g.digest == blob.diff_id);
  REQUIRE(g.size == blob.uncompressed_size);
  auto recs = read_tar(tar);
  REQUIRE(recs.size() == 2);
  REQUIRE(recs[1].path == "data/big.img");
  REQUIRE(recs[1].size == static_cast<int64_t>(kSize));
  REQUIRE(recs[1].perm == 0600);
  REQUIRE(recs[1].content_sha == std::string(file_digest.hex()));
  REQUIRE(file_size == kSize);
}

TEST_CASE("a zstd layer holds the same tar", "[layer]") {
  Fixture fx;
  LayerOptions opts;
  opts.mtime = 7;
  LayerBlob gz = imgbuild::write_layer(fx.entries(), fx.blobs, opts);
  opts.compression = imgbuild::Compression::Zstd;
  LayerBlob zst = imgbuild::write_layer(fx.entries(), fx.blobs, opts);
  fs::path zst_path = fx.blobs / std::string(zst.digest.hex());
  REQUIRE(hash_file(zst_path) == std::pair{zst.digest, zst.size});
  REQUIRE(slurp(zst_path).substr(0, 4) == "\x28\xb5\x2f\xfd");  // the zstd frame magic
  fs::path tar = fx.scratch.path / "layer.tar";
  Gunzipped z = unzstd_to(zst_path, tar);
  REQUIRE(z.digest == zst.diff_id);
  REQUIRE(z.size == zst.uncompressed_size);
  REQUIRE(zst.diff_id == gz.diff_id);
  auto recs = read_tar(tar);
  REQUIRE(recs.size() == fx.entries().size());
  for (auto& r : recs) REQUIRE(r.mtime == 7);
}

TEST_CASE("layers are the same bytes whatever the number of threads", "[layer]") {
  // 13 MiB: 13 gzip chunks and more than three zstd jobs, a third of it random.
  ScratchDir s;
  spit(s.path / "mixed", mixed_bytes(13 << 20, 42));
  spit(s.path / "small", mixed_bytes(5000, 7));
  std::vector<LayerEntry> entries{file_entry("mixed", s.path / "mixed"), file_entry("small", s.path / "small")};
  for (auto compression : {imgbuild::Compression::Gzip, imgbuild::Compression::Zstd}) {
    INFO(imgbuild::compression_name(compression));
    LayerOptions one{0, compression, 1}, three{0, compression, 3};
    LayerBlob a = imgbuild::write_layer(entries, s.path / "one", one);
    LayerBlob b = imgbuild::write_layer(entries, s.path / "three", three);
    REQUIRE(a.digest == b.digest);
    REQUIRE(a.size == b.size);
    REQUIRE(a.diff_id == b.diff_id);
    fs::path tar = s.path / "out.tar";
    Gunzipped back = compression == imgbuild::Compression::Gzip
                         ? gunzip_to(s.path / "one" / std::string(a.digest.hex()), tar)
                         : unzstd_to(s.path / "one" / std::string(a.digest.hex()), tar);
    REQUIRE(back.digest == a.diff_id);
    auto recs = read_tar(tar);
    REQUIRE(recs.size() == 2);
    REQUIRE(recs[0].content_sha == std::string(sha256_of(slurp(s.path / "mixed")).hex()));
  }
}

TEST_CASE("a deferred layer is the plain tar, and compressed later it is the eager blob byte for byte", "[layer]") {
  // Over 3 MiB: several gzip chunks, a zstd frame of more than one job.
  ScratchDir s;
  spit(s.path / "mixed", mixed_bytes((3 << 20) + 12345, 5));
  spit(s.path / "small", "small\n");
  std::vector<LayerEntry> entries{file_entry("mixed", s.path / "mixed"), file_entry("small", s.path / "small")};
  for (auto compression : {imgbuild::Compression::Gzip, imgbuild::Compression::Zstd}) {
    INFO(imgbuild::compression_name(compression));
    LayerOptions eager{1700000000, compression, 3}, deferred = eager;
    deferred.deferred = true;
    LayerBlob made = imgbuild::write_layer(entries, s.path / "eager", eager);
    LayerBlob tar = imgbuild::write_layer(entries, s.path / "lazy", deferred);
    CHECK(tar.media_type == imgbuild::media_type::kLayerTar);
    CHECK(tar.digest == made.diff_id);
    CHECK(tar.diff_id == made.diff_id);
    CHECK(tar.size == made.uncompressed_size);
    CHECK(std::string(sha256_of(slurp(s.path / "lazy" / std::string(tar.digest.hex()))).hex()) == tar.digest.hex());
    LayerOptions other_threads = eager;
    other_threads.threads = 1;
    LayerBlob later = imgbuild::compress_layer(tar, s.path / "lazy", other_threads);
    CHECK(later.digest == made.digest);
    CHECK(later.size == made.size);
    CHECK(later.diff_id == made.diff_id);
    CHECK(later.uncompressed_size == made.uncompressed_size);
    CHECK(later.media_type == made.media_type);
    CHECK(slurp(s.path / "lazy" / std::string(later.digest.hex())) ==
          slurp(s.path / "eager" / std::string(made.digest.hex())));
  }
}

TEST_CASE("a damaged or interrupted compression of a deferred layer leaves no blob", "[layer]") {
  ScratchDir s;
  spit(s.path / "mixed", mixed_bytes((2 << 20) + 99, 11));
  std::vector<LayerEntry> entries{file_entry("mixed", s.path / "mixed")};
  LayerOptions deferred{0, imgbuild::Compression::Gzip, 2};
  deferred.deferred = true;
  const fs::path blobs = s.path / "blobs";
  LayerBlob tar = imgbuild::write_layer(entries, blobs, deferred);
  const fs::path tar_path = blobs / std::string(tar.digest.hex());
  auto names = [&] {
    std::set<std::string> out;
    for (auto& e : fs::directory_iterator(blobs)) out.insert(e.path().filename().string());
    return out;
  };
  const std::set<std::string> only_tar{std::string(tar.digest.hex())};
  LayerOptions gzip{0, imgbuild::Compression::Gzip, 2};

  SECTION("interrupted: nothing new, the tar as it was") {
    imgbuild::set_interrupt_for_testing(SIGINT);
    bool interrupted = false;
    try {
      imgbuild::compress_layer(tar, blobs, gzip);
    } catch (const imgbuild::Interrupted&) {
      interrupted = true;
    }
    imgbuild::set_interrupt_for_testing(0);
    CHECK(interrupted);
    CHECK(names() == only_tar);
    CHECK(std::string(sha256_of(slurp(tar_path)).hex()) == tar.digest.hex());
  }
  SECTION("a tar changed in its middle, same size: refused, nothing written") {
    std::string bytes = slurp(tar_path);
    bytes[bytes.size() / 2] ^= 0x55;  // past the first chunks: compressed before the lie shows
    fs::remove(tar_path);
    spit(tar_path, bytes);
    CHECK_THROWS_WITH(imgbuild::compress_layer(tar, blobs, gzip),
                      Contains("layer " + tar.digest.str() + " in " + blobs.string() + " is damaged") &&
                          Contains("nothing was compressed"));
    CHECK(names() == only_tar);
  }
  SECTION("a tar cut short: refused, nothing written") {
    std::string bytes = slurp(tar_path);
    fs::remove(tar_path);
    spit(tar_path, bytes.substr(0, bytes.size() - 4096));
    CHECK_THROWS_WITH(imgbuild::compress_layer(tar, blobs, gzip), Contains("is damaged"));
    CHECK(names() == only_tar);
  }
}

TEST_CASE("incompressible bytes are stored, and the gzip stream stays whole", "[layer]") {
  ScratchDir s;
  // 3 MiB of random bytes: deflate cannot shrink them, so they are stored
  // (a few bytes of block headers per 64 KiB), and text around them still
  // shrinks.
  std::string random = mixed_bytes(900 << 10, 1).substr(300 << 10, 300 << 10);
  std::string data;
  for (int i = 0; i < 10; ++i) data += random;  // repeats lie beyond deflate's 32 KiB window
  std::string text = mixed_bytes(250 << 10, 3);
  spit(s.path / "random", data);
  spit(s.path / "text", text);
  LayerBlob blob = imgbuild::write_layer({file_entry("random", s.path / "random"), file_entry("text", s.path / "text")},
                                         s.path / "blobs", LayerOptions{});
  REQUIRE(blob.size > data.size());
  REQUIRE(blob.size < data.size() + data.size() / 500 + text.size() / 2);
  fs::path tar = s.path / "out.tar";
  Gunzipped g = gunzip_to(s.path / "blobs" / std::string(blob.digest.hex()), tar);
  REQUIRE(g.digest == blob.diff_id);
  // 4 chunks of 1 MiB, one member each where all their blocks are of one
  // kind; two in the first (the first block holds the tar header, the rest is
  // stored) and in the last (the end of the random bytes, then the text).
  REQUIRE(g.members == 6);
  auto recs = read_tar(tar);
  REQUIRE(recs.size() == 2);
  REQUIRE(recs[0].content_sha == std::string(sha256_of(data).hex()));
  REQUIRE(recs[1].content_sha == std::string(sha256_of(text).hex()));
}
