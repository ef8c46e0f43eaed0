// Tests for attachments and signatures: the OCI 1.1 artifact manifest, the
// referrers index of the tag schema, artifacts in an OCI layout, cosign's
// payload, and ECDSA P-256 keys read from PEM (what is accepted, what is
// refused and how it is said).
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "base/text.hpp"
#include "sign/artifact.hpp"
#include "sign/cosign.hpp"
#include "sign/publish.hpp"
#include "test_support.hpp"

using namespace imgbuild;
using imgbuild::test::ScratchDir;
using imgbuild::test::slurp;
using json = nlohmann::json;

namespace {

const Descriptor kImage{media_type::kManifest, sha256_of("an image manifest"), 17, {}};

/// A fresh key of `curve` as PEM: "private" as PKCS#8 or SEC1 ("traditional"), or "public".
std::string pem_of(const char* curve, const std::string& form) {
  EVP_PKEY* key = EVP_EC_gen(curve);
  REQUIRE(key);
  BIO* bio = BIO_new(BIO_s_mem());
  if (form == "public") {
    PEM_write_bio_PUBKEY(bio, key);
  } else if (form == "sec1") {
    PEM_write_bio_PrivateKey_traditional(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  } else {
    PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  }
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(bio);
  EVP_PKEY_free(key);
  return pem;
}

/// The public half of a private PEM key.
std::string public_of(const std::string& private_pem) {
  BIO* in = BIO_new_mem_buf(private_pem.data(), static_cast<int>(private_pem.size()));
  EVP_PKEY* key = PEM_read_bio_PrivateKey(in, nullptr, nullptr, nullptr);
  BIO* out = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(out, key);
  char* data = nullptr;
  long n = BIO_get_mem_data(out, &data);
  std::string pem(data, static_cast<size_t>(n));
  BIO_free(in);
  BIO_free(out);
  EVP_PKEY_free(key);
  return pem;
}

}  // namespace

TEST_CASE("an artifact manifest: artifactType, the empty config, one layer, the subject", "[sign]") {
  Artifact a = make_artifact(kImage, Attachment{kSpdxMediaType, kSpdxMediaType, "{\"spdxVersion\":\"SPDX-2.3\"}"});
  json m = json::parse(a.manifest);
  CHECK(m["schemaVersion"] == 2);
  CHECK(m["mediaType"] == "application/vnd.oci.image.manifest.v1+json");
  CHECK(m["artifactType"] == "application/spdx+json");
  CHECK(m["config"] == json{{"mediaType", "application/vnd.oci.empty.v1+json"},
                            {"digest", "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},
                            {"size", 2}});
  REQUIRE(m["layers"].size() == 1);
  CHECK(m["layers"][0]["digest"] == sha256_of("{\"spdxVersion\":\"SPDX-2.3\"}").str());
  CHECK(m["layers"][0]["mediaType"] == "application/spdx+json");
  CHECK_FALSE(m["layers"][0].contains("annotations"));
  CHECK(m["subject"] == json{{"mediaType", kImage.media_type.str()}, {"digest", kImage.digest.str()}, {"size", 17}});
  CHECK(a.descriptor.digest == sha256_of(a.manifest));
  CHECK(a.descriptor.size == a.manifest.size());
  REQUIRE(a.blobs.size() == 2);
  CHECK(a.blobs[0].bytes == "{}");
  CHECK(a.blobs[1].descriptor.digest == sha256_of(a.blobs[1].bytes));
  // Deterministic: the same document about the same image is the same artifact.
  CHECK(make_artifact(kImage, Attachment{kSpdxMediaType, kSpdxMediaType, "{\"spdxVersion\":\"SPDX-2.3\"}"})
            .descriptor.digest == a.descriptor.digest);
  CHECK(referrer_entry(a) == json{{"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                                  {"digest", a.descriptor.digest.str()},
                                  {"size", a.manifest.size()},
                                  {"artifactType", "application/spdx+json"}});
}

TEST_CASE("an artifact keeps the layers it is given before its own", "[sign]") {
  json earlier = {{"mediaType", kSimpleSigningMediaType}, {"digest", sha256_of("x").str()}, {"size", 1}};
  Artifact a =
      make_artifact(kImage, Attachment{kCosignArtifactType, kSimpleSigningMediaType, "p", {{"k", "v"}}}, {earlier});
  json m = json::parse(a.manifest);
  REQUIRE(m["layers"].size() == 2);
  CHECK(m["layers"][0] == earlier);
  CHECK(m["layers"][1]["annotations"] == json{{"k", "v"}});
}

TEST_CASE("the referrers tag schema: tags and the index, each referrer once", "[sign]") {
  CHECK(referrers_tag(kImage.digest) == "sha256-" + std::string(kImage.digest.hex()));
  CHECK(signature_tag(kImage.digest) == "sha256-" + std::string(kImage.digest.hex()) + ".sig");

  json sbom = referrer_entry(make_artifact(kImage, Attachment{kSpdxMediaType, kSpdxMediaType, "a"}));
  json other = referrer_entry(make_artifact(kImage, Attachment{"application/x-other", "text/plain", "b"}));
  std::optional<std::string> first = merge_referrers("", {sbom});
  REQUIRE(first);
  json index = json::parse(*first);
  CHECK(index["mediaType"] == "application/vnd.oci.image.index.v1+json");
  CHECK(index["manifests"] == json::array({sbom}));
  CHECK_FALSE(merge_referrers(*first, {sbom}));  // nothing new: not written again
  std::optional<std::string> second = merge_referrers(*first, {sbom, other, other});
  REQUIRE(second);
  CHECK(json::parse(*second)["manifests"] == json::array({sbom, other}));
  CHECK(referrers_of(*second).size() == 2);
  CHECK_THROWS_WITH(merge_referrers("{\"layers\":[]}", {sbom}),
                    "the referrers index is not an image index (no manifests list)");
  CHECK_THROWS_WITH(referrers_of("{\"manifests\":[{\"size\":1}]}"),
                    "the referrers index lists an entry without a digest");
}

TEST_CASE("cosign's simple signing payload, byte for byte", "[sign]") {
  std::string payload = simple_signing_payload("127.0.0.1:5000/hello", kImage.digest);
  CHECK(payload ==
        "{\"critical\":{\"identity\":{\"docker-reference\":\"127.0.0.1:5000/hello\"},\"image\":{\"docker-"
        "manifest-digest\":\"" +
            kImage.digest.str() + "\"},\"type\":\"cosign container image signature\"},\"optional\":null}");
  SignedClaim claim = parse_simple_signing(payload);
  CHECK(claim.docker_reference == "127.0.0.1:5000/hello");
  CHECK(claim.manifest == kImage.digest);
  CHECK_THROWS_WITH(parse_simple_signing("{\"critical\":{\"type\":\"something else\"}}"),
                    "the signed payload is not a cosign container image signature");
  CHECK_THROWS_WITH(parse_simple_signing("{\"critical\":{\"type\":\"cosign container image signature\",\"image\":{"
                                         "\"docker-manifest-digest\":\"md5:x\"}}}"),
                    "the signed payload names no valid docker-manifest-digest");
}

TEST_CASE("ECDSA P-256 keys: PKCS#8 and SEC1 sign, the public key verifies", "[sign]") {
  for (const char* form : {"pkcs8", "sec1"}) {
    INFO(form);
    std::string pem = pem_of("P-256", form);
    EcKey key = EcKey::private_from_pem(pem, "key.pem");
    EcKey pub = EcKey::public_from_pem(public_of(pem), "pub.pem");
    std::string signature = key.sign("payload");
    CHECK(pub.verifies("payload", signature));
    CHECK(key.verifies("payload", signature));
    CHECK_FALSE(pub.verifies("payload!", signature));
    std::string flipped = signature;
    flipped[flipped.size() / 2] ^= 1;
    CHECK_FALSE(pub.verifies("payload", flipped));
    CHECK_THROWS_WITH(pub.sign("payload"), "signing needs a private key");
  }
}

TEST_CASE("a signature attachment carries its signature in cosign's annotation", "[sign]") {
  std::string pem = pem_of("P-256", "pkcs8");
  Attachment a = signature_attachment(EcKey::private_from_pem(pem, "key.pem"), "reg/app", kImage.digest);
  CHECK(a.artifact_type == kCosignArtifactType);
  CHECK(a.media_type == kSimpleSigningMediaType);
  CHECK(a.bytes == simple_signing_payload("reg/app", kImage.digest));
  std::optional<std::string> signature = base64_decode(a.annotations.at(kCosignSignatureAnnotation));
  REQUIRE(signature);
  CHECK(EcKey::public_from_pem(public_of(pem), "pub.pem").verifies(a.bytes, *signature));
}

TEST_CASE("keys that cannot sign are refused, naming the source and never the bytes", "[sign]") {
  std::string p384 = pem_of("P-384", "pkcs8");
  CHECK_THROWS_WITH(EcKey::private_from_pem(p384, "p384.pem"),
                    "p384.pem: not an ECDSA P-256 key (make one with openssl ecparam -name prime256v1 -genkey)");
  CHECK_THROWS_WITH(EcKey::private_from_pem("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n", "enc.pem"),
                    "enc.pem: the key is encrypted; give an unencrypted PEM key (openssl pkcs8 -topk8 -nocrypt)");
  const std::string secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n";
  try {
    EcKey::private_from_pem(secret, "IMGBUILD_SIGN_KEY");
    FAIL("accepted a damaged key");
  } catch (const SigningError& e) {
    CHECK(std::string(e.what()) ==
          "IMGBUILD_SIGN_KEY: not a PEM private key (expected an unencrypted ECDSA P-256 key, PKCS#8 or SEC1)");
  }
  CHECK_THROWS_WITH(EcKey::private_from_pem(pem_of("P-256", "public"), "pub.pem"),
                    "pub.pem: not a PEM private key (expected an unencrypted ECDSA P-256 key, PKCS#8 or SEC1)");
  CHECK_THROWS_WITH(EcKey::public_from_pem("nothing", "x.pem"),
                    "x.pem: not a PEM public key (make one with openssl ec -pubout)");
  CHECK_THROWS_WITH(EcKey::private_from_file("/nonexistent/key.pem"), Catch::Contains("--sign-key: "));
}

TEST_CASE("an OCI layout lists artifacts by their subject beside its images, each once", "[sign]") {
  ScratchDir dir;
  Layout layout(dir.path);
  // An empty image whose config says `created`: another value, another image.
  auto image = [&](const std::string& created) {
    const json config = {{"created", created},
                         {"architecture", "amd64"},
                         {"os", "linux"},
                         {"rootfs", {{"type", "layers"}, {"diff_ids", json::array()}}}};
    const Descriptor stored = layout.put_document(config.dump(), media_type::kConfig);
    const json manifest = {{"schemaVersion", 2},
                           {"mediaType", media_type::kManifest.str()},
                           {"config", stored.to_json()},
                           {"layers", json::array()}};
    return layout.put_document(manifest.dump(), media_type::kManifest);
  };
  const Descriptor first = image("2024-01-01T00:00:00Z");
  layout.set_ref("app", first);
  const Artifact sbom = make_artifact(first, Attachment{kSpdxMediaType, kSpdxMediaType, "the first SBOM"});
  attach_to_layout(layout, {sbom});
  const std::string written = slurp(dir.path / "index.json");
  attach_to_layout(layout, {sbom});
  CHECK(slurp(dir.path / "index.json") == written);  // written again: nothing new
  CHECK(layout.entries().size() == 2);
  REQUIRE(layout.refs().size() == 1);  // the artifact is no image
  CHECK(layout.refs()[0].digest == first.digest);
  CHECK(layout.entries()[1].artifact_type == kSpdxMediaType);
  CHECK(layout_referrers(layout, first.digest) == std::vector<json>{referrer_entry(sbom)});
  CHECK(layout.live_blobs().count(sbom.blobs[1].descriptor.digest));

  // A signature kept in the layout is reused by the same key, not made again.
  const EcKey key = EcKey::private_from_pem(pem_of("prime256v1", "private"), "key.pem");
  CHECK_FALSE(layout_signature(layout, first.digest));
  const Artifact signature = cosign_signature(std::nullopt, "app", first, key);
  attach_to_layout(layout, {signature});
  const std::optional<Manifest> kept = layout_signature(layout, first.digest);
  REQUIRE(kept);
  CHECK(cosign_signature(kept, "app", first, key).descriptor.digest == signature.descriptor.digest);
  CHECK(layout_referrers(layout, first.digest).size() == 2);

  // The name built again: the old image's artifacts go with it.
  const Descriptor second = image("2025-01-01T00:00:00Z");
  layout.set_ref("app", second);
  const Artifact second_sbom = make_artifact(second, Attachment{kSpdxMediaType, kSpdxMediaType, "the second SBOM"});
  attach_to_layout(layout, {second_sbom});
  CHECK(layout_referrers(layout, first.digest).empty());
  CHECK(layout_referrers(layout, second.digest) == std::vector<json>{referrer_entry(second_sbom)});
  CHECK(layout.entries().size() == 2);
}
