// Tests for the default network of a RUN step (src/sandbox/network.hpp): its
// resolv.conf, what it reaches and what not, that slirp4netns ends with the
// step, and the message when slirp4netns is missing.
#include "sandbox/network.hpp"

#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "base/fs.hpp"
#include "sandbox/sandbox.hpp"
#include "test_support.hpp"

namespace fs = std::filesystem;
using imgbuild::Fd;
using imgbuild::run_in_sandbox;
using imgbuild::SandboxError;
using imgbuild::SandboxResult;
using imgbuild::SandboxSpec;
using imgbuild::step_resolv_conf;
using imgbuild::StepNetwork;
using namespace imgbuild::test;

namespace {

/// A TCP server of the host on `address` (IPv4), on a port the kernel
/// picks, that closes every connection it accepts: a client sees the end of
/// file and ends.
struct Listener {
  Fd fd;
  int port = 0;
  std::thread server;
  ~Listener() {
    ::shutdown(fd.get(), SHUT_RDWR);  // wakes accept()
    server.join();
  }
  explicit Listener(const std::string& address) : fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    REQUIRE(fd);
    sockaddr_in at{};
    at.sin_family = AF_INET;
    REQUIRE(::inet_pton(AF_INET, address.c_str(), &at.sin_addr) == 1);
    REQUIRE(::bind(fd.get(), reinterpret_cast<sockaddr*>(&at), sizeof at) == 0);
    REQUIRE(::listen(fd.get(), 16) == 0);
    socklen_t size = sizeof at;
    REQUIRE(::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&at), &size) == 0);
    port = ntohs(at.sin_port);
    server = std::thread([this] {
      for (int client; (client = ::accept4(fd.get(), nullptr, nullptr, SOCK_CLOEXEC)) >= 0;) ::close(client);
    });
  }
};

/// The host's first IPv4 address that is up and not loopback, if any.
std::optional<std::string> host_address() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return std::nullopt;
  std::optional<std::string> found;
  for (ifaddrs* i = list; i && !found; i = i->ifa_next)
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && (i->ifa_flags & IFF_UP) && !(i->ifa_flags & IFF_LOOPBACK)) {
      char text[INET_ADDRSTRLEN];
      ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, text, sizeof text);
      found = text;
    }
  ::freeifaddrs(list);
  return found;
}

/// slirp4netns processes that are children of this one.
int slirp_children_now() {
  int count = 0;
  for (auto& e : fs::directory_iterator("/proc")) {
    std::string stat;
    try {
      stat = slurp(e.path() / "stat");
    } catch (...) {
      continue;
    }
    size_t close = stat.rfind(')');
    if (close == std::string::npos || stat.find("(slirp4netns)") == std::string::npos) continue;
    // Fields after the name: state, then the parent's pid.
    if (std::atoi(stat.c_str() + close + 4) == ::getpid()) ++count;
  }
  return count;
}

/// slirp4netns processes that are children of this one, once none is
/// left or 5 seconds passed (a killed one is reaped by a thread of its own).
int slirp_children() {
  for (int i = 0; i < 50; ++i) {
    if (slirp_children_now() == 0) return 0;
    ::usleep(100000);
  }
  return slirp_children_now();
}

/// A step of a busybox image with the default network.
SandboxSpec network_step(const fs::path& dir, const std::string& script) {
  fs::create_directories(dir / "image/bin");
  fs::copy_file("/bin/busybox", dir / "image/bin/busybox");
  for (const char* applet : {"sh", "ip", "nc", "cat", "echo"})
    fs::create_symlink("busybox", dir / "image/bin" / applet);
  fs::create_directories(dir / "step/upper");
  fs::create_directories(dir / "step/work");
  SandboxSpec spec;
  spec.lower = dir / "image";
  spec.upper = dir / "step/upper";
  spec.work = dir / "step/work";
  spec.env = {"PATH=/bin"};
  spec.argv = {"/bin/sh", "-c", script};
  return spec;
}

}  // namespace

TEST_CASE("a step's resolv.conf names the forwarder instead of a resolver on the host's loopback", "[sandbox]") {
  bool forwarder = true;
  CHECK(step_resolv_conf("nameserver 192.0.2.53\nsearch example.org\n", forwarder) ==
        "nameserver 192.0.2.53\nsearch example.org\n");
  CHECK_FALSE(forwarder);
  CHECK(step_resolv_conf("# resolved\nnameserver 127.0.0.53\noptions edns0 trust-ad\n", forwarder) ==
        "# resolved\nnameserver 198.51.100.3\noptions edns0 trust-ad\n");
  CHECK(forwarder);
  // Once, whatever the number of loopback resolvers; IPv6 loopback goes too
  // (the step's network has no IPv6); others stay, in their order.
  CHECK(step_resolv_conf("nameserver 127.0.0.1\n  nameserver\t::1\nnameserver 192.0.2.53\nnameserver 127.0.1.1 # x\n",
                         forwarder) == "nameserver 198.51.100.3\nnameserver 192.0.2.53\n");
  CHECK(forwarder);
  CHECK(step_resolv_conf("nameserver ::ffff:127.0.0.1\nnameservers 127.0.0.1\n", forwarder) ==
        "nameservers 127.0.0.1\n");
  CHECK_FALSE(forwarder);
}

TEST_CASE("a step's own network reaches the host's addresses, not its loopback, and ends with it", "[sandbox][root]") {
  Listener loopback("127.0.0.1");
  std::optional<std::string> outside = host_address();
  std::optional<Listener> host;
  if (outside) host.emplace(*outside);
  auto reach = [](const std::string& address, int port) {
    return "nc -w 2 " + address + " " + std::to_string(port) + " </dev/null && echo reached " + address +
           " || echo refused " + address + "; ";
  };
  std::string script = "ip -o -4 addr show eth0; ip -o link show lo; " + reach("127.0.0.1", loopback.port) +
                       reach("198.51.100.2", loopback.port);
  if (host) script += reach(*outside, host->port);
  ScratchDir dir;
  SandboxResult result = run_in_sandbox(network_step(dir.path, script));
  std::string output;
  for (auto& line : result.last_lines) output += line + "\n";
  INFO(output);
  REQUIRE(result.exit_code == 0);
  CHECK(output.find("inet 198.51.100.100/24") != std::string::npos);
  CHECK(output.find("<LOOPBACK,UP,LOWER_UP>") != std::string::npos);
  CHECK(output.find("refused 127.0.0.1\n") != std::string::npos);
  CHECK(output.find("refused 198.51.100.2\n") != std::string::npos);
  if (host) CHECK(output.find("reached " + *outside + "\n") != std::string::npos);
  CHECK(slirp_children() == 0);
}

TEST_CASE("without slirp4netns the default network fails, naming the package and the ways out", "[sandbox][root]") {
  ScratchDir dir;
  SandboxSpec spec = network_step(dir.path, "echo ran");
  std::string path = std::getenv("PATH");
  ::setenv("PATH", (dir.path / "image/nothing").c_str(), 1);
  std::string message;
  try {
    run_in_sandbox(spec);
  } catch (const SandboxError& e) {
    message = e.what();
  }
  ::setenv("PATH", path.c_str(), 1);
  CHECK(message ==
        "the network of a RUN step needs slirp4netns, which is not installed (Debian and Ubuntu: apt-get install "
        "slirp4netns): install it, or give the step network = \"none\" (no network) or network = \"host\" (the build "
        "machine's network, shared with the step)");
  // The others need none.
  spec.network = StepNetwork::none;
  ::setenv("PATH", (dir.path / "image/nothing").c_str(), 1);
  SandboxResult result = run_in_sandbox(spec);
  ::setenv("PATH", path.c_str(), 1);
  CHECK(result.exit_code == 0);
}
