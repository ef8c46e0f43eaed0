#pragma once
// The registry client as the commands share it: made from the registry
// options and their environment variables, on first use.
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "cli/options.hpp"
#include "registry/registry.hpp"

namespace imgbuild::cli {

/// The registry client, made on first use: a build without `from` or `push`
/// reads no credentials and opens no connection.
class RegistryAccess {
public:
  /// Takes --insecure-registry, --registry-mirror and --debug from `options`
  /// and adds IMGBUILD_INSECURE_REGISTRIES and IMGBUILD_REGISTRY_MIRRORS; reads
  /// the limits of IMGBUILD_REGISTRY_TIMEOUT, IMGBUILD_REGISTRY_TRANSFER_TIMEOUT,
  /// IMGBUILD_REGISTRY_MIN_RATE and IMGBUILD_ALLOW_PRIVATE_REDIRECTS. A
  /// malformed value is a UsageError.
  explicit RegistryAccess(const Options& options);

  /// The client; safe to call from any thread.
  RegistryClient& client();
  /// A client of its own that uses `credentials` instead of the user's
  /// (`imgbuild login` checks a credential before saving it).
  std::unique_ptr<RegistryClient> client_with(Credentials credentials) const;

private:
  RegistryOptions registry_options() const;

  std::set<std::string> insecure_;
  std::map<std::string, std::vector<std::string>> mirrors_;
  bool debug_;
  RegistryOptions limits_;  ///< deadlines, rates, redirects: what the variables set
  std::mutex mutex_;
  std::unique_ptr<RegistryClient> client_;
};

}  // namespace imgbuild::cli
