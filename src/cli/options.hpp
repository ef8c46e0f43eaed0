#pragma once
// The command line's one argument table: every option of every command is
// declared once (its spellings, whether it takes a value, what it sets), and
// one parser reads a command's words against the options that command names.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cli/progress.hpp"
#include "layer/layer.hpp"
#include "oci/reference.hpp"
#include "sandbox/sandbox.hpp"
#include "store/step_cache.hpp"

namespace imgbuild::cli {

/// -o, --output: where each built target is also written.
struct Output {
  enum class Kind { Oci, DockerArchive } kind;  ///< oci:DIR or docker-archive:FILE
  std::filesystem::path path;                   ///< DIR or FILE
};

/// What the options of a command line say, with the defaults of those not
/// given. A command reads the fields of the options it takes.
struct Options {
  std::vector<Output> outputs;
  std::map<std::string, std::string> params;  ///< --set NAME=VALUE, the last value of a name
  std::optional<std::filesystem::path> context;
  bool strict = false;
  std::set<std::string> ignore;  ///< doctor warnings not to report
  Compression compression = Compression::Gzip;
  long max_processes = kDefaultMaxProcesses;  ///< --max-processes: of each RUN step
  /// --isolation of RUN steps; unset: IMGBUILD_ISOLATION, else namespaces (isolation_of)
  std::optional<Isolation> isolation;
  bool use_cache = true;  ///< false: --no-cache
  std::optional<std::filesystem::path> cache_dir;
  std::vector<Reference> cache_from;
  std::optional<Reference> cache_to;
  bool pull = false;
  bool push = true;  ///< false: --no-push
  ProgressMode progress = ProgressMode::Auto;
  bool debug = false;
  std::set<std::string> insecure;                           ///< --insecure-registry hosts
  std::map<std::string, std::vector<std::string>> mirrors;  ///< --registry-mirror, by registry
  PruneOptions prune;                                       ///< --keep-bytes, --older-than
  bool json = false;                                        ///< check --json
  std::optional<std::string> format;                        ///< sbom --format: spdx or cyclonedx
  std::optional<std::string> username;                      ///< login --username
  bool password_stdin = false;                              ///< login --password-stdin
  std::optional<std::filesystem::path> file;                ///< convert -f: the Dockerfile
  std::optional<std::filesystem::path> sign_key;            ///< --sign-key: the private key signing pushes
  std::vector<std::filesystem::path> keys;  ///< verify --key, each one given: public keys, any of which may sign
  std::vector<Platform> platforms;          ///< --platform: what every image is built for
  bool emulate = false;                     ///< --emulate: foreign RUN steps under binfmt_misc
};

/// Every option of the table, by name.
enum class Opt {
  Output,
  Set,
  Context,
  Strict,
  Ignore,
  Compression,
  MaxProcesses,
  Isolation,
  NoCache,
  CacheDir,
  CacheFrom,
  CacheTo,
  Pull,
  Push,
  NoPush,
  Progress,
  Debug,
  InsecureRegistry,
  RegistryMirror,
  KeepBytes,
  OlderThan,
  Json,
  Format,
  Username,
  PasswordStdin,
  File,
  SignKey,
  Key,
  Platform,
  Emulate,
};

/// The options a command takes.
class OptionSet {
public:
  /// The set of `options`, as a command lists them.
  constexpr OptionSet(std::initializer_list<Opt> options) {
    for (Opt o : options) bits_ |= bit(o);
  }
  /// This set and `other`: a command's own options and a shared group.
  constexpr OptionSet operator|(OptionSet other) const {
    OptionSet both = *this;
    both.bits_ |= other.bits_;
    return both;
  }
  /// Whether the command takes `o`.
  constexpr bool contains(Opt o) const { return (bits_ & bit(o)) != 0; }

private:
  static constexpr uint32_t bit(Opt o) { return uint32_t{1} << static_cast<unsigned>(o); }
  uint32_t bits_ = 0;
};

/// Taken by every command that talks to a registry (build, plan, push).
inline constexpr OptionSet kRegistryOptions = {Opt::InsecureRegistry, Opt::Debug};
/// Taken by every command that uses the build cache (build, plan, cache).
inline constexpr OptionSet kCacheOptions = {Opt::CacheDir};

/// What a command does with a word that is none of its options.
enum class Operands {
  Any,      ///< takes it, a lone "-" too (build, plan: a recipe of that name)
  NotDash,  ///< takes it, but a lone "-" is an unknown option (push, check)
  None,     ///< refuses it as an unknown option (cache ls, cache prune)
};

/// How a command reads its words.
struct Syntax {
  OptionSet options;
  Operands operands = Operands::Any;
  /// What an unknown option's message starts with: "cache ls: " names the
  /// subcommand; the other commands say nothing before it.
  std::string unknown_prefix = {};
};

/// Reads `args` against `syntax`, left to right, and returns the operands in
/// order. Each option is checked and set in `options` as it comes, so a
/// UsageError names the first mistake. Options may stand anywhere; one that
/// takes a value takes the next word, whatever it is, or, spelled long, what
/// follows '=' in --option=VALUE. There is no "--" end-of-options marker.
std::vector<std::string> parse_options(const std::vector<std::string>& args, const Syntax& syntax, Options& options);

/// "90s", "30m", "12h", "7d", "2w" as seconds; nullopt for anything else.
std::optional<std::chrono::seconds> parse_duration(const std::string& text);

/// The isolation of RUN steps `options` ask for: --isolation, else
/// IMGBUILD_ISOLATION, else namespaces. Throws UsageError for an unknown name.
Isolation isolation_of(const Options& options);

/// Adds a REGISTRY=MIRROR pair (--registry-mirror, IMGBUILD_REGISTRY_MIRRORS)
/// to `mirrors`; another form is a UsageError.
void add_mirror(std::map<std::string, std::vector<std::string>>& mirrors, const std::string& spec);

}  // namespace imgbuild::cli
