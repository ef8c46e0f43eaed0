#pragma once
// Native ELF inspection: what a recipe needs to know about a service binary
// before putting it in an image (architecture, whether it needs a loader and
// libraries, and for Go binaries whether it needs CA certificates or tzdata).
// The ELF format itself is read by elf_image, the Go build info by go_buildinfo.
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "inspect/go_buildinfo.hpp"

namespace imgbuild {

/// What inspect_elf found in one file.
struct ElfInfo {
  /// How the program gets its code at run time, which decides whether the image
  /// needs a dynamic loader and shared libraries.
  enum class Linking {
    /// Needs nothing from the image: no loader, no libraries.
    Static,
    /// Position independent and relocates itself; still needs nothing.
    StaticPie,
    /// Needs the interpreter and the DT_NEEDED libraries in the image.
    Dynamic,
  };

  /// False for anything that does not start with the ELF magic; every other
  /// field is then left at its default.
  bool is_elf = false;
  /// 32 or 64.
  int elf_class = 0;
  /// Byte order of the file (and so of the target).
  bool big_endian = false;
  /// "x86_64", "aarch64", "arm", "riscv64", "s390x", "ppc64le", "ppc64", "386",
  /// "riscv32", "s390", or "unknown(N)" with N the e_machine number.
  std::string machine;
  /// See Linking.
  Linking linking = Linking::Static;
  /// PT_INTERP, e.g. "/lib64/ld-linux-x86-64.so.2"; empty when there is none.
  std::string interpreter;
  /// DT_NEEDED sonames in file order.
  std::vector<std::string> needed;
  /// No .symtab: the file has been stripped (or was linked with -s).
  bool stripped = false;
  /// Present for Go executables.
  std::optional<GoBuildInfo> go;
};

/// Inspects the file at `file` through a read-only mapping. Throws
/// std::runtime_error, prefixed with the path, naming what is wrong ("truncated
/// program header table", "section header offset past end of file", ...) for a
/// malformed ELF file or one that cannot be read; a non-ELF file returns
/// is_elf = false.
ElfInfo inspect_elf(const std::filesystem::path& file);

/// Same as inspect_elf, but errors name the file `shown` (its path in an
/// image) instead of its path on the build machine.
ElfInfo inspect_elf_named(const std::filesystem::path& file, const std::string& shown);

/// Same as inspect_elf, over bytes in memory (for tests and fuzzing); error
/// messages carry no path.
ElfInfo inspect_elf_bytes(std::span<const unsigned char> bytes);

/// The first bytes of every ELF file.
inline constexpr std::string_view kElfMagic =
    "\x7f"
    "ELF";
/// Programs are read into memory to be inspected; past this size only their
/// start is, which holds the ELF headers of any real program.
inline constexpr size_t kMaxProgramSize = size_t{512} << 20;

/// The bytes of a file that may be a program, gathered as they stream past
/// (ImageTree::stream_contents): kept while they can still be an ELF file,
/// up to kMaxProgramSize, and let go as soon as they cannot.
class ElfCandidate {
public:
  /// `size`: the bytes the file will have, when known (0 if not): an ELF
  /// file's are then kept in one allocation, not copied again each time the
  /// buffer doubles (most of the doctor's and the SBOM's time on a Go program).
  explicit ElfCandidate(uint64_t size = 0) : size_(size) {}
  void add(std::string_view bytes);
  /// What the bytes are, once the file is whole: nullopt for a file that is
  /// no ELF file. Throws std::runtime_error, without a path, for a malformed one.
  std::optional<ElfInfo> inspect() const;

private:
  uint64_t size_;
  std::string bytes_;
  bool possible_ = true;
};

/// The OCI platform architecture name for an ELF machine ("amd64", "arm64",
/// "arm", "riscv64", "s390x", "ppc64le", "ppc64", "386"). Throws
/// std::runtime_error for a non-ELF file or a machine OCI has no name for, so a
/// wrong platform is never written into an image config.
std::string oci_architecture(const ElfInfo& info);

/// The OCI architecture name when OCI has one, else the ELF machine name: what
/// an image's platform is compared with (a machine OCI cannot name never matches).
std::string architecture_or_machine(const ElfInfo& info);

}  // namespace imgbuild
