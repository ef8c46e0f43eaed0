#!/usr/bin/env bash
# Faults: a full disk. The store and the cache live on a 20 MB tmpfs. A layer
# that does not fit, a RUN step that fills the disk, and a disk already full
# when the build starts each fail with exit status 1 and a message that names
# the file system problem and the path; the store and the cache stay
# consistent (no partial file, a valid index, `imgbuild images` works); once
# there is room the same build succeeds and gives the digest a clean build gives.
#
#   tests/faults/full_disk.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
small=$work/small
at_exit 'mountpoint -q "$small" && umount -l "$small"'
[[ $(id -u) -eq 0 ]] || skip "mounting a small tmpfs needs root (run the suite as root)"
mkdir -p "$small" "$work/ctx"
if ! mount -t tmpfs -o size=20m tmpfs "$small"; then
  fail "cannot mount a 20 MB tmpfs on $small"
  finish
  exit
fi

export XDG_DATA_HOME="$small/data" XDG_CACHE_HOME="$small/cache"
store=$XDG_DATA_HOME/imgbuild cache=$XDG_CACHE_HOME/imgbuild
ctx=$work/ctx
cp /bin/busybox "$ctx/busybox"
# Random bytes do not compress: the layer is as large as the file.
head -c 30000000 /dev/urandom >"$ctx/big"

# disk_full WHAT: the last build failed (exit 1) because the disk is full,
# saying so with a path on it, and left the store and cache consistent.
disk_full() {
  check "$1: exit status 1" test "$status" = 1
  check "$1: the message says the disk is full" grep -q "No space left on device" "$work/last.err"
  check "$1: the message names the path" grep -q "$small/" "$work/last.err"
  consistent "$1" "$store" "$cache"
}
# run_build ARGS...: imgbuild ARGS in the foreground; $status, $work/last.{out,err}.
run_build() {
  "$IMGBUILD" "$@" >"$work/last.out" 2>"$work/last.err"
  status=$?
}

step "a layer larger than the free space"
cat >"$ctx/big.lua" <<'EOF'
image("big", scratch:copy("busybox", "/bin/busybox"):copy("big", "/big"))
EOF
run_build "$ctx/big.lua"
disk_full "a layer that does not fit"
sed 's/^/        /' "$work/last.err"

step "a RUN step that fills the disk"
cat >"$ctx/fill.lua" <<'EOF'
image("fill", scratch
  :copy("busybox", "/bin/busybox")
  :run { "/bin/busybox", "sh", "-c", "/bin/busybox dd if=/dev/zero of=/fill bs=1M count=40" })
EOF
run_build "$ctx/fill.lua"
check "the step fails: exit status 1" test "$status" = 1
check "its output says the disk is full" grep -q "No space left on device" "$work/last.err"
consistent "a RUN step that fills the disk" "$store" "$cache"

step "a disk that is already full when the build starts"
dd if=/dev/zero of="$small/filler" bs=1M count=100 >/dev/null 2>&1
cat >"$ctx/small.lua" <<'EOF'
image("small", scratch:copy("busybox", "/bin/busybox"):entrypoint { "/bin/busybox", "true" })
EOF
run_build "$ctx/small.lua"
disk_full "a full disk"
sed 's/^/        /' "$work/last.err"
check "nothing named 'small' is in the store" sh -c "! '$IMGBUILD' images | grep -q '^small '"

step "with room again, the same builds succeed and give a clean build's digests"
rm -f "$small/filler"
mount -o remount,size=200m "$small"
for r in big small; do
  check_cmd "$IMGBUILD" "$ctx/$r.lua"
  got=$(awk -v n="$r" '$1 == n {print $2}' "$work/last.out")
  clean=$(XDG_DATA_HOME="$work/clean-data" XDG_CACHE_HOME="$work/clean-cache" "$IMGBUILD" "$ctx/$r.lua" 2>/dev/null |
    awk -v n="$r" '$1 == n {print $2}')
  check "$r: the digest is a clean build's ($clean)" test -n "$got" -a "$got" = "$clean"
done
consistent "after the builds with room" "$store" "$cache"

finish
