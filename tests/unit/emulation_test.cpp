// Tests for when a RUN step of another platform may run: binfmt_misc entries
// as the kernel lists them, made by the test in a folder of its own.
#include "build/emulation.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "base/fs.hpp"

using imgbuild::foreign_run_refusal;
using imgbuild::Platform;
using imgbuild::TempDir;

namespace {

const Platform kAmd64 = Platform::parse("linux/amd64");
const Platform kArm64 = Platform::parse("linux/arm64");

/// A binfmt_misc entry as /proc lists it.
std::string entry(const std::string& state, const std::string& flags) {
  return state + "\ninterpreter /usr/libexec/qemu-binfmt/aarch64-binfmt-P\nflags: " + flags +
         "\noffset 0\nmagic 7f454c460201010000000000000000000200b700\n";
}

}  // namespace

TEST_CASE("a RUN step of the machine's own platform always runs", "[emulation]") {
  CHECK(!foreign_run_refusal(kAmd64, kAmd64, false, "/nonexistent"));
  // The variant does not change the CPU's instruction set for this check.
  CHECK(!foreign_run_refusal(Platform::parse("linux/arm64/v8"), kArm64, false, "/nonexistent"));
}

TEST_CASE("a foreign RUN step is refused unless emulation is allowed", "[emulation]") {
  TempDir binfmt(std::filesystem::temp_directory_path(), "binfmt-");
  imgbuild::write_file_atomic(binfmt.path() / "qemu-aarch64", entry("enabled", "POCF"));
  auto refusal = foreign_run_refusal(kArm64, kAmd64, false, binfmt.path());
  REQUIRE(refusal);
  CHECK(*refusal ==
        "the image is linux/arm64 and this machine is linux/amd64: its programs run here only under emulation; "
        "cross-compile on the build platform instead (go.build does; the recipe reads it as platform.build, "
        "linux/amd64), or allow emulation with --emulate or :run(..., { emulate = true })");
  // Allowed, with the emulator registered as qemu-user-static does: it runs.
  CHECK(!foreign_run_refusal(kArm64, kAmd64, true, binfmt.path()));
}

TEST_CASE("emulation needs an enabled qemu entry with the F flag", "[emulation]") {
  TempDir binfmt(std::filesystem::temp_directory_path(), "binfmt-");
  const std::string path = (binfmt.path() / "qemu-aarch64").string();
  auto refusal = [&] { return foreign_run_refusal(kArm64, kAmd64, true, binfmt.path()).value_or(""); };
  CHECK(refusal() ==
        "emulating linux/arm64 needs binfmt_misc to run its programs through qemu-user-static, and "
        "no emulator is registered (" +
            path +
            " does not exist): install Debian's qemu-user-static (it registers qemu-aarch64 with the F "
            "flag), or cross-compile on the build platform instead (go.build does; the recipe reads it "
            "as platform.build, linux/amd64)");
  // Without F the kernel opens the interpreter's path at exec time, inside
  // the image's root: a file there (the image's own) would run instead.
  imgbuild::write_file_atomic(binfmt.path() / "qemu-aarch64", entry("enabled", "POC"));
  CHECK(refusal().find(path + " lacks the F flag (the emulator would be looked for inside the image)") !=
        std::string::npos);
  imgbuild::write_file_atomic(binfmt.path() / "qemu-aarch64", entry("disabled", "POCF"));
  CHECK(refusal().find(path + " is disabled") != std::string::npos);
  // Another CPU's entry does not stand in for this one's.
  std::filesystem::remove(binfmt.path() / "qemu-aarch64");
  imgbuild::write_file_atomic(binfmt.path() / "qemu-arm", entry("enabled", "POCF"));
  CHECK(refusal().find("no emulator is registered") != std::string::npos);
  CHECK(foreign_run_refusal(Platform::parse("linux/arm/v7"), kAmd64, true, binfmt.path()) == std::nullopt);
}
