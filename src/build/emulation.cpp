#include "build/emulation.hpp"

#include <unistd.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>

namespace imgbuild {
namespace {

/// What tells one CPU's programs from another's in an ELF header, and QEMU's
/// name of that CPU.
struct ElfCpu {
  const char* architecture;  ///< OCI's name
  const char* qemu;          ///< QEMU's, as qemu-user-static names its emulators and entries
  std::uint16_t machine;     ///< e_machine
  bool is64;
  bool big_endian;
};

constexpr std::array kCpus = {
    ElfCpu{"amd64", "x86_64", 62, true, false},     ElfCpu{"arm64", "aarch64", 183, true, false},
    ElfCpu{"arm", "arm", 40, false, false},         ElfCpu{"386", "i386", 3, false, false},
    ElfCpu{"ppc64le", "ppc64le", 21, true, false},  ElfCpu{"s390x", "s390x", 22, true, true},
    ElfCpu{"riscv64", "riscv64", 243, true, false},
};

std::optional<ElfCpu> cpu_of(const std::string& architecture) {
  for (const ElfCpu& cpu : kCpus)
    if (architecture == cpu.architecture) return cpu;
  return std::nullopt;
}

/// The start of the rule binfmt_misc registers for `cpu`'s programs: the
/// first 20 bytes of an ELF file (identification, e_type, e_machine) under a
/// mask that ignores the OS ABI byte and lets e_type be ET_EXEC or ET_DYN
/// (static PIE and the dynamic loader).
std::string binfmt_match(const ElfCpu& cpu) {
  std::array<unsigned char, 20> magic{0x7f,
                                      'E',
                                      'L',
                                      'F',
                                      static_cast<unsigned char>(cpu.is64 ? 2 : 1),
                                      static_cast<unsigned char>(cpu.big_endian ? 2 : 1),
                                      1};
  std::array<unsigned char, 20> mask{};
  mask.fill(0xff);
  mask[7] = 0;  // EI_OSABI
  auto put16 = [&](size_t at, std::uint16_t v) {
    magic[at + (cpu.big_endian ? 1 : 0)] = static_cast<unsigned char>(v & 0xff);
    magic[at + (cpu.big_endian ? 0 : 1)] = static_cast<unsigned char>(v >> 8);
  };
  put16(16, 2);  // ET_EXEC
  put16(18, cpu.machine);
  mask[16 + (cpu.big_endian ? 1 : 0)] = 0xfe;  // ET_EXEC (2) or ET_DYN (3)
  auto escaped = [](const std::array<unsigned char, 20>& bytes) {
    std::string out;
    char hex[5];
    for (unsigned char b : bytes) {
      std::snprintf(hex, sizeof hex, "\\x%02x", b);
      out += hex;
    }
    return out;
  };
  return std::string(":imgbuild-") + cpu.qemu + ":M::" + escaped(magic) + ":" + escaped(mask) + ":";
}

/// Why the machine's registration of `entry` cannot serve; empty when it can.
std::string registration_problem(const std::filesystem::path& entry) {
  std::ifstream in(entry);
  if (!in) return "the machine registered none (" + entry.string() + " does not exist)";
  bool enabled = false, fixed = false;
  std::string line;
  while (std::getline(in, line)) {
    if (line == "enabled") enabled = true;
    if (line.starts_with("flags: ")) fixed = line.find('F', 7) != std::string::npos;
  }
  if (!enabled) return entry.string() + " is disabled";
  // Without F the kernel opens the interpreter's path at exec time, inside
  // the image's root: a file there (the image's own) would run instead.
  if (!fixed) return entry.string() + " lacks the F flag (the emulator would be looked for inside the image)";
  return "";
}

}  // namespace

ForeignRun plan_foreign_run(const Platform& image, const Platform& build, bool emulate,
                            const std::filesystem::path& binfmt_dir, const std::filesystem::path& emulators) {
  if (image.os == build.os && image.architecture == build.architecture) return {};
  const std::string way_out =
      "cross-compile on the build platform instead (go.build does; the recipe reads it as "
      "platform.build, " +
      build.str() + ")";
  if (!emulate)
    return {"the image is " + image.str() + " and this machine is " + build.str() +
                ": its programs run here only under emulation; " + way_out +
                ", or allow emulation with --emulate or :run(..., { emulate = true })",
            std::nullopt};
  std::optional<ElfCpu> cpu = cpu_of(image.architecture);
  if (!cpu) return {"emulating " + image.str() + ": qemu-user-static has no emulator for it; " + way_out, std::nullopt};
  std::string problem = registration_problem(binfmt_dir / (std::string("qemu-") + cpu->qemu));
  if (problem.empty()) return {};
  std::filesystem::path emulator = emulators / (std::string("qemu-") + cpu->qemu + "-static");
  if (::access(emulator.c_str(), X_OK) == 0) return {"", StepEmulator{binfmt_match(*cpu), emulator}};
  return {"emulating " + image.str() + " needs qemu-user-static: " + problem + " and " + emulator.string() +
              " does not exist: install Debian's qemu-user-static, or " + way_out,
          std::nullopt};
}

}  // namespace imgbuild
