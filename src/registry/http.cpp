#include "registry/http.hpp"

#include <arpa/inet.h>
#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <exception>

#include "base/interrupt.hpp"

namespace imgbuild {

namespace {

/// curl_global_init before any handle exists, once per process.
struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobal() { curl_global_cleanup(); }
};

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

using Clock = std::chrono::steady_clock;

/// What one transfer's callbacks share.
struct Exchange {
  const HttpRequest& request;
  HttpResponse response;
  uint64_t sent = 0;
  std::exception_ptr failure;  ///< thrown by the caller's callbacks
  bool too_large = false;
  bool head_done = false;
  /// Why on_progress or on_connected cut the transfer, and as what.
  std::optional<std::pair<HttpError::Kind, std::string>> cut;
  Clock::time_point window_start = Clock::now();
  uint64_t window_bytes = 0;  ///< moved when the current window started
};

/// Error bodies are read for their message only.
constexpr size_t kMaxErrorBody = 64 << 10;

bool success(long status) { return status >= 200 && status < 300; }

size_t on_header(char* data, size_t size, size_t count, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  std::string_view line(data, size * count);
  // A new status line starts a new header block (after a 100 Continue).
  if (line.starts_with("HTTP/")) {
    ex->response.headers.clear();
    auto space = line.find(' ');
    ex->response.status =
        space == std::string_view::npos ? 0 : std::atol(std::string(line.substr(space + 1, 3)).c_str());
    return size * count;
  }
  if (trim(line).empty()) {
    // The end of a header block; 1xx blocks are followed by the real one.
    if (ex->response.status >= 200 && ex->request.on_head && !ex->head_done) {
      ex->head_done = true;
      try {
        ex->request.on_head(ex->response.status, ex->response);
      } catch (...) {
        ex->failure = std::current_exception();
        return 0;
      }
    }
    return size * count;
  }
  auto colon = line.find(':');
  if (colon != std::string_view::npos)
    ex->response.headers.emplace_back(lower(trim(line.substr(0, colon))), trim(line.substr(colon + 1)));
  return size * count;
}

size_t on_body(char* data, size_t size, size_t count, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  size_t n = size * count;
  if (!success(ex->response.status)) {
    size_t room = kMaxErrorBody - std::min(kMaxErrorBody, ex->response.body.size());
    ex->response.body.append(data, std::min(room, n));
    return n;
  }
  if (ex->request.sink) {
    try {
      ex->request.sink(data, n);
    } catch (...) {
      ex->failure = std::current_exception();
      return 0;  // aborts the transfer
    }
    return n;
  }
  if (ex->response.body.size() + n > ex->request.max_body) {
    ex->too_large = true;
    return 0;
  }
  ex->response.body.append(data, n);
  return n;
}

size_t on_read(char* buf, size_t size, size_t count, void* user) {
  auto* ex = static_cast<Exchange*>(user);
  size_t want = std::min<uint64_t>(size * count, ex->request.body_size - ex->sent);
  if (want == 0) return 0;
  try {
    size_t got = ex->request.read(buf, want);
    ex->sent += got;
    return got;
  } catch (...) {
    ex->failure = std::current_exception();
    return CURL_READFUNC_ABORT;
  }
}

std::string seconds_text(std::chrono::milliseconds d) {
  return d.count() % 1000 == 0 ? std::to_string(d.count() / 1000) + " s" : std::to_string(d.count()) + " ms";
}

/// Called while a transfer runs, idle or not (at least about once a second):
/// aborts it on Ctrl-C, so a stalled registry cannot hold an interrupted
/// build, and when it passes its deadline or goes slower than its minimum rate,
/// so a registry that trickles bytes cannot hold any build for long.
int on_progress(void* user, curl_off_t down_total, curl_off_t down_now, curl_off_t up_total, curl_off_t up_now) {
  auto* ex = static_cast<Exchange*>(user);
  if (interrupt_signal()) return 1;
  auto now = Clock::now();
  uint64_t moved = static_cast<uint64_t>(down_now + up_now);
  uint64_t total = static_cast<uint64_t>(down_total + up_total);  // 0: not announced
  std::string so_far =
      "(" + std::to_string(moved) + (total > 0 ? " of " + std::to_string(total) : "") + " bytes moved)";
  const HttpRequest& r = ex->request;
  if (r.deadline && now >= *r.deadline) {
    ex->cut = {HttpError::Kind::Deadline, "did not finish in time " + so_far};
    return 1;
  }
  if (r.min_rate.bytes == 0 || now - ex->window_start < r.min_rate.window) return 0;
  uint64_t wanted = r.min_rate.bytes;
  if (total > 0) wanted = std::min(wanted, total - std::min(total, ex->window_bytes));
  if (moved - ex->window_bytes < wanted) {
    ex->cut = {HttpError::Kind::Stalled,
               "stalled: " + std::to_string(moved - ex->window_bytes) + " bytes in the last " +
                   seconds_text(std::chrono::duration_cast<std::chrono::milliseconds>(now - ex->window_start)) +
                   ", under the minimum of " + std::to_string(r.min_rate.bytes) + " per " +
                   seconds_text(r.min_rate.window) + " " + so_far};
    return 1;
  }
  ex->window_start = now;
  ex->window_bytes = moved;
  return 0;
}

/// Called once a connection is made or reused, before the request goes out on it.
int on_connected(void* user, char* address, char*, int, int) {
  auto* ex = static_cast<Exchange*>(user);
  if (auto refusal = ex->request.check_address(address)) {
    ex->cut = {HttpError::Kind::Refused, *refusal};
    return CURL_PREREQFUNC_ABORT;
  }
  return CURL_PREREQFUNC_OK;
}

HttpError::Kind kind_of(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
      return HttpError::Kind::Connect;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CIPHER:
      return HttpError::Kind::Tls;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
      return HttpError::Kind::Certificate;
    case CURLE_ABORTED_BY_CALLBACK:
      return HttpError::Kind::Aborted;
    default:
      return HttpError::Kind::Transfer;
  }
}

}  // namespace

std::optional<std::string> HttpResponse::header(std::string_view name) const {
  for (auto& [k, v] : headers)
    if (k == name) return v;
  return std::nullopt;
}

Http::Http() { static CurlGlobal global; }

Http::~Http() {
  for (void* h : idle_) curl_easy_cleanup(static_cast<CURL*>(h));
}

void* Http::acquire() {
  {
    std::lock_guard lock(mutex_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      return h;
    }
  }
  CURL* h = curl_easy_init();
  if (!h) throw std::runtime_error("curl: cannot create a transfer handle");
  return h;
}

void Http::release(void* handle) {
  std::lock_guard lock(mutex_);
  idle_.push_back(handle);
}

HttpResponse Http::perform(const HttpRequest& request) {
  CURL* curl = static_cast<CURL*>(acquire());
  // Back to the pool however this ends: the connection it holds stays reusable.
  struct Release {
    Http* http;
    CURL* curl;
    ~Release() {
      curl_easy_reset(curl);
      http->release(curl);
    }
  } release_guard{this, curl};

  Exchange ex{request, {}, 0, nullptr, false, false, std::nullopt};
  curl_slist* headers = nullptr;
  for (auto& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  // No "Expect: 100-continue" round trip: registries answer uploads directly.
  headers = curl_slist_append(headers, "Expect:");
  curl_slist* resolve = nullptr;
  for (auto& entry : request.resolve) resolve = curl_slist_append(resolve, entry.c_str());
  struct FreeLists {
    curl_slist* headers;
    curl_slist* resolve;
    ~FreeLists() {
      curl_slist_free_all(headers);
      curl_slist_free_all(resolve);
    }
  } free_lists{headers, resolve};

  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "imgbuild");
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, request.verify_tls ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, request.verify_tls ? 2L : 0L);
  if (!request.ca_file.empty()) curl_easy_setopt(curl, CURLOPT_CAINFO, request.ca_file.c_str());
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 30L);
  // A stalled transfer (under 1 byte/s for a minute) is a dropped connection.
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, 60L);
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, nullptr);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &ex);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &ex);
  curl_easy_setopt(curl, CURLOPT_BUFFERSIZE, 512L * 1024);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &ex);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  if (resolve) curl_easy_setopt(curl, CURLOPT_RESOLVE, resolve);
  if (request.check_address) {
    curl_easy_setopt(curl, CURLOPT_PREREQFUNCTION, on_connected);
    curl_easy_setopt(curl, CURLOPT_PREREQDATA, &ex);
  }

  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (request.read) {
    curl_easy_setopt(curl, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(curl, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(curl, CURLOPT_READFUNCTION, on_read);
    curl_easy_setopt(curl, CURLOPT_READDATA, &ex);
    curl_easy_setopt(curl, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(request.body_size));
    if (request.method != "PUT") curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  } else if (request.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
  } else if (request.method != "GET") {
    // PUT/PATCH/DELETE without a body.
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    if (request.method == "PUT" || request.method == "PATCH") {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, "");
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, 0L);
    }
  }

  CURLcode code = curl_easy_perform(curl);
  check_interrupt();
  if (ex.failure) std::rethrow_exception(ex.failure);
  std::string where = request.method + " " + redact_url(request.url);
  if (ex.cut) throw HttpError(ex.cut->first, where + ": " + ex.cut->second);
  if (ex.too_large)
    throw HttpError(HttpError::Kind::TooLarge,
                    where + ": response larger than " + std::to_string(request.max_body) + " bytes");
  if (code != CURLE_OK) throw HttpError(kind_of(code), where + ": " + curl_easy_strerror(code));
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &ex.response.status);
  char* address = nullptr;
  if (curl_easy_getinfo(curl, CURLINFO_PRIMARY_IP, &address) == CURLE_OK && address) ex.response.address = address;
  return std::move(ex.response);
}

std::string redact_url(std::string_view url) {
  std::string_view u = url.substr(0, url.find_first_of("?#"));
  auto scheme_end = u.find("://");
  if (scheme_end == std::string_view::npos) return std::string(u);
  auto host_start = scheme_end + 3;
  auto path_start = u.find('/', host_start);
  std::string_view authority =
      u.substr(host_start, path_start == std::string_view::npos ? u.npos : path_start - host_start);
  auto at = authority.rfind('@');
  if (at == std::string_view::npos) return std::string(u);
  return std::string(u.substr(0, host_start)) + std::string(authority.substr(at + 1)) +
         (path_start == std::string_view::npos ? "" : std::string(u.substr(path_start)));
}

std::string url_origin(std::string_view url) {
  auto scheme_end = url.find("://");
  if (scheme_end == std::string_view::npos) return "";
  auto end = url.find_first_of("/?#", scheme_end + 3);
  std::string_view authority =
      url.substr(scheme_end + 3, end == std::string_view::npos ? url.npos : end - scheme_end - 3);
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  return lower(url.substr(0, scheme_end)) + "://" + lower(authority);
}

std::string resolve_url(std::string_view base, std::string_view location) {
  if (location.find("://") != std::string_view::npos && location.find("://") < location.find_first_of("/?#"))
    return std::string(location);
  std::string origin = url_origin(base);
  if (location.starts_with("//")) return std::string(base.substr(0, base.find("://") + 1)) + std::string(location);
  if (location.starts_with("/")) return origin + std::string(location);
  // Relative to the base's folder.
  std::string_view path = base.substr(0, base.find_first_of("?#"));
  auto slash = path.rfind('/');
  return std::string(path.substr(0, slash + 1)) + std::string(location);
}

bool is_internal_address(std::string_view address) {
  std::string text(address);
  unsigned char b[16];
  if (::inet_pton(AF_INET, text.c_str(), b) == 1) {
    return b[0] == 0 || b[0] == 10 || b[0] == 127 || (b[0] == 169 && b[1] == 254) ||
           (b[0] == 172 && (b[1] & 0xf0) == 16) || (b[0] == 192 && b[1] == 168) || (b[0] == 100 && (b[1] & 0xc0) == 64);
  }
  if (::inet_pton(AF_INET6, text.c_str(), b) != 1) return false;
  static constexpr unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::equal(b, b + 12, kMapped)) {
    char v4[INET_ADDRSTRLEN];
    return ::inet_ntop(AF_INET, b + 12, v4, sizeof v4) && is_internal_address(v4);
  }
  bool low_zero = std::all_of(b, b + 15, [](unsigned char c) { return c == 0; });
  return (low_zero && (b[15] == 0 || b[15] == 1)) ||  // :: and ::1
         (b[0] & 0xfe) == 0xfc ||                     // fc00::/7
         (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) ||   // fe80::/10
         (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0);     // fec0::/10
}

}  // namespace imgbuild
