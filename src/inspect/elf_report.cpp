#include "inspect/elf_report.hpp"

#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace imgbuild {
namespace {

using nlohmann::json;

// Every string below may come from a hostile file. nlohmann's dump() throws on
// invalid UTF-8, so JSON strings are made valid first: each byte that does not
// start a well-formed sequence (overlong forms, surrogates and code points past
// U+10FFFF included) becomes U+FFFD, as most decoders would show it.
std::string utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  auto cont = [&](std::size_t i) { return i < s.size() && (static_cast<unsigned char>(s[i]) & 0xc0) == 0x80; };
  for (std::size_t i = 0; i < s.size();) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      len = 1;
      cp = c;
    } else if (c >= 0xc2 && c <= 0xdf) {
      len = 2;
      cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
      len = 3;
      cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      len = 4;
      cp = c & 0x07;
    }
    bool ok = len > 0;
    for (std::size_t k = 1; ok && k < len; ++k) {
      ok = cont(i + k);
      if (ok) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3f);
    }
    if (ok && len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ok = false;
    if (ok && len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ok = false;
    if (!ok) {
      out += "\xef\xbf\xbd";
      ++i;
      continue;
    }
    out.append(s.substr(i, len));
    i += len;
  }
  return out;
}

// For the text report: control characters as \xNN, so that a newline or an
// escape sequence in a crafted file cannot forge lines or reach the terminal.
std::string printable(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c < 0x20 || c == 0x7f) {
      char buf[5];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out;
}

const char* linking_name(ElfInfo::Linking l) {
  switch (l) {
    case ElfInfo::Linking::Static:
      return "static";
    case ElfInfo::Linking::StaticPie:
      return "static-pie";
    case ElfInfo::Linking::Dynamic:
      return "dynamic";
  }
  return "unknown";
}

std::optional<std::string> architecture(const ElfInfo& info) {
  try {
    return oci_architecture(info);
  } catch (const std::runtime_error&) {
    return std::nullopt;
  }
}

json go_json(const GoBuildInfo& go) {
  json settings = json::object();
  for (const auto& [k, v] : go.settings) {
    std::string key = utf8(k);
    if (!settings.contains(key)) settings[key] = utf8(v);
  }
  json deps = json::array();
  for (const auto& d : go.deps) deps.push_back(utf8(d.module.path));
  return {
      {"version", utf8(go.go_version)},
      {"path", utf8(go.main_path)},
      {"main_version", utf8(go.main_module.version)},
      {"settings", std::move(settings)},
      {"deps", std::move(deps)},
      {"uses_x509", go.uses_x509},
      {"embeds_tzdata", go.embeds_tzdata},
      {"loads_zoneinfo", go.loads_zoneinfo},
  };
}

// "a", "a and b", "a, b and c".
std::string english_list(const std::vector<std::string>& items) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? " and " : ", ";
    out += printable(items[i]);
  }
  return out;
}

// A build setting as cmd/go would write it on a command line: quoted when the
// value is empty or holds a space or a quote ("-ldflags=\"-s -w\"").
std::string setting_text(const std::string& key, const std::string& value) {
  if (!value.empty() && value.find_first_of(" \t\"'`") == std::string::npos) return key + "=" + value;
  std::string q = "\"";
  for (char c : value) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return key + "=" + q + "\"";
}

// The build settings that say what the binary needs at run time and which
// platform it is for; the rest (compiler, VCS stamps, ...) is in the JSON.
constexpr std::string_view kShownSettings[] = {"CGO_ENABLED", "GOOS", "GOARCH", "-tags", "-ldflags", "-trimpath"};

std::string go_lines(const GoBuildInfo& go) {
  std::string line = "  " + printable(go.go_version);
  if (!go.main_path.empty()) line += " " + printable(go.main_path);
  // "(devel)" for a build from a work tree, else the module version: "v1.2.3".
  if (!go.main_module.version.empty()) line += " " + printable(go.main_module.version);
  std::string shown;
  for (std::string_view key : kShownSettings) {
    for (const auto& [k, v] : go.settings) {
      if (k != key) continue;
      shown += (shown.empty() ? "" : " ") + printable(setting_text(k, v));
      break;
    }
  }
  if (!shown.empty()) line += "; " + shown;
  std::string out = line + "\n";

  out += go.uses_x509 ? "  crypto/x509: linked (needs CA certificates in the image)\n" : "  crypto/x509: not linked\n";
  if (go.loads_zoneinfo && go.embeds_tzdata) {
    out += "  time zones: loaded by name, tzdata embedded (needs no zoneinfo in the image)\n";
  } else if (go.loads_zoneinfo) {
    out += "  time zones: loaded by name (needs /usr/share/zoneinfo in the image)\n";
  } else if (go.embeds_tzdata) {
    out += "  time zones: not loaded by name, tzdata embedded\n";
  } else {
    out += "  time zones: not loaded by name\n";
  }
  return out;
}

}  // namespace

json elf_json(const ElfInfo& info) {
  if (!info.is_elf) return {{"elf", false}};
  json needed = json::array();
  for (const auto& n : info.needed) needed.push_back(utf8(n));
  std::optional<std::string> arch = architecture(info);
  return {
      {"elf", true},
      {"class", info.elf_class},
      {"endian", info.big_endian ? "big" : "little"},
      {"machine", info.machine},
      {"architecture", arch ? json(*arch) : json(nullptr)},
      {"linking", linking_name(info.linking)},
      {"static", info.linking != ElfInfo::Linking::Dynamic},
      {"interpreter", info.interpreter.empty() ? json(nullptr) : json(utf8(info.interpreter))},
      {"needed", std::move(needed)},
      {"stripped", info.stripped},
      {"go", info.go ? go_json(*info.go) : json(nullptr)},
  };
}

std::string elf_text_report(const std::string& name, const ElfInfo& info) {
  const std::string file = printable(name);
  if (!info.is_elf) return file + ": not an ELF file\n";

  std::string out = file + ": ELF " + std::to_string(info.elf_class) + "-bit " + (info.big_endian ? "big" : "little") +
                    "-endian " + info.machine;
  if (std::optional<std::string> arch = architecture(info)) {
    // ELF does not say which kernel a file is for; a Go binary records it.
    std::string os = info.go ? info.go->setting("GOOS") : "";
    out += " (" + (os.empty() ? std::string("linux") : printable(os)) + "/" + *arch + ")";
  } else {
    out += " (no OCI architecture)";
  }
  out += std::string(", ") + linking_name(info.linking) + (info.stripped ? ", stripped\n" : ", not stripped\n");

  if (info.linking == ElfInfo::Linking::Dynamic) {
    std::string line = info.interpreter.empty() ? "no interpreter" : "interpreter " + printable(info.interpreter);
    line += info.needed.empty() ? ", needs no libraries" : ", needs " + english_list(info.needed);
    out += "  " + line + "\n";
    std::vector<std::string> parts;
    if (!info.interpreter.empty()) parts.emplace_back("this interpreter");
    if (!info.needed.empty()) parts.emplace_back(info.needed.size() == 1 ? "this library" : "these libraries");
    if (!parts.empty()) out += "  the image must contain " + english_list(parts) + "\n";
  }
  if (info.go) out += go_lines(*info.go);
  return out;
}

}  // namespace imgbuild
