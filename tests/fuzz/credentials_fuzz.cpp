// libFuzzer target for config.json parsing (Credentials::parse_config) and the
// lookups it answers from the file alone. Run it through tests/fuzz/run.sh.
//
// CredentialError is the documented answer to a malformed file. A Credentials
// from parse_config has an empty environment, so no PATH: a configured helper
// is "not found" and nothing is ever spawned. Anything else is a finding: a
// sanitizer report, another exception (nlohmann's own included), a message
// that does not say which file it is about.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "registry/credentials.hpp"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  imgbuild::Credentials credentials;
  try {
    credentials = imgbuild::Credentials::parse_config(text, "fuzz/config.json");
  } catch (const imgbuild::CredentialError& e) {
    check(std::string_view(e.what()).starts_with("fuzz/config.json: "));
    return 0;
  }
  for (const char* host : {"docker.io", "ghcr.io", "localhost:5000", "registry-1.docker.io"}) {
    try {
      (void)credentials.lookup(host);
    } catch (const imgbuild::CredentialError& e) {
      check(std::string_view(e.what()).ends_with(": not found in PATH"));
    }
  }
  return 0;
}
