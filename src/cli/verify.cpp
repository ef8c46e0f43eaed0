// imgbuild verify REF|oci:DIR[:NAME] --key PUB.pem...: the image's signatures
// checked against the keys and the image's digest, and every artifact
// attached to it (SBOM, provenance) checked to be about that digest. An index
// of several platforms carries the signature; each platform's image carries
// its own SBOM and provenance, checked the same way.
#include <algorithm>
#include <iostream>
#include <optional>
#include <set>

#include "base/fs.hpp"
#include "base/text.hpp"
#include "build/provenance.hpp"
#include "cli/commands.hpp"
#include "cli/local_store.hpp"
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

/// What a finding of an SBOM or a provenance adds: a signature covers the
/// image's manifest, never these documents, so whoever can push to the
/// repository (or write the layout) can replace one by another about the same
/// digest, and verify cannot tell.
constexpr const char* kNotSigned = " (not signed: its content is not checked)";

/// What verify found: each finding printed, each mismatch counted; while a
/// platform's image of an index is checked, both say which one.
class Findings {
public:
  void found(const std::string& line) { std::cout << (scope_.empty() ? "  " : "    ") << line << "\n"; }
  void mismatch(const std::string& line) {
    report("verify: " + (scope_.empty() ? "" : scope_ + ": ") + line);
    ++mismatches_;
  }
  int mismatches() const { return mismatches_; }
  /// Starts the findings about one platform's image: `scope` names it.
  void enter(const std::string& scope) {
    scope_ = scope;
    std::cout << "  " << scope << "\n";
  }
  /// Ends the findings about a platform's image.
  void leave() { scope_.clear(); }

private:
  int mismatches_ = 0;
  std::string scope_;
};

/// Where verify reads an image's referrers and their documents: a
/// registry's repository, or an OCI layout (`-o oci:DIR`).
class Source {
public:
  virtual ~Source() = default;
  /// The referrers of `image` as the source lists them; `how` says how.
  virtual std::vector<json> referrers(const Digest& image, std::string& how) = 0;
  /// The bytes of the manifest a referrer entry describes.
  virtual std::string manifest(const Descriptor& d) = 0;
  /// The bytes of a blob, verified against its descriptor.
  virtual std::string document(const Descriptor& d) = 0;
  /// cosign's own place, where a signature made by cosign (no subject) is
  /// too: its name and manifest; nullopt for none.
  virtual std::optional<std::pair<std::string, Manifest>> cosign_tag(const Digest& image) = 0;
};

class RegistrySource : public Source {
public:
  RegistrySource(RegistryClient& client, Reference repo) : client_(client), repo_(std::move(repo)) {}
  std::vector<json> referrers(const Digest& image, std::string& how) override {
    ReferrersMode mode;
    std::vector<json> found = list_referrers(client_, repo_, image, mode);
    how = describe(mode, image);
    return found;
  }
  std::string manifest(const Descriptor& d) override { return client_.get_manifest(repo_.with_digest(d.digest)).body; }
  std::string document(const Descriptor& d) override { return client_.get_document(repo_, d); }
  std::optional<std::pair<std::string, Manifest>> cosign_tag(const Digest& image) override {
    const std::string tag = signature_tag(image);
    try {
      return std::pair{tag, client_.get_manifest(repo_.with_tag(tag))};
    } catch (const RegistryError& e) {
      if (e.status() != 404) throw;
      return std::nullopt;
    }
  }

private:
  RegistryClient& client_;
  Reference repo_;
};

class LayoutSource : public Source {
public:
  explicit LayoutSource(const Layout& layout) : layout_(layout) {}
  std::vector<json> referrers(const Digest& image, std::string& how) override {
    how = (layout_.root() / "index.json").string();
    return layout_referrers(layout_, image);
  }
  std::string manifest(const Descriptor& d) override { return layout_.read_document(d); }
  std::string document(const Descriptor& d) override { return layout_.read_document(d); }
  std::optional<std::pair<std::string, Manifest>> cosign_tag(const Digest&) override { return std::nullopt; }

private:
  const Layout& layout_;
};

/// Checks a manifest's subject is `image`; returns the parsed manifest.
json about_image(Source& source, const Descriptor& manifest, const Digest& image, Findings& findings) {
  json doc = json::parse(source.manifest(manifest), nullptr, false);
  const std::string subject = doc.is_object() ? text_at(doc.value("subject", json::object()), "digest") : "";
  if (subject != image.str())
    findings.mismatch(manifest.digest.str() + " is listed as a referrer of " + image.str() + " but its subject is " +
                      (subject.empty() ? std::string("missing") : subject));
  return doc;
}

/// The public keys verify was given, each with its file's name.
using Keys = std::vector<std::pair<std::string, EcKey>>;

/// "a.pem", "a.pem or b.pem", "a.pem, b.pem or c.pem".
std::string either_of(const Keys& keys) {
  std::string text;
  for (size_t i = 0; i < keys.size(); ++i) text += (i == 0 ? "" : i + 1 == keys.size() ? " or " : ", ") + keys[i].first;
  return text;
}

/// Checks every signature layer of the signature manifest `doc`: each must
/// verify with one of `keys`.
size_t check_signatures(Source& source, const std::string& where, const json& doc, const Digest& image,
                        const Keys& keys, Findings& findings) {
  size_t verified = 0;
  const json layers = doc.is_object() ? doc.value("layers", json::array()) : json::array();
  for (const json& layer : layers.is_array() ? layers : json::array()) {
    if (text_at(layer, "mediaType") != kSimpleSigningMediaType) continue;
    Descriptor blob = Descriptor::from_json(layer);
    std::string payload = source.document(blob);
    std::optional<std::string> signature =
        base64_decode(text_at(layer.value("annotations", json::object()), kCosignSignatureAnnotation));
    auto signer = std::find_if(keys.begin(), keys.end(),
                               [&](const auto& key) { return signature && key.second.verifies(payload, *signature); });
    if (signer == keys.end()) {
      findings.mismatch(where + ": the signature of payload " + blob.digest.str() + " does not verify with " +
                        either_of(keys));
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
    findings.found("signature " + where + ": verified with " + signer->first + " (" + claim->docker_reference + "@" +
                   claim->manifest.str() + ")");
    ++verified;
  }
  return verified;
}

/// The one document an attached artifact `doc` carries; nullopt, counted as
/// a mismatch, when it has not exactly one layer.
std::optional<std::string> artifact_document(Source& source, const Digest& digest, const json& doc,
                                             const std::string& what, Findings& findings) {
  const json layers = doc.value("layers", json::array());
  if (!layers.is_array() || layers.size() != 1) {
    findings.mismatch(digest.str() + ": " + what + " artifact with " +
                      std::to_string(layers.is_array() ? layers.size() : 0) + " layers");
    return std::nullopt;
  }
  return source.document(Descriptor::from_json(layers[0]));
}

/// Whether the in-toto statement names `image` among its subjects.
bool statement_is_about(const std::string& statement, const Digest& image) {
  json doc = json::parse(statement, nullptr, false);
  const json subjects = doc.is_object() ? doc.value("subject", json::array()) : json::array();
  for (const json& subject : subjects.is_array() ? subjects : json::array())
    if (text_at(subject.value("digest", json::object()), "sha256") == image.hex()) return true;
  return false;
}

/// What verify counted: signatures that verified, SBOMs and provenance
/// statements about their image.
struct Counts {
  size_t signatures = 0, sboms = 0, provenances = 0;
  Counts& operator+=(const Counts& more) {
    signatures += more.signatures;
    sboms += more.sboms;
    provenances += more.provenances;
    return *this;
  }
};

/// Checks everything attached to the manifest or index `image`: each
/// referrer must be about it, each signature (referrer or under cosign's tag)
/// must verify with one of `keys` and be of `image`.
Counts check_attached(Source& source, const Digest& image, const Keys& keys, Findings& findings) {
  std::string how;
  std::vector<json> referrers = source.referrers(image, how);
  findings.found("referrers: " + std::to_string(referrers.size()) + " through " + how);
  Counts counts;
  std::set<std::string> seen;
  for (const json& entry : referrers) {
    const Descriptor described = Descriptor::from_json(entry);
    const Digest& digest = described.digest;
    if (!seen.insert(digest.str()).second) continue;
    json doc = about_image(source, described, image, findings);
    const std::string type = text_at(doc, "artifactType");
    if (type == kCosignArtifactType) {
      counts.signatures += check_signatures(source, digest.str(), doc, image, keys, findings);
    } else if (type == kSpdxMediaType) {
      std::optional<std::string> sbom = artifact_document(source, digest, doc, "an SBOM", findings);
      if (!sbom) continue;
      if (sbom->find(image.str()) == std::string::npos) {
        findings.mismatch(digest.str() + ": the SBOM does not name " + image.str());
        continue;
      }
      findings.found("sbom " + digest.str() + ": " + type + ", " + std::to_string(sbom->size()) + " bytes, about " +
                     image.str() + kNotSigned);
      ++counts.sboms;
    } else if (type == kInTotoMediaType) {
      std::optional<std::string> statement = artifact_document(source, digest, doc, "a provenance", findings);
      if (!statement) continue;
      if (!statement_is_about(*statement, image)) {
        findings.mismatch(digest.str() + ": the provenance's subject is not " + image.str());
        continue;
      }
      findings.found("provenance " + digest.str() + ": " + type + ", " + std::to_string(statement->size()) +
                     " bytes, about " + image.str() + kNotSigned);
      ++counts.provenances;
    } else {
      findings.found("artifact " + digest.str() + ": " + (type.empty() ? std::string("no artifactType") : type) +
                     ", about " + image.str());
    }
  }
  if (auto tagged = source.cosign_tag(image); tagged && seen.insert(tagged->second.digest.str()).second) {
    json doc = json::parse(tagged->second.body, nullptr, false);
    counts.signatures += check_signatures(source, tagged->first, doc, image, keys, findings);
  }
  return counts;
}

/// The image manifests an index lists, each with its platform.
std::vector<Descriptor> platform_images(Source& source, const Descriptor& index) {
  json doc = json::parse(source.manifest(index), nullptr, false);
  const json listed = doc.is_object() ? doc.value("manifests", json::array()) : json::array();
  std::vector<Descriptor> images;
  for (const json& entry : listed.is_array() ? listed : json::array()) images.push_back(Descriptor::from_json(entry));
  return images;
}

}  // namespace

int cmd_verify(const std::vector<std::string>& args) {
  Options options;
  std::vector<std::string> operands = parse_options(args, kVerifySyntax, options);
  if (operands.size() != 1 || options.keys.empty())
    throw UsageError(
        "verify takes a pushed or written image and a public key: imgbuild verify REF|oci:DIR[:NAME] --key PUB.pem "
        "[--key PUB.pem...]");
  Keys keys;
  for (const std::filesystem::path& file : options.keys)
    keys.emplace_back(file.string(), EcKey::public_from_pem(read_file(file), file.string()));
  std::optional<RegistryAccess> registry;
  std::optional<NamedImage> written;
  std::unique_ptr<Source> source;
  std::optional<Descriptor> named;
  if (operands[0].starts_with("oci:")) {
    written = open_named_image(operands[0], "verify");
    // What was written under the name: the index of several platforms, signed as a whole.
    named = written->index ? *written->index : written->manifest;
    source = std::make_unique<LayoutSource>(written->layout);
    std::cout << written->layout.root().string() << ":" << written->name << "@" << named->digest.str() << "\n";
  } else {
    Reference ref;
    try {
      ref = Reference::parse(operands[0]);
    } catch (const ReferenceError& e) {
      throw UsageError(e.what());
    }
    registry.emplace(options);
    const Manifest manifest = registry->client().get_manifest(ref);
    named = Descriptor{
        .media_type = manifest.media_type, .digest = manifest.digest, .size = manifest.body.size(), .annotations = {}};
    source = std::make_unique<RegistrySource>(registry->client(), ref);
    std::cout << ref.name() << "@" << named->digest.str() << "\n";
  }
  const Digest& image = named->digest;

  Findings findings;
  Counts counts = check_attached(*source, image, keys, findings);
  if (counts.signatures == 0) findings.mismatch("no signature of " + image.str() + " verifies with " + either_of(keys));
  if (!named->media_type.is_index()) {
    if (counts.sboms == 0) findings.mismatch("no SBOM is attached to " + image.str());
  } else {
    // The index is signed; what each platform's image is made of is
    // described on that image, where scanners look it up by its digest.
    std::vector<std::string> without_provenance;
    size_t platform_provenances = 0;
    const std::vector<Descriptor> platforms = platform_images(*source, *named);
    if (platforms.empty()) findings.mismatch("the index " + image.str() + " lists no platform's image");
    for (const Descriptor& platform_image : platforms) {
      const std::string scope =
          "platform " + (platform_image.platform ? platform_image.platform->str() : std::string("(none named)")) + " " +
          platform_image.digest.str();
      findings.enter(scope);
      const Counts found = check_attached(*source, platform_image.digest, keys, findings);
      if (found.sboms == 0) findings.mismatch("no SBOM is attached to " + platform_image.digest.str());
      if (found.provenances == 0) without_provenance.push_back(scope);
      platform_provenances += found.provenances;
      counts += found;
    }
    // An image pushed from elsewhere has no provenance; one platform without
    // it while the others have theirs had it removed.
    findings.leave();
    if (platform_provenances > 0)
      for (const std::string& scope : without_provenance)
        findings.mismatch(scope + ": no provenance is attached, while the index's other platforms have theirs");
  }
  if (findings.mismatches() > 0) {
    report("verify " + operands[0] + ": " + std::to_string(findings.mismatches()) + " mismatch" +
           (findings.mismatches() == 1 ? "" : "es"));
    return kExitError;
  }
  std::cout << "verified: " << counts.signatures << " signature" << (counts.signatures == 1 ? "" : "s") << ", "
            << counts.sboms << " SBOM" << (counts.sboms == 1 ? "" : "s") << ", " << counts.provenances
            << " provenance statement" << (counts.provenances == 1 ? "" : "s")
            << " (the signatures cover the image's digest; the SBOM and provenance are checked to be about it, "
               "their contents are covered by no signature)\n";
  return 0;
}

}  // namespace imgbuild::cli
