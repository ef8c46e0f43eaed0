#include "registry/credentials.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <system_error>
#include <vector>

#include <openssl/evp.h>
#include <nlohmann/json.hpp>

#include "base/fs.hpp"
#include "base/interrupt.hpp"
#include "base/process.hpp"
#include "base/text.hpp"
#include "oci/reference.hpp"

extern char** environ;

namespace imgbuild {

namespace {

using json = nlohmann::json;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kDockerHub = "docker.io";
// Docker Hub's key in config.json and what its helpers are asked for.
constexpr std::string_view kDockerHubServer = "https://index.docker.io/v1/";
constexpr std::string_view kEnvPrefix = "IMGBUILD_REGISTRY_AUTH_";
// docker-credential-helpers' message for a host it has nothing for.
constexpr std::string_view kHelperNotFound = "credentials not found in native keychain";
// A helper answers with one small JSON object; more is a broken helper.
constexpr size_t kMaxHelperOutput = 64 * 1024;
constexpr size_t kMaxStderrShown = 200;
// How often a wait for a helper looks for an interrupt.
constexpr milliseconds kInterruptSlice{100};

std::string lowercase(std::string_view text) {
  std::string out(text);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

/// A config.json key or registry name reduced to the host it stands for,
/// lowercased: host names do not depend on case, and nothing else is lost.
std::string server_host(std::string_view key) {
  std::string k = lowercase(key);
  std::string_view host = k;
  if (host.starts_with("http://"))
    host.remove_prefix(7);
  else if (host.starts_with("https://"))
    host.remove_prefix(8);
  host = host.substr(0, host.find('/'));
  if (host == "index.docker.io" || host == "registry-1.docker.io") return std::string(kDockerHub);
  return std::string(host);
}

/// Whether `host` (lowercase) is a registry host as references spell them.
bool is_registry_host(const std::string& host) {
  try {
    return Reference::parse(host + "/x").registry == host;
  } catch (const ReferenceError&) {
    return false;
  }
}

/// Whether `host` (lowercase, a registry host) is one a credential could be
/// sent to by mistake: an IP address, localhost, or a DNS name with a dot
/// whose last label can be a top-level domain. Single-label names and made-up
/// domains ("127.0.0-1") resolve nowhere that someone else could claim.
bool is_reachable_host(const std::string& host) {
  if (host.starts_with('[')) {
    in6_addr address{};
    return ::inet_pton(AF_INET6, host.substr(1, host.find(']') - 1).c_str(), &address) == 1;
  }
  std::string name = host.substr(0, host.find(':'));
  in_addr v4{};
  if (name == "localhost" || ::inet_pton(AF_INET, name.c_str(), &v4) == 1) return true;
  size_t dot = name.rfind('.');
  if (dot == std::string::npos) return false;
  std::string_view tld = std::string_view(name).substr(dot + 1);
  return tld.starts_with("xn--") || std::all_of(tld.begin(), tld.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

/// "IMGBUILD_REGISTRY_AUTH_" and the host in the old, lossy spelling.
std::string legacy_variable(const std::string& host) {
  std::string name(kEnvPrefix);
  for (char c : host) {
    if (c >= 'a' && c <= 'z')
      name += static_cast<char>(c - 'a' + 'A');
    else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
      name += c;
    else
      name += '_';
  }
  return name;
}

/// The host a variable's value "HOST=user:password" names (as server_host()
/// reads a config.json key), and the rest; nullopt for the old value form.
std::optional<std::pair<std::string, std::string_view>> host_form(std::string_view value) {
  size_t eq = value.find('=');
  if (eq == std::string_view::npos) return std::nullopt;
  std::string host = server_host(value.substr(0, eq));
  if (!is_registry_host(host)) return std::nullopt;
  return std::pair{host, value.substr(eq + 1)};
}

/// "user:password" with neither part empty. An empty value is usually a CI
/// secret that is not there: anonymous access would fail later with a less
/// helpful "unauthorized".
std::optional<Credential> user_password(std::string_view text, const std::string& source) {
  size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) return std::nullopt;
  return Credential{std::string(text.substr(0, colon)), std::string(text.substr(colon + 1)), {}, source};
}

/// What docker calls the server: the key it writes in config.json and sends helpers.
std::string server_url(const std::string& host) { return host == kDockerHub ? std::string(kDockerHubServer) : host; }

/// The key a login writes for `host`: docker's spelling in config.json, the
/// bare host in auth.json (as podman and skopeo write it).
std::string canonical_key(const std::string& host, ConfigFormat format) {
  return format == ConfigFormat::Docker ? server_url(host) : host;
}

/// The host a credentials file's key is for; nullopt for an auth.json
/// namespace key ("quay.io/team": no scheme and a path), which is not for the
/// whole registry.
std::optional<std::string> key_host(std::string_view key, ConfigFormat format) {
  std::string k = lowercase(key);
  bool scheme = k.starts_with("http://") || k.starts_with("https://");
  if (format == ConfigFormat::Containers && !scheme && k.find('/') != std::string::npos) return std::nullopt;
  return server_host(k);
}

/// Helper names become part of a program name searched in PATH: a '/' would
/// turn them into a path to anything.
bool is_helper_name(std::string_view name) {
  return !name.empty() && name.find('/') == std::string_view::npos && name.find('\0') == std::string_view::npos;
}

std::string format_duration(milliseconds d) {
  if (d.count() % 1000 == 0) return std::to_string(d.count() / 1000) + " s";
  return std::to_string(d.count()) + " ms";
}

/// An absolute executable `name` in one of `path`'s directories. Empty and
/// relative entries are skipped, as Go's exec.LookPath does since 1.19, so a
/// helper never runs from whatever the current directory is.
std::string find_program(const std::string& name, const std::string& path) {
  for (const std::string& dir : split(path, ':')) {
    if (dir.front() != '/') continue;
    std::string candidate = dir + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
  }
  return {};
}

struct HelperResult {
  int exit_status = 0;   ///< when it exited
  int signal = 0;        ///< when a signal ended it
  std::string out, err;  ///< err: only what fits in kMaxStderrShown
};

/// Runs `program action` (get, store, erase) with `input` on stdin and `env`
/// as its environment, and collects its output. Throws CredentialError
/// (prefixed `what`) when it cannot start, takes longer than `timeout` or
/// prints too much.
HelperResult run_helper(const std::string& program, const std::string& action, const std::string& input,
                        const std::vector<std::string>& env, milliseconds timeout, const std::string& what) {
  auto fail = [&](const std::string& why) { return CredentialError(what + " " + why); };
  // stdin is a socket so that a helper exiting before it reads gives EPIPE to
  // send(MSG_NOSIGNAL) rather than a SIGPIPE that would kill this process.
  int in_pair[2], out_pipe[2], err_pipe[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_pair) != 0)
    throw fail(std::string("cannot start: socketpair: ") + std::strerror(errno));
  Fd in_child(in_pair[0]), in_parent(in_pair[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw fail(std::string("cannot start: pipe: ") + std::strerror(errno));
  Fd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) throw fail(std::string("cannot start: pipe: ") + std::strerror(errno));
  Fd err_read(err_pipe[0]), err_write(err_pipe[1]);

  // Killed and reaped when it is abandoned (timeout, too much output, an
  // interrupt or any exception), with everything it started: it leads a
  // process group of its own, so no zombie or stray process outlives a lookup.
  std::string arg0 = std::filesystem::path(program).filename().string();
  ChildProcess child = [&] {
    try {
      return spawn_process({.argv = {arg0, action},
                            .program = program,
                            .env = env,
                            .stdin_fd = in_child.get(),
                            .stdout_fd = out_write.get(),
                            .stderr_fd = err_write.get(),
                            .own_group = true});
    } catch (const std::system_error& e) {
      throw fail(std::string("cannot start: ") + std::strerror(e.code().value()));
    }
  }();
  in_child = Fd();
  out_write = Fd();
  err_write = Fd();

  auto deadline = Clock::now() + timeout;

  // Far below a socket buffer, so this cannot block on a helper that never reads.
  ::send(in_parent.get(), input.data(), input.size(), MSG_NOSIGNAL);
  in_parent = Fd();

  HelperResult result;
  bool out_open = true, err_open = true;
  char buf[4096];
  while (out_open || err_open) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) throw fail("did not answer within " + format_duration(timeout) + " and was killed");
    pollfd fds[2] = {{out_open ? out_read.get() : -1, POLLIN, 0}, {err_open ? err_read.get() : -1, POLLIN, 0}};
    // In slices: Ctrl-C may be delivered to another thread and never end this poll.
    int ready = ::poll(fds, 2, static_cast<int>(std::min<long>(left, kInterruptSlice.count())));
    check_interrupt();
    if (ready < 0) {
      if (errno == EINTR) continue;
      throw fail(std::string("failed: poll: ") + std::strerror(errno));
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        (i == 0 ? out_open : err_open) = false;
        continue;
      }
      if (i == 0) {
        result.out.append(buf, static_cast<size_t>(n));
        if (result.out.size() > kMaxHelperOutput)
          throw fail("printed more than " + std::to_string(kMaxHelperOutput) + " bytes");
      } else if (result.err.size() < kMaxStderrShown + 1) {
        // Kept only up to what a message shows; the rest is drained unread.
        result.err.append(buf, std::min(static_cast<size_t>(n), kMaxStderrShown + 1 - result.err.size()));
      }
    }
  }

  // Both pipes closed: the helper is exiting. It still gets the deadline.
  for (;;) {
    int status = 0;
    pid_t done = ::waitpid(child.pid(), &status, WNOHANG);
    if (done < 0 && errno == EINTR) continue;
    if (done < 0) {
      if (errno == ECHILD) child.release();  // reaped elsewhere (SIGCHLD ignored): its pid may be reused
      throw fail(std::string("failed: waitpid: ") + std::strerror(errno));
    }
    if (done == child.pid()) {
      child.release();
      if (WIFEXITED(status))
        result.exit_status = WEXITSTATUS(status);
      else
        result.signal = WTERMSIG(status);
      return result;
    }
    if (Clock::now() >= deadline) throw fail("did not exit within " + format_duration(timeout) + " and was killed");
    check_interrupt();
    ::usleep(1000);
  }
}

/// The first line of a helper's stderr, shortened, for a message.
std::string first_line(const std::string& err) {
  std::string line = err.substr(0, err.find('\n'));
  while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
  if (line.size() > kMaxStderrShown) line = line.substr(0, kMaxStderrShown) + "...";
  // Control characters could rewrite the terminal the message is shown on.
  for (char& c : line)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return line;
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  return std::string(s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1));
}

/// Line and column (1-based) of byte offset `pos` in `text`.
std::string position(std::string_view text, size_t pos) {
  pos = std::min(pos, text.size());
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < pos; ++i)
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  return "line " + std::to_string(line) + ", column " + std::to_string(pos - line_start + 1);
}

}  // namespace

std::vector<std::string> legacy_env_readings(std::string_view encoded, size_t limit) {
  std::vector<std::string> readings;
  // Whether `limit` readings are found.
  auto consider = [&](const std::string& candidate) {
    std::string host = lowercase(candidate);
    if (is_registry_host(host) && is_reachable_host(host) &&
        std::find(readings.begin(), readings.end(), host) == readings.end())
      readings.push_back(host);
    return readings.size() >= limit;
  };
  auto all_digits = [](std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
  };
  if (encoded.starts_with('_')) {
    // "[" ADDRESS "]" and maybe ":" PORT: wherever the ']' can be, every '_'
    // inside is a ':'.
    for (size_t close = 1; close < encoded.size(); ++close) {
      std::string_view rest = encoded.substr(close + 1);
      if (encoded[close] != '_' || !(rest.empty() || (rest[0] == '_' && all_digits(rest.substr(1))))) continue;
      std::string address(encoded.substr(1, close - 1));
      std::replace(address.begin(), address.end(), '_', ':');
      if (consider("[" + address + "]" + (rest.empty() ? "" : ":" + std::string(rest.substr(1))))) break;
    }
    return readings;
  }
  // A name: a run of several '_' can only have been '-'s (a '.' or ':' is never
  // next to another separator); each lone '_' a '.' or '-', and the last one,
  // before digits only, a ':' too.
  std::string name(encoded);
  std::vector<size_t> lone;
  for (size_t i = 0; i < name.size();) {
    size_t end = name.find_first_not_of('_', i);
    if (end == std::string::npos) end = name.size();
    if (end - i == 1)
      lone.push_back(i);
    else if (end > i)
      std::fill(name.begin() + static_cast<ptrdiff_t>(i), name.begin() + static_cast<ptrdiff_t>(end), '-');
    i = end > i ? end : i + 1;
  }
  bool port_possible = !lone.empty() && all_digits(std::string_view(name).substr(lone.back() + 1));
  for (bool port : {false, true}) {
    if (port && !port_possible) break;
    size_t free = lone.size() - (port ? 1 : 0);
    if (port) name[lone.back()] = ':';
    // Past 2^16 spellings the first two readings have long been found.
    for (uint32_t mask = 0; mask < (1u << std::min<size_t>(free, 16)); ++mask) {
      for (size_t b = 0; b < free; ++b) name[lone[b]] = (b < 16 && (mask >> b) & 1) ? '-' : '.';
      if (consider(name)) return readings;
    }
  }
  return readings;
}

std::optional<std::string> registry_host(std::string_view text) {
  std::string host = server_host(text);
  if (!is_registry_host(host)) return std::nullopt;
  return host;
}

std::vector<CredentialFile> credential_files(const std::map<std::string, std::string>& env) {
  auto var = [&](const char* name) -> std::string {
    auto it = env.find(name);
    return it == env.end() ? std::string() : it->second;
  };
  // As containers/image reads them: a file the user names replaces the rest.
  if (std::string named = var("REGISTRY_AUTH_FILE"); !named.empty()) return {{named, ConfigFormat::Containers}};
  std::vector<CredentialFile> files;
  std::string runtime = var("XDG_RUNTIME_DIR");
  files.push_back({runtime.empty() ? "/run/containers/" + std::to_string(::getuid()) + "/auth.json"
                                   : runtime + "/containers/auth.json",
                   ConfigFormat::Containers});
  std::string home = var("HOME"), config_home = var("XDG_CONFIG_HOME");
  if (config_home.empty() && !home.empty()) config_home = home + "/.config";
  if (!config_home.empty())
    files.push_back({std::filesystem::path(config_home) / "containers/auth.json", ConfigFormat::Containers});
  if (std::string docker = var("DOCKER_CONFIG"); !docker.empty())
    files.push_back({std::filesystem::path(docker) / "config.json", ConfigFormat::Docker});
  else if (!home.empty())
    files.push_back({std::filesystem::path(home) / ".docker/config.json", ConfigFormat::Docker});
  return files;
}

/// One credentials file as read.
struct Credentials::File {
  CredentialFile where;
  std::map<std::string, Credential> auths;     ///< by host
  std::map<std::string, std::string> helpers;  ///< credHelpers, by host
  std::string store;                           ///< credsStore

  /// The helper this file names for `host`, or nullptr.
  const std::string* helper_for(const std::string& host) const {
    auto named = helpers.find(host);
    if (named != helpers.end()) return &named->second;
    return store.empty() ? nullptr : &store;
  }
};

struct Credentials::HelperCache {
  // Held across a helper run: one keychain prompt per host, not one per thread.
  std::mutex mutex;
  std::map<std::pair<std::string, std::string>, std::optional<Credential>> by_helper_and_host;
};

Credentials::Credentials() : cache_(std::make_unique<HelperCache>()) {}
Credentials::~Credentials() = default;
Credentials::Credentials(Credentials&&) noexcept = default;
Credentials& Credentials::operator=(Credentials&&) noexcept = default;

namespace {

/// A credentials file's text as a JSON object (empty for an empty file, as
/// docker accepts it). Throws CredentialError naming `where` and, for a syntax
/// error, the line and column, quoting nothing.
template <class Json>
Json parse_object(std::string_view json_text, const std::string& where) {
  if (json_text.find_first_not_of(" \t\r\n") == std::string_view::npos) return Json::object();
  Json doc;
  try {
    doc = Json::parse(json_text);
  } catch (const json::parse_error& e) {
    // e.what() quotes the text near the error, which may be a secret.
    size_t at = e.byte > 0 ? e.byte - 1 : 0;
    throw CredentialError(where + ": invalid JSON at " + position(json_text, at));
  } catch (const json::exception&) {
    // The one other error the parser raises: out_of_range 406, a number like
    // 1e999 that does not fit a double.
    throw CredentialError(where + ": invalid JSON: a number is out of range");
  }
  if (!doc.is_object()) throw CredentialError(where + ": expected a JSON object at the top level");
  return doc;
}

/// The text of `file`, or nullopt when it does not exist.
std::optional<std::string> read_if_present(const CredentialFile& file) {
  try {
    return read_file(file.path);
  } catch (const std::system_error& e) {
    if (e.code() == std::errc::no_such_file_or_directory || e.code() == std::errc::not_a_directory) return std::nullopt;
    throw CredentialError(std::string(file.format == ConfigFormat::Docker ? "cannot read Docker config "
                                                                          : "cannot read containers auth file ") +
                          e.what());
  }
}

}  // namespace

Credentials Credentials::parse_config(std::string_view json_text, std::string_view origin, ConfigFormat format) {
  Credentials c;
  CredentialFile where_file{std::string(origin), format};
  c.searched_.push_back(where_file);
  File& file = c.files_.emplace_back(File{where_file, {}, {}, {}});
  const std::string where(origin);
  json doc = parse_object<json>(json_text, where);

  // `path` locates `obj` in the document; "" for the top level.
  auto string_field = [&](const json& obj, const char* field, const std::string& path) -> std::string {
    auto it = obj.find(field);
    if (it == obj.end() || it->is_null()) return {};
    if (!it->is_string())
      throw CredentialError(where + ": " + (path.empty() ? quote(field) : path + "." + field) + " must be a string");
    return it->get<std::string>();
  };

  if (auto auths = doc.find("auths"); auths != doc.end() && !auths->is_null()) {
    if (!auths->is_object()) throw CredentialError(where + ": \"auths\" must be an object");
    // Several keys can name one host; the one docker itself writes wins, then
    // the first in key order, so the choice never depends on the file's order.
    for (bool canonical_pass : {true, false}) {
      for (auto& [key, entry] : auths->items()) {
        std::optional<std::string> host = key_host(key, format);
        if (!host || (key == canonical_key(*host, format)) != canonical_pass || file.auths.count(*host)) continue;
        std::string path = "auths[" + quote(key) + "]";
        if (!entry.is_object()) throw CredentialError(where + ": " + path + " must be an object");
        Credential cred;
        cred.source = where + " " + path;
        cred.username = string_field(entry, "username", path);
        cred.password = string_field(entry, "password", path);
        cred.identity_token = string_field(entry, "identitytoken", path);
        if (std::string auth = string_field(entry, "auth", path); !auth.empty()) {
          std::optional<std::string> decoded = base64_decode(auth);
          if (!decoded) throw CredentialError(where + ": " + path + ".auth is not valid base64");
          size_t colon = decoded->find(':');
          if (colon == std::string::npos || colon == 0)
            throw CredentialError(where + ": " + path + ".auth does not decode to \"user:password\"");
          cred.username = decoded->substr(0, colon);
          cred.password = decoded->substr(colon + 1);
        }
        // `docker login` with a credsStore leaves empty placeholders here.
        if (cred != Credential{}) file.auths.emplace(*host, std::move(cred));
      }
    }
  }

  if (auto helpers = doc.find("credHelpers"); helpers != doc.end() && !helpers->is_null()) {
    if (!helpers->is_object()) throw CredentialError(where + ": \"credHelpers\" must be an object");
    for (auto& [key, name] : helpers->items()) {
      std::string path = "credHelpers[" + quote(key) + "]";
      if (!name.is_string()) throw CredentialError(where + ": " + path + " must be a string");
      if (!is_helper_name(name.get<std::string>()))
        throw CredentialError(where + ": " + path +
                              " is not a credential helper name: " + quote(name.get<std::string>()));
      if (std::optional<std::string> host = key_host(key, format)) file.helpers.emplace(*host, name.get<std::string>());
    }
  }

  file.store = string_field(doc, "credsStore", "");
  if (!file.store.empty() && !is_helper_name(file.store))
    throw CredentialError(where + ": credsStore is not a credential helper name: " + quote(file.store));
  return c;
}

Credentials Credentials::only(const std::string& registry, Credential credential) {
  Credentials c;
  c.files_.push_back(File{{}, {{server_host(registry), std::move(credential)}}, {}, {}});
  return c;
}

Credentials Credentials::load(const std::map<std::string, std::string>& env, milliseconds helper_timeout) {
  Credentials c;
  c.searched_ = credential_files(env);
  for (const CredentialFile& file : c.searched_)
    if (std::optional<std::string> text = read_if_present(file))
      c.files_.push_back(std::move(parse_config(*text, file.path.string(), file.format).files_.front()));
  c.env_ = env;
  c.helper_timeout_ = helper_timeout;
  return c;
}

Credentials Credentials::load() {
  std::map<std::string, std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view entry = *e;
    size_t eq = entry.find('=');
    if (eq != std::string_view::npos) env.emplace(entry.substr(0, eq), entry.substr(eq + 1));
  }
  return load(env);
}

std::optional<Credential> Credentials::from_environment(const std::string& host) const {
  std::optional<Credential> found;
  for (auto it = env_.lower_bound(std::string(kEnvPrefix)); it != env_.end() && it->first.starts_with(kEnvPrefix);
       ++it) {
    auto form = host_form(it->second);
    if (!form || form->first != host) continue;
    std::optional<Credential> cred = user_password(form->second, it->first);
    if (!cred) throw CredentialError(it->first + " must be \"HOST=user:password\" with neither part empty");
    if (found && *found != *cred)
      throw CredentialError(found->source + " and " + it->first + " both give credentials for " + host + ": keep one");
    if (!found) found = std::move(cred);
  }
  return found ? found : from_legacy_variable(host);
}

std::optional<Credential> Credentials::from_legacy_variable(const std::string& host) const {
  std::string name = legacy_variable(host);
  auto it = env_.find(name);
  // A value naming its host is for that host only: from_environment's.
  if (it == env_.end() || host_form(it->second)) return std::nullopt;
  for (const std::string& other : legacy_env_readings(std::string_view(name).substr(kEnvPrefix.size())))
    if (other != host)
      throw CredentialError(name + " could be meant for " + other + " as well as " + host +
                            ", so it is not used: name the host in its value instead (" + name + "=" + host +
                            "=user:password)");
  std::optional<Credential> cred = user_password(it->second, name);
  if (!cred) throw CredentialError(name + " must be \"user:password\" with neither part empty");
  return cred;
}

std::optional<std::string> Credentials::ask_helper(const std::string& helper, const std::string& action,
                                                   const std::string& host, const std::string& input) const {
  std::string program = "docker-credential-" + helper;
  std::string what = "credential helper " + program + (action == "get" ? "" : " " + action) + " for " + host;
  auto path = env_.find("PATH");
  std::string found = find_program(program, path == env_.end() ? std::string() : path->second);
  if (found.empty()) throw CredentialError(what + ": not found in PATH");

  std::vector<std::string> env;
  for (auto& [k, v] : env_) env.push_back(k + "=" + v);
  HelperResult r = run_helper(found, action, input, env, helper_timeout_, what);
  if (r.signal != 0) throw CredentialError(what + " was killed by signal " + std::to_string(r.signal));
  if (r.exit_status == 0) return std::move(r.out);
  // Its stdout is only compared with the "not found" answer, never shown.
  if (trim(r.out) == kHelperNotFound) return std::nullopt;
  std::string line = first_line(r.err);
  throw CredentialError(what + " exited with status " + std::to_string(r.exit_status) +
                        (line.empty() ? "" : ": " + line));
}

std::optional<Credential> Credentials::from_helper(const std::string& helper, const std::string& host) const {
  std::lock_guard lock(cache_->mutex);
  auto key = std::pair{helper, host};
  if (auto it = cache_->by_helper_and_host.find(key); it != cache_->by_helper_and_host.end()) return it->second;

  std::string source = "credential helper docker-credential-" + helper;
  std::optional<Credential> cred;
  if (std::optional<std::string> out = ask_helper(helper, "get", host, server_url(host))) {
    json answer = json::parse(*out, nullptr, false);
    auto field = [&](const char* name) -> const json* {
      auto it = answer.is_object() ? answer.find(name) : answer.end();
      return it != answer.end() && it->is_string() ? &*it : nullptr;
    };
    const json* user = field("Username");
    const json* secret = field("Secret");
    if (!user || !secret)
      throw CredentialError(source + " for " + host + " printed no JSON object with a Username and a Secret");
    if (*user == "<token>")
      cred = Credential{{}, {}, secret->get<std::string>(), source};
    else if (!user->get_ref<const std::string&>().empty() || !secret->get_ref<const std::string&>().empty())
      cred = Credential{user->get<std::string>(), secret->get<std::string>(), {}, source};
  }
  cache_->by_helper_and_host.emplace(key, cred);
  return cred;
}

std::optional<Credential> Credentials::lookup(const std::string& registry) const {
  std::string host = server_host(registry);
  if (auto c = from_environment(host)) return c;
  for (const File& file : files_) {
    if (const std::string* helper = file.helper_for(host))
      if (auto c = from_helper(*helper, host)) return c;
    if (auto it = file.auths.find(host); it != file.auths.end()) return it->second;
  }
  return std::nullopt;
}

std::string Credentials::searched() const {
  std::string places = std::string(kEnvPrefix) + "*";
  for (const CredentialFile& file : searched_) places += ", " + file.path.string();
  return places;
}

namespace {

/// Rewrites `file` with `host`'s keys removed and, with `credential`, one
/// entry for it in the form podman and docker write. Everything else in the
/// file stays as it was, in its order. Atomic, mode 0600: the file holds
/// secrets. Returns whether the file changed.
bool rewrite_entry(const CredentialFile& file, const std::string& host, const Credential* credential) {
  using ordered = nlohmann::ordered_json;
  std::filesystem::path path = file.path;
  std::error_code ec;
  // A config file linked from elsewhere (dotfiles) is written where it lives.
  if (std::filesystem::is_symlink(path, ec)) path = std::filesystem::weakly_canonical(path);
  std::optional<std::string> text = read_if_present({path, file.format});
  ordered doc = parse_object<ordered>(text.value_or(""), file.path.string());
  ordered& auths = doc["auths"];
  if (auths.is_null()) auths = ordered::object();
  if (!auths.is_object()) throw CredentialError(file.path.string() + ": \"auths\" must be an object");
  std::vector<std::string> stale;
  for (auto& [key, entry] : auths.items())
    if (key_host(key, file.format) == host) stale.push_back(key);
  for (const std::string& key : stale) auths.erase(key);
  if (!credential && stale.empty()) return false;
  if (credential)
    auths[canonical_key(host, file.format)] = {
        {"auth", base64_encode(credential->username + ":" + credential->password)}};
  std::filesystem::path dir = path.parent_path();
  if (!dir.empty() && !std::filesystem::exists(dir)) {
    std::filesystem::create_directories(dir);
    std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
  }
  AtomicFile out(path);
  out.write(doc.dump(1, '\t') + "\n");
  out.commit(0600);
  return true;
}

}  // namespace

std::string Credentials::save(const std::string& registry, const Credential& credential) const {
  std::string host = server_host(registry);
  // The file whose entry is in use for the host now, else the last file read:
  // $REGISTRY_AUTH_FILE, or docker's config.json, which every tool reads.
  auto in_use = std::find_if(files_.begin(), files_.end(),
                             [&](const File& f) { return f.auths.count(host) || f.helpers.count(host); });
  if (in_use == files_.end() && searched_.empty())
    throw CredentialError("nowhere to save credentials: set HOME, DOCKER_CONFIG or REGISTRY_AUTH_FILE");
  const CredentialFile& target = in_use != files_.end() ? in_use->where : searched_.back();
  auto parsed = std::find_if(files_.begin(), files_.end(), [&](const File& f) { return f.where.path == target.path; });
  if (parsed != files_.end())
    if (const std::string* helper = parsed->helper_for(host)) {
      json request = {
          {"ServerURL", server_url(host)}, {"Username", credential.username}, {"Secret", credential.password}};
      ask_helper(*helper, "store", host, request.dump());
      return "credential helper docker-credential-" + *helper + " (named in " + target.path.string() + ")";
    }
  try {
    rewrite_entry(target, host, &credential);
  } catch (const std::filesystem::filesystem_error& e) {
    throw CredentialError("cannot save credentials in " + target.path.string() + ": " + e.code().message());
  } catch (const std::system_error& e) {
    throw CredentialError(std::string("cannot save credentials: ") + e.what());
  }
  return target.path.string();
}

std::vector<std::string> Credentials::erase(const std::string& registry) const {
  std::string host = server_host(registry);
  std::vector<std::string> removed;
  for (const File& file : files_) {
    if (const std::string* helper = file.helper_for(host))
      if (ask_helper(*helper, "erase", host, server_url(host)))
        removed.push_back("credential helper docker-credential-" + *helper);
    try {
      if (rewrite_entry(file.where, host, nullptr)) removed.push_back(file.where.path.string());
    } catch (const std::filesystem::filesystem_error& e) {
      throw CredentialError("cannot remove credentials from " + file.where.path.string() + ": " + e.code().message());
    } catch (const std::system_error& e) {
      throw CredentialError(std::string("cannot remove credentials: ") + e.what());
    }
  }
  return removed;
}

}  // namespace imgbuild
