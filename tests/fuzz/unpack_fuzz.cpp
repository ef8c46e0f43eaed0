// libFuzzer target for the layer unpacker (apply_layer from memory). Run it
// through tests/fuzz/run.sh.
//
// Each input is applied as the second layer of an image whose first layer (a
// fixed base: folders, files, symlinks, a hardlink) gives whiteouts,
// replacements and links something to act on. It is applied twice, once with
// each resolver (openat2 and the component walk), into fresh roots in a private
// directory that is also the working directory meanwhile, so a path resolved
// against the wrong directory lands there too. Afterwards that directory must hold nothing
// but the roots, both roots must be the same tree, and remove_tree must leave
// it empty.
//
// An UnpackError is the documented answer to a malformed or hostile layer.
// Anything else is a finding: a trap from the checks below, a sanitizer report,
// another exception, a leak or a run past -timeout.
#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <span>
#include <string>
#include <system_error>
#include <vector>

#include "layer/unpack.hpp"

namespace fs = std::filesystem;

namespace {

void check(bool ok) {
  if (!ok) __builtin_trap();
}

la_ssize_t append(archive*, void* out, const void* data, size_t size) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(data), size);
  return static_cast<la_ssize_t>(size);
}

/// The first layer: each entry is {path, type, target or content}.
std::string base_layer() {
  struct Item {
    const char* path;
    char type;
    const char* data;
  };
  const Item items[] = {
      {"etc", 'd', ""},           {"etc/passwd", 'f', "root:x:0:0::/root:/bin/sh\n"},
      {"bin", 'd', ""},           {"bin/sh", 'f', "#!"},
      {"bin/ash", 'h', "bin/sh"}, {"usr/lib/libc.so", 'f', "ELF"},
      {"lib", 'l', "usr/lib"},    {"abs", 'l', "/etc"},
      {"up", 'l', "../../.."},    {"d/sub/f", 'f', "f"},
  };
  std::string out;
  std::unique_ptr<archive, decltype(&archive_write_free)> a(archive_write_new(), &archive_write_free);
  archive_write_set_format_pax(a.get());
  archive_write_open2(a.get(), &out, nullptr, append, nullptr, nullptr);
  for (const Item& item : items) {
    std::unique_ptr<archive_entry, decltype(&archive_entry_free)> e(archive_entry_new(), &archive_entry_free);
    archive_entry_copy_pathname(e.get(), item.path);
    archive_entry_set_perm(e.get(), 0755);
    std::string data = item.data;
    switch (item.type) {
      case 'd':
        archive_entry_set_filetype(e.get(), AE_IFDIR);
        break;
      case 'l':
        archive_entry_set_filetype(e.get(), AE_IFLNK);
        archive_entry_copy_symlink(e.get(), item.data);
        break;
      case 'h':
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_copy_hardlink(e.get(), item.data);
        break;
      default:
        archive_entry_set_filetype(e.get(), AE_IFREG);
        archive_entry_set_size(e.get(), static_cast<la_int64_t>(data.size()));
    }
    archive_entry_set_mtime(e.get(), 1700000000, 0);
    check(archive_write_header(a.get(), e.get()) == ARCHIVE_OK);
    if (item.type == 'f') archive_write_data(a.get(), data.data(), data.size());
  }
  check(archive_write_close(a.get()) == ARCHIVE_OK);
  return out;
}

struct Workspace {
  fs::path dir;
  std::string base = base_layer();

  Workspace() {
    // tmpfs when there is one: every run creates and removes two trees, which
    // costs a disk file system's journal a hundred times more.
    std::string tmpl =
        (fs::is_directory("/dev/shm") ? "/dev/shm" : "/tmp") + std::string("/imgbuild-unpack-fuzz-XXXXXX");
    check(::mkdtemp(tmpl.data()) != nullptr);
    dir = tmpl;
  }
  ~Workspace() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
};

Workspace& workspace() {
  static Workspace w;
  return w;
}

std::span<const unsigned char> bytes(const std::string& s) {
  return {reinterpret_cast<const unsigned char*>(s.data()), s.size()};
}

/// Applies base and input onto a fresh `root`; returns the input's error, if any.
std::string unpack(const fs::path& root, std::span<const unsigned char> input, bool use_openat2) {
  imgbuild::UnpackOptions options;
  options.use_openat2 = use_openat2;
  check(::mkdir(root.c_str(), 0755) == 0);
  imgbuild::apply_layer(root, bytes(workspace().base), "layer 1", options);
  try {
    imgbuild::apply_layer(root, input, "layer 2", options);
  } catch (const imgbuild::UnpackError& e) {
    return e.what();
  }
  return "";
}

/// What each resolver must agree on: every path with its type, mode, owner,
/// link count, symlink target and file contents. Devices and fifos are never
/// opened.
std::vector<std::string> snapshot(const fs::path& root) {
  std::vector<std::string> out;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    const fs::path& p = it->path();
    struct stat st;
    check(::lstat(p.c_str(), &st) == 0);
    std::string line = fs::relative(p, root).string() + " " + std::to_string(st.st_mode) + " " +
                       std::to_string(st.st_uid) + ":" + std::to_string(st.st_gid);
    if (S_ISLNK(st.st_mode)) line += " -> " + fs::read_symlink(p).string();
    if (S_ISREG(st.st_mode)) {
      // The start is enough, and a sparse file may be huge.
      std::ifstream in(p, std::ios::binary);
      std::string head(4096, '\0');
      in.read(head.data(), static_cast<std::streamsize>(head.size()));
      head.resize(static_cast<size_t>(in.gcount()));
      line += " " + std::to_string(st.st_nlink) + " " + std::to_string(st.st_size) + " " + head;
    }
    out.push_back(std::move(line));
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  Workspace& w = workspace();
  std::span<const unsigned char> input(data, size);
  // Only during the run: libFuzzer's own relative paths (corpus, artifacts)
  // are resolved against the directory it was started in.
  fs::path started_in = fs::current_path();
  fs::current_path(w.dir);
  fs::path kernel = w.dir / "openat2", walked = w.dir / "walk";
  std::string kernel_error = unpack(kernel, input, true);
  std::string walk_error = unpack(walked, input, false);

  std::vector<fs::path> present;
  for (const auto& de : fs::directory_iterator(w.dir)) present.push_back(de.path().filename());
  std::sort(present.begin(), present.end());
  check(present == std::vector<fs::path>{"openat2", "walk"});
  check(kernel_error == walk_error);
  check(snapshot(kernel) == snapshot(walked));

  imgbuild::remove_tree(kernel);
  imgbuild::remove_tree(walked);
  check(fs::is_empty(w.dir));
  fs::current_path(started_in);
  return 0;
}
