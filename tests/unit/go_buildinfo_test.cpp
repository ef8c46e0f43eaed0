// Tests for the Go build-info reader, through the ELF inspector: real Go
// programs compiled at test time (elf_fixtures.hpp), and files built in memory
// (elf_builder.hpp) for the old and new build-info layouts and their malformed
// forms.
#include "inspect/go_buildinfo.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "elf_builder.hpp"
#include "elf_fixtures.hpp"
#include "inspect/elf.hpp"
#include "oci/image.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using imgbuild::ElfInfo;
using imgbuild::inspect_elf;
using imgbuild::inspect_elf_bytes;
using imgbuild::oci_architecture;
using imgbuild::Platform;
using namespace imgbuild::test;
using namespace imgbuild::test::elf;
using Catch::Matchers::Contains;

namespace {

// Drops the section header table the way sstrip-like tools do, which forces the
// segment scan and the raw-bytes package heuristics (64-bit little endian only).
ByteVec without_section_headers(ByteVec b) {
  for (int i = 40; i < 48; ++i) b[i] = 0;  // e_shoff
  for (int i = 60; i < 64; ++i) b[i] = 0;  // e_shnum, e_shstrndx
  return b;
}

// A file with only a .go.buildinfo section holding `content`, for the
// build-info parsing errors.
ByteVec with_buildinfo(const std::string& content) {
  ElfBuilder e;
  std::size_t at = e.add(content, 16);
  e.phdrs = {{1, 6, 0, kBase, e.payload.size()}};
  e.sections = {{".go.buildinfo", 1, kBase + at, at, content.size()}};
  return e.build().bytes;
}

}  // namespace

// ---- real binaries ------------------------------------------------------------

TEST_CASE("Go static binary: version, paths, settings, deps", "[elf]") {
  fs::path bin = go_binary("hello", "", "", ".");
  ElfInfo info = inspect_elf(bin);
  CHECK(info.is_elf);
  CHECK(info.elf_class == 64);
  CHECK(info.linking == ElfInfo::Linking::Static);
  CHECK(info.interpreter.empty());
  CHECK(info.needed.empty());
  CHECK_FALSE(info.stripped);
  REQUIRE(info.go);
  const auto& go = *info.go;
  CHECK(go.go_version == go_version());
  CHECK(go.main_path == "example.com/hello");
  CHECK(go.main_module.version == "(devel)");
  CHECK(go.setting("CGO_ENABLED") == "0");
  CHECK(go.setting("GOOS") == "linux");
  CHECK(go.setting("-compiler") == "gc");
  CHECK(go.setting("-trimpath").empty());
  CHECK(go.setting("-ldflags").empty());
  CHECK(go.setting("no-such-setting").empty());
  // go.mod replaces the module with a local folder: no version of its own, no sum.
  REQUIRE(go.deps.size() == 1);
  CHECK(go.deps[0].module.path == "example.com/greet");
  CHECK(go.deps[0].module.sum.empty());
  REQUIRE(go.deps[0].replacement);
  CHECK(go.deps[0].replacement->path == "./greet");
  CHECK(go.deps[0].replacement->sum.empty());
  CHECK(go.depends_on("example.com/greet"));
  CHECK_FALSE(go.depends_on("./greet"));
  CHECK_FALSE(go.uses_x509);
  CHECK_FALSE(go.embeds_tzdata);
  CHECK_FALSE(go.loads_zoneinfo);
  CHECK(info.machine == host_machine());
  CHECK(oci_architecture(info) == Platform::host().architecture);
  CHECK(go.setting("GOARCH") == Platform::host().architecture);
}

TEST_CASE("on x86_64 with glibc: the loader of dynamic binaries, and the GOAMD64 level", "[elf][x86_64]") {
  ElfInfo go = inspect_elf(go_binary("hello", "", "", "."));
  REQUIRE(go.go);
  CHECK_FALSE(go.go->setting("GOAMD64").empty());
  CHECK(inspect_elf(go_binary("hello-cgo", "CGO_ENABLED=1", "", "./cgo")).interpreter == "/lib64/ld-linux-x86-64.so.2");
  CHECK(inspect_elf(c_binary("dyn", "")).interpreter == "/lib64/ld-linux-x86-64.so.2");
}

TEST_CASE("Go binary built with -trimpath records it", "[elf]") {
  ElfInfo info = inspect_elf(go_binary("hello-trimpath", "", "-trimpath", "."));
  REQUIRE(info.go);
  CHECK(info.go->setting("-trimpath") == "true");
  CHECK(info.go->setting("CGO_ENABLED") == "0");
  CHECK(info.go->main_path == "example.com/hello");
}

TEST_CASE("Go binary linked with -s -w is stripped and keeps quoted -ldflags", "[elf]") {
  ElfInfo info = inspect_elf(go_binary("hello-stripped", "", "-ldflags='-s -w'", "."));
  CHECK(info.stripped);
  CHECK(info.linking == ElfInfo::Linking::Static);
  REQUIRE(info.go);
  // Recorded by cmd/go as -ldflags="-s -w" (quoted because of the space).
  CHECK(info.go->setting("-ldflags") == "-s -w");
  CHECK(info.go->main_path == "example.com/hello");
  CHECK_FALSE(info.go->uses_x509);
}

TEST_CASE("Go binary using net/http links crypto/x509", "[elf]") {
  fs::path bin = go_binary("web", "", "", "./web");
  ElfInfo info = inspect_elf(bin);
  REQUIRE(info.go);
  CHECK(info.go->main_path == "example.com/hello/web");
  CHECK(info.go->uses_x509);
  CHECK_FALSE(info.go->embeds_tzdata);
  // net/http links time.LoadLocationFromTZData (through the local time zone),
  // but not time.LoadLocation: it loads no zone by name.
  CHECK_FALSE(info.go->loads_zoneinfo);

  SECTION("found again without section headers (data segment scan, raw-bytes heuristic)") {
    ElfInfo bare = inspect_elf_bytes(without_section_headers(read_bytes(bin)));
    REQUIRE(bare.go);
    CHECK(bare.stripped);
    CHECK(bare.go->go_version == info.go->go_version);
    CHECK(bare.go->main_path == "example.com/hello/web");
    CHECK(bare.go->uses_x509);
    CHECK_FALSE(bare.go->embeds_tzdata);
    CHECK_FALSE(bare.go->loads_zoneinfo);
  }
}

TEST_CASE("Go binary calling time.LoadLocation loads zoneinfo", "[elf]") {
  fs::path bin = go_binary("zone", "", "", "./zone");
  ElfInfo info = inspect_elf(bin);
  REQUIRE(info.go);
  CHECK(info.go->main_path == "example.com/hello/zone");
  CHECK(info.go->loads_zoneinfo);
  CHECK_FALSE(info.go->embeds_tzdata);
  CHECK_FALSE(info.go->uses_x509);

  SECTION("stripped: the names are still in .gopclntab") {
    ElfInfo stripped = inspect_elf(go_binary("zone-stripped", "", "-ldflags='-s -w'", "./zone"));
    CHECK(stripped.stripped);
    REQUIRE(stripped.go);
    CHECK(stripped.go->loads_zoneinfo);
  }
  SECTION("without section headers (raw-bytes heuristic)") {
    ElfInfo bare = inspect_elf_bytes(without_section_headers(read_bytes(bin)));
    REQUIRE(bare.go);
    CHECK(bare.go->loads_zoneinfo);
    CHECK_FALSE(bare.go->embeds_tzdata);
  }
  SECTION("the plain hello does not") {
    ElfInfo hello = inspect_elf_bytes(without_section_headers(read_bytes(go_binary("hello", "", "", "."))));
    REQUIRE(hello.go);
    CHECK_FALSE(hello.go->loads_zoneinfo);
  }
}

TEST_CASE("Go binary importing time/tzdata embeds it", "[elf]") {
  fs::path bin = go_binary("tz", "", "", "./tz");
  ElfInfo info = inspect_elf(bin);
  REQUIRE(info.go);
  CHECK(info.go->embeds_tzdata);
  CHECK(info.go->loads_zoneinfo);
  CHECK_FALSE(info.go->uses_x509);

  ElfInfo bare = inspect_elf_bytes(without_section_headers(read_bytes(bin)));
  REQUIRE(bare.go);
  CHECK(bare.go->embeds_tzdata);
  CHECK(bare.go->loads_zoneinfo);
  CHECK_FALSE(bare.go->uses_x509);

  ElfInfo hello = inspect_elf_bytes(without_section_headers(read_bytes(go_binary("hello", "", "", "."))));
  REQUIRE(hello.go);
  CHECK_FALSE(hello.go->embeds_tzdata);
  CHECK_FALSE(hello.go->uses_x509);
}

TEST_CASE("Go binary cross-compiled for arm64", "[elf]") {
  ElfInfo info = inspect_elf(go_binary("hello-arm64", "GOARCH=arm64", "", "."));
  CHECK(info.machine == "aarch64");
  CHECK(oci_architecture(info) == "arm64");
  CHECK(info.elf_class == 64);
  CHECK_FALSE(info.big_endian);
  CHECK(info.linking == ElfInfo::Linking::Static);
  REQUIRE(info.go);
  CHECK(info.go->setting("GOARCH") == "arm64");
  CHECK(info.go->setting("GOOS") == "linux");
}

TEST_CASE("Go binary built with cgo is dynamic and records CGO_ENABLED=1", "[elf]") {
  ElfInfo info = inspect_elf(go_binary("hello-cgo", "CGO_ENABLED=1", "", "./cgo"));
  CHECK(info.is_elf);
  CHECK(info.elf_class == 64);
  CHECK(info.linking == ElfInfo::Linking::Dynamic);
  CHECK(std::find(info.needed.begin(), info.needed.end(), "libc.so.6") != info.needed.end());
  CHECK_FALSE(info.stripped);
  REQUIRE(info.go);
  const auto& go = *info.go;
  CHECK(go.go_version == go_version());
  CHECK(go.main_path == "example.com/hello/cgo");
  CHECK(go.setting("CGO_ENABLED") == "1");
  CHECK(go.setting("GOOS") == "linux");
  CHECK(go.deps.empty());
  CHECK_FALSE(go.uses_x509);
  CHECK_FALSE(go.embeds_tzdata);
  CHECK_FALSE(go.loads_zoneinfo);
  CHECK(info.machine == host_machine());
  CHECK(oci_architecture(info) == Platform::host().architecture);
  CHECK_FALSE(info.interpreter.empty());
  CHECK(go.setting("GOARCH") == Platform::host().architecture);
}

// ---- synthetic files ------------------------------------------------------------

TEST_CASE("synthetic dynamic ELF with inline Go build info", "[elf]") {
  DynamicFixture f = dynamic_fixture();
  Built built = f.builder.build();
  ElfInfo info = inspect_elf_bytes(built.bytes);
  CHECK(info.is_elf);
  CHECK(info.machine == "x86_64");
  CHECK(info.linking == ElfInfo::Linking::Dynamic);
  CHECK(info.interpreter == "/lib/ld-test.so.1");
  CHECK(info.needed == std::vector<std::string>{"libc.so.6", "libm.so.6"});
  CHECK_FALSE(info.stripped);
  REQUIRE(info.go);
  const auto& go = *info.go;
  CHECK(go.go_version == "go1.99");
  CHECK(go.main_path == "example.com/svc");
  CHECK(go.main_module.version == "v1.2.3");
  CHECK(go.main_module == imgbuild::GoModule{"example.com/svc", "v1.2.3", "h1:abc="});
  CHECK(go.deps == std::vector<imgbuild::GoDependency>{
                       {{"golang.org/x/sys", "v0.1.0", "h1:def="}, std::nullopt},
                       {{"example.com/old", "v1.0.0", ""}, imgbuild::GoModule{"example.com/new", "v1.1.0", "h1:ghi="}},
                   });
  CHECK(go.setting("-ldflags") == "-s -w -X \"main.v=1 2\"");
  CHECK(go.setting("odd key") == "raw value");
  CHECK(go.setting("vcs.revision") == "0123abcd");
  CHECK(go.settings.size() == 7);
  CHECK(go.uses_x509);
  // "example.com/time/tzdata.F" belongs to another package, not the std one.
  CHECK_FALSE(go.embeds_tzdata);

  SECTION("without section headers the data segment is scanned") {
    ElfInfo bare = inspect_elf_bytes(without_section_headers(built.bytes));
    CHECK(bare.stripped);
    REQUIRE(bare.go);
    CHECK(bare.go->go_version == "go1.99");
    CHECK(bare.go->main_path == "example.com/svc");
    CHECK(bare.go->uses_x509);
  }
}

TEST_CASE("synthetic: time.LoadLocation must be the complete function name", "[elf]") {
  // A Go file whose .gopclntab holds only `names`.
  auto with_names = [](const std::string& names) {
    ElfBuilder e;
    std::string info = go_header(8, 2) + uvarint(6) + "go1.99" + uvarint(kModinfo.size()) + kModinfo;
    std::size_t bi = e.add(info, 16);
    std::size_t pcln = e.add(names);
    e.phdrs = {{1, 6, 0, kBase, e.payload.size()}};
    e.sections = {{".go.buildinfo", 1, kBase + bi, bi, info.size()},
                  {".gopclntab", 1, kBase + pcln, pcln, names.size()}};
    return e.build().bytes;
  };
  auto loads = [](const ByteVec& b) {
    ElfInfo info = inspect_elf_bytes(b);
    REQUIRE(info.go);
    return info.go->loads_zoneinfo;
  };
  using namespace std::string_literals;
  CHECK(loads(with_names("\0main.main\0time.LoadLocation\0"s)));
  CHECK(loads(with_names("\0time.LoadLocation.func1\0"s)));
  CHECK(loads(with_names("time.LoadLocation"s)));  // last name, unterminated table
  CHECK_FALSE(loads(with_names("\0time.LoadLocationFromTZData\0"s)));
  CHECK_FALSE(loads(with_names("\0example.com/time.LoadLocation\0"s)));
  CHECK_FALSE(loads(with_names("\0main.main\0"s)));

  // Without section headers only the NUL-terminated name counts.
  CHECK(loads(without_section_headers(with_names("\0time.LoadLocation\0"s))));
  CHECK_FALSE(loads(without_section_headers(with_names("\0time.LoadLocationFromTZData\0"s))));
}

TEST_CASE("synthetic big-endian and 32-bit files with pointer-format Go build info", "[elf]") {
  // The pre-1.18 layout: two pointers to Go string headers, in the pointer size
  // and byte order the build-info header declares.
  auto build = [](bool is64, bool be, std::uint16_t machine) {
    ElfBuilder e;
    e.is64 = is64;
    e.be = be;
    e.machine = machine;
    const unsigned ptr = is64 ? 8 : 4;
    std::size_t hdr = e.add(go_header(ptr, be ? 1 : 0), 16);
    std::size_t vstr = e.add("go1.16.15");
    std::size_t mstr = e.add(kModinfo);
    std::size_t vhdr = e.add(std::string(2 * ptr, '\0'), 8);
    std::size_t mhdr = e.add(std::string(2 * ptr, '\0'), 8);
    e.set(hdr + 16, kBase + vhdr, ptr);
    e.set(hdr + 16 + ptr, kBase + mhdr, ptr);
    e.set(vhdr, kBase + vstr, ptr);
    e.set(vhdr + ptr, 9, ptr);
    e.set(mhdr, kBase + mstr, ptr);
    e.set(mhdr + ptr, kModinfo.size(), ptr);
    e.phdrs = {{1, 6, 0, kBase, e.payload.size()}};
    e.sections = {{".go.buildinfo", 1, kBase + hdr, hdr, 32}};
    return e.build().bytes;
  };

  SECTION("ELF64 big endian s390x") {
    ElfInfo info = inspect_elf_bytes(build(true, true, 22));
    CHECK(info.elf_class == 64);
    CHECK(info.big_endian);
    CHECK(info.machine == "s390x");
    CHECK(oci_architecture(info) == "s390x");
    REQUIRE(info.go);
    CHECK(info.go->go_version == "go1.16.15");
    CHECK(info.go->main_path == "example.com/svc");
    CHECK(info.go->setting("GOOS") == "linux");
  }
  SECTION("ELF64 big endian ppc64") {
    ElfInfo info = inspect_elf_bytes(build(true, true, 21));
    CHECK(info.machine == "ppc64");
    CHECK(oci_architecture(info) == "ppc64");
  }
  SECTION("ELF32 little endian arm") {
    ElfInfo info = inspect_elf_bytes(build(false, false, 40));
    CHECK(info.elf_class == 32);
    CHECK_FALSE(info.big_endian);
    CHECK(info.machine == "arm");
    CHECK(oci_architecture(info) == "arm");
    REQUIRE(info.go);
    CHECK(info.go->go_version == "go1.16.15");
    CHECK(info.go->deps.size() == 2);
  }
  SECTION("ELF32 big endian, machine without an OCI name") {
    ElfInfo info = inspect_elf_bytes(build(false, true, 8));
    CHECK(info.elf_class == 32);
    CHECK(info.big_endian);
    CHECK(info.machine == "unknown(8)");
    CHECK_THROWS_WITH(oci_architecture(info), Contains("unknown(8)"));
    REQUIRE(info.go);
    CHECK(info.go->main_module.version == "v1.2.3");
  }
  SECTION("ELF32 386, little endian") {
    ElfInfo info = inspect_elf_bytes(build(false, false, 3));
    CHECK(info.machine == "386");
    CHECK(oci_architecture(info) == "386");
  }
}

// ---- hostile input ----------------------------------------------------------------

TEST_CASE("hostile: Go build info", "[elf]") {
  const std::string inl = go_header(8, 2);
  CHECK(outcome(with_buildinfo(inl + uvarint(6) + "go1.99" + "\x80\x80")) ==
        "error: Go build info: varint length of module info runs past end of data");
  CHECK(outcome(with_buildinfo(inl + "\xff")) ==
        "error: Go build info: varint length of version runs past end of data");
  CHECK(outcome(with_buildinfo(inl + std::string(10, '\xff') + "\x01")) ==
        "error: Go build info: varint length of version overflows 64 bits");
  CHECK(outcome(with_buildinfo(inl + uvarint(1000) + "go1.99")) ==
        "error: Go build info: version runs past end of data");
  CHECK(outcome(with_buildinfo(inl + uvarint(UINT64_MAX) + "go")) ==
        "error: Go build info: version runs past end of data");
  CHECK(outcome(with_buildinfo(inl.substr(0, 20))) == "error: truncated Go build info header");
  CHECK(outcome(with_buildinfo(go_header(3, 0))) == "error: invalid pointer size 3 in Go build info");

  // Pointer format: the version pointer leads nowhere.
  std::string ptr = go_header(8, 0);
  for (int i = 0; i < 8; ++i) ptr[16 + i] = static_cast<char>((0xdead0000ull >> (8 * i)) & 0xff);
  CHECK(outcome(with_buildinfo(ptr)) ==
        "error: Go build info: version string header at 0xdead0000 is not mapped by any PT_LOAD segment");

  const std::string bad_quote = kSentinelStart + "path\tx\nbuild\t-ldflags=\"-s -w\n" + kSentinelEnd;
  CHECK(outcome(with_buildinfo(inl + uvarint(6) + "go1.99" + uvarint(bad_quote.size()) + bad_quote)) ==
        "error: Go build info: malformed quoted value for build setting -ldflags");
  // A replacement names the module on the line before it: one that has none
  // (first, or after another replacement) would say something false in an SBOM.
  for (std::string lines : {"=>\tx\tv1\n", "dep\ta\tv1\n=>\tb\tv2\n=>\tc\tv3\n"}) {
    const std::string mod = kSentinelStart + "path\tx\n" + lines + kSentinelEnd;
    CHECK(outcome(with_buildinfo(inl + uvarint(6) + "go1.99" + uvarint(mod.size()) + mod)) ==
          "error: Go build info: replacement without a module");
  }

  // Not errors: module info without its framing is ignored (as Go does), and an
  // empty version means "not a Go executable".
  ElfInfo unframed = inspect_elf_bytes(with_buildinfo(inl + uvarint(6) + "go1.99" + uvarint(4) + "path"));
  REQUIRE(unframed.go);
  CHECK(unframed.go->go_version == "go1.99");
  CHECK(unframed.go->main_path.empty());
  CHECK_FALSE(inspect_elf_bytes(with_buildinfo(inl + uvarint(0) + uvarint(0))).go);
}
