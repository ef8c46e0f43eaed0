#pragma once
// The build graph: what evaluating a recipe describes, before anything runs.
// Every node carries the recipe location ("recipe.lua:7") of the call that made
// it, so errors raised while building point at the user's line.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "oci/image.hpp"
#include "sandbox/sandbox.hpp"

namespace imgbuild {

/// The empty image every image starts from.
struct ScratchOp {};

/// `from "ref"`: a base image from a registry. `reference` is normalised
/// ("docker.io/library/alpine:3.20"); the platform defaults to the build's.
struct PullOp {
  std::string reference;
  std::optional<std::string> platform;
};

/// uid:gid for copied files (`chown = "1000:1000"`).
struct Owner {
  uint32_t uid = 0, gid = 0;
};

/// `:copy(src, dst, {...})` and `:add(...)`: sources are build-context paths
/// (globs allowed) or file-producing nodes such as `go.build{}`.
struct CopyOp {
  struct Source {
    std::string context_path;         ///< set for build-context sources
    std::optional<size_t> file_node;  ///< set for file values
  };
  std::vector<Source> sources;
  std::string dest;
  std::optional<Owner> chown;
  std::optional<uint32_t> chmod;
  /// `static = true`: every ELF file copied must be statically linked and built
  /// for the image's platform.
  bool static_only = false;
  /// `from = other`: the sources are paths in that image's file system.
  std::optional<size_t> from_node;
  /// `:add`: the local tar archives among the sources (told by content) are
  /// extracted at the destination instead of copied.
  bool extract_archives = false;
  /// `:add("https://...", dst, { checksum = "sha256:..." })`: the one source
  /// is a file fetched from `url` and checked against `checksum`; it is
  /// written with mode 0600 (unless chmod) and never extracted, as Docker's ADD does.
  struct Remote {
    std::string url;
    std::string checksum;  ///< "sha256:<hex>", checked by the recipe
  };
  std::optional<Remote> remote;
};

/// `:run(...)`: a command executed in the image's file system (see sandbox.hpp).
struct RunOp {
  std::vector<std::string> argv;
  std::string shell;  ///< the command as written, for the shell form
  std::map<std::string, std::string> env;
  std::optional<std::string> workdir, user;
  StepNetwork network = StepNetwork::own;
  std::vector<std::string> cache;              ///< image paths of persistent cache mounts
  std::map<std::string, std::string> secrets;  ///< id -> host file, relative to the context
  /// `emulate = true`: on a foreign platform, the step may run under
  /// binfmt_misc's emulator (as --emulate allows for every step).
  bool emulate = false;
};

/// Changes to the image config, one type each, read once from the description.
/// `name` is the DSL's method (and the word of the step in history lines and
/// errors); `value` is what the DSL validated.
namespace config {

/// `:env { NAME = value }`: sets variables, keeping the others.
struct Env {
  static constexpr const char* name = "env";
  std::map<std::string, std::string> value;
};
/// `:workdir "dir"`: a relative dir is taken from the current one.
struct Workdir {
  static constexpr const char* name = "workdir";
  std::string value;
};
/// `:user "name"`, "uid" or "uid:gid".
struct User {
  static constexpr const char* name = "user";
  std::string value;
};
/// `:entrypoint { "/app" }`: exec form.
struct Entrypoint {
  static constexpr const char* name = "entrypoint";
  std::vector<std::string> value;
};
/// `:cmd { "--port", "8080" }`: exec form.
struct Cmd {
  static constexpr const char* name = "cmd";
  std::vector<std::string> value;
};
/// `:expose(8080, "53/udp")`: ports as "8080/tcp", added to those exposed.
struct Expose {
  static constexpr const char* name = "expose";
  std::vector<std::string> value;
};
/// `:label { name = value }`: sets labels, keeping the others.
struct Label {
  static constexpr const char* name = "label";
  std::map<std::string, std::string> value;
};
/// `:volume("/data")`: absolute paths, added to the volumes.
struct Volume {
  static constexpr const char* name = "volume";
  std::vector<std::string> value;
};
/// `:stopsignal "SIGTERM"` or a signal number.
struct StopSignal {
  static constexpr const char* name = "stopsignal";
  std::string value;
};

/// `:healthcheck(...)`: docker's HEALTHCHECK, times in nanoseconds.
struct Healthcheck {
  static constexpr const char* name = "healthcheck";
  HealthConfig value;
};

}  // namespace config

/// A change to the image config.
using ConfigOp = std::variant<config::Env, config::Workdir, config::User, config::Entrypoint, config::Cmd,
                              config::Expose, config::Label, config::Volume, config::StopSignal, config::Healthcheck>;

/// The DSL's name of the change ("env", "stopsignal").
inline const char* config_name(const ConfigOp& op) {
  return std::visit([](const auto& change) { return change.name; }, op);
}

/// A file produced by a command on the host (the Go toolchain for `go.build`).
/// `${TARGETOS}`, `${TARGETARCH}`, `${TARGETVARIANT}` in argv and env are
/// replaced by the platform of the image the file is copied into, and `${OUT}`
/// by the path the command must write its file to.
struct HostBuildOp {
  std::string description;  ///< "go build ." for progress and errors
  std::vector<std::string> argv;
  std::map<std::string, std::string> env;
  std::string dir;                    ///< working directory, relative to the context
  std::string input_root;             ///< relative to the context: where `inputs` are matched
  std::vector<std::string> inputs;    ///< patterns of the files the command reads
  std::vector<std::string> host_env;  ///< host environment variable prefixes that affect it ("GO")
  std::string output_name;            ///< the file's base name
  std::vector<std::string> tools;     ///< programs looked up in PATH and fingerprinted
};

/// A file or folder of the build machine that a stdlib module offers as a copy
/// source (the CA bundle, the zoneinfo tree): the first candidate that exists.
struct HostPathOp {
  std::string description;              ///< "imgbuild.certs bundle"
  std::vector<std::string> candidates;  ///< absolute host paths, in order of preference
};

/// `:doctor { ignore = {...} }`: silences named doctor warnings for this image
/// and those built on it. Changes nothing in the image itself.
struct DoctorOp {
  std::vector<std::string> ignore;
};

/// `:budget { size = "10MB" }`: the image (and those built on it) may not
/// have more compressed layer bytes than this. Changes nothing in the image.
struct BudgetOp {
  uint64_t bytes = 0;
  std::string size;  ///< as the recipe wrote it, for messages
};

/// One step of the graph. Image nodes have a parent (except scratch and pulled bases); file
/// nodes (HostBuildOp, HostPathOp) stand alone.
struct Node {
  std::string loc;
  std::optional<size_t> parent;
  std::variant<ScratchOp, PullOp, CopyOp, RunOp, ConfigOp, DoctorOp, BudgetOp, HostBuildOp, HostPathOp> op;

  bool is_file() const { return std::holds_alternative<HostBuildOp>(op) || std::holds_alternative<HostPathOp>(op); }
};

/// `image(name, img, { platforms = {...}, annotations = {...} })`.
struct Target {
  std::string name;
  size_t node = 0;
  std::string loc;
  /// The platforms the image is built for, one image each under an index;
  /// empty: the platform the recipe was evaluated for.
  std::vector<Platform> platforms;
  /// Set on the manifest (and index) over the defaults; an empty value drops one.
  std::map<std::string, std::string> annotations;
};

/// `push(img, ref)`: after the build, the image goes to `reference` (normalised).
struct Push {
  size_t node = 0;
  std::string reference;
  std::string loc;
  /// Made by `cached(ref, fn)` when the registry lacked `ref`: the image must
  /// reach the registry whenever a build uses it, even when targets are named
  /// and none of them is this image, or the next build would rebuild it again.
  bool always = false;
  /// As Target::platforms: several make an index.
  std::vector<Platform> platforms;
  /// As Target::annotations.
  std::map<std::string, std::string> annotations;
};

struct Graph {
  std::vector<Node> nodes;
  std::vector<Target> targets;
  std::vector<Push> pushes;

  /// Reads the description the recipe engine hands over (nodes numbered from 1,
  /// parents before children). Throws std::runtime_error for a malformed one:
  /// that is an engine bug, never a user error.
  static Graph from_json(const nlohmann::json& description);

  /// Whether building `node` needs `ancestor`: it is `node` itself, or is
  /// reached through parents and `copy { from = ... }` images.
  bool needs(size_t node, size_t ancestor) const;

  /// The node of the target named `name`; nullopt when there is none (an
  /// evaluation for another platform may describe other targets).
  std::optional<size_t> target_node(const std::string& name) const;
  /// The node pushed to `reference`; nullopt when nothing is.
  std::optional<size_t> push_node(const std::string& reference) const;
};

}  // namespace imgbuild
