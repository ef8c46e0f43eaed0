#pragma once
// Whether a RUN step of an image for another platform may run here: only when
// the user allowed emulation and the kernel runs that platform's programs
// through a registered binfmt_misc emulator (Debian's qemu-user-static).
#include <filesystem>
#include <optional>
#include <string>

#include "oci/image.hpp"

namespace imgbuild {

/// Where the kernel lists its binfmt_misc registrations.
inline constexpr const char* kBinfmtDir = "/proc/sys/fs/binfmt_misc";

/// Why a RUN step of an image for `image` cannot run on `build`, or nullopt
/// when it can: the same platform, or a foreign one that `emulate` allows and
/// `binfmt_dir` has an enabled qemu entry for, registered with the F flag (the
/// kernel opened the emulator when it was registered, so the sandbox needs no
/// emulator inside the image's root). The reason names both platforms and the
/// way out.
std::optional<std::string> foreign_run_refusal(const Platform& image, const Platform& build, bool emulate,
                                               const std::filesystem::path& binfmt_dir = kBinfmtDir);

}  // namespace imgbuild
