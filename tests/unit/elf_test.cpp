// Tests for the ELF inspector. Real fixtures (C programs) are compiled into a
// scratch directory at test time, so no binary is ever committed; the
// malformed cases are built in memory from a small valid file. Go binaries
// and their build info: go_buildinfo_test.cpp.
#include "inspect/elf.hpp"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "base/fs.hpp"
#include "elf_builder.hpp"
#include "elf_fixtures.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using imgbuild::ElfInfo;
using imgbuild::inspect_elf;
using imgbuild::inspect_elf_bytes;
using imgbuild::oci_architecture;
using namespace imgbuild::test;
using namespace imgbuild::test::elf;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

// ---- real binaries ------------------------------------------------------------

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

// What a layer's stream hands over: chunks of a program, with the size its tar
// header announced, which may lie (a hostile layer) or be unknown (0).
TEST_CASE("a program gathered in chunks reads as the whole file, whatever size was announced", "[elf]") {
  const std::string bytes = imgbuild::read_file("/bin/sh");
  const ElfInfo whole = inspect_elf("/bin/sh");
  for (uint64_t announced : {uint64_t{bytes.size()}, uint64_t{0}, uint64_t{16}, uint64_t{bytes.size()} * 4}) {
    INFO("announced " << announced << " of " << bytes.size() << " bytes");
    imgbuild::ElfCandidate candidate(announced);
    for (size_t at = 0; at < bytes.size(); at += 4096) candidate.add(std::string_view(bytes).substr(at, 4096));
    std::optional<ElfInfo> gathered = candidate.inspect();
    REQUIRE(gathered);
    CHECK(gathered->machine == whole.machine);
    CHECK(gathered->needed == whole.needed);
    CHECK(gathered->interpreter == whole.interpreter);
  }
  imgbuild::ElfCandidate text(uint64_t{1} << 40);
  text.add("#!/bin/sh\n");
  text.add(
      "\x7f"
      "ELF");
  CHECK_FALSE(text.inspect());
}

// ---- synthetic files ------------------------------------------------------------

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
