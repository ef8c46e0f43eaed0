#pragma once
// Internal to src/sandbox/: the system calls a RUN step may not make, as a
// seccomp program compiled once by libseccomp and installed by the step's
// PID 1 with a raw system call after fork.
#include <linux/filter.h>

#include <vector>

namespace imgbuild {

/// The BPF program of the step filter: docker's default profile for a
/// container with docker's default capabilities, written as what it denies.
/// Refused with EPERM, as docker does, so a program sees a normal error:
/// namespaces (unshare, setns, clone with a CLONE_NEW* flag), every mount
/// call, keyrings, bpf, perf_event_open, kernel modules, kexec, reboot, swap,
/// the clock, accounting, quotas, raw I/O ports, the kernel log, NUMA
/// placement, userfaultfd, io_uring, open_by_handle_at, personality flags
/// beyond docker's five values, AF_ALG and AF_VSOCK sockets and the obsolete
/// calls. clone3 gets ENOSYS instead: its flags are out of the filter's
/// reach, and ENOSYS makes glibc fall back to clone, whose flags are checked.
/// ptrace stays allowed, as docker allows it on kernels from 4.8 (which
/// check the filter again after a tracer changed a call): a step may strace
/// its own processes, never PID 1 or the host's. Covers the compat ABIs of
/// the host (i386 and x32 on x86_64, arm on aarch64) with the same rules,
/// and kills a process that calls through any other. Built on the first
/// call, then shared: the same for every step of every build.
const std::vector<sock_filter>& step_seccomp_program();

/// Installs `program` on the calling thread, and on every process it starts
/// from then on. Async-signal-safe: a system call, no allocation. Needs
/// CAP_SYS_ADMIN (no_new_privs stays off, so that setuid programs work, as
/// in docker). Returns false, errno set, when the kernel refuses it.
bool install_seccomp(const std::vector<sock_filter>& program);

}  // namespace imgbuild
