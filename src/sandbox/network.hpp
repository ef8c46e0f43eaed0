#pragma once
// Internal to src/sandbox/: the default network of a RUN step. The step has
// a network namespace of its own, which slirp4netns connects to the outside
// in user mode: what the step sends becomes ordinary sockets of a process on
// the host, so it reaches registries and module proxies, while the host's
// interfaces are not in its namespace (nothing to capture, nothing to bind)
// and the host's loopback is out of its reach (--disable-host-loopback).
//
// slirp4netns rather than pasta (passt): pasta starts in about 90 ms, past
// the budget of a RUN step, gives up its capabilities before it can enter the
// namespace of a root step, and copies the host's address into the step, where
// a server of the build machine's is then out of reach.
#include <sys/types.h>

#include <string>
#include <string_view>

#include "base/fs.hpp"
#include "base/process.hpp"

namespace imgbuild {

/// The addresses of the step's network: TEST-NET-2 (RFC 5737), a range for
/// documentation that no real network uses, so it hides no address the step
/// must reach (slirp4netns's default, 10.0.2.0/24, is a private range that
/// build machines use). The step is .100, the gateway .2, the DNS forwarder .3.
inline constexpr std::string_view kStepNetworkRange = "198.51.100.0/24";
inline constexpr std::string_view kStepDnsForwarder = "198.51.100.3";

/// The step's /etc/resolv.conf, made from the host's: a resolver on the
/// host's loopback (systemd-resolved's 127.0.0.53) is out of the step's
/// reach, so the first such line names slirp4netns's forwarder instead, which
/// passes queries to the host's first resolver; later ones go. The rest is
/// kept. `forwarder` tells whether the forwarder is named.
std::string step_resolv_conf(std::string_view host_conf, bool& forwarder);

/// slirp4netns serving the network namespace of the step whose PID 1 is
/// `step` (and entering its user namespace when it has one). Ready once
/// constructed: the step's eth0 is up, with its address and route. It is
/// killed when this goes, and ends by itself when imgbuild dies, however: its
/// exit descriptor is a pipe whose other end only imgbuild holds. Its end is
/// reaped by a thread of its own: the kernel takes tens of milliseconds to
/// remove the step's tap device as it exits, which no step has to wait for.
/// `dns_forwarder`: the forwarder answers (the step's resolv.conf names it);
/// otherwise it is off, as it would reach the host's resolver on any port.
/// Throws SandboxError when slirp4netns is missing or fails.
class UserModeNetwork {
public:
  UserModeNetwork(pid_t step, bool dns_forwarder);
  ~UserModeNetwork();
  UserModeNetwork(const UserModeNetwork&) = delete;
  UserModeNetwork& operator=(const UserModeNetwork&) = delete;

private:
  static ChildProcess start(pid_t step, bool dns_forwarder, Fd& exit_fd, Fd& ready_fd, Fd& errors_fd);

  Fd exit_fd_;    ///< closing it ends slirp4netns
  Fd ready_fd_;   ///< slirp4netns writes "1" on it once ready
  Fd errors_fd_;  ///< its stderr, read when it fails to start
  ChildProcess process_;
};

}  // namespace imgbuild
