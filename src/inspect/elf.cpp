#include "inspect/elf.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <system_error>

namespace imgbuild {
namespace {

using Bytes = std::span<const unsigned char>;

// Every file offset, size and count below comes from the file itself, so each is
// checked against the bytes we actually have before use, with subtractions
// instead of additions so that hostile values cannot wrap around. Tables are
// never copied out: entries are decoded one at a time from the mapping, which is
// what keeps every allocation bounded by the size of the file. Links between
// structures (sh_link, DT_STRTAB, the Go string pointers) are followed exactly
// one step, never chased, so a file whose links form a cycle cannot loop.

[[noreturn]] void fail(const std::string& what) { throw std::runtime_error(what); }

std::string hex(std::uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

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

bool fits(Bytes b, std::uint64_t off, std::uint64_t len) { return off <= b.size() && len <= b.size() - off; }

// Callers check ranges first; the check here turns a logic slip into an
// exception instead of an out-of-bounds read.
std::uint64_t load(Bytes b, std::uint64_t off, unsigned width, bool big_endian) {
  if (!fits(b, off, width)) fail("internal error: read outside a checked range");
  std::uint64_t v = 0;
  for (unsigned i = 0; i < width; ++i) {
    std::uint64_t byte = b[off + i];
    v |= big_endian ? byte << (8 * (width - 1 - i)) : byte << (8 * i);
  }
  return v;
}

std::string_view as_chars(Bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

struct Phdr {
  std::uint32_t type = 0, flags = 0;
  std::uint64_t offset = 0, vaddr = 0, filesz = 0;
};

struct Shdr {
  std::uint32_t name = 0, type = 0;
  std::uint64_t addr = 0, offset = 0, size = 0;
  std::uint32_t link = 0;
};

// A validated view of an ELF file: the header has been decoded and both header
// tables are known to lie inside the file, so phdr(i) and shdr(i) cannot read
// out of bounds for i below the counts.
class Image {
public:
  explicit Image(Bytes file) : file_(file) {
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

  bool is64() const { return is64_; }
  bool big_endian() const { return be_; }
  std::uint16_t type() const { return static_cast<std::uint16_t>(type_); }
  std::uint16_t machine() const { return static_cast<std::uint16_t>(machine_); }
  std::uint64_t phnum() const { return phnum_; }
  std::uint64_t shnum() const { return shnum_; }
  Bytes file() const { return file_; }

  std::uint64_t u(Bytes b, std::uint64_t off, unsigned width) const { return load(b, off, width, be_); }

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

  // The file image of a segment; `what` names it in the error ("PT_LOAD").
  Bytes segment(const Phdr& p, const std::string& what) const {
    if (p.offset > file_.size()) fail(what + " segment offset past end of file");
    if (p.filesz > file_.size() - p.offset) fail(what + " segment extends past end of file");
    return file_.subspan(p.offset, p.filesz);
  }

  Bytes section(const Shdr& s, const std::string& what) const {
    if (s.type == kShtNobits) return {};
    if (s.offset > file_.size()) fail("section " + what + " offset past end of file");
    if (s.size > file_.size() - s.offset) fail("section " + what + " extends past end of file");
    return file_.subspan(s.offset, s.size);
  }

  // Empty when the file has no section name table (names are optional: the
  // kernel never looks at sections).
  std::string_view section_name(const Shdr& s) const {
    if (names_.empty()) return {};
    if (s.name >= names_.size()) {
      fail("section name offset " + hex(s.name) + " past end of section name string table");
    }
    std::string_view rest = as_chars(names_.subspan(s.name));
    auto nul = rest.find('\0');
    if (nul == std::string_view::npos) fail("section name string table is not NUL-terminated");
    return rest.substr(0, nul);
  }

  // The bytes from virtual address `addr` to the end of the file image of the
  // PT_LOAD segment containing it, which is how the loader would see them;
  // nullopt when no segment maps the address from the file.
  std::optional<Bytes> at_vaddr(std::uint64_t addr) const {
    for (std::uint64_t i = 0; i < phnum_; ++i) {
      Phdr p = phdr(i);
      if (p.type != kPtLoad || addr < p.vaddr || addr - p.vaddr >= p.filesz) continue;
      return segment(p, "PT_LOAD").subspan(addr - p.vaddr);
    }
    return std::nullopt;
  }

private:
  void check_program_headers() {
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

  void check_section_headers(std::uint64_t shnum) {
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

  Bytes file_;
  bool is64_ = false;
  bool be_ = false;
  std::uint64_t type_ = 0, machine_ = 0;
  std::uint64_t phoff_ = 0, phentsize_ = 0, phnum_ = 0;
  std::uint64_t shoff_ = 0, shentsize_ = 0, shnum_ = 0, shstrndx_ = 0;
  Bytes names_;
};

std::string machine_name(std::uint16_t machine, bool is64, bool big_endian) {
  switch (machine) {
    case 3:
      return "386";
    case 21:
      return big_endian ? "ppc64" : "ppc64le";
    case 22:
      return is64 ? "s390x" : "s390";
    case 40:
      return "arm";
    case 62:
      return "x86_64";
    case 183:
      return "aarch64";
    case 243:
      return is64 ? "riscv64" : "riscv32";
    default:
      return "unknown(" + std::to_string(machine) + ")";
  }
}

std::vector<std::string> read_needed(const Image& img, const Phdr& dynamic) {
  Bytes dyn = img.segment(dynamic, "PT_DYNAMIC");
  const unsigned width = img.is64() ? 8 : 4;
  std::vector<std::uint64_t> offsets;
  std::optional<std::uint64_t> strtab, strsz;
  // Bounded by the segment size, and stops at DT_NULL like the loader does.
  for (std::uint64_t pos = 0; 2 * width <= dyn.size() - pos; pos += 2 * width) {
    std::uint64_t tag = img.u(dyn, pos, width);
    std::uint64_t val = img.u(dyn, pos + width, width);
    if (tag == kDtNull) break;
    if (tag == kDtNeeded) offsets.push_back(val);
    if (tag == kDtStrtab && !strtab) strtab = val;
    if (tag == kDtStrsz && !strsz) strsz = val;
  }
  if (offsets.empty()) return {};
  if (!strtab) fail("DT_NEEDED entries but no DT_STRTAB");
  std::optional<Bytes> table = img.at_vaddr(*strtab);
  if (!table) fail("DT_STRTAB address " + hex(*strtab) + " is not mapped by any PT_LOAD segment");
  if (strsz && *strsz < table->size()) table = table->first(*strsz);
  std::string_view strings = as_chars(*table);

  std::vector<std::string> needed;
  std::uint64_t total = 0;
  for (std::uint64_t off : offsets) {
    if (off >= strings.size()) fail("DT_NEEDED name offset " + hex(off) + " past end of string table");
    auto nul = strings.find('\0', off);
    if (nul == std::string_view::npos) fail("DT_NEEDED name is not NUL-terminated in the string table");
    // Many entries may name the same long string; copying each would let a small
    // file demand an allocation many times its size.
    total += nul - off;
    if (total > img.file().size()) fail("DT_NEEDED names add up to more than the file size");
    needed.emplace_back(strings.substr(off, nul - off));
  }
  return needed;
}

// ---- Go build info -------------------------------------------------------
//
// Layout (cmd/link and debug/buildinfo): a 32-byte header, 16-byte aligned,
// "\xff Go buildinf:" then pointer size, then flags. With flag 2 (Go 1.18+) the
// version and module-info strings follow inline, each as a uvarint length and
// bytes. Without it, two pointers at offset 16 point at Go string headers
// (data pointer, length), in the pointer size and byte order of the header.

constexpr std::string_view kGoMagic("\xff Go buildinf:", 14);
constexpr std::size_t kGoHeaderSize = 32;
constexpr std::size_t kGoAlign = 16;

std::optional<Bytes> find_go_header(Bytes region) {
  std::string_view text = as_chars(region);
  for (std::size_t pos = 0; pos < text.size(); pos += kGoAlign) {
    if (text.substr(pos, kGoMagic.size()) == kGoMagic) return region.subspan(pos);
  }
  return std::nullopt;
}

std::string_view read_inline_string(Bytes data, std::size_t& pos, const std::string& what) {
  std::uint64_t len = 0;
  for (unsigned i = 0, shift = 0;; ++i, shift += 7) {
    if (pos >= data.size()) fail("Go build info: varint length of " + what + " runs past end of data");
    if (i == 10) fail("Go build info: varint length of " + what + " overflows 64 bits");
    unsigned char c = data[pos++];
    if (c < 0x80) {
      if (i == 9 && c > 1) fail("Go build info: varint length of " + what + " overflows 64 bits");
      len |= std::uint64_t(c) << shift;
      break;
    }
    len |= std::uint64_t(c & 0x7f) << shift;
  }
  if (len > data.size() - pos) fail("Go build info: " + what + " runs past end of data");
  std::string_view s = as_chars(data.subspan(pos, len));
  pos += len;
  return s;
}

std::string_view read_pointed_string(const Image& img, std::uint64_t addr, unsigned ptr_size, bool big_endian,
                                     const std::string& what) {
  std::optional<Bytes> header = img.at_vaddr(addr);
  if (!header || header->size() < 2u * ptr_size) {
    fail("Go build info: " + what + " string header at " + hex(addr) + " is not mapped by any PT_LOAD segment");
  }
  std::uint64_t data_addr = load(*header, 0, ptr_size, big_endian);
  std::uint64_t len = load(*header, ptr_size, ptr_size, big_endian);
  if (len == 0) return {};
  std::optional<Bytes> data = img.at_vaddr(data_addr);
  if (!data) fail("Go build info: " + what + " at " + hex(data_addr) + " is not mapped by any PT_LOAD segment");
  if (len > data->size()) fail("Go build info: " + what + " runs past end of its segment");
  return as_chars(data->first(len));
}

// Go strconv.Unquote for the two forms cmd/go writes in build lines: "..." with
// Go escapes, and `...` raw.
std::optional<std::string> go_unquote(std::string_view q) {
  if (q.size() < 2 || q.front() != q.back()) return std::nullopt;
  std::string_view body = q.substr(1, q.size() - 2);
  std::string out;
  if (q.front() == '`') {
    if (body.find('`') != std::string_view::npos) return std::nullopt;
    for (char c : body) {
      if (c != '\r') out += c;
    }
    return out;
  }
  if (q.front() != '"') return std::nullopt;
  auto hexval = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  auto put_utf8 = [&out](std::uint32_t cp) {
    if (cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) cp = 0xfffd;
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xc0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xe0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (cp & 0x3f));
    }
  };
  for (std::size_t i = 0; i < body.size();) {
    char c = body[i++];
    if (c == '"' || c == '\n') return std::nullopt;
    if (c != '\\') {
      out += c;
      continue;
    }
    if (i >= body.size()) return std::nullopt;
    char e = body[i++];
    switch (e) {
      case 'a':
        out += '\a';
        break;
      case 'b':
        out += '\b';
        break;
      case 'f':
        out += '\f';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 't':
        out += '\t';
        break;
      case 'v':
        out += '\v';
        break;
      case '\\':
        out += '\\';
        break;
      case '"':
        out += '"';
        break;
      case 'x':
      case 'u':
      case 'U': {
        std::size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
        if (body.size() - i < n) return std::nullopt;
        std::uint32_t v = 0;
        for (std::size_t k = 0; k < n; ++k) {
          int h = hexval(body[i + k]);
          if (h < 0) return std::nullopt;
          v = v * 16 + static_cast<std::uint32_t>(h);
        }
        i += n;
        if (e == 'x') {
          out += static_cast<char>(v);
        } else {
          put_utf8(v);
        }
        break;
      }
      default: {
        if (e < '0' || e > '7' || body.size() - i < 2) return std::nullopt;
        std::uint32_t v = static_cast<std::uint32_t>(e - '0');
        for (std::size_t k = 0; k < 2; ++k) {
          char d = body[i + k];
          if (d < '0' || d > '7') return std::nullopt;
          v = v * 8 + static_cast<std::uint32_t>(d - '0');
        }
        if (v > 255) return std::nullopt;
        i += 2;
        out += static_cast<char>(v);
      }
    }
  }
  return out;
}

// The length of the quoted string at the start of `s` (strconv.QuotedPrefix),
// or 0 when it does not start with a complete one.
std::size_t quoted_prefix_length(std::string_view s) {
  if (s.empty()) return 0;
  if (s[0] == '`') {
    auto end = s.find('`', 1);
    return end == std::string_view::npos ? 0 : end + 1;
  }
  for (std::size_t i = 1; i < s.size(); ++i) {
    if (s[i] == '\\') {
      ++i;
    } else if (s[i] == '"') {
      return i + 1;
    }
  }
  return 0;
}

// One `build` line: key=value, either side Go-quoted when it holds '=', spaces,
// tabs, newlines or quotes (cmd/go's quoting; see debug.ParseBuildInfo).
std::pair<std::string, std::string> parse_build_setting(std::string_view kv) {
  std::string key;
  std::string_view raw_value;
  if (kv.empty()) fail("Go build info: empty build setting");
  if (kv[0] == '"' || kv[0] == '`') {
    std::size_t n = quoted_prefix_length(kv);
    auto unquoted = n ? go_unquote(kv.substr(0, n)) : std::nullopt;
    if (!unquoted) fail("Go build info: malformed quoted build setting key");
    key = *unquoted;
    kv.remove_prefix(n);
    if (kv.empty() || kv[0] != '=') fail("Go build info: build setting without '='");
    raw_value = kv.substr(1);
  } else {
    auto eq = kv.find('=');
    if (eq == std::string_view::npos) fail("Go build info: build setting without '='");
    if (eq == 0) fail("Go build info: build setting without a key");
    key = kv.substr(0, eq);
    raw_value = kv.substr(eq + 1);
  }
  if (!raw_value.empty() && (raw_value[0] == '"' || raw_value[0] == '`')) {
    auto value = go_unquote(raw_value);
    if (!value) fail("Go build info: malformed quoted value for build setting " + key);
    return {std::move(key), std::move(*value)};
  }
  return {std::move(key), std::string(raw_value)};
}

void parse_modinfo(std::string_view mod, GoBuildInfo& go) {
  // The linker frames the text with 16-byte sentinels so that it can be found
  // in a binary; what debug/buildinfo accepts is exactly this shape.
  if (mod.size() < 33 || mod[mod.size() - 17] != '\n') return;
  mod = mod.substr(16, mod.size() - 32);
  auto field = [](std::string_view& rest) {
    auto tab = rest.find('\t');
    std::string_view f = rest.substr(0, tab);
    rest = tab == std::string_view::npos ? std::string_view() : rest.substr(tab + 1);
    return f;
  };
  while (!mod.empty()) {
    auto nl = mod.find('\n');
    std::string_view line = mod.substr(0, nl);
    mod = nl == std::string_view::npos ? std::string_view() : mod.substr(nl + 1);
    std::string_view kind = field(line);
    if (kind == "path") {
      go.main_path = line;
    } else if (kind == "mod") {
      field(line);
      go.main_version = field(line);
    } else if (kind == "dep") {
      go.deps.emplace_back(field(line));
    } else if (kind == "build") {
      go.settings.push_back(parse_build_setting(line));
    } else if (kind == "go" && go.go_version.empty()) {
      go.go_version = line;
    }
  }
}

bool is_path_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '/' || c == '.' ||
         c == '_' || c == '-' || c == '~' || c == '+';
}

// Whether some name in `names` starts with `prefix`: the prefix must not be
// preceded by a character that could continue an import path, so that
// "example.com/crypto/x509.F" is not mistaken for the standard package.
bool has_name_with_prefix(std::string_view names, std::string_view prefix) {
  for (auto pos = names.find(prefix); pos != std::string_view::npos; pos = names.find(prefix, pos + 1)) {
    if (pos == 0 || !is_path_char(names[pos - 1])) return true;
  }
  return false;
}

// Whether the function `name` itself (or a closure or method nested in it,
// "name.func1") is in `names`, a table of NUL-separated function names: unlike
// has_name_with_prefix, "time.LoadLocation" does not match
// "time.LoadLocationFromTZData".
bool has_function(std::string_view names, std::string_view name) {
  for (auto pos = names.find(name); pos != std::string_view::npos; pos = names.find(name, pos + 1)) {
    if (pos != 0 && is_path_char(names[pos - 1])) continue;
    std::size_t end = pos + name.size();
    if (end == names.size() || names[end] == '\0' || names[end] == '.') return true;
  }
  return false;
}

// Which packages were linked in is read from function names, because the build
// info lists modules, not standard-library packages:
//  - With section headers, the names are in .gopclntab (kept even by -s -w,
//    since the runtime needs it for tracebacks; PIE builds call it
//    .data.rel.ro.gopclntab) and, when not stripped, in the .symtab strings. A
//    function "crypto/x509.*" means the package's code was linked, and so will
//    run: the binary needs CA certificates. "time/tzdata.*" (its init registers
//    the embedded zip) means zoneinfo is inside the binary, whether it came from
//    `import _ "time/tzdata"` or `-tags timetzdata`. The function
//    "time.LoadLocation" means zones are loaded by name from zoneinfo; the
//    complete name is required, because "time.LoadLocationFromTZData" is linked
//    by any binary that uses the local time zone (net/http does).
//  - Without section headers there is nothing to delimit the name table, so the
//    whole file is searched for a few complete names that only a binary using
//    the package would contain ("crypto/x509.(*CertPool)" methods,
//    "crypto/x509.SystemCertPool", "time/tzdata.init",
//    "time/tzdata.loadFromEmbeddedTZData", "time.LoadLocation" followed by the
//    NUL that ends it in the name table). That may miss a binary using only a
//    corner of crypto/x509, which is the conservative error for a scan of raw
//    bytes where a stray string could otherwise count as a use.
void detect_packages(const Image& img, const std::optional<Shdr>& pclntab, const std::optional<Shdr>& symtab,
                     GoBuildInfo& go) {
  std::vector<std::string_view> tables;
  if (pclntab) tables.push_back(as_chars(img.section(*pclntab, ".gopclntab")));
  if (symtab) {
    if (symtab->link == 0 || symtab->link >= img.shnum()) {
      fail("symbol table's string table index " + std::to_string(symtab->link) + " out of range");
    }
    tables.push_back(as_chars(img.section(img.shdr(symtab->link), "symbol string table")));
  }
  if (!tables.empty()) {
    for (std::string_view t : tables) {
      go.uses_x509 = go.uses_x509 || has_name_with_prefix(t, "crypto/x509.");
      go.embeds_tzdata = go.embeds_tzdata || has_name_with_prefix(t, "time/tzdata.");
      go.loads_zoneinfo = go.loads_zoneinfo || has_function(t, "time.LoadLocation");
    }
    return;
  }
  std::string_view all = as_chars(img.file());
  auto contains = [all](std::string_view s) { return all.find(s) != std::string_view::npos; };
  go.uses_x509 = contains("crypto/x509.(*CertPool)") || contains("crypto/x509.SystemCertPool");
  go.embeds_tzdata = contains("time/tzdata.init") || contains("time/tzdata.loadFromEmbeddedTZData");
  go.loads_zoneinfo = contains(std::string_view("time.LoadLocation\0", 18));
}

struct GoSections {
  std::optional<Shdr> buildinfo, pclntab, symtab;
};

std::optional<GoBuildInfo> read_go(const Image& img, const GoSections& secs) {
  // Where debug/buildinfo looks: the .go.buildinfo section, or when section
  // headers are gone, the data segment (writable, not executable) it starts.
  std::optional<Bytes> header;
  if (secs.buildinfo) {
    header = find_go_header(img.section(*secs.buildinfo, ".go.buildinfo"));
  } else {
    for (std::uint64_t i = 0; i < img.phnum() && !header; ++i) {
      Phdr p = img.phdr(i);
      if (p.type == kPtLoad && (p.flags & (kPfX | kPfW)) == kPfW) {
        header = find_go_header(img.segment(p, "PT_LOAD"));
      }
    }
  }
  if (!header) return std::nullopt;
  Bytes h = *header;
  if (h.size() < kGoHeaderSize) fail("truncated Go build info header");
  const unsigned ptr_size = h[14];
  const unsigned flags = h[15];
  std::string_view version, mod;
  if (flags & 2) {
    std::size_t pos = kGoHeaderSize;
    version = read_inline_string(h, pos, "version");
    mod = read_inline_string(h, pos, "module info");
  } else {
    if (ptr_size != 4 && ptr_size != 8) {
      fail("invalid pointer size " + std::to_string(ptr_size) + " in Go build info");
    }
    const bool be = flags & 1;
    version = read_pointed_string(img, load(h, 16, ptr_size, be), ptr_size, be, "version");
    mod = read_pointed_string(img, load(h, 16 + ptr_size, ptr_size, be), ptr_size, be, "module info");
  }
  // Go's own reader treats a missing version as "not a Go executable".
  if (version.empty()) return std::nullopt;
  GoBuildInfo go;
  go.go_version = version;
  parse_modinfo(mod, go);
  detect_packages(img, secs.pclntab, secs.symtab, go);
  return go;
}

ElfInfo inspect(Bytes file) {
  ElfInfo info;
  if (file.size() < 4 || std::memcmp(file.data(),
                                     "\x7f"
                                     "ELF",
                                     4) != 0)
    return info;
  Image img(file);
  info.is_elf = true;
  info.elf_class = img.is64() ? 64 : 32;
  info.big_endian = img.big_endian();
  info.machine = machine_name(img.machine(), img.is64(), img.big_endian());

  bool has_interp = false;
  std::optional<Phdr> dynamic;
  for (std::uint64_t i = 0; i < img.phnum(); ++i) {
    Phdr p = img.phdr(i);
    if (p.type == kPtLoad) {
      img.segment(p, "PT_LOAD");
    } else if (p.type == kPtInterp && !has_interp) {
      std::string_view s = as_chars(img.segment(p, "PT_INTERP"));
      auto nul = s.find('\0');
      if (nul == std::string_view::npos) fail("PT_INTERP is not NUL-terminated");
      info.interpreter = s.substr(0, nul);
      has_interp = true;
    } else if (p.type == kPtDynamic && !dynamic) {
      dynamic = p;
    }
  }
  if (dynamic) info.needed = read_needed(img, *dynamic);
  // Static-pie is what remains of a dynamic object once nothing needs loading:
  // it has its own PT_DYNAMIC for self-relocation but no loader and no
  // libraries. An ET_EXEC with a library-free PT_DYNAMIC is loaded the same way
  // as a plain static one, so it counts as static.
  if (has_interp || !info.needed.empty()) {
    info.linking = ElfInfo::Linking::Dynamic;
  } else if (dynamic && img.type() == kEtDyn) {
    info.linking = ElfInfo::Linking::StaticPie;
  } else {
    info.linking = ElfInfo::Linking::Static;
  }

  GoSections secs;
  for (std::uint64_t i = 0; i < img.shnum(); ++i) {
    Shdr s = img.shdr(i);
    std::string_view name = img.section_name(s);
    if (s.type == kShtSymtab && !secs.symtab) secs.symtab = s;
    if (name == ".go.buildinfo" && !secs.buildinfo) secs.buildinfo = s;
    if (name.ends_with(".gopclntab") && !secs.pclntab) secs.pclntab = s;
  }
  info.stripped = !secs.symtab;
  info.go = read_go(img, secs);
  return info;
}

class Fd {
public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

private:
  int fd_;
};

// Read-only private mapping of a whole file. If the file is truncated by someone
// else while mapped, reads past its new end raise SIGBUS; the inspector is meant
// for build inputs that are not being rewritten underneath it.
class Mapping {
public:
  explicit Mapping(const std::filesystem::path& path) {
    // O_NONBLOCK so that a FIFO given by mistake is rejected below instead of
    // blocking in open() waiting for a writer.
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0) fail("cannot open: " + std::generic_category().message(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) fail("cannot stat: " + std::generic_category().message(errno));
    if (!S_ISREG(st.st_mode)) fail("not a regular file");
    if (st.st_size == 0) return;  // mmap rejects empty lengths
    if (static_cast<std::uint64_t>(st.st_size) > std::numeric_limits<std::size_t>::max()) {
      fail("file too large to map");
    }
    std::size_t size = static_cast<std::size_t>(st.st_size);
    void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (addr == MAP_FAILED) fail("cannot map: " + std::generic_category().message(errno));
    addr_ = addr;
    size_ = size;
  }
  ~Mapping() {
    if (addr_) ::munmap(addr_, size_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  Bytes bytes() const { return {static_cast<const unsigned char*>(addr_), size_}; }

private:
  void* addr_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace

std::string GoBuildInfo::setting(std::string_view key) const {
  for (const auto& [k, v] : settings) {
    if (k == key) return v;
  }
  return {};
}

ElfInfo inspect_elf_bytes(std::span<const unsigned char> bytes) { return inspect(bytes); }

ElfInfo inspect_elf(const std::filesystem::path& file) {
  try {
    Mapping mapping(file);
    return inspect(mapping.bytes());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(file.string() + ": " + e.what());
  }
}

std::string oci_architecture(const ElfInfo& info) {
  if (!info.is_elf) throw std::runtime_error("not an ELF file: no OCI architecture");
  const std::string& m = info.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64") return "arm64";
  if (m == "arm" || m == "riscv64" || m == "s390x" || m == "ppc64le" || m == "ppc64" || m == "386") return m;
  throw std::runtime_error("no OCI architecture for ELF machine " + m);
}

std::string architecture_or_machine(const ElfInfo& info) {
  try {
    return oci_architecture(info);
  } catch (const std::runtime_error&) {
    return info.machine;
  }
}

ElfInfo inspect_elf_named(const std::filesystem::path& file, const std::string& shown) {
  try {
    return inspect_elf(file);
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    std::string prefix = file.string() + ": ";
    if (msg.starts_with(prefix)) msg.erase(0, prefix.size());
    throw std::runtime_error(shown + ": " + msg);
  }
}

}  // namespace imgbuild
