// A layer's diff_id checked as it is unpacked: the uncompressed stream hashed
// on its way into the unpacker, in one read, for each compression a layer
// may have; an image whose config lies about it is refused once the stream
// ends, and says which layer and both digests.
#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "layer/layer.hpp"
#include "layer/unpack.hpp"
#include "oci/digest.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using namespace imgbuild;
using namespace imgbuild::test;

namespace {

LayerBlob layer_of(const fs::path& dir, const std::string& content, Compression compression) {
  fs::create_directories(dir / "src");
  fs::create_directories(dir / "blobs");
  spit(dir / "src" / "file", content);
  LayerEntry e{"file", LayerEntry::Type::File, 0644, 0, 0, dir / "src" / "file", content.size(), {}};
  LayerOptions options;
  options.compression = compression;
  return write_layer({e}, dir / "blobs", options);
}

}  // namespace

TEST_CASE("apply_layer checks the uncompressed stream against the diff_id", "[unpack][diff_id]") {
  ScratchDir s;
  Compression compression = GENERATE(Compression::Gzip, Compression::Zstd);
  LayerBlob layer = layer_of(s.path, "the layer's bytes\n", compression);
  fs::path blob = s.path / "blobs" / std::string(layer.digest.hex());
  fs::create_directories(s.path / "root");

  SECTION("the true diff_id: unpacked, and the tar's size told, so that no second read measures it") {
    CHECK(apply_layer(s.path / "root", UnpackLayer{blob, "layer 1", layer.diff_id}) == layer.uncompressed_size);
    CHECK(slurp(s.path / "root" / "file") == "the layer's bytes\n");
  }
  SECTION("no diff_id to check: the size is still the whole stream's") {
    CHECK(apply_layer(s.path / "root", UnpackLayer{blob, "layer 1"}) == layer.uncompressed_size);
  }
  SECTION("another image's diff_id: refused, with both digests") {
    Digest claimed = sha256_of("a trusted base's layer");
    try {
      apply_layer(s.path / "root", UnpackLayer{blob, "layer 1 (" + layer.digest.str() + ")", claimed});
      FAIL("a layer that is not its diff_id was accepted");
    } catch (const DiffIdMismatch& e) {
      CHECK(e.expected == claimed);
      CHECK(e.actual == layer.diff_id);
      CHECK(std::string(e.what()) == "layer 1 (" + layer.digest.str() + "): the uncompressed layer is " +
                                         layer.diff_id.str() + ", but the image's config gives diff_id " +
                                         claimed.str());
    }
  }
  SECTION("read_tar_stream gives the same digest and size, unpacking nothing") {
    TarStream tar = read_tar_stream(blob);
    CHECK(tar.digest == layer.diff_id);
    CHECK(tar.size == layer.uncompressed_size);
    CHECK(fs::is_empty(s.path / "root"));
  }
}

TEST_CASE("the diff_id covers the padding after the tar's end", "[unpack][diff_id]") {
  // Two layers whose tars differ only after the end-of-archive blocks are two
  // different streams: a check that stops where the tar reader does would take one for the other.
  ScratchDir s;
  spit(s.path / "x", "x");
  fs::path plain = s.path / "plain.tar";
  std::string bytes;
  LayerEntry e{"x", LayerEntry::Type::File, 0644, 0, 0, s.path / "x", 1, {}};
  write_tar(
      {e}, [&](const void* data, size_t size) { bytes.append(static_cast<const char*>(data), size); }, 0);
  spit(plain, bytes + std::string(512, '\0'));
  fs::create_directories(s.path / "root");
  CHECK_THROWS_AS(apply_layer(s.path / "root", UnpackLayer{plain, "layer 1", sha256_of(bytes)}), DiffIdMismatch);
  CHECK(read_tar_stream(plain).digest == sha256_of(bytes + std::string(512, '\0')));
}
