// imgbuild verify REF --key PUB.pem: the image's signatures checked against
// the key and the image's digest, and every artifact attached to it (SBOM,
// provenance) checked to be about that digest.
#include <iostream>
#include <optional>
#include <set>

#include "base/fs.hpp"
#include "base/text.hpp"
#include "build/provenance.hpp"
#include "cli/commands.hpp"
#include "cli/options.hpp"
#include "cli/registry_access.hpp"
#include "cli/report.hpp"
#include "sign/publish.hpp"

namespace imgbuild::cli {
namespace {

using json = nlohmann::json;

const Syntax kVerifySyntax = {OptionSet{Opt::Key} | kRegistryOptions, Operands::NotDash};

/// A string field of a JSON object, "" when absent.
std::string text_at(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

/// What verify found: each finding printed, each mismatch counted.
class Findings {
public:
  void found(const std::string& line) { std::cout << "  " << line << "\n"; }
  void mismatch(const std::string& line) {
    report("verify: " + line);
    ++mismatches_;
  }
  int mismatches() const { return mismatches_; }

private:
  int mismatches_ = 0;
};

/// Checks a manifest's subject is `image`; returns the parsed manifest.
json about_image(RegistryClient& client, const Reference& repo, const Digest& manifest, const Digest& image,
                 Findings& findings) {
  Manifest got = client.get_manifest(repo.with_digest(manifest));
  json doc = json::parse(got.body, nullptr, false);
  const std::string subject = doc.is_object() ? text_at(doc.value("subject", json::object()), "digest") : "";
  if (subject != image.str())
    findings.mismatch(manifest.str() + " is listed as a referrer of " + image.str() + " but its subject is " +
                      (subject.empty() ? std::string("missing") : subject));
  return doc;
}

/// Checks every signature layer of the signature manifest `doc`.
size_t check_signatures(RegistryClient& client, const Reference& repo, const std::string& where, const json& doc,
                        const Digest& image, const EcKey& key, const std::string& key_name, Findings& findings) {
  size_t verified = 0;
  const json layers = doc.is_object() ? doc.value("layers", json::array()) : json::array();
  for (const json& layer : layers.is_array() ? layers : json::array()) {
    if (text_at(layer, "mediaType") != kSimpleSigningMediaType) continue;
    Descriptor blob = Descriptor::from_json(layer);
    std::string payload = client.get_document(repo, blob);
    std::optional<std::string> signature =
        base64_decode(text_at(layer.value("annotations", json::object()), kCosignSignatureAnnotation));
    if (!signature || !key.verifies(payload, *signature)) {
      findings.mismatch(where + ": the signature of payload " + blob.digest.str() + " does not verify with " +
                        key_name);
      continue;
    }
    std::optional<SignedClaim> claim;
    try {
      claim = parse_simple_signing(payload);
    } catch (const SigningError& e) {
      findings.mismatch(where + ": " + e.what());
      continue;
    }
    if (claim->manifest != image) {
      findings.mismatch(where + ": the signed payload is for " + claim->manifest.str() + ", not " + image.str());
      continue;
    }
    findings.found("signature " + where + ": verified with " + key_name + " (" + claim->docker_reference + "@" +
                   claim->manifest.str() + ")");
    ++verified;
  }
  return verified;
}

/// The one document an attached artifact `doc` carries; nullopt, counted as
/// a mismatch, when it has not exactly one layer.
std::optional<std::string> artifact_document(RegistryClient& client, const Reference& repo, const Digest& digest,
                                             const json& doc, const std::string& what, Findings& findings) {
  const json layers = doc.value("layers", json::array());
  if (!layers.is_array() || layers.size() != 1) {
    findings.mismatch(digest.str() + ": " + what + " artifact with " +
                      std::to_string(layers.is_array() ? layers.size() : 0) + " layers");
    return std::nullopt;
  }
  return client.get_document(repo, Descriptor::from_json(layers[0]));
}

/// Whether the in-toto statement names `image` among its subjects.
bool statement_is_about(const std::string& statement, const Digest& image) {
  json doc = json::parse(statement, nullptr, false);
  const json subjects = doc.is_object() ? doc.value("subject", json::array()) : json::array();
  for (const json& subject : subjects.is_array() ? subjects : json::array())
    if (text_at(subject.value("digest", json::object()), "sha256") == image.hex()) return true;
  return false;
}

}  // namespace

int cmd_verify(const std::vector<std::string>& args) {
  Options options;
  std::vector<std::string> operands = parse_options(args, kVerifySyntax, options);
  if (operands.size() != 1 || !options.key)
    throw UsageError("verify takes a pushed image and a public key: imgbuild verify REF --key PUB.pem");
  Reference ref;
  try {
    ref = Reference::parse(operands[0]);
  } catch (const ReferenceError& e) {
    throw UsageError(e.what());
  }
  const std::string key_name = options.key->string();
  EcKey key = EcKey::public_from_pem(read_file(*options.key), key_name);
  RegistryAccess registry(options);
  RegistryClient& client = registry.client();
  const Digest image = client.get_manifest(ref).digest;
  std::cout << ref.name() << "@" << image.str() << "\n";

  Findings findings;
  ReferrersMode mode;
  std::vector<json> referrers = list_referrers(client, ref, image, mode);
  findings.found("referrers: " + std::to_string(referrers.size()) + " through " + describe(mode, image));
  size_t signatures = 0, sboms = 0, provenances = 0;
  std::set<std::string> seen;
  for (const json& entry : referrers) {
    const Digest digest = Digest::parse(text_at(entry, "digest"));
    if (!seen.insert(digest.str()).second) continue;
    json doc = about_image(client, ref, digest, image, findings);
    const std::string type = text_at(doc, "artifactType");
    if (type == kCosignArtifactType) {
      signatures += check_signatures(client, ref, digest.str(), doc, image, key, key_name, findings);
    } else if (type == kSpdxMediaType) {
      std::optional<std::string> sbom = artifact_document(client, ref, digest, doc, "an SBOM", findings);
      if (!sbom) continue;
      if (sbom->find(image.str()) == std::string::npos) {
        findings.mismatch(digest.str() + ": the SBOM does not name " + image.str());
        continue;
      }
      findings.found("sbom " + digest.str() + ": " + type + ", " + std::to_string(sbom->size()) + " bytes, about " +
                     image.str());
      ++sboms;
    } else if (type == kInTotoMediaType) {
      std::optional<std::string> statement = artifact_document(client, ref, digest, doc, "a provenance", findings);
      if (!statement) continue;
      if (!statement_is_about(*statement, image)) {
        findings.mismatch(digest.str() + ": the provenance's subject is not " + image.str());
        continue;
      }
      findings.found("provenance " + digest.str() + ": " + type + ", " + std::to_string(statement->size()) +
                     " bytes, about " + image.str());
      ++provenances;
    } else {
      findings.found("artifact " + digest.str() + ": " + (type.empty() ? std::string("no artifactType") : type) +
                     ", about " + image.str());
    }
  }
  // cosign's own place, where a signature made by cosign (no subject) is too.
  const std::string sig_tag = signature_tag(image);
  try {
    Manifest tagged = client.get_manifest(ref.with_tag(sig_tag));
    if (seen.insert(tagged.digest.str()).second) {
      json doc = json::parse(tagged.body, nullptr, false);
      signatures += check_signatures(client, ref, sig_tag, doc, image, key, key_name, findings);
    }
  } catch (const RegistryError& e) {
    if (e.status() != 404) throw;
  }
  if (signatures == 0) findings.mismatch("no signature of " + image.str() + " verifies with " + key_name);
  if (sboms == 0) findings.mismatch("no SBOM is attached to " + image.str());
  if (findings.mismatches() > 0) {
    report("verify " + ref.str() + ": " + std::to_string(findings.mismatches()) + " mismatch" +
           (findings.mismatches() == 1 ? "" : "es"));
    return kExitError;
  }
  std::cout << "verified: " << signatures << " signature" << (signatures == 1 ? "" : "s") << ", " << sboms << " SBOM"
            << (sboms == 1 ? "" : "s") << ", " << provenances << " provenance statement"
            << (provenances == 1 ? "" : "s") << "\n";
  return 0;
}

}  // namespace imgbuild::cli
