// Tests for content digests: parsing at the edge and the streaming hasher.
#include "oci/digest.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <span>
#include <stdexcept>
#include <string>

#include "test_support.hpp"

using imgbuild::Digest;
using imgbuild::Hasher;
using imgbuild::Sha256;
using imgbuild::sha256_of;
using imgbuild::to_hex;
using namespace imgbuild::test;

namespace {

constexpr const char* kAbcHex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
constexpr const char* kEmptyHex = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// The message Digest::parse throws for `text`, or "" when it accepts it.
std::string digest_parse_error(const std::string& text) {
  return error_of([&] { Digest::parse(text); });
}

}  // namespace

TEST_CASE("Digest::parse accepts sha256 with 64 lowercase hex", "[digest]") {
  std::string text = std::string("sha256:") + kAbcHex;
  Digest d = Digest::parse(text);
  REQUIRE(d.str() == text);
  REQUIRE(d.hex() == kAbcHex);
  REQUIRE(d.short_hex() == "ba7816bf8f01");
  REQUIRE(d.short_hex().size() == 12);

  Digest all_digits = Digest::parse("sha256:" + std::string(64, '0'));
  REQUIRE(all_digits.hex() == std::string(64, '0'));
  REQUIRE(all_digits != d);
  REQUIRE(all_digits < d);
}

TEST_CASE("Digest::parse rejects malformed digests with an exact message", "[digest]") {
  const std::string abc = kAbcHex;
  auto expected = [](const std::string& t) {
    return "invalid digest '" + t + "' (expected sha256:<64 lowercase hex>)";
  };

  SECTION("uppercase hex") {
    std::string upper = "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
    REQUIRE(digest_parse_error(upper) == expected(upper));
    std::string one_upper = "sha256:" + abc.substr(0, 63) + "D";
    REQUIRE(digest_parse_error(one_upper) == expected(one_upper));
  }
  SECTION("wrong length") {
    std::string short_one = "sha256:" + abc.substr(0, 63);
    std::string long_one = "sha256:" + abc + "0";
    REQUIRE(digest_parse_error(short_one) == expected(short_one));
    REQUIRE(digest_parse_error(long_one) == expected(long_one));
    REQUIRE(digest_parse_error("sha256:") == expected("sha256:"));
    REQUIRE(digest_parse_error("") == expected(""));
  }
  SECTION("other algorithm or missing prefix") {
    std::string sha512 = "sha512:" + abc;
    REQUIRE(digest_parse_error(sha512) == expected(sha512));
    REQUIRE(digest_parse_error(abc) == expected(abc));
    std::string upper_alg = "SHA256:" + abc;
    REQUIRE(digest_parse_error(upper_alg) == expected(upper_alg));
    std::string spaced = " sha256:" + abc.substr(1);
    REQUIRE(digest_parse_error(spaced) == expected(spaced));
  }
  SECTION("non-hex characters") {
    std::string g = "sha256:" + abc.substr(0, 63) + "g";
    REQUIRE(digest_parse_error(g) == expected(g));
    std::string colon = "sha256:" + abc.substr(0, 63) + ":";
    REQUIRE(digest_parse_error(colon) == expected(colon));
  }
}

TEST_CASE("sha256 known vectors", "[digest]") {
  REQUIRE(sha256_of("abc").str() == std::string("sha256:") + kAbcHex);
  REQUIRE(sha256_of("").hex() == kEmptyHex);

  Sha256 h;
  h.update("abc");
  REQUIRE(h.finish_hex() == kAbcHex);

  // NIST two-block vector.
  REQUIRE(sha256_of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq").hex() ==
          "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST_CASE("Sha256 incremental equals one-shot", "[digest]") {
  std::string data;
  for (int i = 0; i < 100000; ++i) data.push_back(static_cast<char>((i * 131 + 7) % 251));
  Digest one_shot = sha256_of(data);

  for (size_t chunk : {size_t{1}, size_t{7}, size_t{64}, size_t{4096}, size_t{65537}}) {
    Sha256 h;
    for (size_t off = 0; off < data.size(); off += chunk)
      h.update(data.data() + off, std::min(chunk, data.size() - off));
    h.update(nullptr, 0);  // empty updates change nothing
    INFO("chunk size " << chunk);
    REQUIRE(h.finish() == one_shot);
  }

  // A different byte gives a different digest (the hasher really reads the data).
  std::string changed = data;
  changed[50000] ^= 1;
  REQUIRE(sha256_of(changed) != one_shot);
}

TEST_CASE("Digest::from_bytes and to_hex", "[digest]") {
  std::array<unsigned char, 32> bytes{};
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<unsigned char>(i * 8 + 1);
  Digest d = Digest::from_bytes(bytes);
  REQUIRE(d.str() == "sha256:0109111921293139414951596169717981899199a1a9b1b9c1c9d1d9e1e9f1f9");
  REQUIRE(Digest::parse(d.str()) == d);

  const unsigned char few[] = {0x00, 0x0f, 0xf0, 0xff};
  REQUIRE(to_hex(few) == "000ff0ff");
  REQUIRE(to_hex(std::span<const unsigned char>()) == "");
}

TEST_CASE("Hasher: md5 and sha256 by name, files read in chunks", "[digest]") {
  Hasher md5("md5");
  md5.update("abc");
  REQUIRE(md5.finish_hex() == "900150983cd24fb0d6963f7d28e17f72");
  Hasher sha("sha256");
  sha.update("abc");
  REQUIRE(sha.finish_hex() == kAbcHex);
  Hasher sha1("sha1");
  sha1.update("abc");
  REQUIRE(sha1.finish_hex() == "a9993e364706816aba3e25717850c26c9cd0d89d");
  REQUIRE(error_of([] { Hasher h("sha512"); }) == "unknown algorithm 'sha512' (known: md5, sha1, sha256)");

  // A file larger than one read chunk hashes as its bytes do.
  ScratchDir dir;
  std::string data(200000, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>(i * 31 % 256);
  spit(dir.path / "big", data);
  Hasher from_file("sha256");
  from_file.update_file((dir.path / "big").string());
  REQUIRE(from_file.finish_hex() == sha256_of(data).hex());
  REQUIRE(error_of([&] {
            Hasher("md5").update_file((dir.path / "missing").string());
          }).starts_with((dir.path / "missing").string() + ": "));
}
