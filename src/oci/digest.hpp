#pragma once
// Content digests: a strong type parsed once at the edge, and a streaming hasher.
#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

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

/// Incremental hash over OpenSSL EVP, by algorithm name; feed bytes as they
/// stream past. Besides sha256 it knows md5, because recipes must reproduce
/// the tags existing CI scripts made with `md5sum glide.lock`, and sha1, which
/// SPDX requires for every file an SBOM lists.
class Hasher {
public:
  /// "md5", "sha1" or "sha256"; throws std::runtime_error naming those for another name.
  explicit Hasher(std::string_view algorithm);
  ~Hasher();
  Hasher(const Hasher&) = delete;
  Hasher& operator=(const Hasher&) = delete;

  void update(const void* data, size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  /// Feeds a file's bytes, read in chunks (files may be large).
  void update_file(const std::string& path);
  /// Feeds what is left to read from an open file; `name` is for errors.
  void update_fd(int fd, const std::string& name);
  /// Finishes and returns lowercase hex without the algorithm prefix; the
  /// hasher must not be fed afterwards.
  std::string finish_hex();

protected:
  /// Finishes and returns the raw digest bytes.
  std::vector<unsigned char> finish_bytes();

private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

/// Incremental sha256, finishing into a Digest.
class Sha256 : public Hasher {
public:
  Sha256() : Hasher("sha256") {}
  /// Finishes the hash; the hasher must not be fed afterwards.
  Digest finish();
  /// finish() as the 32 raw bytes: a quarter of a Digest's memory, for
  /// callers that keep one per file.
  std::array<unsigned char, 32> finish_raw();
};

/// sha256 of a whole byte string (manifests, configs: small documents).
Digest sha256_of(std::string_view bytes);

/// sha256 of a file's bytes, read in chunks (layer blobs, copied files).
Digest sha256_file(const std::string& path);

/// Lowercase hex of arbitrary bytes.
std::string to_hex(std::span<const unsigned char> bytes);

}  // namespace imgbuild
