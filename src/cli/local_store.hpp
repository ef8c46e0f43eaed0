#pragma once
// The local store as the commands open it, and its images by name.
#include <optional>
#include <string>

#include "store/layout.hpp"

namespace imgbuild::cli {

/// The local store ($XDG_DATA_HOME/imgbuild), made empty when missing.
Layout open_store();

/// A stored image by name: a built one, else a pulled base (recorded per
/// platform), the host's platform first.
std::optional<Descriptor> find_stored(const Layout& layout, const std::string& name);

}  // namespace imgbuild::cli
