#!/usr/bin/env bash
# Tier 3: pushing an image again does not make its SBOM again. The first push
# keeps the SPDX document in the store by manifest digest
# (STORE/sbom/sha256-HEX.spdx.json); a second push of the image, whose layer
# blobs the test has taken out of the store, reads none of them (nor fetches
# them back) and attaches the same bytes. A kept document that is damaged,
# about another image or made for another name is made again from the
# layers, and what is pushed is byte-identical to what a fresh store makes;
# a store that cannot keep it (a file where its folder goes) still pushes.
# A build whose push() made it leaves it for a later `imgbuild push`; `rmi`
# of the image removes it, and its provenance.
#
#   tests/e2e/sbom_kept.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
unset SOURCE_DATE_EPOCH
cd "$work" || exit 1

step "a two-layer image, and a registry without the referrers API"
here "open registry" registry_start open
REG=$REGISTRY
mkdir ctx
echo "kept" >ctx/a.txt
head -c 300000 /dev/urandom >ctx/b.bin
cat >ctx/recipe.lua <<'LUA'
local img = scratch:copy("a.txt", "/a.txt"):copy("b.bin", "/b.bin")
image("kept", img)
push(img, param("REG") .. "/kept/built:1")
LUA
check_cmd "$IMGBUILD" ctx/recipe.lua --set "REG=$REG" --no-push
digest=$("$IMGBUILD" inspect kept | jq -r .digest)
hex=${digest#sha256:}
kept=$XDG_DATA_HOME/imgbuild/sbom/sha256-$hex.spdx.json
mapfile -t layers < <("$IMGBUILD" inspect kept | jq -r '.manifest.layers[].digest[7:]')
check "the image has two layers" test "${#layers[@]}" -eq 2

# get PATH: a GET of the registry's API.
get() {
  curl -sf -H "Accept: application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json" \
    "http://$REG/v2/$1"
}
# pushed_sbom REPO: the one SBOM the referrers index of the image lists in
# REPO, as bytes; fails when it lists none or several (a second, different
# document attached).
pushed_sbom() {
  local sboms
  sboms=$(get "$1/manifests/sha256-$hex" | jq -r '[.manifests[] | select(.artifactType == "application/spdx+json")]
    | if length == 1 then .[0].digest else error("\(length) SBOMs listed") end') || return 1
  get "$1/blobs/$(get "$1/manifests/$sboms" | jq -r '.layers[0].digest')"
}
# layers_gone: none of the image's layer blobs is in the store.
layers_gone() {
  local l
  for l in "${layers[@]}"; do test ! -e "$XDG_DATA_HOME/imgbuild/blobs/sha256/$l" || return 1; done
}
drop_layers() {
  local l
  for l in "${layers[@]}"; do rm -f "$XDG_DATA_HOME/imgbuild/blobs/sha256/$l"; done
}

step "the first push makes the SBOM and keeps it"
check_cmd "$IMGBUILD" push kept "$REG/kept/app:1"
check "the push attached the SBOM" grep -qF "attached SBOM and provenance to $REG/kept/app@$digest" last.err
check "the store keeps it by manifest digest" test -s "$kept"
pushed_sbom kept/app >first.json
check "what was pushed is what is kept, byte for byte" cmp first.json "$kept"
check "it names the image and the reference pushed to" jq -e --arg d "$digest" --arg n "$REG/kept/app:1" \
  '.name == $n and .packages[0].versionInfo == $d' "$kept"

step "a second push reads no layer: the store has none of them left"
drop_layers
check "the layer blobs are out of the store" layers_gone
check_cmd "$IMGBUILD" push kept "$REG/kept/app:1"
check "the SBOM is attached again" grep -qF "attached SBOM and provenance to $REG/kept/app@$digest" last.err
check "no layer was read or fetched back to make it" layers_gone
pushed_sbom kept/app >second.json
check "the same one SBOM is listed, byte for byte" cmp first.json second.json

# remade DESCRIPTION: the kept document, damaged as DESCRIPTION says, is not
# pushed: the push makes it again from the layers (fetched back from the
# registry), keeps that, and the registry still lists the one SBOM.
remade() {
  check_cmd "$IMGBUILD" push kept "$REG/kept/app:1"
  check "$1: made again, byte for byte the first" cmp first.json "$kept"
  pushed_sbom kept/app >remade.json
  check "$1: the registry lists the one SBOM, not the damaged one" cmp first.json remade.json
  check "$1: made from the layers, fetched back" test -e "$XDG_DATA_HOME/imgbuild/blobs/sha256/${layers[1]}"
  drop_layers
}
step "a damaged kept SBOM is made again, not pushed"
head -c 200 first.json >"$kept"
remade "cut short"
: >"$kept"
remade "emptied"
jq . first.json >"$kept"
remade "not canonical (indented)"
# jq -cSj writes the canonical bytes: what follows is well formed, and wrong.
check "jq -cSj gives the document's own bytes" sh -c 'jq -cSj . first.json | cmp - first.json'
jq -cSj --arg d "sha256:$(printf '%064d' 7)" '.packages[0].versionInfo = $d' first.json >"$kept"
remade "about another image"
jq -cSj '.name = "kept" | .packages[0].name = "kept"' first.json >"$kept"
remade "made for another name"
jq -cSj '.creationInfo.creators = ["Tool: imgbuild-0.0.1"]' first.json >"$kept"
remade "made by another imgbuild"
rm -f "$kept"
remade "removed"

step "a store that cannot keep it still pushes"
rm -rf "${kept%/*}"
echo "not a folder" >"${kept%/*}"
check_cmd "$IMGBUILD" push kept "$REG/kept/app:1"
check "it says the SBOM was not kept" grep -qF "warning: the SBOM of $digest was not kept (" last.err
check "and attaches it" grep -qF "attached SBOM and provenance to $REG/kept/app@$digest" last.err
pushed_sbom kept/app >unkept.json
check "the registry still lists the one SBOM" cmp first.json unkept.json
rm -f "${kept%/*}"

step "a fresh store makes the same bytes"
export XDG_DATA_HOME=$work/fresh-data XDG_CACHE_HOME=$work/fresh-cache
check_cmd "$IMGBUILD" ctx/recipe.lua --set "REG=$REG" --no-push
check "the same image" test "$("$IMGBUILD" inspect kept | jq -r .digest)" = "$digest"
check_cmd "$IMGBUILD" push kept "$REG/kept/app:1"
check "the fresh store's SBOM is the first one, byte for byte" cmp first.json "$XDG_DATA_HOME/imgbuild/sbom/sha256-$hex.spdx.json"
pushed_sbom kept/app >fresh.json
check "the registry still lists the one SBOM" cmp first.json fresh.json

step "a push whose first tag fails names the image by the first tag that was pushed"
# The SBOM is made while the image uploads, for the first tag: made again for
# the one pushed when that one fails.
dead=127.0.0.1:$(free_port)
if "$IMGBUILD" push kept "$dead/kept/app:1" "$REG/kept/other:1" >last.out 2>last.err; then
  fail "the push failed (it succeeded)"
else
  check "it says the dead tag failed" grep -qF "push: 1 of 2 tags failed" last.err
  pushed_sbom kept/other >other.json
  check "the SBOM attached names the tag pushed" jq -e --arg n "$REG/kept/other:1" --arg d "$digest" \
    '.name == $n and .packages[0].versionInfo == $d' other.json
  check "and is the one kept" cmp other.json "$XDG_DATA_HOME/imgbuild/sbom/sha256-$hex.spdx.json"
fi

step "a build whose push() made the SBOM leaves it for imgbuild push"
check_cmd "$IMGBUILD" ctx/recipe.lua --set "REG=$REG"
check "the build attached it" grep -qF "attached SBOM and provenance to $REG/kept/built@$digest" last.err
pushed_sbom kept/built >built.json
drop_layers
check_cmd "$IMGBUILD" push kept "$REG/kept/built:1"
check "imgbuild push read no layer" layers_gone
pushed_sbom kept/built >repushed.json
check "and attached the build's SBOM, byte for byte" cmp built.json repushed.json

step "the kept SBOM and provenance go with their image"
fresh_kept=$XDG_DATA_HOME/imgbuild/sbom/sha256-$hex.spdx.json
provenance=$XDG_DATA_HOME/imgbuild/provenance/sha256-$hex.intoto.json
check "both are kept while the image is named" test -s "$fresh_kept" -a -s "$provenance"
check_cmd "$IMGBUILD" cache prune
check "cache prune keeps them" test -s "$fresh_kept" -a -s "$provenance"
check_cmd "$IMGBUILD" rmi kept
check "rmi of its last name removes them" test ! -e "$fresh_kept" -a ! -e "$provenance"
finish
