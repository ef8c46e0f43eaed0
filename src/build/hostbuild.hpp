#pragma once
// Files built by a command on the host (the Go toolchain behind `go.build`),
// cached by a key over everything the command reads.
#include <filesystem>
#include <string>

#include "build/graph.hpp"
#include "oci/image.hpp"

namespace imgbuild {

class BuildContext;

/// Where a host build left its file, and whether it came from the cache.
struct HostBuildResult {
  std::filesystem::path file;  ///< empty after a lookup that found nothing
  bool cached = false;
};

/// Builds `op` for `platform`, or reuses the cached result. The key covers the
/// command, its environment (including the host variables named by
/// op.host_env), the fingerprint of every tool and the contents of every input
/// file, so a change to any of them rebuilds. Errors carry the command's last
/// lines of output. With `lookup_only` nothing runs: the result is the cached
/// file or none (what `imgbuild plan` asks).
HostBuildResult run_host_build(const HostBuildOp& op, const BuildContext& context, const Platform& platform,
                               const std::filesystem::path& cache_dir, bool use_cache, bool lookup_only = false);

/// Replaces ${TARGETOS}, ${TARGETARCH}, ${TARGETVARIANT} with `platform`'s parts.
std::string substitute_platform(const std::string& text, const Platform& platform);

}  // namespace imgbuild
