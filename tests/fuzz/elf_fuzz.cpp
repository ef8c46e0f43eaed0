// libFuzzer target for the ELF and Go build-info parser (inspect_elf_bytes) and
// the two reports built from its result. Run it through tests/fuzz/run.sh.
//
// A std::runtime_error is the documented answer to a malformed file, so it is
// an expected outcome. Anything else is a finding: a sanitizer report (out of
// bounds, use after free, undefined behaviour, leak), another exception (it
// escapes, std::terminate aborts), an allocation past -rss_limit_mb or a run
// past -timeout.
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>

#include "inspect/elf.hpp"
#include "inspect/elf_report.hpp"

namespace {

// Properties that hold for every result; a violation aborts, which libFuzzer
// reports with the input that caused it.
void check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  imgbuild::ElfInfo info;
  try {
    info = imgbuild::inspect_elf_bytes(std::span<const unsigned char>(data, size));
  } catch (const std::runtime_error&) {
    return 0;
  }
  if (!info.is_elf) {
    check(info.machine.empty() && !info.go && info.needed.empty() && info.interpreter.empty());
    return 0;
  }
  check(info.elf_class == 32 || info.elf_class == 64);
  // Every string comes from the file, so none can be longer than it.
  check(info.interpreter.size() <= size);
  for (const auto& n : info.needed) check(n.size() <= size);
  check(info.linking == imgbuild::ElfInfo::Linking::Dynamic || info.interpreter.empty());

  // The reports must accept whatever the parser accepted: dump() throws on
  // invalid UTF-8, so this also checks that elf_json cleaned every string.
  (void)imgbuild::elf_json(info).dump();
  (void)imgbuild::elf_text_report("fuzz", info);
  return 0;
}
