// Tests for LayerStream, the decoder every layer blob on disk is read
// through: gzip (one member or many, with or without a file name), zstd (one
// frame or many, skippable ones), a plain tar; and every way a blob can be
// cut or damaged, which must end in an error, never in fewer or other bytes;
// and a blob read while it downloads (GrowingFile).
#include "layer/layer_stream.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>
#include <zstd.h>

#include <fcntl.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>

#include "test_support.hpp"

using imgbuild::LayerStream;
using namespace imgbuild::test;

namespace {

/// Bytes that compress somewhat, as a tar's do: random words from a small set.
std::string sample(size_t size, unsigned seed = 1) {
  std::mt19937 rng(seed);
  const char* words[] = {"layer ", "blob ", "gzip ", "\0\0\0\0", "0123456789", "\n", "imgbuild "};
  std::string out;
  while (out.size() < size) out += words[rng() % 7];
  out.resize(size);
  return out;
}

/// One gzip member of `data`, as zlib writes it; with `name`, the header
/// carries a file name (as `gzip FILE` writes it).
std::string gzip_member(const std::string& data, const char* name = nullptr) {
  z_stream z{};
  REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, 16 + 15, 8, Z_DEFAULT_STRATEGY) == Z_OK);
  gz_header header{};
  if (name) {
    header.name = reinterpret_cast<Bytef*>(const_cast<char*>(name));
    REQUIRE(deflateSetHeader(&z, &header) == Z_OK);
  }
  std::string out(deflateBound(&z, uLong(data.size())) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = uInt(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = uInt(out.size());
  REQUIRE(deflate(&z, Z_FINISH) == Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

std::string zstd_frame(const std::string& data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
  REQUIRE_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

/// Everything the stream of `blob` hands out.
std::string decode(const std::string& blob) {
  ScratchDir dir;
  spit(dir.path / "blob", blob);
  LayerStream stream(dir.path / "blob", "layer 1");
  std::string out;
  for (std::span<const char> bytes; !(bytes = stream.next()).empty();) out.append(bytes.data(), bytes.size());
  CHECK(stream.size() == out.size());
  CHECK(stream.next().empty());  // and stays at its end
  return out;
}

/// A tar of one file, "big", holding `body`, gzipped whole and cut in half
/// (inside the file's bytes): libarchive reads the whole one to the end, and
/// gets the stream's error, without its label, from the cut one.
void check_tar_reads(const std::string& body) {
  std::string tar(body.size() + (64 << 10), '\0');
  {
    std::unique_ptr<archive, decltype(&archive_write_free)> w(archive_write_new(), archive_write_free);
    archive_write_set_format_pax_restricted(w.get());
    size_t used = 0;
    REQUIRE(archive_write_open_memory(w.get(), tar.data(), tar.size(), &used) == ARCHIVE_OK);
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), archive_entry_free);
    archive_entry_set_pathname(e.get(), "big");
    archive_entry_set_filetype(e.get(), AE_IFREG);
    archive_entry_set_perm(e.get(), 0644);
    archive_entry_set_size(e.get(), la_int64_t(body.size()));
    REQUIRE(archive_write_header(w.get(), e.get()) == ARCHIVE_OK);
    REQUIRE(archive_write_data(w.get(), body.data(), body.size()) == la_ssize_t(body.size()));
    REQUIRE(archive_write_close(w.get()) == ARCHIVE_OK);
    tar.resize(used);
  }
  ScratchDir dir;
  const std::string gz = gzip_member(tar);
  spit(dir.path / "whole", gz);
  spit(dir.path / "cut", gz.substr(0, gz.size() / 2));
  for (const char* name : {"whole", "cut"}) {
    INFO(name);
    LayerStream stream(dir.path / name, "layer 1");
    LayerStream::TarReader r = stream.tar_reader();
    REQUIRE(r);
    archive_entry* e = nullptr;
    REQUIRE(archive_read_next_header(r.get(), &e) == ARCHIVE_OK);
    CHECK(std::string(archive_entry_pathname(e)) == "big");
    std::string read;
    char buf[65536];
    la_ssize_t n;
    while ((n = archive_read_data(r.get(), buf, sizeof buf)) > 0) read.append(buf, size_t(n));
    if (std::string(name) == "whole") {
      CHECK(n == 0);
      CHECK(read == body);
      CHECK(archive_read_next_header(r.get(), &e) == ARCHIVE_EOF);
    } else {
      CHECK(n < 0);
      CHECK(std::string(archive_error_string(r.get())) == "truncated gzip input");
      CHECK(read == body.substr(0, read.size()));
    }
  }
}

}  // namespace

TEST_CASE("layer stream: gzip members, zstd frames and plain tars decode to their bytes", "[layer_stream]") {
  const std::string a = sample(300000, 1), b = sample(5 << 20, 2), c = sample(1, 3);
  SECTION("gzip: one member, with a file name, many members, a large one") {
    CHECK(decode(gzip_member(a)) == a);
    CHECK(decode(gzip_member(a, "layer.tar")) == a);
    CHECK(decode(gzip_member(a) + gzip_member(c, "x") + gzip_member("") + gzip_member(b)) == a + c + b);
    CHECK(decode(gzip_member(std::string(64 << 20, '\0'))) == std::string(64 << 20, '\0'));
  }
  SECTION("zstd: one frame, many, and a skippable frame first") {
    CHECK(decode(zstd_frame(a)) == a);
    CHECK(decode(zstd_frame(a) + zstd_frame(b)) == a + b);
    std::string skippable("\x50\x2a\x4d\x18\x03\x00\x00\x00xyz", 11);
    CHECK(decode(skippable + zstd_frame(a)) == a);
  }
  SECTION("plain: the blob itself, empty or not") {
    CHECK(decode(a) == a);
    CHECK(decode("") == "");
    CHECK(decode("\x1f") == "\x1f");
  }
  SECTION("bytes after the last gzip member that start no other one end the stream, as gzip(1) takes them") {
    CHECK(decode(gzip_member(a) + std::string(512, '\0')) == a);
  }
}

TEST_CASE("layer stream: hashes what it hands out when asked", "[layer_stream]") {
  const std::string a = sample(100000);
  ScratchDir dir;
  spit(dir.path / "blob", gzip_member(a) + gzip_member(a));
  LayerStream stream(dir.path / "blob", "layer 1");
  imgbuild::Sha256 hash;
  stream.hash_into(hash);
  while (!stream.next().empty()) {
  }
  imgbuild::Sha256 expected;
  expected.update(a + a);
  CHECK(hash.finish() == expected.finish());
}

TEST_CASE("layer stream: a cut or damaged blob is an error, never fewer or other bytes", "[layer_stream]") {
  const std::string data = sample(20000);
  SECTION("gzip cut anywhere after its magic") {
    const std::string gz = gzip_member(data, "name");
    for (size_t cut = 2; cut < gz.size(); ++cut) {
      INFO("cut at " << cut);
      CHECK(error_of([&] { decode(gz.substr(0, cut)); }) == "layer 1: truncated gzip input");
    }
  }
  SECTION("gzip with any one byte changed: the same bytes (a header field) or an error") {
    const std::string gz = gzip_member(data);
    for (size_t at = 0; at < gz.size(); ++at) {
      std::string bad = gz;
      bad[at] = char(bad[at] ^ 0x5a);
      std::string out;
      std::string error = error_of([&] { out = decode(bad); });
      INFO("byte " << at << ": " << error);
      if (at < 2) continue;  // no longer gzip: a plain blob, which the tar reader refuses
      CHECK((error.empty() ? out == data : error.starts_with("layer 1: ")));
    }
  }
  SECTION("gzip whose checksum does not match") {
    std::string gz = gzip_member(data);
    gz[gz.size() - 8] = char(gz[gz.size() - 8] ^ 1);
    CHECK(error_of([&] { decode(gz); }) ==
          "layer 1: gzip data does not match its checksum (the blob is damaged) at byte " + std::to_string(gz.size()) +
              " of the blob");
  }
  SECTION("a second gzip member cut short") {
    const std::string gz = gzip_member(data) + gzip_member(data);
    CHECK(error_of([&] { decode(gz.substr(0, gz.size() - 3)); }) == "layer 1: truncated gzip input");
  }
  SECTION("zstd cut anywhere after its magic, or damaged") {
    const std::string frame = zstd_frame(data), zst = frame + frame;
    for (size_t cut = 4; cut < zst.size(); ++cut) {
      if (cut == frame.size()) continue;  // between the frames: a whole, shorter stream
      std::string error = error_of([&] { decode(zst.substr(0, cut)); });
      INFO("cut at " << cut << ": " << error);
      CHECK((error == "layer 1: truncated zstd input" || error.starts_with("layer 1: damaged zstd data: ")));
    }
    std::string bad = zstd_frame(data);
    bad[bad.size() / 2] = char(bad[bad.size() / 2] ^ 0xff);
    CHECK(error_of([&] { decode(bad); }).starts_with("layer 1: damaged zstd data: "));
  }
  SECTION("a blob that cannot be opened") {
    CHECK(error_of([] { LayerStream("/nonexistent/blob", "layer 2"); }) ==
          "layer 2: cannot open /nonexistent/blob: No such file or directory");
  }
}

TEST_CASE("layer stream: libarchive reads the tar from it, and its errors without the label", "[layer_stream]") {
  check_tar_reads(sample(100000));
}

TEST_CASE("layer stream: a large blob decoded ahead on a thread gives the same bytes, hash and errors",
          "[layer_stream]") {
  // Random bytes (which no compressor shrinks) then words: a blob well over
  // kDecodeAheadFrom, so a thread of its own decodes it.
  std::mt19937 rng(7);
  std::string data(3 << 20, '\0');
  for (char& c : data) c = char(rng());
  data += sample(4 << 20, 8);
  const std::string gz = gzip_member(data.substr(0, 5 << 20)) + gzip_member(data.substr(5 << 20));
  const std::string zst = zstd_frame(data);
  REQUIRE(gz.size() > LayerStream::kDecodeAheadFrom);
  REQUIRE(zst.size() > LayerStream::kDecodeAheadFrom);

  SECTION("every byte, in order, then the end for good") {
    CHECK(decode(gz) == data);
    CHECK(decode(zst) == data);
  }
  SECTION("hashed on the decoder's thread as next() would have") {
    ScratchDir dir;
    spit(dir.path / "blob", gz);
    LayerStream stream(dir.path / "blob", "layer 1");
    imgbuild::Sha256 hash;
    stream.hash_into(hash);
    while (!stream.next().empty()) {
    }
    imgbuild::Sha256 expected;
    expected.update(data);
    CHECK(hash.finish() == expected.finish());
  }
  SECTION("cut or damaged: the error the reader's thread would have given, after the bytes before it") {
    for (size_t cut : {size_t(2), gz.size() / 7, gz.size() / 2, gz.size() - 9}) {
      INFO("cut at " << cut);
      CHECK(error_of([&] { decode(gz.substr(0, cut)); }) == "layer 1: truncated gzip input");
    }
    std::string bad = gz;
    bad[bad.size() - 8] = char(bad[bad.size() - 8] ^ 1);
    CHECK(error_of([&] { decode(bad); }) ==
          "layer 1: gzip data does not match its checksum (the blob is damaged) at byte " + std::to_string(gz.size()) +
              " of the blob");
    CHECK(error_of([&] { decode(zst.substr(0, zst.size() - 5)); }) == "layer 1: truncated zstd input");
  }
  SECTION("a reader that stops early stops the decoder too") {
    ScratchDir dir;
    spit(dir.path / "blob", gz);
    for (int i = 0; i < 20; ++i) {
      LayerStream stream(dir.path / "blob", "layer 1");
      CHECK(stream.next().size() > 0);
    }
    // and one that never asked starts none
    LayerStream untouched(dir.path / "blob", "layer 1");
  }
  SECTION("libarchive reads the tar from it, and its errors without the label") { check_tar_reads(data); }
}

namespace {

/// A download as the registry client makes one: `blob` appended to a file in
/// `pieces`, each told to `incoming` once written, from a thread of its own.
/// `then` ends it (finished, failed, restarted) `delay` after the last piece.
std::thread write_growing(const std::filesystem::path& file, std::shared_ptr<imgbuild::GrowingFile> incoming,
                          std::string blob, size_t pieces, std::function<void()> then,
                          std::chrono::milliseconds delay = std::chrono::milliseconds(0)) {
  imgbuild::Fd fd(::open(file.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  REQUIRE(fd);
  incoming->opened(fd.get());
  return std::thread([fd = std::move(fd), incoming, blob = std::move(blob), pieces, then, delay] {
    const size_t piece = blob.size() / pieces + 1;
    for (size_t at = 0; at < blob.size(); at += piece) {
      size_t n = std::min(piece, blob.size() - at);
      imgbuild::write_all(fd.get(), blob.data() + at, n, "blob");
      incoming->grew(at + n);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    std::this_thread::sleep_for(delay);
    then();
  });
}

}  // namespace

TEST_CASE("layer stream: a blob read as it arrives gives its bytes, and its end only once it is checked",
          "[layer_stream]") {
  using imgbuild::GrowingFile;
  const std::string data = sample(3 << 20, 11);
  const std::string gz = gzip_member(data.substr(0, 1 << 20)) + gzip_member(data.substr(1 << 20));
  ScratchDir dir;

  SECTION("small or large, plain or compressed: every byte, the end after the writer finished") {
    const std::pair<std::string, std::string> blobs[] = {{gz, data}, {gzip_member("small"), "small"}, {data, data}};
    for (auto& [blob, expected] : blobs) {
      INFO("a blob of " << blob.size() << " bytes");
      auto incoming = std::make_shared<GrowingFile>(blob.size());
      std::atomic<bool> finished = false;
      std::thread writer = write_growing(
          dir.path / "blob.tmp", incoming, blob, 40,
          [&] {
            finished = true;
            incoming->finished();
          },
          std::chrono::milliseconds(50));
      LayerStream stream(incoming, "layer 1");
      std::string out;
      for (std::span<const char> bytes; !(bytes = stream.next()).empty();) out.append(bytes.data(), bytes.size());
      CHECK(finished);
      writer.join();
      CHECK(out == expected);
    }
  }
  SECTION("a writer that fails or starts over fails the reader after the bytes told, never past them") {
    // Written whole, told only in part: what was not told is not read.
    for (bool restart : {false, true}) {
      INFO((restart ? "started over" : "failed"));
      auto incoming = std::make_shared<GrowingFile>(data.size());
      imgbuild::Fd fd(::open((dir.path / "told.tmp").c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
      REQUIRE(fd);
      incoming->opened(fd.get());
      imgbuild::write_all(fd.get(), data.data(), data.size(), "blob");
      incoming->grew(300000);
      std::thread writer([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        restart ? incoming->restarted() : incoming->failed("the registry went away");
      });
      LayerStream stream(incoming, "layer 1");
      std::string out;
      std::string error = error_of([&] {
        for (std::span<const char> bytes; !(bytes = stream.next()).empty();) out.append(bytes.data(), bytes.size());
      });
      writer.join();
      CHECK(out == data.substr(0, 300000));
      CHECK(error ==
            (restart ? "the download started over: unpacked from the whole blob instead" : "the registry went away"));
      CHECK(incoming->abandoned());
      // A failure once finished changes nothing: the blob was whole and checked.
      auto whole = std::make_shared<GrowingFile>(3);
      whole->finished();
      whole->failed("cannot make it durable");
      CHECK_FALSE(whole->abandoned());
    }
  }
  SECTION("a writer that failed before opening the file fails the reader at once") {
    auto incoming = std::make_shared<GrowingFile>(10);
    incoming->failed("401 Unauthorized");
    CHECK(error_of([&] { LayerStream stream(incoming, "layer 1"); }) == "401 Unauthorized");
  }
}
