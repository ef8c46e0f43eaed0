#include "inspect/elf.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <system_error>

#include "base/fs.hpp"
#include "inspect/elf_image.hpp"
#include "inspect/go_buildinfo.hpp"

namespace imgbuild {

using namespace elf;

namespace {

std::string machine_name(std::uint16_t machine, bool is64, bool big_endian) {
  switch (machine) {
    case 3:
      return "386";
    case 21:
      return big_endian ? "ppc64" : "ppc64le";
    case 22:
      return is64 ? "s390x" : "s390";
    case 40:
      return "arm";
    case 62:
      return "x86_64";
    case 183:
      return "aarch64";
    case 243:
      return is64 ? "riscv64" : "riscv32";
    default:
      return "unknown(" + std::to_string(machine) + ")";
  }
}

std::vector<std::string> read_needed(const Image& img, const Phdr& dynamic) {
  Bytes dyn = img.segment(dynamic, "PT_DYNAMIC");
  const unsigned width = img.is64() ? 8 : 4;
  std::vector<std::uint64_t> offsets;
  std::optional<std::uint64_t> strtab, strsz;
  // Bounded by the segment size, and stops at DT_NULL like the loader does.
  for (std::uint64_t pos = 0; 2 * width <= dyn.size() - pos; pos += 2 * width) {
    std::uint64_t tag = img.u(dyn, pos, width);
    std::uint64_t val = img.u(dyn, pos + width, width);
    if (tag == kDtNull) break;
    if (tag == kDtNeeded) offsets.push_back(val);
    if (tag == kDtStrtab && !strtab) strtab = val;
    if (tag == kDtStrsz && !strsz) strsz = val;
  }
  if (offsets.empty()) return {};
  if (!strtab) fail("DT_NEEDED entries but no DT_STRTAB");
  std::optional<Bytes> table = img.at_vaddr(*strtab);
  if (!table) fail("DT_STRTAB address " + hex(*strtab) + " is not mapped by any PT_LOAD segment");
  if (strsz && *strsz < table->size()) table = table->first(*strsz);
  std::string_view strings = as_chars(*table);

  std::vector<std::string> needed;
  std::uint64_t total = 0;
  for (std::uint64_t off : offsets) {
    if (off >= strings.size()) fail("DT_NEEDED name offset " + hex(off) + " past end of string table");
    auto nul = strings.find('\0', off);
    if (nul == std::string_view::npos) fail("DT_NEEDED name is not NUL-terminated in the string table");
    // Many entries may name the same long string; copying each would let a small
    // file demand an allocation many times its size.
    total += nul - off;
    if (total > img.file().size()) fail("DT_NEEDED names add up to more than the file size");
    needed.emplace_back(strings.substr(off, nul - off));
  }
  return needed;
}

ElfInfo inspect(Bytes file) {
  ElfInfo info;
  if (file.size() < 4 || std::memcmp(file.data(),
                                     "\x7f"
                                     "ELF",
                                     4) != 0)
    return info;
  Image img(file);
  info.is_elf = true;
  info.elf_class = img.is64() ? 64 : 32;
  info.big_endian = img.big_endian();
  info.machine = machine_name(img.machine(), img.is64(), img.big_endian());

  bool has_interp = false;
  std::optional<Phdr> dynamic;
  for (std::uint64_t i = 0; i < img.phnum(); ++i) {
    Phdr p = img.phdr(i);
    if (p.type == kPtLoad) {
      img.segment(p, "PT_LOAD");
    } else if (p.type == kPtInterp && !has_interp) {
      std::string_view s = as_chars(img.segment(p, "PT_INTERP"));
      auto nul = s.find('\0');
      if (nul == std::string_view::npos) fail("PT_INTERP is not NUL-terminated");
      info.interpreter = s.substr(0, nul);
      has_interp = true;
    } else if (p.type == kPtDynamic && !dynamic) {
      dynamic = p;
    }
  }
  if (dynamic) info.needed = read_needed(img, *dynamic);
  // Static-pie is what remains of a dynamic object once nothing needs loading:
  // it has its own PT_DYNAMIC for self-relocation but no loader and no
  // libraries. An ET_EXEC with a library-free PT_DYNAMIC is loaded the same way
  // as a plain static one, so it counts as static.
  if (has_interp || !info.needed.empty()) {
    info.linking = ElfInfo::Linking::Dynamic;
  } else if (dynamic && img.type() == kEtDyn) {
    info.linking = ElfInfo::Linking::StaticPie;
  } else {
    info.linking = ElfInfo::Linking::Static;
  }

  GoSections secs;
  for (std::uint64_t i = 0; i < img.shnum(); ++i) {
    Shdr s = img.shdr(i);
    std::string_view name = img.section_name(s);
    if (s.type == kShtSymtab && !secs.symtab) secs.symtab = s;
    if (name == ".go.buildinfo" && !secs.buildinfo) secs.buildinfo = s;
    if (name.ends_with(".gopclntab") && !secs.pclntab) secs.pclntab = s;
  }
  info.stripped = !secs.symtab;
  info.go = read_go_buildinfo(img, secs);
  return info;
}

// Read-only private mapping of a whole file. If the file is truncated by someone
// else while mapped, reads past its new end raise SIGBUS; the inspector is meant
// for build inputs that are not being rewritten underneath it.
class Mapping {
public:
  explicit Mapping(const std::filesystem::path& path) {
    // O_NONBLOCK so that a FIFO given by mistake is rejected below instead of
    // blocking in open() waiting for a writer.
    Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
    if (fd.get() < 0) fail("cannot open: " + std::generic_category().message(errno));
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) fail("cannot stat: " + std::generic_category().message(errno));
    if (!S_ISREG(st.st_mode)) fail("not a regular file");
    if (st.st_size == 0) return;  // mmap rejects empty lengths
    if (static_cast<std::uint64_t>(st.st_size) > std::numeric_limits<std::size_t>::max()) {
      fail("file too large to map");
    }
    std::size_t size = static_cast<std::size_t>(st.st_size);
    void* addr = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd.get(), 0);
    if (addr == MAP_FAILED) fail("cannot map: " + std::generic_category().message(errno));
    addr_ = addr;
    size_ = size;
  }
  ~Mapping() {
    if (addr_) ::munmap(addr_, size_);
  }
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;

  Bytes bytes() const { return {static_cast<const unsigned char*>(addr_), size_}; }

private:
  void* addr_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace

ElfInfo inspect_elf_bytes(std::span<const unsigned char> bytes) { return inspect(bytes); }

void ElfCandidate::add(std::string_view bytes) {
  if (!possible_) return;
  if (bytes_.empty() && bytes.starts_with(kElfMagic)) bytes_.reserve(std::min<uint64_t>(size_, kMaxProgramSize));
  bytes_.append(bytes.substr(0, std::min(bytes.size(), kMaxProgramSize - bytes_.size())));
  if (!bytes_.starts_with(kElfMagic.substr(0, std::min(bytes_.size(), kElfMagic.size())))) {
    possible_ = false;
    std::string().swap(bytes_);
  }
}

std::optional<ElfInfo> ElfCandidate::inspect() const {
  if (!possible_ || !bytes_.starts_with(kElfMagic)) return std::nullopt;
  return inspect_elf_bytes({reinterpret_cast<const unsigned char*>(bytes_.data()), bytes_.size()});
}

ElfInfo inspect_elf(const std::filesystem::path& file) {
  try {
    Mapping mapping(file);
    return inspect(mapping.bytes());
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(file.string() + ": " + e.what());
  }
}

std::string oci_architecture(const ElfInfo& info) {
  if (!info.is_elf) throw std::runtime_error("not an ELF file: no OCI architecture");
  const std::string& m = info.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64") return "arm64";
  if (m == "arm" || m == "riscv64" || m == "s390x" || m == "ppc64le" || m == "ppc64" || m == "386") return m;
  throw std::runtime_error("no OCI architecture for ELF machine " + m);
}

std::string architecture_or_machine(const ElfInfo& info) {
  try {
    return oci_architecture(info);
  } catch (const std::runtime_error&) {
    return info.machine;
  }
}

ElfInfo inspect_elf_named(const std::filesystem::path& file, const std::string& shown) {
  try {
    return inspect_elf(file);
  } catch (const std::runtime_error& e) {
    std::string msg = e.what();
    std::string prefix = file.string() + ": ";
    if (msg.starts_with(prefix)) msg.erase(0, prefix.size());
    throw std::runtime_error(shown + ": " + msg);
  }
}

}  // namespace imgbuild
