// libFuzzer target for image reference parsing (Reference::parse). Run it
// through tests/fuzz/run.sh.
//
// ReferenceError is the documented answer to an invalid reference. Anything
// else is a finding: a sanitizer report, another exception, or an accepted
// reference that does not survive being printed and parsed again (the full
// and the familiar form must both name the same image, or a pull and a push
// of "the same" reference could go to different places).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "oci/reference.hpp"

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  imgbuild::Reference ref;
  try {
    ref = imgbuild::Reference::parse(text);
  } catch (const imgbuild::ReferenceError& e) {
    check(std::string_view(e.what()).starts_with("invalid image reference \""));
    return 0;
  }
  check(imgbuild::Reference::parse(ref.str()) == ref);
  check(imgbuild::Reference::parse(ref.familiar()) == ref);
  check(!ref.registry.empty() && !ref.repository.empty() && ref.repository.size() <= 255);
  check(ref.registry != "index.docker.io");
  check(!ref.tag.empty() || ref.digest.has_value());
  check(ref.manifest_ref() == (ref.digest ? ref.digest->str() : ref.tag));
  check(ref.name() == ref.registry + "/" + ref.repository);
  (void)imgbuild::is_loopback_host(ref.registry);
  return 0;
}
