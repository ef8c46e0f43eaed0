#include "sandbox/network.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <thread>
#include <vector>

#include "base/interrupt.hpp"
#include "base/text.hpp"
#include "sandbox/rootless.hpp"
#include "sandbox/sandbox.hpp"

namespace imgbuild {

namespace {

constexpr const char* kTunDevice = "/dev/net/tun";

/// The address of a "nameserver ADDRESS" line, or "" for any other line.
std::string_view nameserver_of(std::string_view line) {
  constexpr std::string_view keyword = "nameserver";
  size_t start = line.find_first_not_of(" \t");
  if (start == std::string_view::npos || line.substr(start, keyword.size()) != keyword) return {};
  line.remove_prefix(start + keyword.size());
  if (line.empty() || (line[0] != ' ' && line[0] != '\t')) return {};
  size_t begin = line.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return {};
  line.remove_prefix(begin);
  return line.substr(0, line.find_first_of(" \t#;"));
}

bool ipv4_loopback(std::string_view address) {
  in_addr a{};
  return ::inet_pton(AF_INET, std::string(address).c_str(), &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

bool ipv6_loopback(std::string_view address) {
  in6_addr a{};
  return ::inet_pton(AF_INET6, std::string(address).c_str(), &a) == 1 &&
         (IN6_IS_ADDR_LOOPBACK(&a) || (IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127));
}

/// Everything left to read on `fd`, which its writers have closed.
std::string read_rest(int fd) {
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

}  // namespace

std::string step_resolv_conf(std::string_view host_conf, bool& forwarder) {
  forwarder = false;
  std::string conf;
  for (const std::string& line : split(std::string(host_conf), '\n')) {
    std::string_view address = nameserver_of(line);
    // A loopback resolver of the host is not the step's loopback. The
    // forwarder passes queries to the host's first IPv4 resolver, which is
    // this one or one the step reaches anyway.
    if (ipv4_loopback(address)) {
      if (!forwarder) conf += "nameserver " + std::string(kStepDnsForwarder) + "\n";
      forwarder = true;
    } else if (!ipv6_loopback(address)) {
      conf += line + "\n";
    }
  }
  return conf;
}

UserModeNetwork::UserModeNetwork(pid_t step, bool dns_forwarder)
    : process_(start(step, dns_forwarder, exit_fd_, ready_fd_, errors_fd_)) {
  char ready = 0;
  for (;;) {
    if (!wait_readable(ready_fd_.get())) check_interrupt();
    ssize_t n = ::read(ready_fd_.get(), &ready, 1);
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  if (ready == '1') {
    // Its stderr goes: what slirp4netns says later is of no use, and with the
    // pipe closed it can never block on it (it ignores SIGPIPE).
    errors_fd_ = Fd();
    return;
  }
  // The end of file before "1": slirp4netns ended, and so did its writes.
  int status = process_.wait();
  std::string said;
  for (const std::string& line : split(read_rest(errors_fd_.get()), '\n'))
    if (!line.starts_with("WARNING:")) said += (said.empty() ? "" : "; ") + printable_text(line);
  throw SandboxError("slirp4netns could not connect the step's network (" +
                     (said.empty() ? "exit status " + std::to_string(status) : said) +
                     "): give the step network = \"none\" or network = \"host\" to run it without it");
}

UserModeNetwork::~UserModeNetwork() {
  pid_t pid = process_.pid();
  ::kill(pid, SIGKILL);
  process_.release();
  std::thread([pid] {
    while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
    }
  }).detach();
}

ChildProcess UserModeNetwork::start(pid_t step, bool dns_forwarder, Fd& exit_fd, Fd& ready_fd, Fd& errors_fd) {
  // The device slirp4netns opens in the step's namespace, as the invoking
  // user when rootless: said here, since its own error says less.
  if (rootless() && ::access(kTunDevice, R_OK | W_OK) != 0)
    throw SandboxError(std::string("the network of a rootless RUN step needs ") + kTunDevice + ", which " +
                       "this user cannot open (" + strerror(errno) + "; Debian's udev makes it mode 0666): " +
                       "give the step network = \"none\" (no network) or network = \"host\" (the build machine's "
                       "network, shared with the step), or run as root");
  auto [exit_read, exit_write] = make_pipe();
  auto [ready_read, ready_write] = make_pipe();
  auto [errors_read, errors_write] = make_pipe();
  Fd null(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null) throw_errno("/dev/null");
  std::vector<std::string> argv = {"slirp4netns", "--configure", "--mtu=65520", "--disable-host-loopback",
                                   // Its own mount namespace without the host's files and a seccomp filter:
                                   // it parses what the step sends.
                                   "--enable-sandbox", "--enable-seccomp", "--cidr=" + std::string(kStepNetworkRange),
                                   // stdin: its end of file is imgbuild's end.
                                   "--exit-fd=0", "--ready-fd=" + std::to_string(ready_write.get())};
  // The forwarder sends what reaches it, on any port, to the host's first
  // resolver, or to the host's loopback when there is none: off unless needed.
  if (!dns_forwarder) argv.push_back("--disable-dns");
  argv.push_back(std::to_string(step));
  argv.push_back("eth0");
  // Only slirp4netns holds the other ends once this returns: an end of file
  // on them is its end.
  exit_fd = std::move(exit_write);
  ready_fd = std::move(ready_read);
  errors_fd = std::move(errors_read);
  try {
    return spawn_process({.argv = argv,
                          .stdin_fd = exit_read.get(),
                          .stdout_fd = null.get(),
                          .stderr_fd = errors_write.get(),
                          .inherited_fds = {ready_write.get()}});
  } catch (const std::system_error& e) {
    if (e.code().value() != ENOENT) throw SandboxError(e.what());
    throw SandboxError(
        "the network of a RUN step needs slirp4netns, which is not installed (Debian and Ubuntu: apt-get install "
        "slirp4netns): install it, or give the step network = \"none\" (no network) or network = \"host\" (the build "
        "machine's network, shared with the step)");
  }
}

}  // namespace imgbuild
