#pragma once
// Go build info: what the Go toolchain embeds in an executable (what `go
// version -m` prints) and which standard packages it linked, read from an ELF
// file without running Go.
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "inspect/elf_image.hpp"

namespace imgbuild {

/// A module as Go build info names it: `path version sum` (the sum is the
/// `h1:` hash go.sum holds; empty for the main module of a work-tree build and
/// for a module replaced by a local folder).
struct GoModule {
  std::string path, version, sum;
  bool operator==(const GoModule&) const = default;
};

/// A dependency module and, when go.mod replaces it, what was built instead.
struct GoDependency {
  GoModule module;
  std::optional<GoModule> replacement;
  bool operator==(const GoDependency&) const = default;
};

/// The build information the Go toolchain embeds in every executable
/// (what `go version -m` prints), read without running Go.
struct GoBuildInfo {
  /// Toolchain that built the binary, e.g. "go1.19.8".
  std::string go_version;
  /// Import path of the main package, e.g. "example.com/hello".
  std::string main_path;
  /// The main module: its version is "(devel)" for a build from a work tree.
  GoModule main_module;
  /// `build` lines in the order found: CGO_ENABLED, GOOS, GOARCH, GOAMD64,
  /// -ldflags, -trimpath, vcs.revision, ... with Go quoting removed.
  std::vector<std::pair<std::string, std::string>> settings;
  /// The dependencies (`dep` lines, each with its `=>` replacement), in the
  /// order listed (go sorts them by path).
  std::vector<GoDependency> deps;
  /// The binary links crypto/x509, so it will look for CA certificates at run
  /// time and an image without them fails on the first TLS connection.
  bool uses_x509 = false;
  /// The binary carries its own zoneinfo (time/tzdata), so the image does not
  /// need /usr/share/zoneinfo.
  bool embeds_tzdata = false;
  /// The binary links time.LoadLocation, so it loads time zones by name
  /// ("Europe/Berlin") at run time: they come from /usr/share/zoneinfo (or
  /// $ZONEINFO), and in an image without that directory LoadLocation returns an
  /// error, unless the binary also embeds tzdata (embeds_tzdata), its fallback.
  /// Only LoadLocation itself counts: time.LoadLocationFromTZData, which every
  /// binary using the local time zone links, reads the bytes it is given.
  /// The local zone is not covered either: Go reads it from /etc/localtime, or
  /// from zoneinfo when $TZ names a zone, and silently uses UTC when that fails.
  bool loads_zoneinfo = false;

  /// Value of the first build setting named `key`; empty when there is none.
  std::string setting(std::string_view key) const;
  /// Whether a dependency has the module path `path` (replaced or not).
  bool depends_on(std::string_view path) const;
};

/// Where an ELF file keeps what read_go_buildinfo() reads, found by the
/// inspector's one pass over the section headers; each absent when the file
/// has no such section (or no section headers at all).
struct GoSections {
  std::optional<elf::Shdr> buildinfo, pclntab, symtab;
};

/// The Go build info of `img`; nullopt when it is not a Go executable. Throws
/// std::runtime_error, without a path, for malformed build info.
std::optional<GoBuildInfo> read_go_buildinfo(const elf::Image& img, const GoSections& secs);

}  // namespace imgbuild
