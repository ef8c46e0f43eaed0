#pragma once
// Image references ("alpine:3.20", "ghcr.io/o/r@sha256:..."), parsed once where
// a string enters and normalised exactly as Docker does (distribution/reference
// ParseNormalizedNamed followed by TagNameOnly), so a name that means one image
// to `docker pull` means the same image here.
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "oci/digest.hpp"

namespace imgbuild {

/// A string that is not a valid image reference. what() quotes the input and
/// says what is wrong: `invalid image reference "Alpine": repository name must
/// be lowercase`.
class ReferenceError : public std::runtime_error {
  using runtime_error::runtime_error;
};

/// A fully qualified image reference. Every field is normalised, so two
/// references to the same image compare equal whatever short form they came from.
struct Reference {
  /// "docker.io", "ghcr.io", "localhost:5000", "127.0.0.1:5000", "[::1]:5000".
  /// Kept as written (not lowercased), as Docker does.
  std::string registry;
  /// "library/alpine", "o/r", "a/b".
  std::string repository;
  /// "latest" when neither a tag nor a digest was given; empty when only a
  /// digest was. Kept next to a digest ("name:tag@sha256:...") for humans,
  /// though the digest alone says which manifest is meant.
  std::string tag;
  std::optional<Digest> digest;

  /// Parses and normalises: "alpine" is docker.io/library/alpine:latest,
  /// "index.docker.io/..." is docker.io/..., "docker.io/alpine" is
  /// docker.io/library/alpine. The first path component is a registry when it
  /// holds a '.' or ':', is "localhost" or has an uppercase letter. Only sha256
  /// digests are accepted. Throws ReferenceError.
  static Reference parse(std::string_view text);

  /// The full form, which parse() maps back to this reference:
  /// "docker.io/library/alpine:3.20", "ghcr.io/o/r@sha256:...", "x/y:t@sha256:...".
  std::string str() const;
  /// Docker's short form: "alpine:3.20" and "o/r:t" on docker.io; str() elsewhere,
  /// and for docker.io/a.b/c or docker.io/localhost/c, whose short form would
  /// name a registry (Docker prints "a.b/c" there).
  std::string familiar() const;
  /// registry + "/" + repository.
  std::string name() const;
  /// The host:port to talk to: Docker Hub's API is not served at "docker.io".
  std::string api_host() const;
  /// What the manifest is fetched by: the digest when there is one, else the tag.
  std::string manifest_ref() const;
  /// The same repository at another tag, without a digest (a digest would
  /// override the tag). Throws ReferenceError for an invalid tag.
  Reference with_tag(std::string new_tag) const;
  /// The same repository pinned to `d`; the tag stays, for humans.
  Reference with_digest(Digest d) const;

  friend bool operator==(const Reference&, const Reference&) = default;
};

/// Whether a registry host ("localhost:5000", "127.0.0.1", "[::1]:5000",
/// "127.3.4.5:80") is a loopback address or the name "localhost": traffic there
/// never leaves the machine, so plain HTTP is allowed without being asked for.
bool is_loopback_host(std::string_view registry);

}  // namespace imgbuild
