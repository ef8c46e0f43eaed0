#pragma once
// The network half of `:add("https://...", dst, { checksum = ... })`: the
// builder knows no network and is handed this as BuildSettings::fetch_url.
#include <filesystem>
#include <string>

namespace imgbuild::cli {

/// Downloads `url` into the new file `to`: https with the certificate
/// verified (SSL_CERT_FILE names other CAs, as for registries), or http only
/// from a loopback host; redirects followed by the same rule, five at most.
/// Throws std::runtime_error naming the URL (its query left out) and why.
void fetch_url(const std::string& url, const std::filesystem::path& to);

}  // namespace imgbuild::cli
