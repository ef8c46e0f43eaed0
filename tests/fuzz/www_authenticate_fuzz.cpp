// libFuzzer target for WWW-Authenticate parsing (parse_www_authenticate). Run
// it through tests/fuzz/run.sh.
//
// The parser never throws, so any exception is a finding, as is a sanitizer
// report or a run past -timeout (the header comes from the network: the work
// must stay linear). What it returns must be well-formed, and printing it back
// as a header must parse to the same challenges: a mismatch means two readings
// of one header, which is how a credential ends up sent to the wrong realm.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "registry/www_authenticate.hpp"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

bool is_lower_token(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if ((c >= 'A' && c <= 'Z') || c == ' ' || c == ',' || c == '=' || c == '"' ||
        static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) >= 0x7f)
      return false;
  return true;
}

std::string print(const std::vector<imgbuild::AuthChallenge>& challenges) {
  std::string out;
  for (const auto& c : challenges) {
    if (!out.empty()) out += ", ";
    out += c.scheme;
    if (!c.token68.empty()) out += " " + c.token68;
    bool first = true;
    for (const auto& [name, value] : c.params) {
      out += first ? " " : ",";
      first = false;
      out += name + "=\"";
      for (char ch : value) {
        if (ch == '"' || ch == '\\') out += '\\';
        out += ch;
      }
      out += '"';
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view header(reinterpret_cast<const char*>(data), size);
  auto challenges = imgbuild::parse_www_authenticate(header);
  size_t total = 0;
  for (const auto& c : challenges) {
    check(is_lower_token(c.scheme));
    check(c.token68.empty() || c.params.empty());
    total += c.scheme.size() + c.token68.size();
    for (const auto& [name, value] : c.params) {
      check(is_lower_token(name));
      total += name.size() + value.size();
    }
  }
  // Everything returned was read from the header.
  check(total <= size);
  check(imgbuild::parse_www_authenticate(print(challenges)) == challenges);
  return 0;
}
