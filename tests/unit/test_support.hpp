// Helpers shared by the unit tests: a scratch directory, whole-file reads and
// writes, directory listings and catching an expected error's message.
#pragma once

#include <stdlib.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace imgbuild::test {

/// A private directory, removed with its contents on destruction.
/// Made with mkdtemp, not imgbuild::TempDir: fs_test.cpp tests TempDir, so its
/// scratch space must not depend on the code under test.
/// The base is /tmp, not $TMPDIR, so layout_test.cpp knows /dev/shm is another file system.
struct ScratchDir {
  std::filesystem::path path;

  explicit ScratchDir(const std::filesystem::path& base = "/tmp", std::string_view prefix = "imgbuild-test-") {
    std::string tmpl = (base / (std::string(prefix) + "XXXXXX")).string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp " + tmpl + ": " + std::strerror(errno));
    path = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
};

/// `text` with every `from` replaced by `to`: expected documents written with
/// short placeholders for long digests, on several lines.
inline std::string replace_all(std::string text, std::string_view from, std::string_view to) {
  for (size_t at = text.find(from); at != std::string::npos; at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
  return text;
}

/// A missing file reads as "", so a test can assert on it rather than abort.
inline std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

/// Throws on failure: a silently missing fixture would make a test pass for the wrong reason.
inline void spit(const std::filesystem::path& p, const std::string& data) {
  std::ofstream out(p, std::ios::binary);
  out << data;
  if (!out) throw std::runtime_error("cannot write " + p.string());
}

/// Sorted, so a test can compare against a fixed list.
inline std::vector<std::string> names_in(const std::filesystem::path& dir) {
  std::vector<std::string> out;
  for (auto& de : std::filesystem::directory_iterator(dir)) out.push_back(de.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

/// This machine as uname(2) names it ("x86_64", "aarch64"): the ELF machine of
/// what its compilers build, which tests expect instead of a constant.
inline std::string host_machine() {
  utsname host{};
  if (::uname(&host) != 0) throw std::runtime_error(std::string("uname: ") + std::strerror(errno));
  return host.machine;
}

/// The message `f` throws as a std::runtime_error, or "" when it returns, so a
/// test can compare the whole message exactly.
template <class F>
std::string error_of(F&& f) {
  try {
    std::forward<F>(f)();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace imgbuild::test
