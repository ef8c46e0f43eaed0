#pragma once
// Signatures in cosign's key-based format: an ECDSA P-256 signature over the
// "simple signing" payload that names the image by its manifest digest, kept
// base64 in the `dev.cosignproject.cosign/signature` annotation of the layer
// that holds the payload. `cosign verify --key` finds it under the tag
// sha256-<hex>.sig of the image's repository; imgbuild also attaches it as an
// OCI 1.1 referrer of the image.
#include <filesystem>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>

#include "oci/digest.hpp"
#include "sign/artifact.hpp"

using EVP_PKEY = struct evp_pkey_st;

namespace imgbuild {

/// The media type of the simple signing payload (cosign's layer type).
inline constexpr const char* kSimpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation that holds the signature, base64 DER.
inline constexpr const char* kCosignSignatureAnnotation = "dev.cosignproject.cosign/signature";
/// The artifactType of cosign's signatures as OCI 1.1 referrers.
inline constexpr const char* kCosignArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// A key or a signature that cannot be used; what() says which and why,
/// never the key's bytes.
class SigningError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

/// An ECDSA P-256 key: a private one signs, either verifies. Its bytes are
/// only in OpenSSL's memory; nothing prints, logs or writes them.
class EcKey {
public:
  /// An unencrypted PEM private key (PKCS#8 "PRIVATE KEY" or SEC1 "EC PRIVATE
  /// KEY") on the P-256 curve. `source` names where it came from ("key.pem",
  /// "IMGBUILD_SIGN_KEY") in errors; an encrypted key, another curve or
  /// another algorithm is refused, and no passphrase is ever asked for.
  static EcKey private_from_pem(std::string_view pem, const std::string& source);
  /// private_from_pem() of the file at `path`; the bytes read are wiped
  /// from memory once parsed. A missing or unreadable file is a SigningError
  /// naming it.
  static EcKey private_from_file(const std::filesystem::path& path);
  /// A PEM public key ("PUBLIC KEY", as `openssl ec -pubout` and cosign write).
  static EcKey public_from_pem(std::string_view pem, const std::string& source);

  /// The DER ECDSA-SHA256 signature of `data`; SigningError for a public key.
  std::string sign(std::string_view data) const;
  /// Whether `signature` (DER) is this key's ECDSA-SHA256 signature of `data`.
  bool verifies(std::string_view data, std::string_view signature) const;

private:
  struct Free {
    void operator()(EVP_PKEY* key) const;
  };
  explicit EcKey(EVP_PKEY* key) : key_(key) {}
  std::unique_ptr<EVP_PKEY, Free> key_;
  bool is_private_ = false;
};

/// What a simple signing payload claims.
struct SignedClaim {
  std::string docker_reference;  ///< the repository the image was pushed to
  Digest manifest;               ///< the image's manifest digest
};

/// cosign's payload for the image `manifest` pushed to `repository`
/// ("registry/name", no tag), byte for byte as cosign writes it.
std::string simple_signing_payload(const std::string& repository, const Digest& manifest);
/// What `payload` claims; SigningError when it is not a cosign container
/// image signature payload.
SignedClaim parse_simple_signing(const std::string& payload);

/// "sha256-<hex>.sig": where cosign looks for the signatures of `subject`.
std::string signature_tag(const Digest& subject);

/// The signature of `manifest` (pushed to `repository`) by `key`, as an
/// attachment: cosign's payload, its signature in the layer annotation.
Attachment signature_attachment(const EcKey& key, const std::string& repository, const Digest& manifest);

}  // namespace imgbuild
