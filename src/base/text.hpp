#pragma once
// Small string helpers shared by the engine and the command line.
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace imgbuild {

/// The items of `range` (strings) with `sep` between them.
template <class Range>
std::string join(const Range& range, std::string_view sep) {
  std::string out;
  for (const auto& item : range) {
    if (!out.empty()) out += sep;
    out += item;
  }
  return out;
}

/// The non-empty pieces of `text` between `sep`s: "a::b:" gives a, b
/// (PATH-style lists, where an empty entry carries nothing).
inline std::vector<std::string> split(const std::string& text, char sep) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, sep);)
    if (!item.empty()) out.push_back(item);
  return out;
}

}  // namespace imgbuild
