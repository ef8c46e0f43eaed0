// ELF files built in memory for the ELF tests (elf_test.cpp,
// go_buildinfo_test.cpp): a small builder and a valid, dynamically linked "Go"
// fixture with every structure the inspector reads, which the malformed cases
// patch at known offsets.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "elf_fixtures.hpp"
#include "inspect/elf.hpp"

namespace imgbuild::test::elf {

// ---- in-memory ELF builder --------------------------------------------------

inline void put(ByteVec& b, std::size_t off, std::uint64_t v, unsigned width, bool be) {
  if (b.size() < off + width) b.resize(off + width);
  for (unsigned i = 0; i < width; ++i) {
    unsigned shift = be ? 8 * (width - 1 - i) : 8 * i;
    b[off + i] = static_cast<unsigned char>(v >> shift);
  }
}

inline void put_le(ByteVec& b, std::size_t off, std::uint64_t v, unsigned width) { put(b, off, v, width, false); }

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

inline const std::string kSentinelStart(
    "0w\xaf\x0c\x92t\x08\x02"
    "A\xe1\xc1\x07\xe6\xd6\x18\xe6",
    16);
inline const std::string kSentinelEnd(
    "\xf9"
    "2C1\x86\x18 r\x00\x82"
    "B\x10"
    "A\x16\xd8\xf2",
    16);

inline std::string uvarint(std::uint64_t v) {
  std::string s;
  while (v >= 0x80) {
    s += static_cast<char>(0x80 | (v & 0x7f));
    v >>= 7;
  }
  s += static_cast<char>(v);
  return s;
}

inline std::string go_header(unsigned ptr_size, unsigned flags) {
  std::string h("\xff Go buildinf:", 14);
  h += static_cast<char>(ptr_size);
  h += static_cast<char>(flags);
  h.resize(32, '\0');
  return h;
}

inline const std::string kModinfo = kSentinelStart +
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

inline constexpr std::uint64_t kBase = 0x10000;

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
inline DynamicFixture dynamic_fixture() {
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
inline std::string outcome(const ByteVec& b) {
  try {
    ElfInfo info = inspect_elf_bytes(b);
    return info.is_elf ? "ok" : "not elf";
  } catch (const std::runtime_error& e) {
    return std::string("error: ") + e.what();
  }
}

}  // namespace imgbuild::test::elf
