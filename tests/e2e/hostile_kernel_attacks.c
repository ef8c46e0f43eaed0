/* Tries what a RUN step may not do, one call at a time, and prints
   NAME=ERRNO-NAME for each ("ok" when the kernel let it through). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <linux/reboot.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

static const char* name_of(long rc) {
  if (rc >= 0) return "ok";
  switch (errno) {
    case EPERM: return "EPERM";
    case ENOSYS: return "ENOSYS";
    case EINVAL: return "EINVAL";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case EFAULT: return "EFAULT";
    case EBADF: return "EBADF";
    default: return strerror(errno);
  }
}
static void report(const char* what, long rc) { printf("%s=%s\n", what, name_of(rc)); fflush(stdout); }

/* A clone with CLONE_NEWUSER: the child ends at once. */
static long clone_newuser(void) {
  long pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
  if (pid == 0) _exit(0);
  if (pid > 0) waitpid((pid_t)pid, 0, 0);
  return pid;
}

#ifdef __x86_64__
/* The i386 ABI through int 0x80, from this 64-bit program. */
static long int80(long nr, long a, long b) {
  long rc;
  __asm__ volatile("int $0x80" : "=a"(rc) : "a"(nr), "b"(a), "c"(b) : "memory");
  if (rc < 0 && rc > -4096) { errno = (int)-rc; return -1; }
  return rc;
}

/* Whether this kernel has the i386 entry at all: without IA32 emulation,
   int 0x80 kills the process with SIGSEGV, so a child tries it first. */
static int has_int80(void) {
  pid_t pid = fork();
  if (pid == 0) _exit(int80(20 /* getpid */, 0, 0) > 0 ? 0 : 1);
  int status = 0;
  return pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}
#endif

int main(int argc, char** argv) {
  const char* what = argc > 1 ? argv[1] : "syscalls";
  if (!strcmp(what, "syscalls")) {
    report("unshare_user", unshare(CLONE_NEWUSER));
    report("unshare_user_mount", unshare(CLONE_NEWUSER | CLONE_NEWNS));
    report("unshare_net", unshare(CLONE_NEWNET));
    report("clone_newuser", clone_newuser());
    report("clone3", syscall(435, 0, 0));
    long pid;
#ifdef __x86_64__
    if (has_int80()) {
      /* i386: clone is 120 (flags first), unshare 310. */
      pid = int80(120, CLONE_NEWUSER | SIGCHLD, 0);
      if (pid == 0) _exit(0);
      if (pid > 0) waitpid((pid_t)pid, 0, 0);
      report("i386_clone_newuser", pid);
      report("i386_unshare_user", int80(310, CLONE_NEWUSER, 0));
    } else {
      printf("i386=absent\n");
      fflush(stdout);
    }
#endif
    report("mount", mount("none", "/tmp", "tmpfs", 0, 0));
    report("umount2", umount2("/proc", MNT_DETACH));
    report("pivot_root", syscall(SYS_pivot_root, "/tmp", "/tmp"));
    report("open_tree", syscall(428, AT_FDCWD, "/", 0));
    report("fsopen", syscall(430, "tmpfs", 0));
    report("keyctl", syscall(SYS_keyctl, 0 /* KEYCTL_GET_KEYRING_ID */, -3, 0));
    report("add_key", syscall(SYS_add_key, "user", "k", "v", 1, -3));
    report("request_key", syscall(SYS_request_key, "user", "k", 0, 0));
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    report("bpf", syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr));
    struct perf_event_attr pe;
    memset(&pe, 0, sizeof pe);
    pe.size = sizeof pe;
    pe.type = PERF_TYPE_SOFTWARE;
    pe.config = PERF_COUNT_SW_CPU_CLOCK;
    report("perf_event_open", syscall(SYS_perf_event_open, &pe, 0, -1, -1, 0));
    report("init_module", syscall(SYS_init_module, "", 0, ""));
    report("finit_module", syscall(SYS_finit_module, 0, "", 0));
    report("delete_module", syscall(SYS_delete_module, "loop", O_NONBLOCK));
    report("kexec_load", syscall(SYS_kexec_load, 0, 0, 0, 0));
    /* In a PID namespace, CAD_ON is refused with EINVAL by the kernel: EPERM is the filter's. */
    report("reboot", syscall(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_CAD_ON, 0));
    report("swapon", syscall(SYS_swapon, "/nonexistent", 0));
    report("swapoff", syscall(SYS_swapoff, "/nonexistent"));
    struct timeval tv;
    gettimeofday(&tv, 0);
    report("settimeofday", settimeofday(&tv, 0));
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    report("clock_settime", clock_settime(CLOCK_REALTIME, &ts));
    report("acct", syscall(SYS_acct, 0));
    report("quotactl", syscall(SYS_quotactl, 0, "/dev/null", 0, 0));
    report("lookup_dcookie", syscall(SYS_lookup_dcookie, 0, 0, 0));
    report("userfaultfd", syscall(SYS_userfaultfd, 0));
    report("personality_no_randomize", personality(ADDR_NO_RANDOMIZE));
    report("personality_read_implies_exec", personality(READ_IMPLIES_EXEC));
    report("personality_linux32", personality(PER_LINUX32));
    personality(PER_LINUX);
    report("open_by_handle_at", syscall(SYS_open_by_handle_at, AT_FDCWD, 0, 0));
    report("iopl", syscall(SYS_iopl, 3));
    report("ioperm", syscall(SYS_ioperm, 0x80, 1, 1));
    char buf[64];
    report("syslog", syscall(SYS_syslog, 10 /* SYSLOG_ACTION_SIZE_BUFFER */, buf, 0));
    int ns = open("/proc/self/ns/uts", O_RDONLY);
    report("setns", syscall(SYS_setns, ns, 0));
    report("uselib", syscall(SYS_uselib, "/nonexistent"));
    report("nfsservctl", syscall(SYS_nfsservctl, 0, 0, 0));
    report("io_uring_setup", syscall(425, 1, buf));
    report("socket_alg", socket(38 /* AF_ALG */, SOCK_SEQPACKET, 0));
    report("socket_vsock", socket(40 /* AF_VSOCK */, SOCK_STREAM, 0));
    report("sethostname", sethostname("x", 1));
    report("vhangup", syscall(SYS_vhangup));
    report("kcmp", syscall(SYS_kcmp, getpid(), getpid(), 0, 0, 0));
    /* Allowed, as in docker: a step still works. */
    report("allowed_fork", (long)(pid = fork()) < 0 ? -1 : (pid == 0 ? (_exit(0), 0) : waitpid((pid_t)pid, 0, 0)));
    report("allowed_chroot", chroot("/"));
    return 0;
  }
  if (!strcmp(what, "status")) {
    /* The kernel's own account of the step's capabilities and filter. */
    FILE* f = fopen("/proc/self/status", "r");
    char line[256];
    while (f && fgets(line, sizeof line, f))
      if (!strncmp(line, "Cap", 3) || !strncmp(line, "Seccomp", 7) || !strncmp(line, "NoNewPrivs", 10))
        fputs(line, stdout);
    return 0;
  }
  if (!strcmp(what, "euid")) {
    printf("uid=%d euid=%d\n", (int)getuid(), (int)geteuid());
    return 0;
  }
  if (!strcmp(what, "packet")) {
    /* A sniffer: every frame of every interface of the network namespace. */
    report("packet_socket", socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)));
    report("raw_socket", socket(AF_INET, SOCK_RAW, IPPROTO_TCP));
    return 0;
  }
  if (!strcmp(what, "kcore")) {
    report("kcore", open("/proc/kcore", O_RDONLY));
    report("mem", mknod("/tmp/mem", S_IFCHR | 0600, makedev(1, 1)) == 0 ? open("/tmp/mem", O_RDONLY) : -1);
    unlink("/tmp/mem");
    return 0;
  }
  if (!strcmp(what, "disk") && argc == 4) {
    /* The host's disk, as a node made here: on the step's root and in its /dev tmpfs. */
    dev_t dev = makedev(atoi(argv[2]), atoi(argv[3]));
    const char* nodes[] = {"/tmp/hostdisk", "/dev/hostdisk"};
    for (int i = 0; i < 2; ++i) {
      printf("mknod %s=%s\n", nodes[i], name_of(mknod(nodes[i], S_IFBLK | 0666, dev)));
      printf("open %s=%s\n", nodes[i], name_of(open(nodes[i], O_RDONLY)));
      unlink(nodes[i]); /* no node in the layer */
    }
    report("devnull", open("/dev/null", O_RDWR));
    report("devzero", open("/dev/zero", O_RDONLY));
    report("devurandom", open("/dev/urandom", O_RDONLY));
    return 0;
  }
  if (!strcmp(what, "forkbomb")) {
    /* Forks until the kernel refuses, or 20000 processes: every child waits. */
    int made = 0, err = 0;
    for (; made < 20000; ++made) {
      pid_t pid = fork();
      if (pid == 0) { pause(); _exit(0); }
      if (pid < 0) { err = errno; break; }
    }
    printf("forked=%d stopped=%s\n", made, err ? strerror(err) : "no");
    return 0;
  }
  return 2;
}
