#include "registry/registry.hpp"

#include <unistd.h>

#include <algorithm>

#include <nlohmann/json.hpp>

#include "base/fs.hpp"
#include "base/interrupt.hpp"
#include "base/text.hpp"

namespace imgbuild {

using json = nlohmann::json;

namespace {

using Call = RegistryTransport::Call;
using Scope = RegistryTransport::Scope;

/// The Accept header of a manifest request: every manifest and index type
/// this client reads.
const std::string& manifest_accept() {
  static const std::string header = "Accept: " + media_type::kManifest.str() + ", " + media_type::kIndex.str() + ", " +
                                    media_type::kDockerManifest.str() + ", " + media_type::kDockerManifestList.str();
  return header;
}

/// Chunks of a chunked upload, unless the registry asks for larger ones.
constexpr uint64_t kChunkSize = 16ull << 20;

/// "application/json; charset=utf-8" -> "application/json".
std::string bare_media_type(std::string_view content_type) {
  std::string_view t = content_type.substr(0, content_type.find(';'));
  while (!t.empty() && t.back() == ' ') t.remove_suffix(1);
  return std::string(t);
}

}  // namespace

RegistryClient::RegistryClient(Credentials credentials, RegistryOptions options)
    : transport_(std::move(credentials), std::move(options)) {}

std::vector<Reference> RegistryClient::pull_sources(const Reference& ref) const {
  std::vector<Reference> sources;
  const auto& mirrors = transport_.options().mirrors;
  if (auto m = mirrors.find(ref.registry); m != mirrors.end())
    for (auto& host : m->second) {
      Reference mirrored = ref;
      mirrored.registry = host;
      sources.push_back(std::move(mirrored));
    }
  sources.push_back(ref);
  return sources;
}

namespace {

std::string repo_path(const Reference& ref) { return "/v2/" + ref.repository; }

/// What a GET of a manifest returned, told by the document itself when it
/// says, else by Content-Type.
MediaType manifest_media_type(const HttpResponse& r, const json& doc, const std::string& what) {
  if (!doc.is_object()) throw RegistryError(what + ": the manifest is not a JSON object");
  if (doc.contains("schemaVersion") && doc["schemaVersion"] == 1)
    throw RegistryError(what +
                        ": Docker schema 1 manifests are not supported (push the image again with a current client)");
  if (doc.contains("mediaType") && doc["mediaType"].is_string())
    return MediaType::parse(doc["mediaType"].get<std::string>());
  std::string header = bare_media_type(r.header("content-type").value_or(""));
  MediaType type = MediaType::parse(header);
  if (type.is_manifest() || type.is_index()) return type;
  if (doc.contains("manifests")) return media_type::kIndex;
  if (doc.contains("config") && doc.contains("layers")) return media_type::kManifest;
  throw RegistryError(what + ": unknown manifest type '" + header + "'");
}

/// Expects one of `ok`; anything else is the registry's error, named.
void expect(const HttpResponse& r, std::initializer_list<long> ok, const std::string& what) {
  for (long s : ok)
    if (r.status == s) return;
  std::string code;
  json body = json::parse(r.body, nullptr, false);
  if (body.is_object() && body.contains("errors") && body["errors"].is_array() && !body["errors"].empty() &&
      body["errors"][0].is_object() && body["errors"][0].contains("code") && body["errors"][0]["code"].is_string())
    code = body["errors"][0]["code"];
  throw RegistryError(what + ": " + describe_registry_error(r), r.status, code);
}

/// A body read from a region of a file.
std::function<size_t(char*, size_t)> file_reader(int fd, uint64_t offset) {
  return [fd, offset](char* buf, size_t max) mutable -> size_t {
    ssize_t n = ::pread(fd, buf, max, static_cast<off_t>(offset));
    if (n < 0) throw_errno("reading a blob to upload");
    if (n == 0) throw std::runtime_error("a blob being uploaded got shorter");
    offset += static_cast<uint64_t>(n);
    return static_cast<size_t>(n);
  };
}

std::string with_query(const std::string& url, const std::string& query) {
  return url + (url.find('?') == std::string::npos ? "?" : "&") + query;
}

}  // namespace

Manifest RegistryClient::get_manifest(const Reference& ref) {
  Call call;
  call.url = repo_path(ref) + "/manifests/" + ref.manifest_ref();
  call.headers = {manifest_accept()};
  call.what = ref.str();
  HttpResponse r;
  try {
    r = transport_.send(ref, Scope{ref.repository}, call);
  } catch (const HttpError& e) {
    if (e.kind() != HttpError::Kind::TooLarge) throw;
    throw RegistryError(ref.str() + ": the manifest is larger than 4 MiB: refused");
  }
  if (r.status == 404) expect(r, {}, ref.str() + ": not found");
  expect(r, {200}, ref.str());
  Digest digest = sha256_of(r.body);
  if (ref.digest && digest != *ref.digest)
    throw RegistryError(ref.str() + ": the registry sent a manifest whose digest is " + digest.str());
  json doc = json::parse(r.body, nullptr, false);
  return Manifest{manifest_media_type(r, doc, ref.str()), std::move(r.body), digest};
}

bool RegistryClient::has_manifest(const Reference& ref) {
  Call call;
  call.method = "HEAD";
  call.url = repo_path(ref) + "/manifests/" + ref.manifest_ref();
  call.headers = {manifest_accept()};
  call.what = ref.str();
  HttpResponse r = transport_.send(ref, Scope{ref.repository}, call);
  if (r.status == 404) return false;
  expect(r, {200}, ref.str());
  return true;
}

Digest RegistryClient::put_manifest(const Reference& ref, const MediaType& media_type, const std::string& body) {
  Call call;
  call.method = "PUT";
  call.url = repo_path(ref) + "/manifests/" + ref.manifest_ref();
  call.headers = {"Content-Type: " + media_type.str()};
  call.what = "push " + ref.str() + ": manifest";
  call.prepare = [&body](HttpRequest& req) {
    req.body_size = body.size();
    req.read = [&body, offset = size_t(0)](char* buf, size_t max) mutable {
      size_t n = std::min(max, body.size() - offset);
      std::copy_n(body.data() + offset, n, buf);
      offset += n;
      return n;
    };
  };
  HttpResponse r = transport_.send(ref, Scope{ref.repository, true}, call);
  expect(r, {200, 201}, call.what);
  return sha256_of(body);
}

std::optional<std::string> RegistryClient::get_referrers(const Reference& repo, const Digest& subject) {
  Call call;
  call.url = repo_path(repo) + "/referrers/" + subject.str();
  call.headers = {"Accept: " + media_type::kIndex.str()};
  call.what = repo.name() + ": referrers of " + subject.str();
  HttpResponse r = transport_.send(repo, Scope{repo.repository}, call);
  if (r.status == 404) return std::nullopt;
  expect(r, {200}, call.what);
  return std::move(r.body);
}

std::string RegistryClient::get_document(const Reference& repo, const Descriptor& blob) {
  std::string what = repo.name() + ": blob " + blob.digest.str();
  if (blob.size > kMaxDocumentSize)
    throw RegistryError(what + ": a document of " + std::to_string(blob.size) + " bytes is larger than 4 MiB: refused");
  Call call;
  call.url = repo_path(repo) + "/blobs/" + blob.digest.str();
  call.follow_redirects = true;
  call.transfer_size = blob.size;
  call.what = what;
  HttpResponse r = transport_.send(repo, Scope{repo.repository}, call);
  expect(r, {200}, what);
  if (r.body.size() != blob.size || sha256_of(r.body) != blob.digest)
    throw RegistryError(what + ": the registry sent content that does not match its digest and size");
  return std::move(r.body);
}

void RegistryClient::download_blob(const Reference& repo, const Descriptor& blob, const std::filesystem::path& path,
                                   const TransferProgress& progress, GrowingFile* incoming) {
  if (!incoming) return download(repo, blob, path, progress, nullptr);
  try {
    download(repo, blob, path, progress, incoming);
  } catch (const std::exception& e) {
    incoming->failed(e.what());
    throw;
  } catch (...) {
    // An interrupt: no reader may wait for the rest.
    incoming->failed(repo.name() + ": blob " + blob.digest.str() + ": the download was interrupted");
    throw;
  }
}

void RegistryClient::download(const Reference& repo, const Descriptor& blob, const std::filesystem::path& path,
                              const TransferProgress& progress, GrowingFile* incoming) {
  std::string what = repo.name() + ": blob " + blob.digest.str();
  AtomicFile out(path);
  if (incoming) incoming->opened(out.fd());
  // The state of the download across attempts: a retry after a dropped
  // connection asks for the rest with Range, and starts over if the registry
  // answers with the whole blob instead.
  auto hasher = std::make_unique<Sha256>();
  uint64_t received = 0;
  Call call;
  call.url = repo_path(repo) + "/blobs/" + blob.digest.str();
  call.follow_redirects = true;
  call.transfer_size = blob.size;
  call.what = what;
  call.prepare = [&](HttpRequest& req) {
    if (received > 0) req.headers.push_back("Range: bytes=" + std::to_string(received) + "-");
    req.on_head = [&](long status, const HttpResponse& head) {
      if (status == 206) {
        auto range = head.header("content-range").value_or("");
        if (!range.starts_with("bytes " + std::to_string(received) + "-"))
          throw RegistryError(what + ": the registry resumed at the wrong offset (" + range + ")");
      } else if (status == 200 && received > 0) {
        received = 0;
        hasher = std::make_unique<Sha256>();
        // What a reader took of the first answer is not known to be the blob's.
        if (incoming) incoming->restarted();
        if (::ftruncate(out.fd(), 0) != 0 || ::lseek(out.fd(), 0, SEEK_SET) != 0) throw_errno(out.temp_path().string());
      }
    };
    req.sink = [&](const char* data, size_t n) {
      if (received + n > blob.size)
        throw RegistryError(what + ": the registry sent more than the " + std::to_string(blob.size) +
                            " bytes described");
      write_all(out.fd(), data, n, out.temp_path());
      hasher->update(data, n);
      received += n;
      if (incoming) incoming->grew(received);
      if (progress) progress(received, blob.size);
    };
  };
  // Progress starts before the first byte: a blob read in one go still gets a rate.
  if (progress) progress(0, blob.size);
  // A transfer that drops is retried by the transport; one that ends early without an
  // error (a short body) is resumed here.
  for (int attempt = 1;; ++attempt) {
    HttpResponse r = transport_.send(repo, Scope{repo.repository}, call);
    expect(r, {200, 206}, what);
    if (received == blob.size) break;
    if (attempt >= transport_.options().max_attempts)
      throw RegistryError(what + ": the registry sent " + std::to_string(received) + " of " +
                          std::to_string(blob.size) + " bytes");
  }
  if (hasher->finish() != blob.digest)
    throw RegistryError(what + ": the registry sent content that does not match its digest");
  // Checked: a reader may take the end of it while the blob is made durable.
  if (incoming) incoming->finished();
  out.commit();
}

bool RegistryClient::has_blob(const Reference& repo, const Digest& digest) {
  Call call;
  call.method = "HEAD";
  call.url = repo_path(repo) + "/blobs/" + digest.str();
  call.what = repo.name() + ": blob " + digest.str();
  HttpResponse r = transport_.send(repo, Scope{repo.repository}, call);
  if (r.status == 404) return false;
  expect(r, {200}, call.what);
  return true;
}

void RegistryClient::check_login(const std::string& registry) {
  Reference ref;
  ref.registry = registry;
  Call call;
  call.url = "/v2/";
  call.what = "login " + registry;
  HttpResponse r = transport_.send(ref, Scope{}, call);
  expect(r, {200}, call.what);
}

void RegistryClient::check_push(const Reference& repo) {
  // A HEAD of the tag to push, with the push scope: the login and the token
  // fetch a push makes, and nothing written.
  Scope scope{repo.repository, true};
  Call call;
  call.method = "HEAD";
  call.url = repo_path(repo) + "/manifests/" + repo.manifest_ref();
  call.headers = {manifest_accept()};
  call.what = "push " + repo.name();
  HttpResponse r = transport_.send(repo, scope, call);
  if (r.status == 401 || r.status == 403)
    transport_.refused(repo, scope, describe_registry_error(r), r.status, call.what);
  if (transport_.token_denies_push(repo, scope))
    transport_.refused(repo, scope, "its token server granted no push access", 401, call.what);
}

bool RegistryClient::upload_blob(const Reference& repo, const Descriptor& blob, const std::filesystem::path& file,
                                 const std::string& mount_from, const TransferProgress& progress) {
  std::chrono::milliseconds delay = transport_.options().backoff;
  for (int attempt = 1;; ++attempt) {
    try {
      return upload_once(repo, blob, file, mount_from, progress);
    } catch (const RegistryError& e) {
      // An upload that failed part-way is restarted from a new session, never
      // patched up: the registry's view of the old one is unknown.
      bool transient = e.status() == 0 || retryable_status(e.status());
      if (!transient || attempt >= transport_.options().max_attempts) throw;
      if (transport_.options().debug) transport_.options().debug(std::string("restarting upload: ") + e.what());
      sleep_or_interrupt(delay);
      delay *= 2;
    }
  }
}

bool RegistryClient::upload_once(const Reference& repo, const Descriptor& blob, const std::filesystem::path& file,
                                 const std::string& mount_from, const TransferProgress& progress) {
  std::string what = "push " + repo.name() + ": blob " + blob.digest.str();
  Scope scope{repo.repository, true, mount_from};
  Call start;
  start.method = "POST";
  start.url = repo_path(repo) + "/blobs/uploads/";
  if (!mount_from.empty()) start.url += "?mount=" + url_encode(blob.digest.str()) + "&from=" + url_encode(mount_from);
  start.what = what;
  HttpResponse r = transport_.send(repo, scope, start);
  if (r.status == 201 && !mount_from.empty()) return true;
  expect(r, {202}, what);
  // Progress starts before the first byte: a blob sent in one go still gets a rate.
  if (progress) progress(0, blob.size);

  auto next_location = [&](const HttpResponse& resp, const std::string& current) {
    auto loc = resp.header("location");
    if (!loc) throw RegistryError(what + ": the registry gave no upload location", resp.status);
    return resolve_url(current, *loc);
  };
  std::string location = next_location(r, transport_.base_url(repo) + start.url);
  uint64_t min_chunk = 0;
  if (auto m = r.header("oci-chunk-min-length")) min_chunk = std::strtoull(m->c_str(), nullptr, 10);

  Fd fd = open_read(file);
  auto body_call = [&](const std::string& method, const std::string& url, uint64_t offset, uint64_t length,
                       std::vector<std::string> headers) {
    Call c;
    c.method = method;
    c.url = url;
    c.retry = false;
    c.transfer_size = length;
    c.what = what;
    c.headers = std::move(headers);
    c.prepare = [&, offset, length](HttpRequest& req) {
      req.body_size = length;
      if (length == 0) return;
      uint64_t sent = 0;
      auto reader = file_reader(fd.get(), offset);
      req.read = [reader, &progress, offset, sent, &blob](char* buf, size_t max) mutable {
        size_t n = reader(buf, max);
        sent += n;
        if (progress) progress(offset + sent, blob.size);
        return n;
      };
    };
    return transport_.send(repo, scope, c);
  };

  if (blob.size < chunk_threshold_) {
    HttpResponse done = body_call("PUT", with_query(location, "digest=" + url_encode(blob.digest.str())), 0, blob.size,
                                  {"Content-Type: application/octet-stream"});
    expect(done, {201}, what);
    return false;
  }
  uint64_t chunk = std::max(kChunkSize, min_chunk);
  for (uint64_t offset = 0; offset < blob.size; offset += chunk) {
    uint64_t length = std::min(chunk, blob.size - offset);
    HttpResponse part =
        body_call("PATCH", location, offset, length,
                  {"Content-Type: application/octet-stream",
                   "Content-Range: " + std::to_string(offset) + "-" + std::to_string(offset + length - 1)});
    expect(part, {202}, what);
    location = next_location(part, location);
  }
  HttpResponse done = body_call("PUT", with_query(location, "digest=" + url_encode(blob.digest.str())), 0, 0, {});
  expect(done, {201}, what);
  return false;
}

}  // namespace imgbuild
