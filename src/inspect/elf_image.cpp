#include "inspect/elf_image.hpp"

#include <cstdio>
#include <stdexcept>

namespace imgbuild::elf {

void fail(const std::string& what) { throw std::runtime_error(what); }

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

Image::Image(Bytes file) : file_(file) {
  constexpr std::size_t kIdent = 16;
  if (file.size() < kIdent) fail("truncated ELF header");
  switch (file[4]) {
    case 1:
      is64_ = false;
      break;
    case 2:
      is64_ = true;
      break;
    default:
      fail("invalid ELF class " + std::to_string(file[4]));
  }
  switch (file[5]) {
    case 1:
      be_ = false;
      break;
    case 2:
      be_ = true;
      break;
    default:
      fail("invalid ELF data encoding " + std::to_string(file[5]));
  }
  if (file.size() < (is64_ ? 64u : 52u)) fail("truncated ELF header");
  type_ = u(file, 16, 2);
  machine_ = u(file, 18, 2);
  std::uint64_t shnum = 0;
  if (is64_) {
    phoff_ = u(file, 32, 8);
    shoff_ = u(file, 40, 8);
    phentsize_ = u(file, 54, 2);
    phnum_ = u(file, 56, 2);
    shentsize_ = u(file, 58, 2);
    shnum = u(file, 60, 2);
    shstrndx_ = u(file, 62, 2);
  } else {
    phoff_ = u(file, 28, 4);
    shoff_ = u(file, 32, 4);
    phentsize_ = u(file, 42, 2);
    phnum_ = u(file, 44, 2);
    shentsize_ = u(file, 46, 2);
    shnum = u(file, 48, 2);
    shstrndx_ = u(file, 50, 2);
  }
  check_program_headers();
  check_section_headers(shnum);
}

std::string_view Image::section_name(const Shdr& s) const {
  if (names_.empty()) return {};
  if (s.name >= names_.size()) {
    fail("section name offset " + hex(s.name) + " past end of section name string table");
  }
  std::string_view rest = as_chars(names_.subspan(s.name));
  auto nul = rest.find('\0');
  if (nul == std::string_view::npos) fail("section name string table is not NUL-terminated");
  return rest.substr(0, nul);
}

std::optional<Bytes> Image::at_vaddr(std::uint64_t addr) const {
  for (std::uint64_t i = 0; i < phnum_; ++i) {
    Phdr p = phdr(i);
    if (p.type != kPtLoad || addr < p.vaddr || addr - p.vaddr >= p.filesz) continue;
    return segment(p, "PT_LOAD").subspan(addr - p.vaddr);
  }
  return std::nullopt;
}

void Image::check_program_headers() {
  // e_phnum is taken literally, without the PN_XNUM (0xffff) escape to section
  // 0: Linux refuses executables with that many headers, and only core dumps
  // use it, so an executable claiming it is either broken or hostile.
  if (phnum_ == 0) return;
  const std::uint64_t min = is64_ ? 56 : 32;
  if (phentsize_ < min) {
    fail("program header entry size " + std::to_string(phentsize_) + " is smaller than a program header");
  }
  if (phoff_ > file_.size()) fail("program header offset past end of file");
  // Both factors are 16-bit, so the product cannot wrap.
  if (phnum_ * phentsize_ > file_.size() - phoff_) fail("truncated program header table");
}

void Image::check_section_headers(std::uint64_t shnum) {
  // Section offset 0 means "no section header table", whatever e_shnum says.
  if (shoff_ == 0) return;
  const std::uint64_t min = is64_ ? 64 : 40;
  if (shoff_ > file_.size()) fail("section header offset past end of file");
  auto check_entries = [&](std::uint64_t count) {
    if (shentsize_ < min) {
      fail("section header entry size " + std::to_string(shentsize_) + " is smaller than a section header");
    }
    // Division rather than multiplication: count may be a 64-bit sh_size.
    if (count > (file_.size() - shoff_) / shentsize_) fail("truncated section header table");
  };
  // Linkers emit extended numbering for objects with 0xff00 sections or more:
  // the real count and name-table index then live in section 0.
  if (shnum == 0 || shstrndx_ == kShnXindex) {
    check_entries(1);
    Shdr zero = shdr(0);
    if (shnum == 0) shnum = zero.size;
    if (shstrndx_ == kShnXindex) shstrndx_ = zero.link;
  }
  if (shnum == 0) return;
  check_entries(shnum);
  shnum_ = shnum;
  if (shstrndx_ == 0) return;
  if (shstrndx_ >= shnum_) {
    fail("section name string table index " + std::to_string(shstrndx_) + " out of range");
  }
  names_ = section(shdr(shstrndx_), "name string table");
}

}  // namespace imgbuild::elf
