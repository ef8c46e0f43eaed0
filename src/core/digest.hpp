#pragma once
// Content digests: a strong type parsed once at the edge, and a streaming hasher.
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace imgbuild {

/// A "sha256:<64 hex>" content digest. Only valid digests can exist, so code that
/// receives one never re-validates it.
class Digest {
public:
  /// Parses "sha256:<hex>"; throws std::runtime_error naming the bad value.
  static Digest parse(std::string_view text);
  /// Wraps a raw 32-byte sha256 value.
  static Digest from_bytes(std::span<const unsigned char, 32> bytes);

  const std::string& str() const { return text_; }
  /// The 64 hex characters, the blob's file name in an OCI layout.
  std::string_view hex() const { return std::string_view(text_).substr(7); }
  /// The first 12 hex characters, for humans.
  std::string_view short_hex() const { return hex().substr(0, 12); }

  friend bool operator==(const Digest&, const Digest&) = default;
  friend auto operator<=>(const Digest&, const Digest&) = default;

private:
  explicit Digest(std::string text) : text_(std::move(text)) {}
  std::string text_;
};

/// Incremental sha256 over OpenSSL EVP; feed bytes as they stream past.
class Sha256 {
public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void update(const void* data, size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  /// Finishes the hash; the hasher must not be fed afterwards.
  Digest finish();
  /// Finishes and returns lowercase hex without the algorithm prefix.
  std::string finish_hex();

private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

/// sha256 of a whole byte string (manifests, configs: small documents).
Digest sha256_of(std::string_view bytes);

/// Lowercase hex of arbitrary bytes.
std::string to_hex(std::span<const unsigned char> bytes);

}  // namespace imgbuild
