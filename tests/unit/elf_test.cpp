// Tests for the ELF inspector. Real fixtures (Go and C programs) are compiled
// into a scratch directory at test time, so no binary is ever committed; the
// malformed cases are built in memory from a small valid file.
#include "inspect/elf.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "elf_fixtures.hpp"
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
using Catch::Matchers::StartsWith;

namespace {

// The real fixtures (scratch(), go_binary, c_binary, ...) are in elf_fixtures.hpp.

// Drops the section header table the way sstrip-like tools do, which forces the
// segment scan and the raw-bytes package heuristics (64-bit little endian only).
ByteVec without_section_headers(ByteVec b) {
  for (int i = 40; i < 48; ++i) b[i] = 0;  // e_shoff
  for (int i = 60; i < 64; ++i) b[i] = 0;  // e_shnum, e_shstrndx
  return b;
}

// ---- in-memory ELF builder --------------------------------------------------

void put(ByteVec& b, std::size_t off, std::uint64_t v, unsigned width, bool be) {
  if (b.size() < off + width) b.resize(off + width);
  for (unsigned i = 0; i < width; ++i) {
    unsigned shift = be ? 8 * (width - 1 - i) : 8 * i;
    b[off + i] = static_cast<unsigned char>(v >> shift);
  }
}

void put_le(ByteVec& b, std::size_t off, std::uint64_t v, unsigned width) { put(b, off, v, width, false); }

struct Built {
  ByteVec bytes;
  std::size_t payload = 0;  // file offset of the payload
  std::size_t shoff = 0;    // file offset of the section header table
};

// Lays out: ELF header, program headers, payload (16-aligned), section name
// table, section headers. Offsets given in program and section headers are
// relative to the payload.
struct ElfBuilder {
  struct Ph {
    std::uint32_t type, flags;
    std::uint64_t off, vaddr, filesz;
  };
  struct Sec {
    std::string name;
    std::uint32_t type;
    std::uint64_t addr, off, size;
    std::uint32_t link = 0;
  };

  bool is64 = true;
  bool be = false;
  std::uint16_t type = 2;  // ET_EXEC
  std::uint16_t machine = 62;
  std::vector<Ph> phdrs;
  std::vector<Sec> sections;
  ByteVec payload;

  std::size_t add(const std::string& data, std::size_t align = 1) {
    while (payload.size() % align) payload.push_back(0);
    std::size_t at = payload.size();
    payload.insert(payload.end(), data.begin(), data.end());
    return at;
  }
  void set(std::size_t rel, std::uint64_t v, unsigned width) { put(payload, rel, v, width, be); }

  Built build() const {
    Built r;
    ByteVec& b = r.bytes;
    const std::size_t eh = is64 ? 64 : 52, phe = is64 ? 56 : 32, she = is64 ? 64 : 40;
    const unsigned w = is64 ? 8 : 4;
    b.assign(eh, 0);
    b[0] = 0x7f, b[1] = 'E', b[2] = 'L', b[3] = 'F';
    b[4] = is64 ? 2 : 1;
    b[5] = be ? 2 : 1;
    b[6] = 1;
    r.payload = (eh + phdrs.size() * phe + 15) / 16 * 16;
    b.resize(r.payload, 0);
    b.insert(b.end(), payload.begin(), payload.end());
    std::string names(1, '\0');
    std::vector<std::size_t> name_off;
    for (const Sec& s : sections) {
      name_off.push_back(names.size());
      names += s.name + '\0';
    }
    std::size_t shstrtab_name = names.size();
    names += std::string(".shstrtab") + '\0';
    std::size_t names_at = b.size();
    b.insert(b.end(), names.begin(), names.end());
    while (b.size() % 8) b.push_back(0);
    r.shoff = b.size();
    const std::size_t shnum = sections.size() + 2;

    put(b, 16, type, 2, be);
    put(b, 18, machine, 2, be);
    put(b, 20, 1, 4, be);
    if (is64) {
      put(b, 32, eh, 8, be);
      put(b, 40, r.shoff, 8, be);
      put(b, 52, eh, 2, be);
      put(b, 54, phe, 2, be);
      put(b, 56, phdrs.size(), 2, be);
      put(b, 58, she, 2, be);
      put(b, 60, shnum, 2, be);
      put(b, 62, shnum - 1, 2, be);
    } else {
      put(b, 28, eh, 4, be);
      put(b, 32, r.shoff, 4, be);
      put(b, 40, eh, 2, be);
      put(b, 42, phe, 2, be);
      put(b, 44, phdrs.size(), 2, be);
      put(b, 46, she, 2, be);
      put(b, 48, shnum, 2, be);
      put(b, 50, shnum - 1, 2, be);
    }
    for (std::size_t i = 0; i < phdrs.size(); ++i) {
      const Ph& p = phdrs[i];
      std::size_t at = eh + i * phe;
      put(b, at, p.type, 4, be);
      if (is64) {
        put(b, at + 4, p.flags, 4, be);
        put(b, at + 8, r.payload + p.off, 8, be);
        put(b, at + 16, p.vaddr, 8, be);
        put(b, at + 24, p.vaddr, 8, be);
        put(b, at + 32, p.filesz, 8, be);
        put(b, at + 40, p.filesz, 8, be);
      } else {
        put(b, at + 4, r.payload + p.off, 4, be);
        put(b, at + 8, p.vaddr, 4, be);
        put(b, at + 12, p.vaddr, 4, be);
        put(b, at + 16, p.filesz, 4, be);
        put(b, at + 20, p.filesz, 4, be);
        put(b, at + 24, p.flags, 4, be);
      }
    }
    auto put_section = [&](std::size_t index, std::size_t name, std::uint32_t stype, std::uint64_t addr,
                           std::uint64_t off, std::uint64_t size, std::uint32_t link) {
      std::size_t at = r.shoff + index * she;
      put(b, at, name, 4, be);
      put(b, at + 4, stype, 4, be);
      put(b, at + (is64 ? 16 : 12), addr, w, be);
      put(b, at + (is64 ? 24 : 16), off, w, be);
      put(b, at + (is64 ? 32 : 20), size, w, be);
      put(b, at + (is64 ? 40 : 24), link, 4, be);
      if (b.size() < at + she) b.resize(at + she);
    };
    put_section(0, 0, 0, 0, 0, 0, 0);
    for (std::size_t i = 0; i < sections.size(); ++i) {
      const Sec& s = sections[i];
      put_section(i + 1, name_off[i], s.type, s.addr, r.payload + s.off, s.size, s.link);
    }
    put_section(shnum - 1, shstrtab_name, 3, 0, names_at, names.size(), 0);
    return r;
  }
};

const std::string kSentinelStart(
    "0w\xaf\x0c\x92t\x08\x02"
    "A\xe1\xc1\x07\xe6\xd6\x18\xe6",
    16);
const std::string kSentinelEnd(
    "\xf9"
    "2C1\x86\x18 r\x00\x82"
    "B\x10"
    "A\x16\xd8\xf2",
    16);

std::string uvarint(std::uint64_t v) {
  std::string s;
  while (v >= 0x80) {
    s += static_cast<char>(0x80 | (v & 0x7f));
    v >>= 7;
  }
  s += static_cast<char>(v);
  return s;
}

std::string go_header(unsigned ptr_size, unsigned flags) {
  std::string h("\xff Go buildinf:", 14);
  h += static_cast<char>(ptr_size);
  h += static_cast<char>(flags);
  h.resize(32, '\0');
  return h;
}

const std::string kModinfo = kSentinelStart +
                             "path\texample.com/svc\n"
                             "mod\texample.com/svc\tv1.2.3\th1:abc=\n"
                             "dep\tgolang.org/x/sys\tv0.1.0\th1:def=\n"
                             "dep\texample.com/old\tv1.0.0\n"
                             "=>\texample.com/new\tv1.1.0\th1:ghi=\n"
                             "build\t-compiler=gc\n"
                             "build\t-ldflags=\"-s -w -X \\\"main.v=1 2\\\"\"\n"
                             "build\t\"odd key\"=`raw value`\n"
                             "build\tCGO_ENABLED=0\n"
                             "build\tGOARCH=amd64\n"
                             "build\tGOOS=linux\n"
                             "build\tvcs.revision=0123abcd\n" +
                             kSentinelEnd;

constexpr std::uint64_t kBase = 0x10000;

// Where the interesting bytes of the fixture below live, for patching.
struct DynamicFixture {
  ElfBuilder builder;
  std::size_t dyn_rel = 0;  // DT_NEEDED, DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_NULL
  std::size_t dynstr_rel = 0;
  std::size_t buildinfo_rel = 0;
};

// A small, valid, dynamically linked ELF64 LE "Go" executable with every
// structure the inspector reads: PT_LOAD, PT_INTERP, PT_DYNAMIC with DT_NEEDED,
// .go.buildinfo in the inline format, a .gopclntab with function names and a
// .symtab (so it is not stripped).
DynamicFixture dynamic_fixture() {
  DynamicFixture f;
  ElfBuilder& e = f.builder;
  e.type = 3;  // ET_DYN
  std::size_t interp = e.add(std::string("/lib/ld-test.so.1") + '\0');
  f.dynstr_rel = e.add(std::string("\0libc.so.6\0libm.so.6\0", 21));
  f.dyn_rel = e.add(std::string(80, '\0'), 8);
  e.set(f.dyn_rel + 0, 1, 8);
  e.set(f.dyn_rel + 8, 1, 8);
  e.set(f.dyn_rel + 16, 1, 8);
  e.set(f.dyn_rel + 24, 11, 8);
  e.set(f.dyn_rel + 32, 5, 8);
  e.set(f.dyn_rel + 40, kBase + f.dynstr_rel, 8);
  e.set(f.dyn_rel + 48, 10, 8);
  e.set(f.dyn_rel + 56, 21, 8);
  std::string info = go_header(8, 2) + uvarint(6) + "go1.99" + uvarint(kModinfo.size()) + kModinfo;
  f.buildinfo_rel = e.add(info, 16);
  std::size_t pcln =
      e.add(std::string("\0main.main\0crypto/x509.(*CertPool).AddCert\0example.com/time/tzdata.F\0", 69));
  std::size_t strtab = e.add(std::string("\0main.main\0", 11));
  std::size_t symtab = e.add(std::string(48, '\0'), 8);
  const std::uint64_t size = e.payload.size();
  e.phdrs = {
      {1, 6, 0, kBase, size},                    // PT_LOAD RW
      {3, 4, interp, kBase + interp, 18},        // PT_INTERP
      {2, 6, f.dyn_rel, kBase + f.dyn_rel, 80},  // PT_DYNAMIC
  };
  e.sections = {
      {".interp", 1, kBase + interp, interp, 18},
      {".dynstr", 3, kBase + f.dynstr_rel, f.dynstr_rel, 21},
      {".dynamic", 6, kBase + f.dyn_rel, f.dyn_rel, 80},
      {".go.buildinfo", 1, kBase + f.buildinfo_rel, f.buildinfo_rel, info.size()},
      {".gopclntab", 1, kBase + pcln, pcln, 69},
      {".strtab", 3, 0, strtab, 11},
      {".symtab", 2, 0, symtab, 48, 6},  // link: .strtab is section 6
  };
  return f;
}

// Either "not elf", "ok", or "error: <message>"; anything else thrown escapes
// and fails the test.
std::string outcome(const ByteVec& b) {
  try {
    ElfInfo info = inspect_elf_bytes(b);
    return info.is_elf ? "ok" : "not elf";
  } catch (const std::runtime_error& e) {
    return std::string("error: ") + e.what();
  }
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
  CHECK(go.main_version == "(devel)");
  CHECK(go.setting("CGO_ENABLED") == "0");
  CHECK(go.setting("GOOS") == "linux");
  CHECK(go.setting("-compiler") == "gc");
  CHECK(go.setting("-trimpath").empty());
  CHECK(go.setting("-ldflags").empty());
  CHECK(go.setting("no-such-setting").empty());
  CHECK(go.deps == std::vector<std::string>{"example.com/greet"});
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

TEST_CASE("C binaries: dynamic, static, static-pie", "[elf]") {
  const fs::path dir = scratch() / "c";
  ElfInfo dyn = inspect_elf(c_binary("dyn", ""));
  CHECK(dyn.linking == ElfInfo::Linking::Dynamic);
  CHECK(std::find(dyn.needed.begin(), dyn.needed.end(), "libc.so.6") != dyn.needed.end());
  CHECK_FALSE(dyn.go);
  CHECK_FALSE(dyn.interpreter.empty());

  CommandResult r = try_c_binary("static", "-static");
  if (r.status == 0) {
    ElfInfo st = inspect_elf(dir / "static");
    CHECK(st.linking == ElfInfo::Linking::Static);
    CHECK(st.interpreter.empty());
    CHECK(st.needed.empty());
  } else {
    WARN("cc -static failed (no static libc?), static C case skipped:\n" << r.output);
  }

  r = try_c_binary("static-pie", "-static-pie");
  if (r.status == 0) {
    ElfInfo sp = inspect_elf(dir / "static-pie");
    CHECK(sp.linking == ElfInfo::Linking::StaticPie);
    CHECK(sp.interpreter.empty());
    CHECK(sp.needed.empty());
  } else {
    WARN("cc -static-pie failed, static-pie C case skipped:\n" << r.output);
  }
}

TEST_CASE("system binary and non-ELF files", "[elf]") {
  ElfInfo sh = inspect_elf("/bin/sh");
  CHECK(sh.is_elf);
  CHECK(sh.linking == ElfInfo::Linking::Dynamic);
  CHECK_FALSE(sh.interpreter.empty());
  CHECK_FALSE(sh.needed.empty());
  CHECK_FALSE(sh.go);
  CHECK_NOTHROW(oci_architecture(sh));

  write_text(scratch() / "text.txt", "#!/bin/sh\necho not an ELF file\n");
  ElfInfo text = inspect_elf(scratch() / "text.txt");
  CHECK_FALSE(text.is_elf);
  CHECK(text.machine.empty());
  CHECK_THROWS_AS(oci_architecture(text), std::runtime_error);

  write_text(scratch() / "empty", "");
  CHECK_FALSE(inspect_elf(scratch() / "empty").is_elf);

  CHECK_THROWS_WITH(inspect_elf(scratch() / "no-such-file"), Contains("no-such-file") && Contains("cannot open"));
  CHECK_THROWS_WITH(inspect_elf(scratch()), Contains("not a regular file"));
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
  CHECK(go.main_version == "v1.2.3");
  CHECK(go.deps == std::vector<std::string>{"golang.org/x/sys", "example.com/old"});
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

TEST_CASE("synthetic static and static-pie classification", "[elf]") {
  SECTION("no PT_INTERP, no PT_DYNAMIC: static") {
    ElfBuilder e;
    e.add("code");
    e.phdrs = {{1, 5, 0, kBase, 4}};
    ElfInfo info = inspect_elf_bytes(e.build().bytes);
    CHECK(info.linking == ElfInfo::Linking::Static);
    CHECK(info.stripped);
    CHECK_FALSE(info.go);
  }
  SECTION("ET_DYN with PT_DYNAMIC, no interpreter, no DT_NEEDED: static-pie") {
    ElfBuilder e;
    e.type = 3;
    std::size_t dyn = e.add(std::string(32, '\0'), 8);
    e.set(dyn, 5, 8);  // DT_STRTAB, never needed
    e.set(dyn + 8, 0xdead0000, 8);
    e.phdrs = {{1, 6, 0, kBase, e.payload.size()}, {2, 6, dyn, kBase + dyn, 32}};
    CHECK(inspect_elf_bytes(e.build().bytes).linking == ElfInfo::Linking::StaticPie);
  }
  SECTION("ET_EXEC with an empty PT_DYNAMIC: static") {
    ElfBuilder e;
    std::size_t dyn = e.add(std::string(16, '\0'), 8);
    e.phdrs = {{1, 6, 0, kBase, e.payload.size()}, {2, 6, dyn, kBase + dyn, 16}};
    CHECK(inspect_elf_bytes(e.build().bytes).linking == ElfInfo::Linking::Static);
  }
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
    CHECK(info.go->main_version == "v1.2.3");
  }
  SECTION("ELF32 386, little endian") {
    ElfInfo info = inspect_elf_bytes(build(false, false, 3));
    CHECK(info.machine == "386");
    CHECK(oci_architecture(info) == "386");
  }
}

// ---- hostile input ----------------------------------------------------------------

TEST_CASE("hostile: truncation", "[elf]") {
  Built built = dynamic_fixture().builder.build();
  const ByteVec& good = built.bytes;
  REQUIRE(outcome(good) == "ok");

  for (std::size_t len = 0; len <= 64; ++len) {
    ByteVec b(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len));
    std::string o = outcome(b);
    INFO("length " << len << ": " << o);
    if (len < 4) {
      CHECK(o == "not elf");
    } else if (len < 64) {
      CHECK(o == "error: truncated ELF header");
    } else {
      CHECK(o == "error: truncated program header table");
    }
  }
  for (std::size_t len : {65u, 64u + 55u, 64u + 56u, 64u + 100u, 64u + 3u * 56u - 1u}) {
    ByteVec b(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len));
    CHECK(outcome(b) == "error: truncated program header table");
  }
  // The section headers come last, so every shorter file is malformed; it must
  // be reported, whatever part is missing.
  for (std::size_t len = 65; len < good.size(); ++len) {
    ByteVec b(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(len));
    std::string o = outcome(b);
    INFO("length " << len << ": " << o);
    CHECK_THAT(o, StartsWith("error: "));
  }
  CHECK(outcome(ByteVec(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(built.shoff + 10))) ==
        "error: truncated section header table");
}

TEST_CASE("hostile: header fields", "[elf]") {
  Built built = dynamic_fixture().builder.build();
  const ByteVec good = built.bytes;
  auto with = [&](std::size_t off, std::uint64_t v, unsigned width) {
    ByteVec b = good;
    put_le(b, off, v, width);
    return outcome(b);
  };
  CHECK(with(4, 3, 1) == "error: invalid ELF class 3");
  CHECK(with(5, 0, 1) == "error: invalid ELF data encoding 0");
  CHECK(with(32, good.size() + 1, 8) == "error: program header offset past end of file");
  // offset + size wraps around 64 bits
  CHECK(with(32, UINT64_MAX - 8, 8) == "error: program header offset past end of file");
  CHECK(with(32, good.size() - 10, 8) == "error: truncated program header table");
  CHECK(with(56, 65535, 2) == "error: truncated program header table");
  CHECK_THAT(with(54, 8, 2), Contains("smaller than a program header"));
  CHECK(with(40, good.size() + 1, 8) == "error: section header offset past end of file");
  CHECK(with(40, UINT64_MAX - 63, 8) == "error: section header offset past end of file");
  CHECK(with(60, 65535, 2) == "error: truncated section header table");
  CHECK_THAT(with(58, 16, 2), Contains("smaller than a section header"));
  CHECK_THAT(with(62, 200, 2), Contains("section name string table index 200 out of range"));

  SECTION("extended section count in section 0 larger than the file") {
    ByteVec b = good;
    put_le(b, 60, 0, 2);
    put_le(b, built.shoff + 32, UINT64_MAX, 8);
    CHECK(outcome(b) == "error: truncated section header table");
  }
  SECTION("zero-size file header tables are fine") {
    ByteVec b = good;
    put_le(b, 56, 0, 2);  // no program headers: static, Go info via the section
    ElfInfo info = inspect_elf_bytes(b);
    CHECK(info.linking == ElfInfo::Linking::Static);
    CHECK(info.go);
  }
}

TEST_CASE("hostile: segments, sections and string tables", "[elf]") {
  DynamicFixture f = dynamic_fixture();
  Built built = f.builder.build();
  const ByteVec good = built.bytes;
  const std::size_t ph = 64, sh = built.shoff;
  const std::size_t nsec = f.builder.sections.size() + 2;
  auto with = [&](std::size_t off, std::uint64_t v, unsigned width) {
    ByteVec b = good;
    put_le(b, off, v, width);
    return outcome(b);
  };
  auto dyn = built.payload + f.dyn_rel;

  // program headers: 0 PT_LOAD, 1 PT_INTERP, 2 PT_DYNAMIC
  CHECK(with(ph + 8, good.size() + 5, 8) == "error: PT_LOAD segment offset past end of file");
  CHECK(with(ph + 32, UINT64_MAX, 8) == "error: PT_LOAD segment extends past end of file");
  CHECK(with(ph + 56 + 32, 17, 8) == "error: PT_INTERP is not NUL-terminated");
  CHECK(with(ph + 112 + 32, good.size(), 8) == "error: PT_DYNAMIC segment extends past end of file");

  // dynamic section
  CHECK(with(dyn + 40, 0x7fff0000, 8) == "error: DT_STRTAB address 0x7fff0000 is not mapped by any PT_LOAD segment");
  CHECK(with(dyn + 40, UINT64_MAX, 8) ==
        "error: DT_STRTAB address 0xffffffffffffffff is not mapped by any PT_LOAD segment");
  CHECK(with(dyn + 8, 500, 8) == "error: DT_NEEDED name offset 0x1f4 past end of string table");
  CHECK(with(dyn + 56, 5, 8) == "error: DT_NEEDED name is not NUL-terminated in the string table");
  CHECK(with(dyn + 32, 0, 8) == "error: DT_NEEDED entries but no DT_STRTAB");

  // sections: the last one is .shstrtab, 5 is .gopclntab, 7 is .symtab
  const std::size_t shstrtab = sh + (nsec - 1) * 64;
  {
    ByteVec b = good;
    std::uint64_t size = 0;
    for (int i = 0; i < 8; ++i) size |= std::uint64_t(b[shstrtab + 32 + i]) << (8 * i);
    put_le(b, shstrtab + 32, size - 1, 8);  // cut the final NUL
    CHECK(outcome(b) == "error: section name string table is not NUL-terminated");
  }
  CHECK(with(shstrtab + 24, UINT64_MAX - 2, 8) == "error: section name string table offset past end of file");
  CHECK(with(sh + 5 * 64 + 32, UINT64_MAX, 8) == "error: section .gopclntab extends past end of file");
  CHECK(with(sh + 2 * 64, 0xfffff, 4) == "error: section name offset 0xfffff past end of section name string table");
  CHECK(with(sh + 7 * 64 + 40, 99, 4) == "error: symbol table's string table index 99 out of range");
}

TEST_CASE("hostile: many DT_NEEDED entries naming one long string", "[elf]") {
  // 4 KiB of name referenced 1000 times would be 4 MB of strings from a 20 KiB file.
  ElfBuilder e;
  std::size_t str = e.add(std::string(1, '\0') + std::string(4000, 'a') + '\0');
  std::size_t dyn = e.add(std::string(1002 * 16, '\0'), 8);
  for (int i = 0; i < 1000; ++i) {
    e.set(dyn + i * 16, 1, 8);
    e.set(dyn + i * 16 + 8, 1, 8);
  }
  e.set(dyn + 1000 * 16, 5, 8);
  e.set(dyn + 1000 * 16 + 8, kBase + str, 8);
  e.phdrs = {{1, 6, 0, kBase, e.payload.size()}, {2, 6, dyn, kBase + dyn, 1002 * 16}};
  CHECK(outcome(e.build().bytes) == "error: DT_NEEDED names add up to more than the file size");
}

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

  // Not errors: module info without its framing is ignored (as Go does), and an
  // empty version means "not a Go executable".
  ElfInfo unframed = inspect_elf_bytes(with_buildinfo(inl + uvarint(6) + "go1.99" + uvarint(4) + "path"));
  REQUIRE(unframed.go);
  CHECK(unframed.go->go_version == "go1.99");
  CHECK(unframed.go->main_path.empty());
  CHECK_FALSE(inspect_elf_bytes(with_buildinfo(inl + uvarint(0) + uvarint(0))).go);
}

TEST_CASE("hostile: random corruption never crashes", "[elf]") {
  // Deterministic mutations of the headers, tables and payload of the valid
  // fixture; the sanitizer build turns any out-of-bounds read into a failure.
  Built built = dynamic_fixture().builder.build();
  const ByteVec good = built.bytes;
  std::mt19937 rng(20240521);
  std::uniform_int_distribution<std::size_t> pos(0, good.size() - 1);
  std::uniform_int_distribution<int> count(1, 4), byte(0, 255), special(0, 3);
  int ok = 0, errors = 0, not_elf = 0;
  for (int round = 0; round < 5000; ++round) {
    ByteVec b = good;
    for (int n = count(rng); n > 0; --n) {
      std::size_t at = pos(rng);
      switch (special(rng)) {
        case 0:
          b[at] = 0xff;
          break;
        case 1:
          b[at] = 0;
          break;
        default:
          b[at] = static_cast<unsigned char>(byte(rng));
      }
    }
    std::string o = outcome(b);
    if (o == "ok") ++ok;
    if (o == "not elf") ++not_elf;
    if (o.rfind("error: ", 0) == 0) ++errors;
  }
  INFO("ok " << ok << ", errors " << errors << ", not elf " << not_elf);
  CHECK(ok + errors + not_elf == 5000);
  CHECK(errors > 0);
}
