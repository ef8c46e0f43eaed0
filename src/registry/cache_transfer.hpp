#pragma once
// The step cache shared through a registry (`--cache-to`, `--cache-from`).
// The format is a plain OCI image manifest, so any registry stores it: its
// config blob lists each step's key and result, its layers are those results'
// layers. Keys hold hashes of inputs, never a secret.
#include <map>
#include <vector>

#include "oci/reference.hpp"
#include "registry/registry.hpp"
#include "store/layout.hpp"
#include "store/step_cache.hpp"

namespace imgbuild {

/// Writes the manifest and config of a cache holding `steps` into `store`
/// (the layers are already there, or in the registry) and describes the manifest.
Descriptor store_cache_manifest(Layout& store, const std::vector<CachedStep>& steps);

/// The steps exported at `ref`, their layers to be fetched from it; empty when
/// nothing is there yet. Anything else that is not a readable cache is an error.
std::map<Digest, CachedStep> import_step_cache(RegistryClient& client, const Reference& ref);

}  // namespace imgbuild
