// libFuzzer target for the .dockerignore parser and matcher (IgnoreRules). Run
// it through tests/fuzz/run.sh.
//
// The input is a .dockerignore file, then a NUL byte, then one context path per
// line. std::runtime_error("line N: ...") is the documented answer to a pattern
// Docker refuses. Anything else is a finding: a sanitizer report, another
// exception, a match that takes past -timeout (matching must stay linear), or a
// broken walk property: when a directory is excluded and must_descend says the
// walk may skip it, every path below it must be excluded too, or the context
// walk would silently drop a file the rules keep.
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "build/dockerignore.hpp"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

// The matcher's contract: relative, '/'-separated, no "." or ".." segment, no
// empty segment. The context walk only ever produces such paths.
bool clean_path(std::string_view path) {
  if (path.empty()) return false;
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view segment = path.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == "..") return false;
    start = end + 1;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view input(reinterpret_cast<const char*>(data), size);
  size_t nul = input.find('\0');
  std::string_view text = input.substr(0, nul);
  std::string_view paths = nul == std::string_view::npos ? std::string_view() : input.substr(nul + 1);

  imgbuild::IgnoreRules rules;
  try {
    rules = imgbuild::IgnoreRules::parse(text);
  } catch (const std::runtime_error& e) {
    check(std::string_view(e.what()).starts_with("line "));
    return 0;
  }

  while (!paths.empty()) {
    size_t eol = paths.find('\n');
    std::string_view path = paths.substr(0, eol);
    paths = eol == std::string_view::npos ? std::string_view() : paths.substr(eol + 1);
    if (!clean_path(path)) continue;

    bool excluded = rules.excluded(path);
    check(!rules.empty() || !excluded);
    for (size_t slash = path.find('/'); slash != std::string_view::npos; slash = path.find('/', slash + 1)) {
      std::string_view dir = path.substr(0, slash);
      if (rules.excluded(dir) && !rules.must_descend(dir)) check(excluded);
    }
  }
  return 0;
}
