#include "core/digest.hpp"

#include <openssl/evp.h>

#include <stdexcept>

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

struct Sha256::Ctx {
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  ~Ctx() { EVP_MD_CTX_free(md); }
};

Sha256::Sha256() : ctx_(std::make_unique<Ctx>()) {
  if (!ctx_->md || EVP_DigestInit_ex(ctx_->md, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("sha256: OpenSSL initialisation failed");
}

Sha256::~Sha256() = default;

void Sha256::update(const void* data, size_t size) {
  if (size && EVP_DigestUpdate(ctx_->md, data, size) != 1) throw std::runtime_error("sha256: update failed");
}

Digest Sha256::finish() {
  std::array<unsigned char, 32> out{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_->md, out.data(), &len) != 1 || len != out.size())
    throw std::runtime_error("sha256: finish failed");
  return Digest::from_bytes(out);
}

std::string Sha256::finish_hex() { return std::string(finish().hex()); }

Digest sha256_of(std::string_view bytes) {
  Sha256 h;
  h.update(bytes);
  return h.finish();
}

}  // namespace imgbuild
