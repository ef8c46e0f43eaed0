#include "build/checkout.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "base/fs.hpp"
#include "base/process.hpp"

extern char** environ;

namespace imgbuild {

namespace fs = std::filesystem;

namespace {

/// The folder holding `.git`, from `dir` up; empty when none does.
fs::path checkout_root(const fs::path& dir) {
  std::error_code ec;
  fs::path at = fs::weakly_canonical(fs::absolute(dir), ec);
  if (ec) at = fs::absolute(dir);
  for (;; at = at.parent_path()) {
    if (fs::exists(at / ".git", ec)) return at;
    if (at == at.parent_path()) return {};
  }
}

/// `git -C root ARGS...`, started at once: two calls run side by side.
class GitCall {
public:
  GitCall(const fs::path& root, const std::vector<std::string>& args)
      : ends_(make_pipe()), git_(start(root, args, ends_.second.get())) {
    ends_.second = Fd();
  }

  /// What it printed (stdout and stderr, at most 4 KiB, trailing blanks
  /// dropped) and its exit status.
  std::pair<std::string, int> result() {
    std::string out;
    char buf[4096];
    for (ssize_t n; (n = ::read(ends_.first.get(), buf, sizeof buf)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      if (out.size() < 4096) out.append(buf, static_cast<size_t>(n));
    }
    int status = git_.wait();
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return {out, status};
  }

private:
  static ChildProcess start(const fs::path& root, const std::vector<std::string>& args, int output) {
    // Reading pack files and their deltas is git's job, kept from anything a
    // repository's config could start beside it (fsmonitor, gpg for
    // signatures) and from prompts, locks and translated messages.
    std::vector<std::string> env;
    for (char** e = environ; *e; ++e) env.emplace_back(*e);
    for (const char* v : {"LC_ALL=C", "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0"}) env.emplace_back(v);
    std::vector<std::string> argv = {"git", "-C", root.string(), "-c", "core.fsmonitor=false"};
    argv.insert(argv.end(), args.begin(), args.end());
    Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
    return spawn_process({.argv = argv, .env = env, .stdin_fd = null.get(), .stdout_fd = output, .stderr_fd = output});
  }

  std::pair<Fd, Fd> ends_;  ///< read, write (closed once git has it)
  ChildProcess git_;
};

}  // namespace

std::optional<Checkout> read_checkout(const fs::path& dir) {
  fs::path root = checkout_root(dir);
  if (root.empty()) return std::nullopt;
  std::pair<std::string, int> head, remote;
  try {
    GitCall log(root, {"log", "-1", "--no-show-signature", "--format=%ct%n%H", "HEAD"});
    GitCall origin(root, {"config", "--get", "remote.origin.url"});
    head = log.result();
    remote = origin.result();
  } catch (const std::system_error& e) {
    throw std::runtime_error("the git checkout " + root.string() + ": " + e.what());
  }
  // HEAD's committer time, then its commit id.
  const auto& [printed, status] = head;
  const size_t newline = printed.find('\n');
  const std::string time = printed.substr(0, newline);
  const std::string revision = newline == std::string::npos ? "" : printed.substr(newline + 1);
  bool digits = !time.empty() && time.size() < 19 && time.find_first_not_of("0123456789") == std::string::npos;
  if (status != 0 || !digits || revision.size() < 40 ||
      revision.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw std::runtime_error("the git checkout " + root.string() + ": git log -1 HEAD failed: " +
                             (printed.empty() ? "exit status " + std::to_string(status) : printed));
  Checkout c;
  c.commit_time = std::stoll(time);
  c.revision = revision;
  // Exit status 1: no such remote, which is no error.
  if (remote.second == 0 && remote.first.find('\n') == std::string::npos) c.remote = remote.first;
  return c;
}

std::string reachable_remote(const std::string& remote) {
  const size_t scheme = remote.find("://");
  if (scheme != std::string::npos) {
    const std::string protocol = remote.substr(0, scheme);
    return protocol == "file" || protocol == "git+file" ? "" : remote;
  }
  // Without a scheme, git reads "host:path" (scp-like, ssh) when a colon comes
  // before any slash; anything else is a path.
  const size_t colon = remote.find(':');
  return colon == std::string::npos || remote.find('/') < colon ? "" : remote;
}

}  // namespace imgbuild
