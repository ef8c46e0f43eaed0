#!/usr/bin/env bash
# Tier 3: a build that makes an image the store already examined says the
# doctor's findings again without reading the image's programs out of its
# layers. The findings are kept by manifest digest
# (STORE/doctor/sha256-HEX.json) with a hash of what the doctor was told
# besides the image: the recipe lines it names and the warnings ignored. A
# record for other lines, other ignored warnings, or a damaged one is not
# used: the image is examined again. The record goes with its image.
#
#   tests/e2e/doctor_kept.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
cd "$work" || exit 1
command -v strace >/dev/null || skip "needs strace (scripts/setup installs it)"

step "an image whose entrypoint the doctor reads"
mkdir ctx
cp /bin/busybox ctx/busybox
cat >ctx/recipe.lua <<'LUA'
local img = scratch:copy("busybox", "/bin/busybox"):entrypoint { "/bin/busybox", "true" }
image("kept", img)
LUA
check_cmd "$IMGBUILD" ctx/recipe.lua --progress plain
digest=$("$IMGBUILD" inspect kept | jq -r .digest)
record=$XDG_DATA_HOME/imgbuild/doctor/sha256-${digest#sha256:}.json
layer=$("$IMGBUILD" inspect kept | jq -r '.manifest.layers[0].digest[7:]')
check "it warns that the image runs as root" grep -q "^imgbuild: warning: ctx/recipe.lua:2: the image runs as root.* \[root\]$" last.err
grep '^imgbuild: warning:' last.err >first.warnings
check "the store keeps the findings by manifest digest" jq -e '.findings | map(.check) == ["root"]' "$record"

# traced_build ARGS...: a build under strace; read_layer then tells whether
# it read the layer blob (LayerStream's open: read-only, blocking, no O_NOFOLLOW:
# the store's checks of a blob open it otherwise). LeakSanitizer cannot run
# under ptrace: a sanitized imgbuild leaves leak checks to the untraced builds.
traced_build() {
  ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
    strace -f -qq -e trace=openat -o trace.log "$IMGBUILD" ctx/recipe.lua --progress plain "$@" >last.out 2>last.err
}
read_layer() { grep -q "blobs/sha256/$layer\", O_RDONLY|O_CLOEXEC)" trace.log; }
layer_unread() { ! read_layer; }

step "a no-op rebuild says the same without reading the layer"
check_cmd traced_build
check "the layer was not read" layer_unread
grep '^imgbuild: warning:' last.err >again.warnings
check "the same warnings" cmp first.warnings again.warnings

step "without the record, the image is examined again (the check above can fail)"
rm "$record"
check_cmd traced_build
check "the layer was read" read_layer
grep '^imgbuild: warning:' last.err >examined.warnings
check "the same warnings" cmp first.warnings examined.warnings
check "and the record is back" jq -e '.findings | length == 1' "$record"

step "a damaged record is examined again and replaced"
printf '{"context": "sha256:' >"$record"
check_cmd traced_build
check "the layer was read" read_layer
check "the same warnings" sh -c "grep '^imgbuild: warning:' last.err | cmp - first.warnings"
check "the record is whole again" jq -e '.findings | length == 1' "$record"

step "other ignored warnings or other recipe lines: the record is not used"
check_cmd traced_build --ignore root
check "--ignore root: no warning" sh -c "! grep -q '^imgbuild: warning:' last.err"
check "  and the layer was read" read_layer
check_cmd traced_build
check "without it, the warning again" cmp <(grep '^imgbuild: warning:' last.err) first.warnings
{ echo "-- a line on top"; cat ctx/recipe.lua; } >ctx/recipe.new && mv ctx/recipe.new ctx/recipe.lua
check_cmd traced_build
check "the same image" test "$("$IMGBUILD" inspect kept | jq -r .digest)" = "$digest"
check "the warning names the image's new line" grep -q "^imgbuild: warning: ctx/recipe.lua:3: the image runs as root" last.err
check "  and the layer was read" read_layer

step "the record goes with its image"
check_cmd "$IMGBUILD" cache prune
check "cache prune keeps it" test -s "$record"
check_cmd "$IMGBUILD" rmi kept
check "rmi of its last name removes it" test ! -e "$record"
finish
