#include "sandbox/seccomp.hpp"

#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>

#include "base/fs.hpp"
#include "sandbox/launch.hpp"

namespace imgbuild {

namespace {

/// Denied outright: calls docker's default profile leaves out whatever the
/// capabilities (obsolete ones, keyrings, kexec, swap, io_uring, whose
/// operations no filter sees), and calls it allows only with a capability
/// that a step does not keep (CAP_SYS_ADMIN, CAP_SYS_BOOT, CAP_SYS_MODULE,
/// CAP_SYS_PACCT, CAP_SYS_RAWIO, CAP_SYS_TIME, CAP_SYS_TTY_CONFIG,
/// CAP_SYS_NICE, CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE). The capability checks
/// would refuse most of these already; the filter also refuses what a new
/// user namespace would give back. A name this libseccomp does not know is
/// one the kernel it was built for did not have either.
constexpr const char* kDenied[] = {
    // namespaces and mounts
    "unshare", "setns", "mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig",
    "fsmount", "fspick", "mount_setattr",
    // keyrings
    "add_key", "request_key", "keyctl",
    // the kernel itself: modules, kexec, reboot, swap, accounting, quotas, its log
    "init_module", "finit_module", "delete_module", "create_module", "query_module", "get_kernel_syms", "kexec_load",
    "kexec_file_load", "reboot", "swapon", "swapoff", "acct", "quotactl", "quotactl_fd", "syslog", "bpf",
    "perf_event_open", "lookup_dcookie", "fanotify_init", "setdomainname", "sethostname", "_sysctl", "sysfs", "ustat",
    "nfsservctl", "uselib", "lsm_get_self_attr", "lsm_set_self_attr", "lsm_list_modules",
    // the clock
    "settimeofday", "stime", "clock_settime", "clock_settime64",
    // hardware and memory of others
    "iopl", "ioperm", "vhangup", "get_mempolicy", "set_mempolicy", "set_mempolicy_home_node", "mbind", "migrate_pages",
    "move_pages", "userfaultfd", "open_by_handle_at", "kcmp", "pidfd_getfd", "process_madvise",
    // io_uring: its requests never pass the filter
    "io_uring_setup", "io_uring_enter", "io_uring_register",
    // never implemented, reserved
    "afs_syscall", "getpmsg", "putpmsg", "security", "tuxcall", "vserver"};

/// Denied on kernels before 4.8, where a tracer could change a call after
/// the filter had allowed it.
constexpr const char* kTraceCalls[] = {"ptrace", "process_vm_readv", "process_vm_writev"};

/// The namespace flags of clone(2); CLONE_NEWUSER above all, which needs no
/// capability and gives all of them back inside the new namespace.
constexpr uint64_t kNamespaceFlags[] = {CLONE_NEWUSER, CLONE_NEWNS,  CLONE_NEWPID,   CLONE_NEWNET,
                                        CLONE_NEWUTS,  CLONE_NEWIPC, CLONE_NEWCGROUP};

/// The personality values docker allows: PER_LINUX, PER_LINUX32, UNAME26
/// and both; any other bit (ADDR_NO_RANDOMIZE, READ_IMPLIES_EXEC,
/// MMAP_PAGE_ZERO, another ABI...) is refused. Docker also allows the query
/// 0xffffffff, which libseccomp cannot tell apart here from a value with
/// every flag: refused too.
constexpr uint32_t kPersonalityAllowed = 0x0008 | 0x20000;

struct ContextDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

std::vector<sock_filter> compile() {
  std::unique_ptr<void, ContextDeleter> ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) throw std::runtime_error("cannot build the RUN step's seccomp filter: seccomp_init failed");
  auto check = [](int rc, const std::string& what) {
    if (rc < 0) throw std::runtime_error("cannot build the RUN step's seccomp filter: " + what + ": " + strerror(-rc));
  };
  // A process that calls through an ABI the filter does not describe is
  // killed: its numbers would mean other calls.
  check(seccomp_attr_set(ctx.get(), SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS), "the foreign-ABI action");
  uint32_t native = seccomp_arch_native();
  std::vector<uint32_t> compat;
  if (native == SCMP_ARCH_X86_64) compat = {SCMP_ARCH_X86, SCMP_ARCH_X32};
  if (native == SCMP_ARCH_AARCH64) compat = {SCMP_ARCH_ARM};
  for (uint32_t arch : compat) check(seccomp_arch_add(ctx.get(), arch), "adding a compat ABI");

  const auto eperm = SCMP_ACT_ERRNO(EPERM);
  auto deny = [&](const char* name) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr != __NR_SCMP_ERROR) check(seccomp_rule_add(ctx.get(), eperm, nr, 0), name);
  };
  for (const char* name : kDenied) deny(name);
  if (!kernel_at_least(4, 8))
    for (const char* name : kTraceCalls) deny(name);
  for (uint64_t flag : kNamespaceFlags)
    check(seccomp_rule_add(ctx.get(), eperm, SCMP_SYS(clone), 1, SCMP_A0_64(SCMP_CMP_MASKED_EQ, flag, flag)), "clone");
  check(seccomp_rule_add(ctx.get(), SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0), "clone3");
  for (uint32_t bit = 1; bit != 0; bit <<= 1)
    if (!(bit & kPersonalityAllowed))
      check(seccomp_rule_add(ctx.get(), eperm, SCMP_SYS(personality), 1, SCMP_A0_32(SCMP_CMP_MASKED_EQ, bit, bit)),
            "personality");
  // Sockets with a long record of kernel bugs, which docker refuses too.
  for (int family : {AF_ALG, AF_VSOCK})
    check(seccomp_rule_add(ctx.get(), eperm, SCMP_SYS(socket), 1, SCMP_A0_32(SCMP_CMP_EQ, family)), "socket");

  // libseccomp 2.5 exports to a descriptor only.
  Fd mem(::memfd_create("imgbuild-seccomp", MFD_CLOEXEC));
  if (!mem) throw_errno("memfd_create");
  check(seccomp_export_bpf(ctx.get(), mem.get()), "exporting it");
  off_t size = ::lseek(mem.get(), 0, SEEK_END);
  std::vector<sock_filter> program(static_cast<size_t>(size) / sizeof(sock_filter));
  if (size <= 0 || ::pread(mem.get(), program.data(), static_cast<size_t>(size), 0) != size)
    throw std::runtime_error("cannot build the RUN step's seccomp filter: reading it back failed");
  return program;
}

}  // namespace

const std::vector<sock_filter>& step_seccomp_program() {
  static const std::vector<sock_filter> program = compile();
  return program;
}

bool install_seccomp(const std::vector<sock_filter>& program) {
  sock_fprog prog{static_cast<unsigned short>(program.size()), const_cast<sock_filter*>(program.data())};
  return ::syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0;
}

}  // namespace imgbuild
