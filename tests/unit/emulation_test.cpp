// Tests for when and how a RUN step of another platform runs: binfmt_misc
// entries as the kernel lists them and emulators, made by the test in
// folders of its own.
#include "build/emulation.hpp"

#include <catch2/catch.hpp>

#include <filesystem>
#include <string>

#include "base/fs.hpp"

using imgbuild::plan_foreign_run;
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

/// A folder of emulators holding an executable `name`.
void add_emulator(const std::filesystem::path& dir, const std::string& name) {
  imgbuild::write_file_atomic(dir / name, "#!/bin/false\n");
  std::filesystem::permissions(dir / name, std::filesystem::perms::owner_all);
}

}  // namespace

TEST_CASE("a RUN step of the machine's own platform always runs", "[emulation]") {
  CHECK(plan_foreign_run(kAmd64, kAmd64, false, "/nonexistent", "/nonexistent").refusal.empty());
  // The variant does not change the CPU's instruction set for this check.
  auto run = plan_foreign_run(Platform::parse("linux/arm64/v8"), kArm64, false, "/nonexistent", "/nonexistent");
  CHECK(run.refusal.empty());
  CHECK(!run.emulator);
}

TEST_CASE("a foreign RUN step is refused unless emulation is allowed", "[emulation]") {
  TempDir binfmt(std::filesystem::temp_directory_path(), "binfmt-");
  imgbuild::write_file_atomic(binfmt.path() / "qemu-aarch64", entry("enabled", "POCF"));
  CHECK(plan_foreign_run(kArm64, kAmd64, false, binfmt.path(), "/nonexistent").refusal ==
        "the image is linux/arm64 and this machine is linux/amd64: its programs run here only under emulation; "
        "cross-compile on the build platform instead (go.build does; the recipe reads it as platform.build, "
        "linux/amd64), or allow emulation with --emulate or :run(..., { emulate = true })");
  // Allowed, with the emulator registered as qemu-user-static does: it runs
  // through the machine's registration, registering nothing of its own.
  auto run = plan_foreign_run(kArm64, kAmd64, true, binfmt.path(), "/nonexistent");
  CHECK(run.refusal.empty());
  CHECK(!run.emulator);
}

TEST_CASE("without a usable registration on the machine, the step registers the emulator for itself", "[emulation]") {
  TempDir binfmt(std::filesystem::temp_directory_path(), "binfmt-");
  TempDir emulators(std::filesystem::temp_directory_path(), "emulators-");
  const std::string path = (binfmt.path() / "qemu-aarch64").string();
  auto plan = [&] { return plan_foreign_run(kArm64, kAmd64, true, binfmt.path(), emulators.path()); };
  const std::string qemu = (emulators.path() / "qemu-aarch64-static").string();
  CHECK(plan().refusal == "emulating linux/arm64 needs qemu-user-static: the machine registered none (" + path +
                              " does not exist) and " + qemu +
                              " does not exist: install Debian's qemu-user-static, or cross-compile on the build "
                              "platform instead (go.build does; the recipe reads it as platform.build, linux/amd64)");
  // Without F the kernel opens the interpreter's path at exec time, inside
  // the image's root: a file there (the image's own) would run instead.
  imgbuild::write_file_atomic(path, entry("enabled", "POC"));
  CHECK(plan().refusal.find(path + " lacks the F flag (the emulator would be looked for inside the image)") !=
        std::string::npos);
  imgbuild::write_file_atomic(path, entry("disabled", "POCF"));
  CHECK(plan().refusal.find(path + " is disabled") != std::string::npos);

  // The emulator installed: the step registers it itself, by the ELF header
  // of 64-bit little-endian aarch64 programs (e_machine 183), executables and
  // shared objects alike, the OS ABI byte ignored.
  add_emulator(emulators.path(), "qemu-aarch64-static");
  auto run = plan();
  CHECK(run.refusal.empty());
  REQUIRE(run.emulator);
  CHECK(run.emulator->program == qemu);
  CHECK(run.emulator->binfmt_match ==
        ":imgbuild-aarch64:M::"
        "\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00"
        "\\x02\\x00\\xb7\\x00:"
        "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff"
        "\\xfe\\xff\\xff\\xff:");
  // A big-endian CPU's header: class 64, data MSB, e_type and e_machine (22)
  // high byte first, the mask's e_type byte with them.
  add_emulator(emulators.path(), "qemu-s390x-static");
  auto s390x = plan_foreign_run(Platform::parse("linux/s390x"), kAmd64, true, binfmt.path(), emulators.path());
  REQUIRE(s390x.emulator);
  CHECK(s390x.emulator->binfmt_match.ends_with(
      "\\x02\\x02\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x16:"
      "\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff"
      "\\xff\\xfe\\xff\\xff:"));
  // Another CPU's emulator or entry does not stand in for this one's.
  imgbuild::write_file_atomic(binfmt.path() / "qemu-arm", entry("enabled", "POCF"));
  CHECK(plan_foreign_run(Platform::parse("linux/arm/v7"), kAmd64, true, binfmt.path(), "/nonexistent").refusal.empty());
  CHECK(plan_foreign_run(Platform::parse("linux/riscv64"), kAmd64, true, binfmt.path(), emulators.path())
            .refusal.find("qemu-riscv64-static does not exist") != std::string::npos);
  CHECK(plan_foreign_run(Platform::parse("linux/mips64le"), kAmd64, true, binfmt.path(), emulators.path())
            .refusal.starts_with("emulating linux/mips64le: qemu-user-static has no emulator for it"));
}
