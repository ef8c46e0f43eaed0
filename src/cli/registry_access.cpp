#include "cli/registry_access.hpp"

#include <cstdlib>

#include "base/text.hpp"
#include "build/builder.hpp"
#include "cli/report.hpp"
#include "registry/credentials.hpp"

namespace imgbuild::cli {

namespace {

/// A duration variable ("90s", "5m"), or nullopt when unset.
std::optional<std::chrono::milliseconds> duration_variable(const char* name) {
  const char* value = std::getenv(name);
  if (!value) return std::nullopt;
  auto d = parse_duration(value);
  if (!d || d->count() == 0)
    throw UsageError(std::string(name) + "='" + value + "': expected a duration such as 90s, 5m or 1h");
  return *d;
}

/// The words of a variable between `separator`s, empty ones left out.
std::vector<std::string> list_variable(const char* name, char separator = ',') {
  std::vector<std::string> words;
  if (const char* value = std::getenv(name))
    for (auto& word : split(value, separator))
      if (!word.empty()) words.push_back(word);
  return words;
}

}  // namespace

RegistryAccess::RegistryAccess(const Options& options)
    : insecure_(options.insecure), mirrors_(options.mirrors), debug_(options.debug) {
  for (auto& host : list_variable("IMGBUILD_INSECURE_REGISTRIES")) insecure_.insert(host);
  for (auto& spec : list_variable("IMGBUILD_REGISTRY_MIRRORS")) add_mirror(mirrors_, spec);
  if (auto timeout = duration_variable("IMGBUILD_REGISTRY_TIMEOUT")) limits_.request_timeout = *timeout;
  limits_.transfer_timeout = duration_variable("IMGBUILD_REGISTRY_TRANSFER_TIMEOUT");
  if (const char* rate = std::getenv("IMGBUILD_REGISTRY_MIN_RATE")) {
    std::string text = rate;
    size_t slash = text.find('/');
    std::optional<uint64_t> bytes = parse_size(text.substr(0, slash));
    std::optional<std::chrono::seconds> window =
        slash == std::string::npos ? std::nullopt : parse_duration(text.substr(slash + 1));
    if (!bytes || !window || window->count() == 0)
      throw UsageError("IMGBUILD_REGISTRY_MIN_RATE='" + text +
                       "': expected SIZE/DURATION, such as 512KB/60s (0/60s turns it off)");
    limits_.min_rate = {*bytes, *window};
  }
  if (const char* allow = std::getenv("IMGBUILD_ALLOW_PRIVATE_REDIRECTS")) {
    if (std::string(allow) != "0" && std::string(allow) != "1")
      throw UsageError(std::string("IMGBUILD_ALLOW_PRIVATE_REDIRECTS='") + allow + "': expected 1 or 0");
    limits_.allow_private_redirects = std::string(allow) == "1";
  }
  // Test hooks (tests/e2e/hostile_registry.sh): loopback servers playing
  // public registries and the internal hosts they point at.
  limits_.resolve = list_variable("IMGBUILD_TESTING_RESOLVE", ' ');  // an entry may list addresses with ','
  for (auto& address : list_variable("IMGBUILD_TESTING_PUBLIC_ADDRESSES")) limits_.public_for_testing.insert(address);
}

RegistryOptions RegistryAccess::registry_options() const {
  RegistryOptions options = limits_;
  options.insecure = insecure_;
  options.mirrors = mirrors_;
  // As Go programs (docker, skopeo) do: a CA bundle replacing the system's.
  if (const char* ca = std::getenv("SSL_CERT_FILE")) options.ca_file = ca;
  if (debug_) options.debug = [](const std::string& line) { report("registry: " + line); };
  return options;
}

RegistryClient& RegistryAccess::client() {
  // Stages pull in parallel: the first to ask makes the client.
  std::lock_guard lock(mutex_);
  if (!client_) client_ = client_with(Credentials::load());
  return *client_;
}

std::unique_ptr<RegistryClient> RegistryAccess::client_with(Credentials credentials) const {
  return std::make_unique<RegistryClient>(std::move(credentials), registry_options());
}

}  // namespace imgbuild::cli
