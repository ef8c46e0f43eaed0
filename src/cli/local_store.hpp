#pragma once
// The local store as the commands open it, and its images by name.
#include <optional>
#include <string>
#include <vector>

#include "store/layout.hpp"

namespace imgbuild::cli {

/// The local store ($XDG_DATA_HOME/imgbuild), made empty when missing.
Layout open_store();

/// A stored image by name: a built one, else a pulled base (recorded per
/// platform), the host's platform first.
std::optional<Descriptor> find_stored(const Layout& layout, const std::string& name);

/// How a user takes a damaged entry out of the store: "imgbuild rmi NAME",
/// by digest for an unnamed one, and by editing index.json for an entry
/// that is not even a descriptor.
std::string removal_hint(const Layout& store, const IndexEntry& entry);

/// Layout::load for a command that needs this image of the store: a
/// DamagedImage says how to remove it.
StoredImage load_stored(const Layout& store, const Descriptor& manifest);

/// The layers of the image `manifest` (not an index) that `store` does not
/// hold whole: a pulled base's that no build needed, never downloaded.
std::vector<LayerBlob> layers_missing(const Layout& store, const Descriptor& manifest);

/// An image a command names as NAME (the local store) or oci:DIR[:NAME].
struct NamedImage {
  Layout layout;
  Descriptor manifest;  ///< of `image`: for an index, the machine's platform's manifest, else its first
  StoredImage image;
  std::string name;                            ///< as the layout names it
  std::optional<Descriptor> index;             ///< the index named, for an image of several platforms
  std::vector<Descriptor> platform_manifests;  ///< the manifests the index lists
};

/// Opens the image `arg` names for `command`; UsageError for a DIR that is
/// no layout or holds several images and none is named, runtime_error when
/// there is no such image.
NamedImage open_named_image(const std::string& arg, const std::string& command);

}  // namespace imgbuild::cli
