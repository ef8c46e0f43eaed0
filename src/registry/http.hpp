#pragma once
// One HTTP exchange over libcurl, with nothing implicit: no redirect is
// followed, no credential is added and no retry happens here. The registry
// transport decides each of those itself, because each is a security decision
// (where credentials go) or a correctness one (what a retry must restart).
#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace imgbuild {

/// A transfer that failed below HTTP (refused, reset, TLS, timeout), or a
/// response body larger than the caller allowed. `retryable` says whether
/// trying again could help.
class HttpError : public std::runtime_error {
public:
  /// Tls: the handshake failed (the server may not speak TLS at all);
  /// Certificate: it spoke TLS with a certificate that does not verify.
  /// Stalled: fewer bytes moved in a window than HttpRequest::min_rate asks;
  /// Deadline: HttpRequest::deadline passed; Refused: HttpRequest::check_address
  /// refused the address connected to, before anything was sent.
  enum class Kind { Connect, Tls, Certificate, Transfer, TooLarge, Aborted, Stalled, Deadline, Refused };
  HttpError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }
  bool retryable() const { return kind_ == Kind::Connect || kind_ == Kind::Transfer || kind_ == Kind::Stalled; }

private:
  Kind kind_;
};

struct HttpResponse;

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::string> headers;  ///< "Name: value"
  /// Request body: `body_size` bytes produced by `read` (called until it has
  /// given them all), or none when `read` is empty.
  std::function<size_t(char* buf, size_t max)> read;
  uint64_t body_size = 0;
  /// Called once the status and headers are in, before any body byte; a
  /// throw aborts the transfer and is rethrown.
  std::function<void(long status, const HttpResponse& head)> on_head;
  /// A 2xx response body: handed to `sink` as it arrives (a throw aborts the
  /// transfer and is rethrown), else collected into HttpResponse::body up to
  /// `max_body` bytes (more is HttpError::TooLarge). Other responses' bodies
  /// are only ever kept, up to 64 KiB, for their error message.
  std::function<void(const char* data, size_t size)> sink;
  size_t max_body = 4 << 20;
  bool verify_tls = true;
  /// CA certificates to verify the server with instead of the system's.
  std::string ca_file;
  /// When the whole exchange must have ended (HttpError::Kind::Deadline).
  std::optional<std::chrono::steady_clock::time_point> deadline;
  /// The slowest a transfer may go: at least `bytes` (up and down together, or
  /// what is left of the announced sizes when that is less) in every `window`,
  /// else it is cut (HttpError::Kind::Stalled). Off when `bytes` is 0.
  struct MinRate {
    uint64_t bytes = 0;
    std::chrono::milliseconds window{0};
  } min_rate;
  /// Told the IP address each connection reached (a new one or one reused),
  /// before anything is sent on it; returns why it must not be used, or
  /// nullopt (HttpError::Kind::Refused).
  std::function<std::optional<std::string>(const std::string& address)> check_address;
  /// Name resolution overrides, "host:port:address" as curl's --resolve takes
  /// them: tests reach hosts by name without DNS.
  std::vector<std::string> resolve;
};

struct HttpResponse {
  long status = 0;
  std::string address;                                       ///< the IP address answered from
  std::vector<std::pair<std::string, std::string>> headers;  ///< names lowercased, in order
  std::string body;

  /// The first header named `name` (lowercase).
  std::optional<std::string> header(std::string_view name) const;
};

/// Performs requests on a pool of curl handles, so concurrent callers each
/// reuse their connections. Thread-safe.
class Http {
public:
  Http();
  ~Http();
  Http(const Http&) = delete;
  Http& operator=(const Http&) = delete;

  HttpResponse perform(const HttpRequest& request);

private:
  void* acquire();
  void release(void* handle);

  std::mutex mutex_;
  std::vector<void*> idle_;
};

/// The URL with its query string and userinfo removed: what may be shown to
/// people (signed URLs carry their secret in the query).
std::string redact_url(std::string_view url);

/// "scheme://host[:port]" of an absolute URL, lowercased; empty if not absolute.
std::string url_origin(std::string_view url);

/// Resolves a Location header against the URL it came from (absolute,
/// scheme-relative "//host/p", absolute-path "/p" or relative "p").
std::string resolve_url(std::string_view base, std::string_view location);

/// Whether an IP address ("10.0.0.1", "::1", "::ffff:192.168.0.1") is one a
/// public server has no business sending a client to: unspecified, loopback,
/// link-local (169.254/16, fe80::/10), private (RFC 1918, fc00::/7), shared
/// (100.64/10) or site-local (fec0::/10). Anything that is not an IP address is
/// not one.
bool is_internal_address(std::string_view address);

}  // namespace imgbuild
