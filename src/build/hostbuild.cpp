#include "build/hostbuild.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <sstream>
#include <stdexcept>

#include "base/fs.hpp"
#include "base/interrupt.hpp"
#include "base/process.hpp"
#include "build/context.hpp"
#include "build/dockerignore.hpp"

extern char** environ;

namespace imgbuild {

namespace fs = std::filesystem;

namespace {

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  for (size_t pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
    s.replace(pos, from.size(), to);
  return s;
}

fs::path find_in_path(const std::string& tool) {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/local/bin:/usr/bin:/bin");
  for (std::string dir; std::getline(dirs, dir, ':');) {
    fs::path candidate = fs::path(dir.empty() ? "." : dir) / tool;
    if (::access(candidate.c_str(), X_OK) == 0 && fs::is_regular_file(candidate)) return candidate;
  }
  return {};
}

/// Hashes each input file's path, executable bit and contents, in path order.
/// An input that is a named pipe, a socket or a device is refused at once.
void hash_inputs(const HostBuildOp& op, const BuildContext& context, const fs::path& root, Sha256& key) {
  std::string joined;
  for (auto& p : op.inputs) joined += p + "\n";
  // The patterns use .dockerignore syntax; here a "match" selects an input.
  IgnoreRules patterns = IgnoreRules::parse(joined);
  std::vector<std::string> files;
  for (auto it = fs::recursive_directory_iterator(root); it != fs::recursive_directory_iterator(); ++it) {
    check_interrupt();  // a module with a large tree (vendor/, node_modules/) takes a while
    std::string name = it->path().filename().string();
    // Version-control and hidden directories are never build inputs.
    if (it->is_directory() && name.starts_with(".")) {
      it.disable_recursion_pending();
      continue;
    }
    std::string rel = it->path().lexically_relative(root).generic_string();
    if (it->is_directory() || !patterns.excluded(rel)) continue;
    struct stat st {};
    if (::stat(it->path().c_str(), &st) != 0) continue;  // a dangling symlink names no input
    require_copyable(it->path().lexically_relative(context.root()).generic_string(), st.st_mode);
    if (S_ISREG(st.st_mode)) files.push_back(rel);
  }
  std::sort(files.begin(), files.end());
  for (auto& rel : files) {
    struct stat st {};
    ::stat((root / rel).c_str(), &st);
    key.update("input " + rel + ((st.st_mode & 0111) ? " x " : " - "));
    key.update(sha256_file(root / rel).str() + "\n");
  }
}

std::string last_lines(const fs::path& log, size_t count) {
  std::string text;
  try {
    text = read_file(log);
  } catch (const std::exception&) {
    return {};
  }
  std::deque<std::string> lines;
  std::stringstream in(text);
  for (std::string line; std::getline(in, line);) {
    lines.push_back(line);
    if (lines.size() > count) lines.pop_front();
  }
  std::string out;
  for (auto& l : lines) out += "\n  " + l;
  return out;
}

int spawn_and_wait(const std::vector<std::string>& argv, const std::vector<std::string>& env, const fs::path& cwd,
                   const fs::path& log) {
  Fd in(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!in) throw_errno("cannot start " + argv[0]);
  Fd out(::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!out) throw_errno("cannot start " + argv[0]);
  // A process group of its own: on an interrupt the tool and every process it
  // started (go build's compilers and linker) are killed together.
  return spawn_process({.argv = argv,
                        .env = env,
                        .cwd = cwd,
                        .stdin_fd = in.get(),
                        .stdout_fd = out.get(),
                        .stderr_fd = out.get(),
                        .own_group = true})
      .wait();
}

}  // namespace

std::string substitute_platform(const std::string& text, const Platform& platform) {
  std::string s = replace_all(text, "${TARGETOS}", platform.os);
  s = replace_all(s, "${TARGETARCH}", platform.architecture);
  return replace_all(s, "${TARGETVARIANT}", platform.variant);
}

HostBuildResult run_host_build(const HostBuildOp& op, const BuildContext& context, const Platform& platform,
                               const fs::path& cache_dir, bool use_cache, bool lookup_only) {
  std::vector<std::string> argv;
  for (auto& a : op.argv) argv.push_back(substitute_platform(a, platform));
  std::map<std::string, std::string> env_overrides;
  for (auto& [k, v] : op.env) env_overrides[k] = substitute_platform(v, platform);

  Sha256 key;
  key.update("imgbuild host build v1\n");
  for (auto& a : argv) key.update("arg " + a + "\n");
  for (auto& [k, v] : env_overrides) key.update("env " + k + "=" + v + "\n");
  // Like `go build`, an unnamed output is named after the folder it is built in.
  fs::path work_dir = context.directory(op.dir);
  fs::path root = context.directory(op.input_root);
  std::string output_name = op.output_name.empty() ? work_dir.filename().string() : op.output_name;
  key.update("dir " + op.dir + "\noutput " + output_name + "\n");
  for (auto& tool : op.tools) {
    fs::path found = find_in_path(tool);
    if (found.empty()) throw std::runtime_error(tool + " not found in PATH");
    // The resolved path names the toolchain version on Debian (/usr/lib/go-1.19);
    // size and mtime change when the package is upgraded in place.
    fs::path real = fs::canonical(found);
    struct stat st {};
    ::stat(real.c_str(), &st);
    key.update("tool " + real.string() + " " + std::to_string(st.st_size) + " " + std::to_string(st.st_mtim.tv_sec) +
               "." + std::to_string(st.st_mtim.tv_nsec) + "\n");
  }
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string entry = *e;
    std::string name = entry.substr(0, entry.find('='));
    if (env_overrides.count(name)) continue;
    // Registry credentials are the registry client's alone: the tool does not
    // get them, nor does a hash of them reach the key.
    if (name.starts_with("IMGBUILD_REGISTRY_AUTH_")) continue;
    for (auto& prefix : op.host_env)
      if (name.starts_with(prefix)) key.update("host-env " + entry + "\n");
    env.push_back(entry);
  }
  for (auto& [k, v] : env_overrides) env.push_back(k + "=" + v);

  hash_inputs(op, context, root, key);
  std::string key_hex = key.finish_hex();

  fs::path cached = cache_dir / "files" / key_hex / output_name;
  if (use_cache && fs::exists(cached)) {
    mark_used(cached.parent_path());
    return {cached, true};
  }
  if (lookup_only) return {};

  fs::create_directories(cache_dir / "tmp");
  TempDir work(cache_dir / "tmp", "host-");
  fs::path out = work.path() / output_name;
  for (auto& a : argv) a = replace_all(a, "${OUT}", out.string());
  // The tool's own temporary files (go build's work folder) go where this
  // build's do, so an interrupted build leaves none of them behind either.
  fs::create_directory(work.path() / "tmp");
  std::erase_if(env, [](const std::string& e) { return e.starts_with("TMPDIR="); });
  env.push_back("TMPDIR=" + (work.path() / "tmp").string());
  int rc = spawn_and_wait(argv, env, work_dir, work.path() / "log");
  if (rc != 0)
    throw std::runtime_error("exited with status " + std::to_string(rc) + ":" + last_lines(work.path() / "log", 20));
  if (!fs::is_regular_file(out)) throw std::runtime_error("succeeded but wrote no output file");

  // Publish under the key by renaming a finished directory: readers see the
  // whole file or nothing.
  fs::path staged = work.path() / "result";
  fs::create_directory(staged);
  fs::rename(out, staged / output_name);
  {
    Fd fd = open_read(staged / output_name);
    if (::fsync(fd.get()) != 0) throw_errno("fsync " + (staged / output_name).string());
  }
  const fs::path published = cached.parent_path();
  fs::create_directories(published.parent_path());
  if (::rename(staged.c_str(), published.c_str()) == 0) return {cached, false};
  if (errno != ENOTEMPTY && errno != EEXIST) throw_errno("publishing " + published.string());
  // Another build published this key meanwhile (two platforms building the
  // same program side by side, two imgbuild processes on one cache), and may
  // be reading it: what is there is never taken away first. A build that
  // takes from the cache takes that one, made from the same inputs. One
  // with --no-cache swaps its own in, in one step (the one replaced goes
  // with `work`); only where the file system cannot swap does it replace it.
  if (use_cache) {
    mark_used(published);
    return {cached, false};
  }
  if (::renameat2(AT_FDCWD, staged.c_str(), AT_FDCWD, published.c_str(), RENAME_EXCHANGE) == 0) return {cached, false};
  if (errno != EINVAL) throw_errno("replacing " + published.string());
  fs::remove_all(published);
  fs::rename(staged, published);
  return {cached, false};
}

}  // namespace imgbuild
