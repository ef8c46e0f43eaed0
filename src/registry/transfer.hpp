#pragma once
// Whole images between a registry and the local store: pulling a base image
// for one platform, and pushing a stored image (blobs first, several at once,
// only what the registry lacks; the manifest last).
#include <functional>
#include <string>

#include "core/image.hpp"
#include "core/layout.hpp"
#include "registry/reference.hpp"
#include "registry/registry.hpp"

namespace imgbuild {

/// One line per event (resolved, downloaded, skipped), for progress output.
using TransferLog = std::function<void(const std::string&)>;
/// Bytes of one blob moved so far (TransferMeter turns these into events).
/// Called from the threads that move blobs, several at once.
using BlobProgress = std::function<void(const Digest& blob, uint64_t done, uint64_t total)>;

struct PulledImage {
  Descriptor manifest;  ///< the platform manifest, as stored
  Image image;          ///< to build on; annotated with the base's name and digest
  bool from_store = false;
};

/// The image `ref` names for `platform`, its manifest and config in `store`;
/// its layers come with fetch_layers(), when something needs their bytes.
/// Without `refresh`, a reference pulled before is used exactly as recorded
/// (no network); with it, the tag is resolved again. The store names the
/// result `ref.str()` for `platform`.
PulledImage pull_image(RegistryClient& client, Layout& store, const Reference& ref, const Platform& platform,
                       bool refresh, const TransferLog& log = {});

/// Downloads the `layers` the store lacks from `ref`'s repository (its mirrors
/// first), several at once, each verified against its digest and size.
void fetch_layers(RegistryClient& client, Layout& store, const Reference& ref, const std::vector<LayerBlob>& layers,
                  const TransferLog& log = {}, const BlobProgress& progress = {});

struct PushResult {
  Digest digest;           ///< of the manifest pushed
  size_t uploaded = 0;     ///< blobs sent
  size_t mounted = 0;      ///< blobs the registry mounted from another repository
  size_t present = 0;      ///< blobs the registry already had
  uint64_t bytes = 0;      ///< bytes uploaded
};

/// Pushes the stored image `manifest` to `dest`: every blob the repository
/// lacks (mounted from the image's base repository when it is on the same
/// registry), several at once, then the manifest.
PushResult push_image(RegistryClient& client, const Layout& store, const Descriptor& manifest, const Reference& dest,
                      const TransferLog& log = {}, const BlobProgress& progress = {});

}  // namespace imgbuild
