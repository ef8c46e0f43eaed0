#pragma once
// Small string helpers shared by the engine and the command line.
#include <cstddef>
#include <cstdint>
#include <optional>
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

/// Every piece of `text` between `sep`s, empty ones included: "a::b" gives
/// a, "", b. For records whose fields count by position (/etc/passwd).
inline std::vector<std::string> fields(const std::string& text, char sep) {
  std::vector<std::string> out(1);
  for (char c : text)
    if (c == sep)
      out.emplace_back();
    else
      out.back() += c;
  return out;
}

/// The longest part of a text that quote() shows: a hostile or mistaken
/// multi-kilobyte input must not make a multi-kilobyte message.
inline constexpr size_t kMaxQuoted = 300;

/// `text` in double quotes for a message, whatever it holds: quotes and
/// backslashes escaped with a backslash, every byte outside printable ASCII
/// as \xNN (control characters, and UTF-8 too, so that no byte sequence,
/// valid or not, can forge a line, reorder the text around it or reach the
/// terminal); cut after kMaxQuoted bytes, with "..." after the closing quote.
std::string quote(std::string_view text);

/// `text` (a line a step or a registry wrote) made safe to print among
/// imgbuild's own lines, yet readable: printable ASCII, tabs and printable
/// UTF-8 (non-ASCII letters) kept as they are; every other byte shown as
/// \xNN: C0 and C1 controls (ESC, so no CSI or OSC sequence such as a
/// title or clipboard write reaches the terminal; BEL; backspace, carriage
/// return and newline, which would overwrite or forge a line), DEL, invalid
/// or overlong UTF-8, and the bidirectional controls that reorder what
/// follows them. The result passes through unchanged a second time.
std::string printable_text(std::string_view text);

/// Percent-encodes everything but RFC 3986's unreserved characters (letters,
/// digits, `-._~`): a URL's query value, a purl's parts.
std::string url_encode(std::string_view text);

/// Standard base64 (RFC 4648) with padding, as HTTP Basic, config.json's
/// "auth" and cosign's signatures use it.
std::string base64_encode(std::string_view bytes);

/// The bytes of standard base64 (RFC 4648, with padding), as Go's
/// StdEncoding reads it: line breaks are skipped. nullopt for anything else.
std::optional<std::string> base64_decode(std::string_view in);

/// "1.9 MB": sizes for people (decimal units, as registries and docker show them).
std::string human_size(uint64_t bytes);

}  // namespace imgbuild
