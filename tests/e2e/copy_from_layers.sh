#!/usr/bin/env bash
# Tier 3: a copy from a builder stage takes the files it names out of the
# stage's plain tar layers, without unpacking the stage's root; the layer it
# makes is byte for byte the one a copy from the unpacked root makes (a
# pattern in each source takes that path), symlinks and hard links included;
# a symlink that leads out of the image finds nothing of the host.
#
#   tests/e2e/copy_from_layers.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
[[ $(id -u) -eq 0 ]] || skip "RUN steps on this machine need root"
ctx=$work/ctx
busybox_root "$ctx/root" sh mkdir ln chmod
echo "canary-host-file-7d41" >"$work/host-only"

# The builder: a base copied from the context, then two RUN steps (their
# layers plain tars: no output needs them compressed); the second one
# rewrites a file of the first and deletes another.
builder='local builder = scratch:copy("root", "/")
  :run "mkdir -p /out/sub && echo one >/out/a && chmod 0751 /out/a && ln -s a /out/link && ln -s /out/sub /out/dirlink && echo deep >/out/sub/b && ln /out/a /out/hard && echo gone >/out/gone && ln -s '"../../../../..$work/host-only"' /out/host"
  :run "echo two >/out/c && echo rewritten >/out/sub/b && rm /out/gone"
  :workdir "/out"'

# same NAME SOURCES: an image of one copy of SOURCES from the builder.
copy_image() {
  build_recipe "$1" "$builder
image(\"$1\", scratch:copy({ $2 }, \"/dst/\", { from = builder }))" -o "oci:$work/$1"
}
layer_of() { # LAYOUT: the digest of the image's only layer
  local m
  m=$(jq -r '.manifests[0].digest[7:]' "$1/index.json")
  jq -r '.layers[0].digest' "$1/blobs/sha256/$m"
}
roots() { find "$work/cache/imgbuild/roots" -maxdepth 1 -name '*.v' | wc -l; }

step "files, a symlink to one, a folder symlink on the way, a hard link, a relative path, a file rewritten by a later step"
copy_image fast '"/out/a", "/out/link", "/out/dirlink/b", "/out/hard", "c", "/bin/busybox"'
check "it builds" grep -q "^fast  sha256:" "$work/fast.out"
check "oci_validate.py and check_promises.py say OK" valid_image "$work/fast"
before=$(roots)
tar -tvf "$work/fast/blobs/sha256/$(layer_of "$work/fast" | cut -c8-)" >"$work/fast.list"
check "the files are the image's: the rewritten b, the mode of a kept" \
  sh -c "grep -q 'rwxr-x--x .* dst/a\$' '$work/fast.list' && grep -q ' dst/b\$' '$work/fast.list' && grep -q ' dst/link\$' '$work/fast.list'"

step "the same sources through the builder's unpacked root (a pattern in each)"
copy_image slow '"/out/[a]", "/out/lin[k]", "/out/dirlink/[b]", "/out/har[d]", "[c]", "/bin/busybo[x]"'
check "it builds" grep -q "^slow  sha256:" "$work/slow.out"
# Two roots: the builder's, and the root below its top layer, kept for later
# builds (its RUN steps made none: they stack their top layer, docs/cache.md).
check "the builder's root was unpacked this time only: the first copy took its files from the layers" \
  test "$(roots)" -eq $((before + 2))
check "both ways make the same layer" test "$(layer_of "$work/fast")" = "$(layer_of "$work/slow")"

step "a symlink of the builder's that climbs out of the image"
copy_image climb '"/out/host"'
check "it fails: the image has no such file" grep -q "no such file in the source image: /out/host" "$work/climb.err"
check "the host's file went nowhere" sh -c "! grep -rq canary-host-file-7d41 '$work/data' '$work/cache'"
copy_image deleted '"/out/gone"'
check "a file a later step deleted is not there either" grep -q "no such file in the source image: /out/gone" "$work/deleted.err"

finish
