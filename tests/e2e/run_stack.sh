#!/usr/bin/env bash
# Tier 3: a RUN step runs on its top layer unpacked alone and stacked on the
# root of the layers below it (no root of its own is made), and the image is
# byte for byte the one a step on the linked root makes (--isolation auto
# links, as before); a top layer with a whiteout falls back to the linked
# root; a top layer whose /etc/passwd or cache mount path is a symlink out of
# the image reaches nothing of the host.
#
#   tests/e2e/run_stack.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
[[ $(id -u) -eq 0 ]] || skip "RUN steps on this machine need root"
ctx=$work/ctx
busybox_root "$ctx/root" sh mkdir ln chmod cat id rm printf stat echo true
mkdir -p "$ctx/layer/etc" "$ctx/layer/work/src" "$ctx/layer/usr/lib"
printf 'root:x:0:0:root:/root:/bin/sh\nbuilder:x:4321:4321::/home/builder:/bin/sh\n' >"$ctx/layer/etc/passwd"
echo "source" >"$ctx/layer/work/src/a.txt"
echo "mine" >"$ctx/layer/usr/lib/mine.so"
echo "hostuser:x:4242:4242::/:/bin/sh" >"$work/host-passwd"
mkdir -p "$work/hostdir"

base='local base = scratch:copy("root", "/")
  :run "mkdir -p /etc /usr/lib /work && printf \"root:x:0:0:root:/root:/bin/sh\\n\" >/etc/passwd && printf \"root:x:0:\\nwheel:x:10:\\n\" >/etc/group && ln -s usr/lib /lib && chmod 0777 /work && chmod 1777 /tmp"'

roots() { find "$1/imgbuild/roots" -maxdepth 1 -name '*.v' 2>/dev/null | wc -l; }
manifest_of() { jq -er ".manifests[0].digest" "$1/index.json"; }
# same_image NAME: the stacked and the linked build of NAME have one digest.
same_image() {
  local stacked linked
  stacked=$(manifest_of "$work/$1-stacked") && linked=$(manifest_of "$work/$1-linked") && [[ $stacked == "$linked" ]]
}
# top_file LAYOUT PATH: PATH as the image's last layer holds it.
top_file() {
  local m layer
  m=$(manifest_of "$1") && layer=$(jq -er '.layers[-1].digest' "$1/blobs/sha256/${m#sha256:}") &&
    tar -xOf "$1/blobs/sha256/${layer#sha256:}" "$2"
}
# both NAME RECIPE: builds RECIPE on a stack (the default) and on a linked
# root (--isolation auto), each with a store and cache of its own; how many
# roots each made is in $stacked_roots and $linked_roots.
both() {
  local s0 l0
  s0=$(roots "$work/cache") l0=$(roots "$work/linked-cache")
  build_recipe "$1" "$2" -o "oci:$work/$1-stacked"
  XDG_CACHE_HOME=$work/linked-cache XDG_DATA_HOME=$work/linked-data \
    build_recipe "$1-linked" "$2" --isolation auto -o "oci:$work/$1-linked"
  stacked_roots=$(($(roots "$work/cache") - s0)) linked_roots=$(($(roots "$work/linked-cache") - l0))
}

step "a copy layer that replaces /etc/passwd, under a step run as the user it adds"
both same "$base
image(\"same\", base:copy(\"layer\", \"/\"):user \"builder\"
  :run \"id -u >/tmp/uid && cat /lib/mine.so /work/src/a.txt >/tmp/out && stat -c '%a %u %n' /work /work/src /usr/lib >/tmp/modes\")"
check "it builds stacked" grep -q "^same  sha256:" "$work/same.out"
check "it builds linked" grep -q "^same  sha256:" "$work/same-linked.out"
check "the stacked build made no root for the copy layer, the linked one did" \
  test "$stacked_roots" -eq 2 -a "$linked_roots" -eq 3
check "both make the same image" same_image same
check "oci_validate.py and check_promises.py say OK" valid_image "$work/same-stacked"
ran_as_builder() {
  [[ $(top_file "$work/same-stacked" tmp/uid) == 4321 && $(top_file "$work/same-stacked" tmp/out) == $'mine\nsource' ]]
}
check "the step ran as the user the copied /etc/passwd adds, and read the copied files through /lib" ran_as_builder

step "a build folder overlay options cannot name: the stacked step runs again on the linked root's copy"
XDG_CACHE_HOME=$work/no:overlay XDG_DATA_HOME=$work/no-overlay-data \
  build_recipe same-snapshot "$(cat "$ctx/same.lua")" -o "oci:$work/same-snapshot"
check "it builds, and says it ran on a copy of the image" \
  grep -q "no overlay here (the build folder .* has a ',', ':' or '\\\\', which overlay options cannot take): ran on a copy of the image" "$work/same-snapshot.err"
check "the step's second try made the roots linking makes" test "$(roots "$work/no:overlay")" -eq 3
snapshot_same() { [[ $(manifest_of "$work/same-snapshot") == "$(manifest_of "$work/same-linked")" ]]; }
check "the same image" snapshot_same

step "a top layer with a whiteout: the step runs on the linked root"
both whiteout "$base
image(\"whiteout\", base:run \"rm /etc/group\":run \"cat /etc/group >/tmp/group 2>&1 || echo gone >/tmp/group\")"
check "it builds stacked" grep -q "^whiteout  sha256:" "$work/whiteout.out"
check "a root was made for the layer with the whiteout, as linking makes it" \
  test "$stacked_roots" -eq 1 -a "$linked_roots" -eq 1
check "both make the same image" same_image whiteout

step "a top layer whose /etc/passwd is a symlink to a file of the host"
build_recipe hostuser "$base
image(\"hostuser\", base:run \"ln -sf $work/host-passwd /etc/passwd\":user \"hostuser\":run \"true\")"
check "it fails: the image has no such user" \
  grep -q "user 'hostuser' is not in the image's /etc/passwd" "$work/hostuser.err"

step "a top layer that puts a symlink to a host folder on a cache mount's path"
build_recipe hostdir "$base
image(\"hostdir\", base:run \"ln -s $work/hostdir /work/cachelink\"
  :run(\"echo canary >/work/cachelink/c/x\", { cache = { \"/work/cachelink/c\" } }))"
check "it fails: the mount target leads nowhere inside the image" \
  grep -q "cannot mount on /work/cachelink/c in the image: /work/cachelink leads nowhere inside it" "$work/hostdir.err"
check "the host's folder is untouched" test -z "$(ls -A "$work/hostdir")"

finish
