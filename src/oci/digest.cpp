#include "oci/digest.hpp"

#include <openssl/evp.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <stdexcept>

#include "base/fs.hpp"
#include "base/interrupt.hpp"

namespace imgbuild {

namespace {
bool is_lower_hex(std::string_view s) {
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}
}  // namespace

Digest Digest::parse(std::string_view text) {
  constexpr std::string_view prefix = "sha256:";
  if (!text.starts_with(prefix) || text.size() != prefix.size() + 64 || !is_lower_hex(text.substr(prefix.size())))
    throw std::runtime_error("invalid digest '" + std::string(text) + "' (expected sha256:<64 lowercase hex>)");
  return Digest(std::string(text));
}

Digest Digest::from_bytes(std::span<const unsigned char, 32> bytes) { return Digest("sha256:" + to_hex(bytes)); }

std::string to_hex(std::span<const unsigned char> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char b : bytes) {
    out.push_back(digits[b >> 4]);
    out.push_back(digits[b & 15]);
  }
  return out;
}

struct Hasher::Ctx {
  std::string algorithm;
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ~Ctx() { EVP_MD_CTX_free(md); }
};

namespace {
struct Algorithm {
  std::string_view name;
  const EVP_MD* (*md)();
};
constexpr Algorithm kAlgorithms[] = {{"md5", EVP_md5}, {"sha1", EVP_sha1}, {"sha256", EVP_sha256}};
}  // namespace

Hasher::Hasher(std::string_view algorithm) : ctx_(std::make_unique<Ctx>()) {
  ctx_->algorithm = algorithm;
  const EVP_MD* md = nullptr;
  std::string known;
  for (auto& a : kAlgorithms) {
    if (a.name == algorithm) md = a.md();
    known += (known.empty() ? "" : ", ") + std::string(a.name);
  }
  if (!md) throw std::runtime_error("unknown algorithm '" + ctx_->algorithm + "' (known: " + known + ")");
  if (!ctx_->md || EVP_DigestInit_ex(ctx_->md, md, nullptr) != 1)
    throw std::runtime_error(ctx_->algorithm + ": OpenSSL initialisation failed");
}

Hasher::~Hasher() = default;

void Hasher::update(const void* data, size_t size) {
  if (size && EVP_DigestUpdate(ctx_->md, data, size) != 1)
    throw std::runtime_error(ctx_->algorithm + ": update failed");
}

void Hasher::update_file(const std::string& path) {
  Fd fd = open_read(path);
  update_fd(fd.get(), path);
}

void Hasher::update_fd(int fd, const std::string& name) {
  // One buffer per thread, reused: hashing a context of many small files
  // must not allocate (and fault in) a fresh one for each.
  thread_local std::array<char, 1 << 16> buffer;
  for (;;) {
    // A large file (a context's, hash()ed) must not hold up a Ctrl-C.
    check_interrupt();
    ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read " + name);
    if (n == 0) break;
    update(buffer.data(), static_cast<size_t>(n));
  }
}

std::vector<unsigned char> Hasher::finish_bytes() {
  std::vector<unsigned char> out(EVP_MAX_MD_SIZE);
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_->md, out.data(), &len) != 1)
    throw std::runtime_error(ctx_->algorithm + ": finish failed");
  out.resize(len);
  return out;
}

std::string Hasher::finish_hex() { return to_hex(finish_bytes()); }

Digest Sha256::finish() {
  std::vector<unsigned char> out = finish_bytes();  // 32 bytes: the constructor chose sha256
  return Digest::from_bytes(std::span<const unsigned char, 32>(out.data(), 32));
}

std::array<unsigned char, 32> Sha256::finish_raw() {
  std::vector<unsigned char> out = finish_bytes();
  std::array<unsigned char, 32> raw;
  std::copy_n(out.begin(), raw.size(), raw.begin());
  return raw;
}

Digest sha256_of(std::string_view bytes) {
  Sha256 h;
  h.update(bytes);
  return h.finish();
}

Digest sha256_file(const std::string& path) {
  Sha256 hash;
  hash.update_file(path);
  return hash.finish();
}

}  // namespace imgbuild
