#!/usr/bin/env bash
# Attacks on the mounts of a RUN step (issue 18), each by a step or a base
# image that this script builds itself, each asserting that the attack fails
# and the host is untouched: the kernel's files of /proc and /sys masked and
# read-only for a root step (kernel.core_pattern, SysRq, remounts), device
# nodes that a layer ships or a step makes opening no host device (nodev),
# and mounts that never nest, so that a cache an earlier build filled with
# symlinks cannot lead a secret's mount onto the host.
#
#   tests/e2e/hostile_mounts.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
attacks_need_root_and_cc

ctx=$work/ctx
sentinel=$work/host-sentinel
mkdir -p "$ctx" "$sentinel/run" "$sentinel/etc"
echo "host file" >"$sentinel/etc/canary"
sentinel_before=$(cd "$sentinel" && find . -printf '%p %s %T@\n' | sort)
sentinel_untouched() { [[ $(cd "$sentinel" && find . -printf '%p %s %T@\n' | sort) == "$sentinel_before" ]]; }
core_pattern=$(cat /proc/sys/kernel/core_pattern)

# The disk the host's root is on, as major and minor: what a hostile node names.
read -r disk_major disk_minor < <(stat -c '%Hd %Ld' /)
if [[ $disk_major == 0 ]]; then
  disks=(/sys/block/*/dev)
  IFS=: read -r disk_major disk_minor <"${disks[0]}"
fi

cat >"$work/probe.c" <<'EOF_C'
/* probe open PATH...: opens each for reading and writing (never writes to
   it) and says whether it could. probe write PATH TEXT: writes TEXT there. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char** argv) {
  if (argc == 4 && strcmp(argv[1], "write") == 0) {
    int fd = open(argv[2], O_WRONLY);
    size_t n = strlen(argv[3]);
    int done = fd >= 0 && write(fd, argv[3], n) == (ssize_t)n;
    printf("write %s: %s\n", argv[2], done ? "done" : strerror(errno));
    return 0;
  }
  for (int i = 2; i < argc; ++i) {
    int fd = open(argv[i], O_RDWR | O_NOCTTY);
    printf("open %s: %s\n", argv[i], fd >= 0 ? "opened" : strerror(errno));
  }
  return 0;
}
EOF_C
cc -static -O -o "$work/probe" "$work/probe.c" 2>"$work/cc.log" || {
  sed 's/^/        /' "$work/cc.log"
  fail "cc -static builds the probe"
  finish
}

# rootfs DIR: a busybox root in the context with the probe, root and nobody.
rootfs() {
  busybox_root "$1" sh cat echo ls wc mknod mkdir mount umount ln
  mkdir -p "$1/etc" "$1/nodes"
  cp "$work/probe" "$1/probe"
  printf '%s\n' root:x:0:0:root:/:/bin/sh nobody:x:65534:65534::/:/bin/sh >"$1/etc/passwd"
  printf '%s\n' root:x:0: nogroup:x:65534: >"$1/etc/group"
}
build() { build_recipe "$@"; }
# said NAME LINE: the step of build NAME printed LINE.
said() { grep -qF -- "| $2" "$work/$1.err"; }

rootfs "$ctx/base/root"
base='local base = scratch:copy("base/root", "/")'

step "the kernel's files: masked and read-only for a root step, which cannot undo that"
build kernel "$base
image('kernel', base:run [[
/probe write /proc/sys/kernel/core_pattern '|/probe write /tmp/pwned core'
/probe write /proc/sysrq-trigger h
mount -o remount,rw /proc/sys 2>/dev/null || echo remount of /proc/sys refused
umount /proc/sys 2>/dev/null || echo umount of /proc/sys refused
umount /proc/keys 2>/dev/null || echo umount of /proc/keys refused
mount -t proc proc /tmp 2>/dev/null || echo a new proc refused
echo keys: \$(wc -c </proc/keys) bytes, timer_list: \$(wc -c </proc/timer_list) bytes
echo firmware: \$(ls -A /sys/firmware | wc -l) entries, kernel: \$(ls /sys/kernel | wc -l)
/probe write /sys/kernel/profiling 1
]])"
check "the build succeeds" test $? -eq 0
check "core_pattern is not written: /proc/sys is read-only" \
  said kernel "write /proc/sys/kernel/core_pattern: Read-only file system"
if [[ -e /proc/sysrq-trigger ]]; then
  check "SysRq is not triggered" said kernel "write /proc/sysrq-trigger: Read-only file system"
fi
check "/proc/sys cannot be remounted read-write" said kernel "remount of /proc/sys refused"
check "/proc/sys cannot be unmounted" said kernel "umount of /proc/sys refused"
check "a mask cannot be unmounted" said kernel "umount of /proc/keys refused"
check "no new proc can be mounted" said kernel "a new proc refused"
check "/proc/keys and /proc/timer_list read empty" said kernel "keys: 0 bytes, timer_list: 0 bytes"
check "/sys is there, /sys/firmware masked empty" grep -qE '\| firmware: 0 entries, kernel: [1-9]' "$work/kernel.err"
check "/sys is read-only" said kernel "write /sys/kernel/profiling: Read-only file system"
check "the host's core_pattern is untouched" test "$(cat /proc/sys/kernel/core_pattern)" = "$core_pattern"

step "device nodes a layer ships or a step makes open no host device"
build nodes "$base
local nodes = base:run [[
mknod -m 666 /nodes/disk b $disk_major $disk_minor
mknod -m 666 /nodes/diskc c $disk_major $disk_minor
mknod -m 666 /nodes/mem c 1 1
mknod -m 666 /made b $disk_major $disk_minor && /probe open /made
mknod -m 666 /dev/made b $disk_major $disk_minor && /probe open /dev/made
/probe open /dev/null /dev/zero /dev/urandom /dev/ptmx
]]
image('nodes', nodes)
image('root-opens', nodes:run '/probe open /nodes/disk /nodes/diskc /nodes/mem')
image('nobody-opens', nodes:user '65534':run '/probe open /nodes/disk /nodes/diskc /nodes/mem')"
check "the builds succeed" test $? -eq 0
check "a node made by the step opens nothing" said nodes "open /made: Permission denied"
check "a node made in /dev opens nothing" said nodes "open /dev/made: Permission denied"
for dev in null zero urandom ptmx; do
  check "/dev/$dev still opens" said nodes "open /dev/$dev: opened"
done
for node in disk diskc mem; do
  check "the layer's /nodes/$node (mode 0666) opens neither for root nor for nobody" \
    test "$(grep -cF "| open /nodes/$node: Permission denied" "$work/nodes.err")" -eq 2
done
check "no node of the layer opened" bash -c "! grep -q 'open /nodes/.*: opened' '$work/nodes.err'"
# The step's layer keeps its nodes, as Docker keeps them.
listing=$(find "$XDG_DATA_HOME" -path '*/blobs/sha256/*' -type f -exec tar -tvzf {} \; 2>/dev/null)
check "the layer has the block node" grep -qE "^brw-rw-rw- .*$disk_major,$disk_minor .*nodes/disk$" <<<"$listing"
check "the layer has the character nodes" grep -qE '^crw-rw-rw- .* 1,1 .*nodes/mem$' <<<"$listing"

step "mounts never nest: a cache full of symlinks cannot lead a secret onto the host"
echo "secret-5e1f" >"$ctx/token.txt"
build fill "$base
image('fill', base:run { 'sh', '-c', 'ln -s $sentinel/run /run/secrets', cache = { '/run' } })"
check "a step fills the cache at /run with a symlink to a host folder" test $? -eq 0
build nested "$base
image('nested', base:run { 'cat /run/secrets/token', cache = { '/run' }, secrets = { token = 'token.txt' } })"
check "a secret below a cache mount is refused" test $? -ne 0
check "the error says why" grep -qF "cannot mount on /run/secrets/token: /run is mounted too" "$work/nested.err"

step "an image whose /sys leads to the host or onto /proc"
rootfs "$ctx/sys_host/root"
ln -s "$sentinel/etc" "$ctx/sys_host/root/sys"
build sys_host "image('sys', scratch:copy('sys_host/root', '/'):run 'true')"
check "a /sys that leads out of the root is refused" test $? -ne 0
check "the error names it" grep -qF "cannot mount on /sys in the image: /sys leads nowhere inside it" \
  "$work/sys_host.err"
rootfs "$ctx/sys_proc/root"
mkdir -p "$ctx/sys_proc/root/proc"
ln -s proc "$ctx/sys_proc/root/sys"
build sys_proc "image('sys', scratch:copy('sys_proc/root', '/'):run 'true')"
check "a /sys that is /proc is refused" test $? -ne 0
check "the error names both" grep -qF "cannot mount on /sys (/proc in the image): /proc is mounted too" \
  "$work/sys_proc.err"
check "the host sentinels are untouched" sentinel_untouched

finish
