#include "cli/url_fetch.hpp"

#include <fcntl.h>

#include <chrono>
#include <cstdlib>
#include <stdexcept>

#include "base/errors.hpp"
#include "base/fs.hpp"
#include "registry/http.hpp"

namespace imgbuild::cli {

namespace {

/// Whether `url` may be fetched: https anywhere, http only from this machine.
bool allowed(const std::string& url) {
  const std::string origin = url_origin(url);
  if (origin.starts_with("https://")) return true;
  if (!origin.starts_with("http://")) return false;
  std::string host = origin.substr(7);
  host = host.starts_with("[") ? host.substr(0, host.find(']') + 1) : host.substr(0, host.find(':'));
  return host == "localhost" || host == "[::1]" || host.starts_with("127.");
}

}  // namespace

void fetch_url(const std::string& url, const std::filesystem::path& to) {
  constexpr int kMaxRedirects = 5;
  Http http;
  std::string at = url;
  for (int redirects = 0;; ++redirects) {
    if (!allowed(at))
      throw std::runtime_error(redact_url(at) +
                               ": only https URLs are fetched (http only from this machine's loopback)");
    Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!out) throw_errno("cannot create " + to.string());
    HttpRequest request;
    request.url = at;
    if (const char* ca = std::getenv("SSL_CERT_FILE")) request.ca_file = ca;
    // A server that stops sending is given up on, never waited for forever.
    request.min_rate = {1024, std::chrono::seconds(30)};
    request.sink = [&](const char* data, size_t size) { write_all(out.get(), data, size, to); };
    HttpResponse response;
    try {
      response = http.perform(request);
    } catch (const HttpError& e) {
      throw std::runtime_error(redact_url(at) + ": " + e.what());
    }
    if (response.status >= 200 && response.status < 300) return;
    auto location = response.header("location");
    if (response.status >= 300 && response.status < 400 && location && redirects < kMaxRedirects) {
      at = resolve_url(at, *location);
      continue;
    }
    throw std::runtime_error(redact_url(at) + ": the server answered HTTP " + std::to_string(response.status));
  }
}

}  // namespace imgbuild::cli
