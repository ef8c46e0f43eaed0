#include "inspect/go_buildinfo.hpp"

#include <algorithm>

#include <cstddef>
#include <cstdint>
#include <stdexcept>

namespace imgbuild {

using namespace elf;

namespace {

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
  auto module = [&](std::string_view rest) {
    GoModule m;
    m.path = field(rest);
    m.version = field(rest);
    m.sum = field(rest);
    return m;
  };
  while (!mod.empty()) {
    auto nl = mod.find('\n');
    std::string_view line = mod.substr(0, nl);
    mod = nl == std::string_view::npos ? std::string_view() : mod.substr(nl + 1);
    std::string_view kind = field(line);
    if (kind == "path") {
      go.main_path = line;
    } else if (kind == "mod") {
      go.main_module = module(line);
    } else if (kind == "dep") {
      go.deps.push_back({module(line), std::nullopt});
    } else if (kind == "=>") {
      // A replacement belongs to the dep line just before it, as go writes them.
      if (go.deps.empty() || go.deps.back().replacement) fail("Go build info: replacement without a module");
      go.deps.back().replacement = module(line);
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

}  // namespace

std::optional<GoBuildInfo> read_go_buildinfo(const Image& img, const GoSections& secs) {
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

std::string GoBuildInfo::setting(std::string_view key) const {
  for (const auto& [k, v] : settings) {
    if (k == key) return v;
  }
  return {};
}

bool GoBuildInfo::depends_on(std::string_view path) const {
  return std::any_of(deps.begin(), deps.end(), [&](const GoDependency& d) { return d.module.path == path; });
}

}  // namespace imgbuild
