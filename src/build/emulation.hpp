#pragma once
// Whether and how a RUN step of an image for another platform runs here: only
// when the user allowed emulation, through Debian's qemu-user-static, either
// as the machine registered it with binfmt_misc or, where the machine has no
// registration, registered by the step for itself in a binfmt_misc of its own
// user namespace (Linux 6.7 and later), so nothing machine-wide changes.
#include <filesystem>
#include <optional>
#include <string>

#include "oci/image.hpp"
#include "sandbox/sandbox.hpp"

namespace imgbuild {

/// Where the kernel lists the machine's binfmt_misc registrations.
inline constexpr const char* kBinfmtDir = "/proc/sys/fs/binfmt_misc";
/// Where Debian's qemu-user-static installs its emulators (qemu-aarch64-static).
inline constexpr const char* kEmulatorDir = "/usr/bin";

/// How a RUN step of an image for one platform runs on a machine of another.
struct ForeignRun {
  /// Why it cannot run here, naming both platforms and the way out; empty
  /// when it can.
  std::string refusal;
  /// The emulator the step registers for itself, by the ELF header of the
  /// image's CPU: nullopt when the platform is the machine's or the
  /// machine's registration serves.
  std::optional<StepEmulator> emulator;
};

/// How a RUN step of an image for `image` runs on `build`: at once on the same
/// CPU; for a foreign one, only when `emulate` allows it, through the
/// machine's enabled qemu entry with the F flag in `binfmt_dir`, else through
/// `emulators`/qemu-CPU-static registered by the step itself.
ForeignRun plan_foreign_run(const Platform& image, const Platform& build, bool emulate,
                            const std::filesystem::path& binfmt_dir = kBinfmtDir,
                            const std::filesystem::path& emulators = kEmulatorDir);

}  // namespace imgbuild
