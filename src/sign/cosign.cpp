#include "sign/cosign.hpp"

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <nlohmann/json.hpp>

#include "base/fs.hpp"
#include "base/text.hpp"

namespace imgbuild {

using json = nlohmann::json;

namespace {

constexpr const char* kCosignPayloadType = "cosign container image signature";

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

/// Refuses to ask for a passphrase: an encrypted key fails instead of
/// waiting on a terminal nobody watches.
int no_passphrase(char*, int, int, void*) { return -1; }

std::unique_ptr<BIO, BioFree> memory_bio(std::string_view pem) {
  std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) throw SigningError("out of memory reading a key");
  return bio;
}

/// Throws unless `key` is an EC key on P-256.
void require_p256(EVP_PKEY* key, const std::string& source) {
  char group[64] = {};
  size_t length = 0;
  if (!EVP_PKEY_is_a(key, "EC") ||
      !EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, &length) ||
      std::string_view(group, length) != "prime256v1")
    throw SigningError(source + ": not an ECDSA P-256 key (make one with openssl ecparam -name prime256v1 -genkey)");
}

}  // namespace

void EcKey::Free::operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }

EcKey EcKey::private_from_pem(std::string_view pem, const std::string& source) {
  if (pem.find("ENCRYPTED") != std::string_view::npos)
    throw SigningError(source + ": the key is encrypted; give an unencrypted PEM key (openssl pkcs8 -topk8 -nocrypt)");
  auto bio = memory_bio(pem);
  EVP_PKEY* key = PEM_read_bio_PrivateKey(bio.get(), nullptr, no_passphrase, nullptr);
  ERR_clear_error();
  if (!key)
    throw SigningError(source + ": not a PEM private key (expected an unencrypted ECDSA P-256 key, PKCS#8 or SEC1)");
  EcKey k(key);
  require_p256(key, source);
  k.is_private_ = true;
  return k;
}

EcKey EcKey::private_from_file(const std::filesystem::path& path) {
  std::string pem;
  try {
    pem = read_file(path);
  } catch (const std::exception& e) {
    throw SigningError(std::string("--sign-key: ") + e.what());
  }
  struct Wipe {
    std::string& bytes;
    ~Wipe() { OPENSSL_cleanse(bytes.data(), bytes.size()); }
  } wipe{pem};
  return private_from_pem(pem, path.string());
}

EcKey EcKey::public_from_pem(std::string_view pem, const std::string& source) {
  auto bio = memory_bio(pem);
  EVP_PKEY* key = PEM_read_bio_PUBKEY(bio.get(), nullptr, no_passphrase, nullptr);
  ERR_clear_error();
  if (!key) throw SigningError(source + ": not a PEM public key (make one with openssl ec -pubout)");
  EcKey k(key);
  require_p256(key, source);
  return k;
}

std::string EcKey::sign(std::string_view data) const {
  if (!is_private_) throw SigningError("signing needs a private key");
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  size_t length = 0;
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &length, reinterpret_cast<const unsigned char*>(data.data()), data.size()) !=
          1)
    throw SigningError("ECDSA signing failed");
  std::string signature(length, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1)
    throw SigningError("ECDSA signing failed");
  signature.resize(length);
  return signature;
}

bool EcKey::verifies(std::string_view data, std::string_view signature) const {
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key_.get()) == 1 &&
            EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                             reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  ERR_clear_error();
  return ok;
}

std::string simple_signing_payload(const std::string& repository, const Digest& manifest) {
  // nlohmann's objects keep their keys sorted: the order Go's encoder gives
  // cosign's structs, so the bytes are cosign's.
  json payload = {{"critical",
                   {{"identity", {{"docker-reference", repository}}},
                    {"image", {{"docker-manifest-digest", manifest.str()}}},
                    {"type", kCosignPayloadType}}},
                  {"optional", nullptr}};
  return payload.dump();
}

SignedClaim parse_simple_signing(const std::string& payload) {
  json doc = json::parse(payload, nullptr, false);
  const json* critical = doc.is_object() && doc.contains("critical") ? &doc["critical"] : nullptr;
  auto text = [&](const char* outer, const char* inner) -> std::string {
    if (!critical || !critical->is_object() || !critical->contains(outer)) return "";
    const json& o = (*critical)[outer];
    return o.is_object() && o.contains(inner) && o[inner].is_string() ? o[inner].get<std::string>() : "";
  };
  if (!critical || !critical->is_object() || critical->value("type", json()) != kCosignPayloadType)
    throw SigningError("the signed payload is not a cosign container image signature");
  try {
    return SignedClaim{text("identity", "docker-reference"), Digest::parse(text("image", "docker-manifest-digest"))};
  } catch (const std::exception&) {
    throw SigningError("the signed payload names no valid docker-manifest-digest");
  }
}

std::string signature_tag(const Digest& subject) { return referrers_tag(subject) + ".sig"; }

Attachment signature_attachment(const EcKey& key, const std::string& repository, const Digest& manifest) {
  std::string payload = simple_signing_payload(repository, manifest);
  std::string signature = base64_encode(key.sign(payload));
  return Attachment{kCosignArtifactType,
                    kSimpleSigningMediaType,
                    std::move(payload),
                    {{kCosignSignatureAnnotation, std::move(signature)}}};
}

}  // namespace imgbuild
