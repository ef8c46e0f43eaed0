#pragma once
// The one way a failed system call becomes an exception: the lowest header of
// the base floor, so that everything above (files, waits, processes) can use it.
#include <cerrno>
#include <string>
#include <system_error>

namespace imgbuild {

/// Throws std::system_error for the current errno, as "<what>: <strerror>".
[[noreturn]] inline void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace imgbuild
