#pragma once
// A validated view of an ELF file, for the readers of its parts: the inspector
// (elf.cpp) and the Go build-info reader (go_buildinfo.cpp).
//
// Every file offset, size and count below comes from the file itself, so each is
// checked against the bytes we actually have before use, with subtractions
// instead of additions so that hostile values cannot wrap around. Tables are
// never copied out: entries are decoded one at a time from the mapping, which is
// what keeps every allocation bounded by the size of the file. Links between
// structures (sh_link, DT_STRTAB, the Go string pointers) are followed exactly
// one step, never chased, so a file whose links form a cycle cannot loop.
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace imgbuild::elf {

/// A file's bytes, or a part of them.
using Bytes = std::span<const unsigned char>;

/// Throws the std::runtime_error that reports a malformed file.
[[noreturn]] void fail(const std::string& what);

/// `v` as "0x..." in messages.
std::string hex(std::uint64_t v);

// The gABI constants we use. <elf.h> is glibc's, not POSIX, so they are spelled
// out rather than depending on the host C library.
constexpr std::uint16_t kEtDyn = 3;
constexpr std::uint32_t kPtLoad = 1;
constexpr std::uint32_t kPtDynamic = 2;
constexpr std::uint32_t kPtInterp = 3;
constexpr std::uint32_t kPfX = 1;
constexpr std::uint32_t kPfW = 2;
constexpr std::uint32_t kShtSymtab = 2;
constexpr std::uint32_t kShtNobits = 8;
constexpr std::uint64_t kDtNull = 0;
constexpr std::uint64_t kDtNeeded = 1;
constexpr std::uint64_t kDtStrtab = 5;
constexpr std::uint64_t kDtStrsz = 10;
constexpr std::uint16_t kShnXindex = 0xffff;

/// Whether `len` bytes at `off` lie inside `b` (without overflow).
inline bool fits(Bytes b, std::uint64_t off, std::uint64_t len) { return off <= b.size() && len <= b.size() - off; }

/// The `width`-byte integer at `off` in `b`. Callers check ranges first; the
/// check here turns a logic slip into an exception instead of an
/// out-of-bounds read.
inline std::uint64_t load(Bytes b, std::uint64_t off, unsigned width, bool big_endian) {
  if (!fits(b, off, width)) fail("internal error: read outside a checked range");
  std::uint64_t v = 0;
  for (unsigned i = 0; i < width; ++i) {
    std::uint64_t byte = b[off + i];
    v |= big_endian ? byte << (8 * (width - 1 - i)) : byte << (8 * i);
  }
  return v;
}

/// `b` as characters, for names and strings.
inline std::string_view as_chars(Bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

/// A program header: the fields the readers use, in host order.
struct Phdr {
  std::uint32_t type = 0, flags = 0;
  std::uint64_t offset = 0, vaddr = 0, filesz = 0;
};

/// A section header: the fields the readers use, in host order.
struct Shdr {
  std::uint32_t name = 0, type = 0;
  std::uint64_t addr = 0, offset = 0, size = 0;
  std::uint32_t link = 0;
};

/// A validated view of an ELF file: the header has been decoded and both header
/// tables are known to lie inside the file, so phdr(i) and shdr(i) cannot read
/// out of bounds for i below the counts.
class Image {
public:
  /// Decodes the header and checks both header tables; fail()s naming what
  /// is wrong.
  explicit Image(Bytes file);

  /// 64-bit (ELFCLASS64).
  bool is64() const { return is64_; }
  /// Big endian (ELFDATA2MSB).
  bool big_endian() const { return be_; }
  /// e_type: ET_EXEC, ET_DYN, ...
  std::uint16_t type() const { return static_cast<std::uint16_t>(type_); }
  /// e_machine, the architecture's number.
  std::uint16_t machine() const { return static_cast<std::uint16_t>(machine_); }
  /// The number of program headers.
  std::uint64_t phnum() const { return phnum_; }
  /// The number of section headers, extended numbering resolved.
  std::uint64_t shnum() const { return shnum_; }
  /// The whole file.
  Bytes file() const { return file_; }

  /// The `width`-byte integer at `off` in `b`, in the file's byte order.
  std::uint64_t u(Bytes b, std::uint64_t off, unsigned width) const { return load(b, off, width, be_); }

  /// Program header `i`, below phnum().
  Phdr phdr(std::uint64_t i) const {
    Bytes e = file_.subspan(phoff_ + i * phentsize_, phentsize_);
    Phdr p;
    p.type = static_cast<std::uint32_t>(u(e, 0, 4));
    if (is64_) {
      p.flags = static_cast<std::uint32_t>(u(e, 4, 4));
      p.offset = u(e, 8, 8);
      p.vaddr = u(e, 16, 8);
      p.filesz = u(e, 32, 8);
    } else {
      p.offset = u(e, 4, 4);
      p.vaddr = u(e, 8, 4);
      p.filesz = u(e, 16, 4);
      p.flags = static_cast<std::uint32_t>(u(e, 24, 4));
    }
    return p;
  }

  /// Section header `i`, below shnum().
  Shdr shdr(std::uint64_t i) const {
    Bytes e = file_.subspan(shoff_ + i * shentsize_, shentsize_);
    Shdr s;
    s.name = static_cast<std::uint32_t>(u(e, 0, 4));
    s.type = static_cast<std::uint32_t>(u(e, 4, 4));
    if (is64_) {
      s.addr = u(e, 16, 8);
      s.offset = u(e, 24, 8);
      s.size = u(e, 32, 8);
      s.link = static_cast<std::uint32_t>(u(e, 40, 4));
    } else {
      s.addr = u(e, 12, 4);
      s.offset = u(e, 16, 4);
      s.size = u(e, 20, 4);
      s.link = static_cast<std::uint32_t>(u(e, 24, 4));
    }
    return s;
  }

  /// The file image of a segment; `what` names it in the error ("PT_LOAD").
  Bytes segment(const Phdr& p, const std::string& what) const {
    if (p.offset > file_.size()) fail(what + " segment offset past end of file");
    if (p.filesz > file_.size() - p.offset) fail(what + " segment extends past end of file");
    return file_.subspan(p.offset, p.filesz);
  }

  /// The bytes of a section (none for SHT_NOBITS); `what` names it in the error.
  Bytes section(const Shdr& s, const std::string& what) const {
    if (s.type == kShtNobits) return {};
    if (s.offset > file_.size()) fail("section " + what + " offset past end of file");
    if (s.size > file_.size() - s.offset) fail("section " + what + " extends past end of file");
    return file_.subspan(s.offset, s.size);
  }

  /// A section's name; empty when the file has no section name table (names
  /// are optional: the kernel never looks at sections).
  std::string_view section_name(const Shdr& s) const;

  /// The bytes from virtual address `addr` to the end of the file image of the
  /// PT_LOAD segment containing it, which is how the loader would see them;
  /// nullopt when no segment maps the address from the file.
  std::optional<Bytes> at_vaddr(std::uint64_t addr) const;

private:
  void check_program_headers();
  void check_section_headers(std::uint64_t shnum);

  Bytes file_;
  bool is64_ = false;
  bool be_ = false;
  std::uint64_t type_ = 0, machine_ = 0;
  std::uint64_t phoff_ = 0, phentsize_ = 0, phnum_ = 0;
  std::uint64_t shoff_ = 0, shentsize_ = 0, shnum_ = 0, shstrndx_ = 0;
  Bytes names_;
};

}  // namespace imgbuild::elf
