#pragma once
// `imgbuild store verify`: the whole store checked against what it claims.
#include <cstddef>
#include <string>
#include <vector>

#include "store/layout.hpp"

namespace imgbuild {

/// What verify_store() found.
struct StoreCheck {
  size_t blobs = 0;                   ///< blobs read through and hashed
  size_t images = 0;                  ///< named images whose references were followed
  size_t layers_read = 0;             ///< layers decompressed to check their diff_id (not checked before)
  std::vector<std::string> problems;  ///< a line each: what is wrong, where, and what to do
};

/// Checks the whole of `store`: every blob read through against its name
/// (recorded stamps are not trusted here; a damaged blob is removed, as any
/// use of it would), then every named image: its manifest, config and layers
/// present and whole, and each layer's diff_id against its uncompressed
/// content (read once, when the store has no record of it yet). A pulled
/// base's layers may be absent (they come when a build needs them); a built
/// image's may not.
StoreCheck verify_store(const Layout& store);

}  // namespace imgbuild
