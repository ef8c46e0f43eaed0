#pragma once
// Internal to src/sandbox/: what running as root or not changes for a step.
#include <unistd.h>

namespace imgbuild {

/// Without root the step runs in a user namespace, whose root cannot write
/// trusted.* xattrs: overlay then keeps its marks in user.overlay.* (its
/// userxattr option), and the snapshot copy its own in user.imgbuild.*.
inline bool rootless() { return ::geteuid() != 0; }

}  // namespace imgbuild
