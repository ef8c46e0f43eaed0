#!/usr/bin/env bash
# Attacks on what the kernel enforces on a RUN step (issue 18), each made by
# a static helper that this script compiles and runs in a step, each
# asserting that the attack fails: the seccomp filter (user namespaces,
# mounts, keyrings, modules, the clock... through the native ABI and i386's
# int 0x80), the capability set (CapEff as docker's, none for a user, no raw
# socket on the host's network), setuid programs that still work (no
# no_new_privs), the process limit (a fork bomb stops, the host stays
# usable), the device policy (a host disk made with mknod cannot be opened)
# and no cgroup left behind by a build, a failed step, an interrupt or a
# kill -9.
#
#   tests/e2e/hostile_kernel.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
attacks_need_root_and_cc

ctx=$work/ctx
busybox_root "$ctx/base/root" sh cat echo grep sleep true false chmod ls
mkdir -p "$ctx/base/root/etc"
printf '%s\n' root:x:0:0:root:/:/bin/sh nobody:x:65534:65534:nobody:/:/bin/sh >"$ctx/base/root/etc/passwd"
printf '%s\n' root:x:0: nogroup:x:65534: >"$ctx/base/root/etc/group"
if ! cc -static -O -o "$ctx/attacks" "$(dirname "$0")/hostile_kernel_attacks.c" 2>"$work/cc.log"; then
  sed 's/^/        /' "$work/cc.log"
  fail "cc -static builds the attack helper"
  finish
fi
base="local base = scratch:copy('base/root', '/'):copy('attacks', '/attacks')"

# build NAME RECIPE-LINES...: builds $ctx/NAME.lua in the background, with
# the options in $flags, its pid in $pid (imgbuild's own, which names its
# cgroup folders: no timeout wrapper, ctest's TIMEOUT bounds the script),
# output in $work/NAME.err.
flags=()
build_bg() {
  local name=$1
  shift
  printf '%s\n' "$base" "$@" >"$ctx/$name.lua"
  (cd "$ctx" && exec "$IMGBUILD" "$name.lua" --progress plain "${flags[@]}" >"$work/$name.out" \
    2>"$work/$name.err") &
  pid=$!
}
# build NAME RECIPE-LINES...: the same, waited for; its status in $status.
build() {
  build_bg "$@"
  wait "$pid"
  status=$?
}
# has NAME LINE: the step of build NAME printed LINE (plain progress: "... | LINE").
has() { grep -q -- "| $2\$" "$work/$1.err"; }
# no_cgroup PID: no cgroup folder of the imgbuild with PID is left.
no_cgroup() {
  local left
  left=$(find /sys/fs/cgroup -maxdepth 8 -type d -name "imgbuild-$1-*" 2>/dev/null)
  [[ -z $left ]] || { echo "left: $left"; return 1; }
}
cgroup_left() { ! no_cgroup "$1" >/dev/null; }
# gone PATTERN: no process on the host has PATTERN in its command line.
gone() { ! pgrep -f -- "$1" >/dev/null; }

step "seccomp: what docker's default profile refuses fails with EPERM"
build seccomp "image('seccomp', base:run { '/attacks', 'syscalls', network = 'none' })"
check "the build succeeds" test "$status" -eq 0
for call in unshare_user unshare_user_mount unshare_net clone_newuser mount umount2 pivot_root open_tree fsopen \
  keyctl add_key request_key bpf perf_event_open init_module finit_module delete_module kexec_load reboot swapon \
  swapoff settimeofday clock_settime acct quotactl lookup_dcookie userfaultfd personality_no_randomize \
  personality_read_implies_exec open_by_handle_at iopl ioperm syslog setns uselib nfsservctl io_uring_setup \
  socket_alg socket_vsock sethostname vhangup kcmp; do
  check "$call is refused with EPERM" has seccomp "$call=EPERM"
done
check "clone3 gets ENOSYS (glibc falls back to clone, whose flags the filter sees)" has seccomp "clone3=ENOSYS"
if [[ $(uname -m) == x86_64 ]] && has seccomp "i386=absent"; then
  # No IA32 emulation in this kernel: int 0x80 enters nothing, so nothing gets past the filter through it.
  pass "this kernel has no i386 entry (int 0x80 kills the caller): no way around the filter there"
elif [[ $(uname -m) == x86_64 ]]; then
  check "clone(CLONE_NEWUSER) through int 0x80 (i386) is refused too" has seccomp "i386_clone_newuser=EPERM"
  check "unshare(CLONE_NEWUSER) through int 0x80 (i386) is refused too" has seccomp "i386_unshare_user=EPERM"
fi
check "fork, chroot and PER_LINUX32 still work, as in docker" \
  bash -c "grep -q '| allowed_fork=ok\$' '$work/seccomp.err' && grep -q '| allowed_chroot=ok\$' '$work/seccomp.err' \
    && grep -q '| personality_linux32=ok\$' '$work/seccomp.err'"
build userns "image('userns', base:run { 'sh', '-c', 'unshare -Urm sh -c \"mount -t tmpfs none /tmp && echo mounted\"; echo done', network = 'none' })"
check "busybox unshare -Urm cannot mount in a user namespace of its own" \
  bash -c "! grep -q '| mounted\$' '$work/userns.err' && grep -q '| done\$' '$work/userns.err'"

step "capabilities: docker's set, effective for root, none for a user; no raw socket on the host's network"
build caps "image('caps', base:run { '/attacks', 'status', network = 'none' })"
check "the build succeeds" test "$status" -eq 0
check "a root step's CapEff is docker's set" has caps "CapEff:	00000000a80425fb"
check "its CapPrm and CapBnd are docker's set" \
  bash -c "grep -q '| CapPrm:	00000000a80425fb\$' '$work/caps.err' && grep -q '| CapBnd:	00000000a80425fb\$' '$work/caps.err'"
check "nothing inheritable or ambient" \
  bash -c "grep -q '| CapInh:	0000000000000000\$' '$work/caps.err' && grep -q '| CapAmb:	0000000000000000\$' '$work/caps.err'"
check "the step runs under a seccomp filter" has caps "Seccomp:	2"
check "no_new_privs is off, as in docker" has caps "NoNewPrivs:	0"
build caps_user "image('caps_user', base:user('nobody'):run { '/attacks', 'status', network = 'none' })"
check "a user's CapEff is empty" has caps_user "CapEff:	0000000000000000"
check "a user's CapPrm is empty" has caps_user "CapPrm:	0000000000000000"
build caps_host "image('caps_host', base:run { '/attacks', 'status', network = 'host' })"
check "on the host's network CapEff lacks CAP_NET_RAW" has caps_host "CapEff:	00000000a80405fb"
build packet "image('packet', base:run { '/attacks', 'packet', network = 'host' })"
check "on the host's network a packet socket (a sniffer) is refused" has packet "packet_socket=EPERM"
check "and a raw IP socket" has packet "raw_socket=EPERM"
build kcore "image('kcore', base:run { '/attacks', 'kcore', network = 'none' })"
check "/proc/kcore cannot be read" bash -c "! grep -q '| kcore=ok\$' '$work/kcore.err'"
check "/dev/mem made with mknod cannot be opened" bash -c "grep -Eq '\\| mem=(EPERM|EACCES)\$' '$work/kcore.err'"

step "setuid programs work for a user, as in docker (no no_new_privs)"
build setuid "image('setuid', base:run('chmod 4755 /attacks'):user('nobody'):run { '/attacks', 'euid', network = 'none' })"
check "the build succeeds" test "$status" -eq 0
check "a setuid-root program run by nobody gains euid 0" has setuid "uid=65534 euid=0"

step "a fork bomb stops at the process limit, and the host stays usable"
host_tasks_before=$(ls /proc | grep -c '^[0-9]')
build_bg forkbomb "image('forkbomb', base:run { '/attacks', 'forkbomb', network = 'none' })"
bomb_pid=$pid
wait "$bomb_pid"
status=$?
check "the build succeeds" test "$status" -eq 0
check "fork fails with EAGAIN below 4096 processes" \
  bash -c "grep -Eq '\\| forked=(40[0-9][0-9]|[1-3][0-9]{3}) stopped=Resource temporarily unavailable\$' '$work/forkbomb.err'"
sed -n 's/.*| forked=/        forked=/p' "$work/forkbomb.err"
check "the host runs a process at once" timeout 5 true
check "no process of the bomb is left" \
  bash -c "(( \$(ls /proc | grep -c '^[0-9]') < $host_tasks_before + 100 ))"
check "no cgroup of that build is left" no_cgroup "$bomb_pid"
flags=(--max-processes 50 --no-cache)  # the same step as above: run again, not taken from the cache
build forkbomb50 "image('forkbomb50', base:run { '/attacks', 'forkbomb', network = 'none' })"
flags=()
check "with --max-processes 50, fork fails below 50 processes" \
  bash -c "grep -Eq '\\| forked=[1-4]?[0-9] stopped=Resource temporarily unavailable\$' '$work/forkbomb50.err'"
sed -n 's/.*| forked=/        forked=/p' "$work/forkbomb50.err"
check "--max-processes takes a number only" \
  bash -c "'$IMGBUILD' '$ctx/forkbomb50.lua' --max-processes lots 2>&1 | grep -qe \"--max-processes: 'lots' is not a number\""

step "devices: a host disk made with mknod cannot be opened"
# The first real disk of the host (not a loop or RAM device), MAJOR:MINOR.
disk=$(for b in /sys/block/*; do [[ ${b##*/} == @(loop|ram|zram)* ]] || cat "$b/dev"; done 2>/dev/null | head -1)
if [[ -d /sys/fs/cgroup/devices && -n $disk ]]; then
  build disk "image('disk', base:run { '/attacks', 'disk', '${disk%:*}', '${disk#*:}', network = 'none' })"
  check "the build succeeds" test "$status" -eq 0
  check "mknod of a block node works, as in docker" has disk "mknod /tmp/hostdisk=ok"
  # EPERM is the device policy's answer, EACCES nodev's where a mount has it:
  # the unit test "a step cgroup lets no device be opened..." checks the
  # policy alone, on a mount without nodev.
  check "the node on the step's root cannot be opened" \
    bash -c "grep -Eq '\\| open /tmp/hostdisk=(EPERM|EACCES)\$' '$work/disk.err'"
  check "nor in its /dev tmpfs" bash -c "grep -Eq '\\| open /dev/hostdisk=(EPERM|EACCES)\$' '$work/disk.err'"
  check "/dev/null, /dev/zero and /dev/urandom open" \
    bash -c "grep -q '| devnull=ok\$' '$work/disk.err' && grep -q '| devzero=ok\$' '$work/disk.err' \
      && grep -q '| devurandom=ok\$' '$work/disk.err'"
else
  echo "    (no v1 devices cgroup or no block device: the device policy is not checked here)"
fi

step "no cgroup is left after a build, a failed step, an interrupt or a kill -9"
build ok "image('ok', base:run { 'true' })"
check "a build leaves no cgroup" no_cgroup "$pid"
build failed "image('failed', base:run { 'false' })"
check "the failed step fails" test "$status" -ne 0
check "a failed step leaves no cgroup" no_cgroup "$pid"
build_bg interrupted "image('interrupted', base:run { 'sleep', '4301.5' })"
for _ in $(seq 100); do pgrep -f 'sleep 4301.5' >/dev/null && break; sleep 0.1; done
check "the step runs" pgrep -f 'sleep 4301.5'
kill -INT "$pid"
wait "$pid"
check "an interrupted build leaves no cgroup" no_cgroup "$pid"
build_bg killed "image('killed', base:run { 'sleep', '4302.5' })"
killed_pid=$pid
for _ in $(seq 100); do pgrep -f 'sleep 4302.5' >/dev/null && break; sleep 0.1; done
check "the step runs" pgrep -f 'sleep 4302.5'
kill -9 "$killed_pid"
wait "$killed_pid"
for _ in $(seq 50); do pgrep -f 'sleep 4302.5' >/dev/null || break; sleep 0.1; done
check "the killed build's step is gone" gone 'sleep 4302.5'
check "its cgroup folders stay (nobody was left to remove them)" cgroup_left "$killed_pid"
build after "image('after', base:run { 'echo', 'next' })"
check "the next build removes the cgroups of the killed one" no_cgroup "$killed_pid"
check "and leaves none of its own" no_cgroup "$pid"

finish
