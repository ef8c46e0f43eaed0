#pragma once
// The step cache shared through a registry (`--cache-to`, `--cache-from`).
// The format is a plain OCI image manifest, so any registry stores it: its
// config blob lists each step's key and result, its layers are those results'
// layers. Keys hold hashes of inputs, never a secret. The config also names
// the archive of each `:run` cache mount (store/run_cache.hpp) by the image
// path it is mounted at ("run_caches", absent when there is none: such a
// cache is byte for byte what versions before it exported); the archives are
// layers of the manifest too. Versions that do not know "run_caches" ignore it.
#include <map>
#include <vector>

#include "oci/reference.hpp"
#include "registry/registry.hpp"
#include "store/layout.hpp"
#include "store/step_cache.hpp"

namespace imgbuild {

/// The archives of `:run` cache mounts, by the image path they are mounted at.
using RunCacheBlobs = std::map<std::string, LayerBlob>;

/// What a registry cache holds.
struct RegistryCache {
  std::map<Digest, CachedStep> steps;
  RunCacheBlobs run_caches;
};

/// Writes the manifest and config of a cache holding `steps` and `run_caches`
/// into `store` (the layers and archives are already there, or in the
/// registry) and describes the manifest.
Descriptor store_cache_manifest(Layout& store, const std::vector<CachedStep>& steps,
                                const RunCacheBlobs& run_caches = {});

/// The steps and cache archives exported at `ref`, their blobs to be fetched
/// from it; empty when nothing is there yet. Anything else that is not a
/// readable cache is an error.
RegistryCache import_step_cache(RegistryClient& client, const Reference& ref);

}  // namespace imgbuild
