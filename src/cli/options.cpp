#include "cli/options.hpp"

#include <algorithm>
#include <cstdlib>
#include <string_view>

#include "base/text.hpp"
#include "build/builder.hpp"
#include "cli/report.hpp"
#include "inspect/doctor.hpp"

namespace imgbuild::cli {
namespace {

Output parse_output(const std::string& spec) {
  if (spec.starts_with("oci:") && spec.size() > 4) return {Output::Kind::Oci, spec.substr(4)};
  if (spec.starts_with("docker-archive:") && spec.size() > 15) return {Output::Kind::DockerArchive, spec.substr(15)};
  throw UsageError("invalid output '" + spec + "' (expected oci:DIR or docker-archive:FILE)");
}

/// A registry reference for --cache-from/--cache-to: a tag, never a digest.
Reference parse_cache_ref(const std::string& flag, const std::string& text) {
  try {
    Reference r = Reference::parse(text);
    if (r.digest) throw UsageError(flag + " " + text + ": name a tag, not a digest");
    return r;
  } catch (const ReferenceError& e) {
    throw UsageError(flag + ": " + e.what());
  }
}

/// --keep-bytes SIZE: "10GB", "500MB", "2GiB" (parse_size()).
uint64_t parse_bytes(const std::string& text) {
  if (auto bytes = parse_size(text)) return *bytes;
  throw UsageError("--keep-bytes: '" + text + "' is not a size (e.g. 10GB, 500MB, 2GiB)");
}

/// --older-than AGE: "7d", "12h", "30m", "2w", "90s".
int64_t parse_age(const std::string& text) {
  if (auto d = parse_duration(text)) return d->count();
  throw UsageError("--older-than: '" + text + "' is not a duration (e.g. 7d, 12h, 30m)");
}

/// --isolation NAME (or IMGBUILD_ISOLATION=NAME: `source` is what comes before the name): namespaces, chroot or auto.
Isolation parse_isolation(const std::string& source, const std::string& name) {
  if (name == "namespaces") return Isolation::namespaces;
  if (name == "chroot") return Isolation::chroot;
  if (name == "auto") return Isolation::automatic;
  throw UsageError(source + name + ": expected namespaces, chroot or auto");
}

/// --platform linux/amd64,linux/arm64: distinct platforms, in order.
std::vector<Platform> parse_platforms(const std::string& list) {
  std::vector<Platform> out;
  for (auto& text : split(list, ',')) {
    Platform p;
    try {
      p = Platform::parse(text);
    } catch (const std::runtime_error& e) {
      throw UsageError(std::string("--platform: ") + e.what());
    }
    if (std::find(out.begin(), out.end(), p) != out.end()) throw UsageError("--platform: " + text + " is listed twice");
    out.push_back(p);
  }
  return out;
}

/// A row of the table. An option that takes no value ignores the one `apply` is given.
struct Option {
  Opt id;
  std::string_view name;        ///< --name
  std::string_view short_name;  ///< -x, or empty
  bool takes_value;
  void (*apply)(Options& options, const std::string& value);
};

constexpr bool kValue = true;
constexpr bool kFlag = false;

/// The table: every option of every command, once.
const Option kTable[] = {
    {Opt::Output, "--output", "-o", kValue,
     [](Options& o, const std::string& spec) { o.outputs.push_back(parse_output(spec)); }},
    {Opt::Set, "--set", "", kValue,
     [](Options& o, const std::string& kv) {
       size_t eq = kv.find('=');
       if (eq == std::string::npos || eq == 0) throw UsageError("--set expects NAME=VALUE, got '" + kv + "'");
       o.params[kv.substr(0, eq)] = kv.substr(eq + 1);
     }},
    {Opt::Context, "--context", "", kValue, [](Options& o, const std::string& dir) { o.context = dir; }},
    {Opt::Strict, "--strict", "", kFlag, [](Options& o, const std::string&) { o.strict = true; }},
    {Opt::Ignore, "--ignore", "", kValue,
     [](Options& o, const std::string& name) {
       if (!kDoctorWarnings.count(name))
         throw UsageError("--ignore " + name + ": no such warning (known: " + join(kDoctorWarnings, ", ") + ")");
       o.ignore.insert(name);
     }},
    {Opt::Compression, "--compression", "", kValue,
     [](Options& o, const std::string& name) {
       auto c = parse_compression(name);
       if (!c) throw UsageError("--compression " + name + ": expected gzip or zstd");
       o.compression = *c;
     }},
    {Opt::MaxProcesses, "--max-processes", "", kValue,
     [](Options& o, const std::string& n) {
       size_t used = 0;
       try {
         o.max_processes = std::stol(n, &used);
       } catch (const std::exception&) {
         used = 0;
       }
       if (used == 0 || used != n.size() || o.max_processes < 1)
         throw UsageError("--max-processes: '" + n + "' is not a number of processes (at least 1)");
     }},
    {Opt::Isolation, "--isolation", "", kValue,
     [](Options& o, const std::string& name) { o.isolation = parse_isolation("--isolation ", name); }},
    {Opt::NoCache, "--no-cache", "", kFlag, [](Options& o, const std::string&) { o.use_cache = false; }},
    {Opt::CacheDir, "--cache-dir", "", kValue, [](Options& o, const std::string& dir) { o.cache_dir = dir; }},
    {Opt::CacheFrom, "--cache-from", "", kValue,
     [](Options& o, const std::string& ref) { o.cache_from.push_back(parse_cache_ref("--cache-from", ref)); }},
    {Opt::CacheTo, "--cache-to", "", kValue,
     [](Options& o, const std::string& ref) { o.cache_to = parse_cache_ref("--cache-to", ref); }},
    {Opt::Pull, "--pull", "", kFlag, [](Options& o, const std::string&) { o.pull = true; }},
    {Opt::Push, "--push", "", kFlag, [](Options& o, const std::string&) { o.push = true; }},
    {Opt::NoPush, "--no-push", "", kFlag, [](Options& o, const std::string&) { o.push = false; }},
    {Opt::Progress, "--progress", "", kValue,
     [](Options& o, const std::string& mode) {
       auto parsed = parse_progress_mode(mode);
       if (!parsed) throw UsageError("--progress " + mode + ": expected auto, tty, plain or json");
       o.progress = *parsed;
     }},
    {Opt::Debug, "--debug", "", kFlag, [](Options& o, const std::string&) { o.debug = true; }},
    {Opt::Platform, "--platform", "", kValue,
     [](Options& o, const std::string& list) { o.platforms = parse_platforms(list); }},
    {Opt::Emulate, "--emulate", "", kFlag, [](Options& o, const std::string&) { o.emulate = true; }},
    {Opt::InsecureRegistry, "--insecure-registry", "", kValue,
     [](Options& o, const std::string& host) { o.insecure.insert(host); }},
    {Opt::RegistryMirror, "--registry-mirror", "", kValue,
     [](Options& o, const std::string& spec) { add_mirror(o.mirrors, spec); }},
    {Opt::KeepBytes, "--keep-bytes", "", kValue,
     [](Options& o, const std::string& size) { o.prune.keep_bytes = parse_bytes(size); }},
    {Opt::OlderThan, "--older-than", "", kValue,
     [](Options& o, const std::string& age) { o.prune.older_than = parse_age(age); }},
    {Opt::Json, "--json", "", kFlag, [](Options& o, const std::string&) { o.json = true; }},
    {Opt::Format, "--format", "", kValue, [](Options& o, const std::string& format) { o.format = format; }},
    {Opt::Username, "--username", "-u", kValue, [](Options& o, const std::string& user) { o.username = user; }},
    {Opt::PasswordStdin, "--password-stdin", "", kFlag,
     [](Options& o, const std::string&) { o.password_stdin = true; }},
    {Opt::File, "--file", "-f", kValue, [](Options& o, const std::string& file) { o.file = file; }},
    {Opt::SignKey, "--sign-key", "", kValue, [](Options& o, const std::string& file) { o.sign_key = file; }},
    {Opt::Key, "--key", "", kValue, [](Options& o, const std::string& file) { o.keys.push_back(file); }},
};

/// The option of `accepted` spelled `name`, if any.
const Option* find_option(std::string_view name, OptionSet accepted) {
  for (const Option& o : kTable)
    if ((name == o.name || (!o.short_name.empty() && name == o.short_name)) && accepted.contains(o.id)) return &o;
  return nullptr;
}

bool is_operand(const std::string& word, Operands operands) {
  switch (operands) {
    case Operands::Any:
      return !word.starts_with("-") || word == "-";
    case Operands::NotDash:
      return !word.starts_with("-");
    case Operands::None:
      return false;
  }
  return false;
}

}  // namespace

Isolation isolation_of(const Options& options) {
  if (options.isolation) return *options.isolation;
  const char* name = std::getenv("IMGBUILD_ISOLATION");
  return name && *name ? parse_isolation("IMGBUILD_ISOLATION=", name) : Isolation::namespaces;
}

std::vector<std::string> parse_options(const std::vector<std::string>& args, const Syntax& syntax, Options& options) {
  std::vector<std::string> operands;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& word = args[i];
    size_t eq = word.starts_with("--") ? word.find('=') : std::string::npos;
    bool inline_value = eq != std::string::npos;
    std::string name = word.substr(0, eq);
    const Option* option = find_option(name, syntax.options);
    // A value after '=' for an option that takes none makes the word unknown.
    if (option && (option->takes_value || !inline_value)) {
      std::string value;
      if (inline_value)
        value = word.substr(eq + 1);
      else if (option->takes_value) {
        if (i + 1 >= args.size()) throw UsageError(name + " needs a value");
        value = args[++i];
      }
      option->apply(options, value);
    } else if (is_operand(word, syntax.operands)) {
      operands.push_back(word);
    } else {
      throw UsageError(syntax.unknown_prefix + "unknown option '" + word + "'");
    }
  }
  return operands;
}

std::optional<std::chrono::seconds> parse_duration(const std::string& text) {
  size_t used = 0;
  long long value = -1;
  try {
    value = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  static const std::map<std::string, int64_t> units = {{"s", 1}, {"m", 60}, {"h", 3600}, {"d", 86400}, {"w", 604800}};
  auto it = units.find(text.substr(used));
  if (used == 0 || value < 0 || it == units.end()) return std::nullopt;
  return std::chrono::seconds(value * it->second);
}

void add_mirror(std::map<std::string, std::vector<std::string>>& mirrors, const std::string& spec) {
  size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw UsageError("registry mirror '" + spec + "': expected REGISTRY=MIRROR, e.g. docker.io=mirror.example.com");
  mirrors[spec.substr(0, eq)].push_back(spec.substr(eq + 1));
}

}  // namespace imgbuild::cli
