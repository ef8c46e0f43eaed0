#include "build/emulation.hpp"

#include <fstream>

namespace imgbuild {
namespace {

/// QEMU's name of an OCI architecture, as qemu-user-static names its
/// binfmt_misc entries ("qemu-aarch64").
std::string qemu_arch(const std::string& architecture) {
  if (architecture == "amd64") return "x86_64";
  if (architecture == "arm64") return "aarch64";
  if (architecture == "386") return "i386";
  return architecture;  // arm, ppc64le, s390x, riscv64, mips64el
}

}  // namespace

std::optional<std::string> foreign_run_refusal(const Platform& image, const Platform& build, bool emulate,
                                               const std::filesystem::path& binfmt_dir) {
  if (image.os == build.os && image.architecture == build.architecture) return std::nullopt;
  const std::string way_out =
      "cross-compile on the build platform instead (go.build does; the recipe reads it as "
      "platform.build, " +
      build.str() + ")";
  if (!emulate)
    return "the image is " + image.str() + " and this machine is " + build.str() +
           ": its programs run here only under emulation; " + way_out +
           ", or allow emulation with --emulate or :run(..., { emulate = true })";
  std::filesystem::path entry = binfmt_dir / ("qemu-" + qemu_arch(image.architecture));
  std::ifstream in(entry);
  std::string problem;
  if (!in) {
    problem = "no emulator is registered (" + entry.string() + " does not exist)";
  } else {
    bool enabled = false, fixed = false;
    std::string line;
    while (std::getline(in, line)) {
      if (line == "enabled") enabled = true;
      if (line.starts_with("flags: ")) fixed = line.find('F', 7) != std::string::npos;
    }
    if (!enabled)
      problem = entry.string() + " is disabled";
    else if (!fixed)
      problem = entry.string() + " lacks the F flag (the emulator would be looked for inside the image)";
  }
  if (problem.empty()) return std::nullopt;
  return "emulating " + image.str() + " needs binfmt_misc to run its programs through qemu-user-static, and " +
         problem + ": install Debian's qemu-user-static (it registers qemu-" + qemu_arch(image.architecture) +
         " with the F flag), or " + way_out;
}

}  // namespace imgbuild
