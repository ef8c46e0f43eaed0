#include "cli/registry_access.hpp"

#include <cstdlib>

#include "base/text.hpp"
#include "cli/report.hpp"
#include "registry/credentials.hpp"

namespace imgbuild::cli {

RegistryAccess::RegistryAccess(const Options& options)
    : insecure_(options.insecure), mirrors_(options.mirrors), debug_(options.debug) {
  if (const char* env = std::getenv("IMGBUILD_INSECURE_REGISTRIES"))
    for (auto& host : split(env, ','))
      if (!host.empty()) insecure_.insert(host);
  if (const char* env = std::getenv("IMGBUILD_REGISTRY_MIRRORS"))
    for (auto& spec : split(env, ','))
      if (!spec.empty()) add_mirror(mirrors_, spec);
}

RegistryClient& RegistryAccess::client() {
  // Stages pull in parallel: the first to ask makes the client.
  std::lock_guard lock(mutex_);
  if (!client_) {
    RegistryOptions options;
    options.insecure = insecure_;
    options.mirrors = mirrors_;
    // As Go programs (docker, skopeo) do: a CA bundle replacing the system's.
    if (const char* ca = std::getenv("SSL_CERT_FILE")) options.ca_file = ca;
    if (debug_) options.debug = [](const std::string& line) { report("registry: " + line); };
    client_ = std::make_unique<RegistryClient>(Credentials::load(), std::move(options));
  }
  return *client_;
}

}  // namespace imgbuild::cli
