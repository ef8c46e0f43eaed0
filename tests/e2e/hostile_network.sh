#!/usr/bin/env bash
# Attacks on the default network of a RUN step (issue 18), from a step of a
# base image this script builds itself: the step must not reach a server on
# the host's loopback (at 127.0.0.1 or at the addresses slirp4netns maps),
# must not capture the host's loopback traffic with a raw socket, must not
# bind a port that the host's addresses answer on, and must still reach a
# server on the host's own address and the host's resolver, as a step that
# downloads modules does; slirp4netns must end with the step and with
# imgbuild (kill -9); a rootless step gets the same network.
#
#   tests/e2e/hostile_network.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
[[ $(id -u) -eq 0 ]] || skip "the attacks need root: they check what a root step may not do"
for tool in cc python3 slirp4netns pgrep; do
  command -v "$tool" >/dev/null || skip "needs $tool"
done

ctx=$work/ctx
busybox_root "$ctx/base/root" sh cat echo ip nc nslookup sleep grep tail
mkdir -p "$ctx/base/root/etc"
# get ADDRESS PORT: an HTTP GET with nc (busybox's static wget crashes in
# an image without the host's libraries); fails when nothing answers.
printf '%s\n' '#!/bin/sh' "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 \"\$1\" \"\$2\"" >"$ctx/base/root/bin/get"
chmod 755 "$ctx/base/root/bin/get"
printf '%s\n' root:x:0:0:root:/:/bin/sh >"$ctx/base/root/etc/passwd"
printf '%s\n' root:x:0: >"$ctx/base/root/etc/group"
base='local base = scratch:copy("base/root", "/")'
# build NAME RECIPE: builds RECIPE on the base, every step run again.
build() { build_recipe "$1" "$base"$'\n'"$2" --no-cache; }
# The host's own IPv4 address (eth0 on CI), for the servers a step may reach.
host_ip=$(ip -4 -o addr show scope global up 2>/dev/null | awk '{ split($4, a, "/"); print a[1]; exit }')

# A TCP server of the host on ADDRESS, which logs every connection to LOG and
# writes its port to PORTFILE once it listens; it answers an HTTP request
# with BODY.
cat >"$work/server.py" <<'EOF'
import socket, sys
address, portfile, log, body = sys.argv[1:5]
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((address, 0))
s.listen(16)
open(portfile + ".tmp", "w").write(str(s.getsockname()[1]))
import os; os.rename(portfile + ".tmp", portfile)
while True:
    c, peer = s.accept()
    open(log, "a").write("connection from %s\n" % (peer,))
    c.settimeout(2)
    try:
        c.recv(4096)
        c.sendall(("HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)).encode())
    except OSError:
        pass
    c.close()
EOF
# serve ADDRESS NAME: starts the server, sets NAME_port; killed on exit.
serve() {
  python3 "$work/server.py" "$1" "$work/$2.port" "$work/$2.log" "body-of-$2" &
  at_exit "kill $! 2>/dev/null"
  for _ in $(seq 100); do [[ -s $work/$2.port ]] && break; sleep 0.05; done
  printf -v "$2_port" '%s' "$(cat "$work/$2.port")"
}

step "a server on the host's loopback is out of reach"
serve 127.0.0.1 loopback
# 198.51.100.2 is slirp4netns's gateway, which it maps to the host's
# loopback unless told not to; .3 its DNS forwarder, which sends to the
# host's resolver or, without one, to the host's loopback.
build loopback "image('lo', base:run [[
for a in 127.0.0.1 198.51.100.2 198.51.100.3 ${host_ip:-127.0.0.2}; do
  if get \$a $loopback_port; then echo; echo reached \$a; else echo refused \$a; fi
done]])"
check "the build succeeds" test $? -eq 0
for a in 127.0.0.1 198.51.100.2 198.51.100.3 "${host_ip:-127.0.0.2}"; do
  check "not reached at $a" grep -q "| refused $a\$" "$work/loopback.err"
done
check "the server saw no connection" test ! -s "$work/loopback.log"
check "its body never reached the step" sh -c "! grep -q body-of-loopback '$work/loopback.err'"

step "a raw socket sees none of the host's loopback traffic"
cat >"$work/sniff.c" <<'EOF'
/* Captures every packet of every interface it can see (AF_PACKET, ETH_P_ALL)
 * for the given seconds, sending its own marker over lo meanwhile, and says
 * which markers it saw: its own proves that the capture works. */
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
static int has(const char* buf, long n, const char* marker) {
  size_t m = strlen(marker);
  for (long i = 0; i + (long)m <= n; ++i)
    if (memcmp(buf + i, marker, m) == 0) return 1;
  return 0;
}
int main(int argc, char** argv) {
  int seconds = argc > 1 ? atoi(argv[1]) : 4;
  int raw = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  if (raw < 0) { perror("socket"); return 2; }
  struct timeval tv = {0, 100000};
  setsockopt(raw, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  int udp = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(9)};
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int own = 0, host = 0;
  long packets = 0;
  time_t end = time(NULL) + seconds;
  char buf[65536];
  while (time(NULL) < end) {
    sendto(udp, "STEP-MARKER-5d1", 15, 0, (struct sockaddr*)&to, sizeof to);
    long n = recv(raw, buf, sizeof buf, 0);
    if (n <= 0) continue;
    ++packets;
    own |= has(buf, n, "STEP-MARKER-5d1");
    host |= has(buf, n, "HOST-MARKER-9c4");
  }
  printf("packets=%ld own=%d host=%d\n", packets, own, host);
  return 0;
}
EOF
if cc -static -O -o "$ctx/sniff" "$work/sniff.c" 2>"$work/cc.log"; then
  # The host sends its marker over its loopback for as long as the step captures.
  python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
while True:
    s.sendto(b"HOST-MARKER-9c4", ("127.0.0.1", 9)); time.sleep(0.02)' &
  sender=$!
  at_exit "kill $sender 2>/dev/null"
  build sniff "image('sniff', base:copy('sniff', '/sniff'):run { '/sniff', '4' })"
  check "the build succeeds" test $? -eq 0
  kill "$sender" 2>/dev/null
  check "the step opened a raw socket and captured its own traffic" grep -q '| packets=[1-9][0-9]* own=1' "$work/sniff.err"
  check "the host's loopback traffic was not captured" grep -q '| packets=.* host=0$' "$work/sniff.err"
else
  fail "cc -static builds the capture helper"
  sed 's/^/        /' "$work/cc.log"
fi

step "a port bound in the step is not one of the host's"
port=47613
# The host knocks on the port on each of its addresses for as long as the
# step listens, and logs what answers.
(
  end=$((SECONDS + 30))
  while ((SECONDS < end)); do
    for a in 127.0.0.1 ${host_ip:+"$host_ip"}; do
      timeout 1 bash -c "exec 3<>/dev/tcp/$a/$port" 2>/dev/null && echo "answered on $a" >>"$work/knock.log"
    done
    sleep 0.1
  done
) &
knocker=$!
at_exit "kill $knocker 2>/dev/null"
build bind "image('bind', base:run [[
nc -l -p $port >/dev/null & sleep 0.5
nc -w 1 127.0.0.1 $port </dev/null && echo bound-and-reached
sleep 3]])"
check "the build succeeds" test $? -eq 0
kill "$knocker" 2>/dev/null
check "the step's listener was up (reached from inside)" grep -q '| bound-and-reached$' "$work/bind.err"
check "no address of the host answered on the step's port" test ! -s "$work/knock.log"

step "a resolver on the host's loopback is reached through the forwarder"
# A DNS server of the test's on 127.0.0.53 (as systemd-resolved's), named
# by a resolv.conf that imgbuild sees in a mount namespace of its own.
cat >"$work/dns.py" <<'EOF'
import socket, struct
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.53", 53))
while True:
    q, peer = s.recvfrom(512)
    # The question as asked, one A record for it: 192.0.2.77.
    end = 12
    while q[end]: end += q[end] + 1
    question = q[12:end + 5]
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 77])
    s.sendto(q[:2] + b"\x81\x80" + struct.pack(">HHHH", 1, 1, 0, 0) + question + answer, peer)
EOF
python3 "$work/dns.py" 2>"$work/dns.log" &
at_exit "kill $! 2>/dev/null"
echo "nameserver 127.0.0.53" >"$work/resolv.conf"
printf '%s\n' "$base" "image('dns', base:run 'cat /etc/resolv.conf; nslookup marker.test 2>&1')" >"$ctx/dns.lua"
sleep 0.3
(cd "$ctx" && timeout 120 unshare -m sh -c "mount --bind '$work/resolv.conf' /etc/resolv.conf && \
  exec '$IMGBUILD' dns.lua --no-cache" >"$work/dns.out" 2>"$work/dns.err")
check "the build succeeds" test $? -eq 0
check "the step's resolv.conf names the forwarder" grep -q '| nameserver 198.51.100.3$' "$work/dns.err"
check "the name resolves through it" grep -q '| Address: 192.0.2.77$' "$work/dns.err"

step "slirp4netns ends with the step and with imgbuild"
# Its command line names the step's range: other processes named so (and
# zombies, which have none) are not the builds'.
helper='--cidr=198.51.100.0/24'
# gone PATTERN...: no process has any PATTERN in its command line, within 5
# seconds (the kernel removes a step's tap device as slirp4netns exits).
gone() {
  for _ in $(seq 50); do
    local left=0
    for p in "$@"; do pgrep -f -- "$p" >/dev/null && left=1; done
    ((left)) || return 0
    sleep 0.1
  done
  for p in "$@"; do pgrep -af -- "$p"; done
  return 1
}
check "no slirp4netns is left after the builds" gone "$helper"
printf '%s\n' "$base" "image('killed', base:run 'sleep 4301.5')" >"$ctx/killed.lua"
(cd "$ctx" && exec "$IMGBUILD" killed.lua --no-cache >"$work/killed.out" 2>&1) &
imgbuild_pid=$!
for _ in $(seq 100); do
  pgrep -f 'sleep 4301.5' >/dev/null && break
  sleep 0.1
done
check "the step and its slirp4netns run" pgrep -f -- "$helper"
kill -9 "$imgbuild_pid"
wait "$imgbuild_pid" 2>/dev/null
check "after kill -9 of imgbuild, the step and slirp4netns are gone" gone "$helper" 'sleep 4301.5'

step "the outside is reached: a server on the host's own address, the host's resolver"
if [[ -z $host_ip ]]; then
  # What ran above still counts: a failure there is not hidden by the skip.
  ((failed == 0)) || { finish; exit 1; }
  skip "no non-loopback IPv4 address on this host, for the rest"
fi
serve "$host_ip" outside
build outside "image('out', base:run [[
get $host_ip $outside_port; echo
ip -o -4 addr show eth0
cat /etc/resolv.conf
nslookup example.com 2>&1 | grep -v '^\$' | tail -n 1]])"
check "the build succeeds" test $? -eq 0
check "the server on $host_ip answered" grep -q '| body-of-outside$' "$work/outside.err"
check "the step has its own address, in the documentation range" grep -q 'inet 198.51.100.100/24' "$work/outside.err"
host_answer=$(timeout 10 busybox nslookup example.com 2>&1 | grep -v '^$' | tail -n 1)
if [[ -n $host_answer && $host_answer != *"timed out"* && $host_answer != *"no servers"* ]]; then
  check "the step's resolver answers as the host's does ($host_answer)" grep -qF "| $host_answer" "$work/outside.err"
else
  printf '  (the host resolves nothing here: the resolver check is left out)\n'
fi

step "rootless: the same network in the step's user namespace"
mkdir -p "$work/rootless"
chmod 755 "$work" "$ctx"
cp -a "$ctx/base" "$work/rootless/base"
printf '%s\n' "local base = scratch:copy('base/root', '/')" "image('r', base:run [[
ip -o -4 addr show eth0
get 127.0.0.1 $loopback_port || echo refused-loopback
get $host_ip $outside_port; echo]])" >"$work/rootless/r.lua"
chown -R nobody "$work/rootless"
# rootless [SETUP]: builds r.lua as nobody, after the shell commands SETUP,
# in a mount namespace of its own.
rootless() {
  rm -rf "$work/rootless/data" "$work/rootless/cache"
  (cd "$work/rootless" && unshare -m sh -c "${1:-true} && exec setpriv --reuid=nobody --regid=nogroup --clear-groups \
    env HOME='$work/rootless' XDG_DATA_HOME='$work/rootless/data' XDG_CACHE_HOME='$work/rootless/cache' \
    '$IMGBUILD' r.lua") >"$work/rootless.out" 2>"$work/rootless.err"
}
# A /dev/net/tun of mode 0600, as some hosts (this CI's containers) have it,
# where Debian's udev makes it 0666.
mkdir -p "$work/tun"
rootless "mount -t tmpfs tun '$work/tun' && mknod -m 600 '$work/tun/tun' c 10 200 && mount --bind '$work/tun/tun' /dev/net/tun"
check "without /dev/net/tun for the user, the step fails at its line, saying so" grep -q \
  "r.lua:2: run: the network of a rootless RUN step needs /dev/net/tun, which this user cannot open" \
  "$work/rootless.err"
check "no image was made" sh -c "! grep -q '^r  sha256:' '$work/rootless.out'"
rootless "mount -t tmpfs tun '$work/tun' && mknod -m 666 '$work/tun/tun' c 10 200 && mount --bind '$work/tun/tun' /dev/net/tun"
check "with it, it builds" grep -q '^r  sha256:' "$work/rootless.out"
check "the step has its own address" grep -q 'inet 198.51.100.100/24' "$work/rootless.err"
check "the host's loopback is out of reach" grep -q '| refused-loopback$' "$work/rootless.err"
check "the server on $host_ip answered" grep -q '| body-of-outside$' "$work/rootless.err"

finish
