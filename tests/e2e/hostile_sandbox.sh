#!/usr/bin/env bash
# Attacks on the RUN sandbox (issue 18), each by a step or a base image that
# this script builds itself, each asserting that the attack fails and the
# host is untouched: no terminal of imgbuild's reachable from a step (TIOCSTI
# under a real pty), lo up with network = "none", no process of a step left
# when it ends or when imgbuild is killed, and mount targets and the user
# database resolved inside the image's root, never on the host.
#
#   tests/e2e/hostile_sandbox.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
at_exit 'tmux -S "$work/tmux.sock" kill-server >/dev/null 2>&1'
[[ $(id -u) -eq 0 ]] || skip "the attacks need root: they check what a root step may not do"
for tool in cc tmux pgrep; do
  command -v "$tool" >/dev/null || skip "needs $tool"
done

ctx=$work/ctx
sentinel=$work/host-sentinel
mkdir -p "$ctx" "$sentinel/etc" "$sentinel/run" "$sentinel/cache"
echo "host file" >"$sentinel/etc/canary"
echo "someuser:x:4242:4242:host user:/:/bin/sh" >"$sentinel/passwd"
sentinel_before=$(cd "$sentinel" && find . -printf '%p %s %T@\n' | sort)
sentinel_untouched() { [[ $(cd "$sentinel" && find . -printf '%p %s %T@\n' | sort) == "$sentinel_before" ]]; }

# rootfs DIR: a busybox root in the context.
rootfs() { busybox_root "$1" sh cat echo ls sleep setsid ip nc id true; }
build() { build_recipe "$@"; }
# no_process PATTERN: nothing on the host runs with PATTERN in its command line,
# within 5 seconds (the kernel tears a PID namespace down asynchronously).
no_process() {
  for _ in $(seq 50); do
    pgrep -f -- "$1" >/dev/null || return 0
    sleep 0.1
  done
  pgrep -af -- "$1"
  return 1
}

rootfs "$ctx/base/root"
mkdir -p "$ctx/base/root/etc"
printf '%s\n' root:x:0:0:root:/:/bin/sh >"$ctx/base/root/etc/passwd"
printf '%s\n' root:x:0: >"$ctx/base/root/etc/group"
base='local base = scratch:copy("base/root", "/")'

step "no terminal of imgbuild's: a new session, TIOCSTI types nothing (under a real pty)"
cat >"$work/tiocsti.c" <<'EOF'
/* Tries to type a command into every terminal it can reach: fds 0-2 and /dev/tty. */
#include <fcntl.h>
#include <stdio.h>
#include <sys/ioctl.h>
#include <unistd.h>
int main(void) {
  static const char cmd[] = "touch /tmp/typed-by-step\n";
  int tty = open("/dev/tty", O_RDWR | O_NOCTTY);
  printf("devtty=%s\n", tty < 0 ? "refused" : "opened");
  int fds[] = {0, 1, 2, tty}, typed = 0;
  for (int i = 0; i < 4; ++i)
    for (const char* c = cmd; fds[i] >= 0 && *c; ++c) typed += ioctl(fds[i], TIOCSTI, c) == 0;
  printf("typed=%d sid=%d\n", typed, (int)getsid(0));
  return 0;
}
EOF
if cc -static -O -o "$ctx/tiocsti" "$work/tiocsti.c" 2>"$work/cc.log"; then
  printf '%s\n' "$base" "image('tty', base:copy('tiocsti', '/tiocsti'):run { '/tiocsti' })" >"$ctx/tty.lua"
  # In a terminal of tmux's (script's would hold an end of file typed from
  # its empty stdin), the shell behind imgbuild reads what was typed, as the
  # user's shell would (bash, for read -t).
  SHELL=/bin/bash tmux -S "$work/tmux.sock" new-session -d -x 200 -y 50 -c "$ctx" \
    "'$IMGBUILD' tty.lua --progress plain; echo EXIT=\$?; read -r -t 2 line; echo \"TYPED=[\$line]\"; sleep 600"
  screen_until "$work/tmux.sock" "$work/tty.log" '^TYPED='
  check "the build under a pty succeeds" grep -q '^EXIT=0' "$work/tty.log"
  check "the step cannot open /dev/tty: it has no controlling terminal" grep -q 'devtty=refused' "$work/tty.log"
  check "TIOCSTI typed nothing on fds 0-2 or /dev/tty" grep -q 'typed=0 sid=1' "$work/tty.log"
  check "nothing reached the terminal's input" grep -q '^TYPED=\[\]' "$work/tty.log"
  check "nothing was run on the host" test ! -e /tmp/typed-by-step
else
  fail "cc -static builds the TIOCSTI helper"
  sed 's/^/        /' "$work/cc.log"
fi

step "network = \"none\": lo is up"
# The server's stdin stays open (sleep): busybox nc may read EOF on a /dev/null
# stdin (a background job's) before the client's bytes, and quit without them.
# It is stopped once the bytes have arrived (or after 10 s).
build lo "$base
image('lo', base:run({ 'sh', '-c', [[ip link show lo | grep -q ',UP' && echo lo-up
sleep 30 | nc -l -p 9999 >/tmp/got & server=\$!
tries=0; until echo over-lo | nc -w 1 127.0.0.1 9999; do
  tries=\$((tries + 1)); if [ \$tries -ge 100 ]; then break; fi; sleep 0.1
done
tries=0; until [ -s /tmp/got ] || [ \$tries -ge 100 ]; do tries=\$((tries + 1)); sleep 0.1; done
kill \$server; cat /tmp/got]],
  network = 'none' }))"
check "the build succeeds" test $? -eq 0
check "ip link shows lo UP" grep -q '| lo-up$' "$work/lo.err"
check "a server on 127.0.0.1 is reached" grep -q '| over-lo$' "$work/lo.err"

step "nothing outlives a step"
build background "$base
image('bg', base:run 'sleep 4201.5 & echo started')"
check "a background process holding the output does not keep the build waiting" test $? -eq 0
check "the background process is gone" no_process 'sleep 4201.5'
build daemon "$base
image('daemon', base:run 'setsid sh -c \"sleep 4202.5\" </dev/null >/dev/null 2>&1 & echo started')"
check "a detached daemon does not keep the build waiting" test $? -eq 0
check "the daemon is gone" no_process 'sleep 4202.5'
printf '%s\n' "$base" "image('killed', base:run 'sleep 4203.5')" >"$ctx/killed.lua"
(cd "$ctx" && exec "$IMGBUILD" killed.lua >"$work/killed.out" 2>&1) &
imgbuild_pid=$!
for _ in $(seq 100); do
  pgrep -f 'sleep 4203.5' >/dev/null && break
  sleep 0.1
done
check "the step runs" pgrep -f 'sleep 4203.5'
kill -9 "$imgbuild_pid"
wait "$imgbuild_pid" 2>/dev/null
check "after kill -9 of imgbuild, the step is gone" no_process 'sleep 4203.5'

step "symlinks in the image resolve inside its root, never on the host"
rootfs "$ctx/etc_link/root"
ln -s "$sentinel/etc" "$ctx/etc_link/root/etc"
build etc_link "image('etc', scratch:copy('etc_link/root', '/'):run 'true')"
check "an /etc that leads out of the root is refused" test $? -ne 0
check "the error names the path" grep -q "cannot mount on /etc/hosts in the image: /etc leads nowhere inside it" \
  "$work/etc_link.err"

rootfs "$ctx/inside/root"
mkdir -p "$ctx/inside/root/etc" "$ctx/inside/root$sentinel/run" "$ctx/inside/root$sentinel/cache"
printf '%s\n' root:x:0:0:root:/:/bin/sh >"$ctx/inside/root/etc/passwd"
ln -s "$sentinel/run" "$ctx/inside/root/run"
ln -s "$sentinel/cache" "$ctx/inside/root/cachedir"
echo "secret-7d2c" >"$ctx/token.txt"
build inside "image('inside', scratch:copy('inside/root', '/'):run { 'sh', '-c',
  'cat /run/secrets/token && echo made >/cachedir/sub/file && ls $sentinel/cache/sub',
  secrets = { token = 'token.txt' }, cache = { '/cachedir/sub' } })"
check "a /run and a cache path that are symlinks to host paths build" test $? -eq 0
check "the secret is mounted at the path inside the root" grep -q '| secret-7d2c' "$work/inside.err"
check "the cache is mounted at the path inside the root" grep -q '| file' "$work/inside.err"

rootfs "$ctx/passwd_link/root"
mkdir -p "$ctx/passwd_link/root/etc"
ln -s "$sentinel/passwd" "$ctx/passwd_link/root/etc/passwd"
build passwd_link "image('user', scratch:copy('passwd_link/root', '/'):user 'someuser':run 'id')"
check "user = \"someuser\" does not resolve from a host file" test $? -ne 0
check "it is not in the image's /etc/passwd" grep -q "user 'someuser' is not in the image's /etc/passwd" \
  "$work/passwd_link.err"
check "the host sentinels are untouched" sentinel_untouched

finish
