#include "build/checkout.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string>
#include <vector>

#include "base/errors.hpp"
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

/// What `git -C root ARGS...` printed (stdout and stderr, the first 4 KiB,
/// trailing blanks cut) and its exit status.
std::pair<std::string, int> run_git(const fs::path& root, const std::vector<std::string>& args) {
  // Reading pack files and their deltas is git's job: git it is, kept from
  // anything a repository's config could start beside it (fsmonitor, gpg for
  // signatures) and from prompts, locks and translated messages.
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) env.emplace_back(*e);
  for (const char* v : {"LC_ALL=C", "GIT_TERMINAL_PROMPT=0", "GIT_OPTIONAL_LOCKS=0"}) env.emplace_back(v);
  std::vector<std::string> argv = {"git", "-C", root.string(), "-c", "core.fsmonitor=false"};
  argv.insert(argv.end(), args.begin(), args.end());
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) throw_errno("git in " + root.string());
  Fd read_end(ends[0]), write_end(ends[1]);
  Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  std::string out;
  int status = 0;
  try {
    ChildProcess git = spawn_process(
        {.argv = argv, .env = env, .stdin_fd = null.get(), .stdout_fd = write_end.get(), .stderr_fd = write_end.get()});
    write_end = Fd();
    char buf[4096];
    for (ssize_t n; (n = ::read(read_end.get(), buf, sizeof buf)) != 0;) {
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;
      if (out.size() < 4096) out.append(buf, static_cast<size_t>(n));
    }
    status = git.wait();
  } catch (const std::system_error& e) {
    throw std::runtime_error("the git checkout " + root.string() + ": " + e.what());
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return {out, status};
}

}  // namespace

std::optional<CheckoutHead> checkout_head(const fs::path& dir) {
  fs::path root = checkout_root(dir);
  if (root.empty()) return std::nullopt;
  auto [time, status] = run_git(root, {"log", "-1", "--no-show-signature", "--format=%ct", "HEAD"});
  if (status != 0 || time.empty() || time.size() >= 19 || time.find_first_not_of("0123456789") != std::string::npos)
    throw std::runtime_error("the git checkout " + root.string() + ": git log -1 --format=%ct HEAD failed: " +
                             (time.empty() ? "exit status " + std::to_string(status) : time));
  auto [commit, commit_status] = run_git(root, {"rev-parse", "--verify", "HEAD"});
  if (commit_status != 0 || commit.size() < 40 || commit.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw std::runtime_error("the git checkout " + root.string() + ": git rev-parse --verify HEAD failed: " +
                             (commit.empty() ? "exit status " + std::to_string(commit_status) : commit));
  // No origin is no error (exit 1): the commit alone names the sources.
  auto [remote, remote_status] = run_git(root, {"config", "--get", "remote.origin.url"});
  return CheckoutHead{commit, std::stoll(time), remote_status == 0 ? remote : ""};
}

}  // namespace imgbuild
