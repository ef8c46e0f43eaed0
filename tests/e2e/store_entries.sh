#!/usr/bin/env bash
# What enters the local store, how it is listed and how it leaves: an image
# whose config would be over the 4 MiB every reader applies is refused at its
# recipe line with nothing stored; a store with damaged entries (planted here
# by hand: a missing, a garbage, an oversized manifest, an oversized config,
# an unknown media type, an entry that is no descriptor) still lists every
# image and names each damaged one with the way to remove it; `imgbuild rmi`
# removes any of them, and frees only the blobs no other image and no cached
# step needs. Scratch images only: no registry, no sandbox.
#
#   tests/e2e/store_entries.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
cd "$work" || exit 1
store="$XDG_DATA_HOME/imgbuild"
blobs="$store/blobs/sha256"

# The store's files and their contents, lock files aside.
store_state() { (cd "$store" && find . -type f ! -name '.*' | sort | xargs sha256sum); }
# plant CONTENT: CONTENT as a blob of the store; prints its digest.
plant() {
  local hex
  hex=$(printf '%s' "$1" | sha256sum | cut -c1-64)
  printf '%s' "$1" >"$blobs/$hex"
  echo "sha256:$hex"
}
# add_entry JSON: appends an entry to index.json.
add_entry() {
  jq --argjson e "$1" '.manifests += [$e]' "$store/index.json" >"$work/index.new" && mv "$work/index.new" "$store/index.json"
}
# entry NAME DIGEST SIZE [MEDIA_TYPE]: an index entry naming a manifest.
entry() {
  jq -n --arg n "$1" --arg d "$2" --argjson s "$3" --arg t "${4:-application/vnd.oci.image.manifest.v1+json}" \
    '{mediaType: $t, digest: $d, size: $s, annotations: {"org.opencontainers.image.ref.name": $n}}'
}
manifest_of() { jq -r --arg n "$1" '.manifests[] | objects | select(.annotations["org.opencontainers.image.ref.name"] == $n) | .digest' "$store/index.json"; }

printf 'shared\n' >shared.txt
printf 'a\n' >a.txt
printf 'b\n' >b.txt
cat >recipe.lua <<'LUA'
local base = scratch:copy("shared.txt", "/shared.txt")
image("a", base:copy("a.txt", "/a.txt"))
image("b", base:copy("b.txt", "/b.txt"))
image("alias", base:copy("b.txt", "/b.txt"))
LUA
cat >big.lua <<'LUA'
local img = scratch:env { A = "1" }
img = img:label { big = string.rep("x", 5 * 1024 * 1024) }
image("big", img:copy("a.txt", "/a.txt"))
LUA

step "a config over the limit is refused at its line, before anything is stored"
check_cmd "$IMGBUILD" recipe.lua --progress plain
store_state >"$work/before"
"$IMGBUILD" big.lua --progress plain >"$work/out" 2>"$work/err"
check "the build fails (exit 1)" test $? -eq 1
check "at the label's line, naming the limit and the size" \
  grep -q "big.lua:2: label: the image config .* is too large: [0-9]* bytes, over the limit of 4194304 bytes (4 MiB)" "$work/err"
check "the store is unchanged" sh -c "store_state() { cd '$store' && find . -type f ! -name '.*' | sort | xargs sha256sum; }; store_state | diff '$work/before' -"
"$IMGBUILD" plan big.lua >"$work/out" 2>"$work/err"
check "plan says the same" sh -c "test $? -eq 1 && grep -q 'big.lua:2: label: the image config' '$work/err'"

step "damaged entries, planted by hand"
a_manifest=$(manifest_of a)
garbage=$(plant 'not a manifest')
huge=$(plant "{\"pad\":\"$(head -c 5000000 /dev/zero | tr '\0' x)\"}")
big_config=$(plant "{\"architecture\":\"amd64\",\"os\":\"linux\",\"pad\":\"$(head -c 5000000 /dev/zero | tr '\0' x)\"}")
big_config_manifest=$(plant "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"$big_config\",\"size\":$(stat -c %s "$blobs/${big_config#sha256:}")},\"layers\":[]}")
add_entry "$(entry missing "sha256:$(printf gone | sha256sum | cut -c1-64)" 4)"
add_entry "$(entry garbage "$garbage" 14)"
add_entry "$(entry huge "$huge" "$(stat -c %s "$blobs/${huge#sha256:}")")"
add_entry "$(entry big-config "$big_config_manifest" "$(stat -c %s "$blobs/${big_config_manifest#sha256:}")")"
add_entry "$(entry foreign "$a_manifest" "$(stat -c %s "$blobs/${a_manifest#sha256:}")" application/x-not-an-image)"
add_entry '{"annotations": {"org.opencontainers.image.ref.name": "malformed"}, "digest": 42}'
add_entry 42

step "images lists the good ones and names the damaged ones"
check_cmd "$IMGBUILD" images
for name in a b alias; do
  outcome "$name is listed with its size" "^$name .* sha256:[0-9a-f]\{12\} .*B  1970-01-01T00:00:00Z$"
done
for name in missing garbage huge big-config foreign malformed; do
  outcome "$name is listed as damaged" "^$name .* damaged$"
  check "  a warning says what is wrong and how to remove it" \
    grep -q "^imgbuild: warning: .*$name.*: imgbuild rmi $name removes it$" "$work/last.err"
done
check "the missing manifest is named" grep -q "image 'missing' is damaged: .*No such file" "$work/last.err"
check "the garbage manifest is named" grep -q "image 'garbage' is damaged: .* is not a JSON object" "$work/last.err"
check "the oversized manifest is named with the limit" grep -q "image 'huge' is damaged: .*over the limit of 4194304 bytes" "$work/last.err"
check "the oversized config is named" grep -q "image 'big-config' is damaged: the document $big_config is too large" "$work/last.err"
check "the unknown media type is named" grep -q "image 'foreign' is damaged: .*application/x-not-an-image" "$work/last.err"
check "an entry with no name: edit index.json" grep -q "is not an image descriptor (descriptor is not an object): remove it from $store/index.json by hand" "$work/last.err"

step "other commands need a damaged entry only when they use it"
check_cmd "$IMGBUILD" inspect a
"$IMGBUILD" inspect garbage >"$work/out" 2>"$work/err"
check "inspect of a damaged image: exit 1, named, with the way out" \
  sh -c "test $? -eq 1 && grep -q \"image 'garbage' is damaged: .*(imgbuild rmi garbage removes it)\" '$work/err'"
check_cmd "$IMGBUILD" recipe.lua --progress plain

step "rmi"
store_state >"$work/before"
"$IMGBUILD" rmi nothing >"$work/out" 2>"$work/err"
check "an unknown name: exit 1" test $? -eq 1
check "  saying so" diff <(echo "imgbuild: no image named nothing in the store (imgbuild images lists them)") "$work/err"
"$IMGBUILD" rmi a nothing >"$work/out" 2>"$work/err"
check "  with a known one, nothing is removed" sh -c "store_state() { cd '$store' && find . -type f ! -name '.*' | sort | xargs sha256sum; }; store_state | diff '$work/before' -"
"$IMGBUILD" rmi >"$work/out" 2>"$work/err"
check "no name: a usage error" test $? -eq 2
b_manifest=$(manifest_of b)
"$IMGBUILD" rmi "sha256:${b_manifest:7:12}" >"$work/out" 2>"$work/err"
check "a digest of two names is refused" \
  sh -c "test $? -eq 1 && grep -q 'is the image of several names (alias, b): remove them by name' '$work/err'"

check_cmd "$IMGBUILD" rmi garbage huge missing big-config foreign malformed
for name in garbage huge missing big-config foreign malformed; do outcome "removed $name" "^removed $name"; done
for d in "$garbage" "$huge" "$big_config" "$big_config_manifest"; do
  check "  $d is freed" test ! -e "$blobs/${d#sha256:}"
done
check "  the manifest foreign shared with a stays" test -e "$blobs/${a_manifest#sha256:}"
outcome "  and the count and bytes are said" "^4 blobs freed: 10.0 MB$"

a_config=$(jq -r .config.digest "$blobs/${a_manifest#sha256:}")
a_layers=$(jq -r '.layers[].digest' "$blobs/${a_manifest#sha256:}")
check_cmd "$IMGBUILD" rmi a
outcome "removed a with its manifest and config" "^2 blobs freed: "
check "  its manifest and config are gone" test ! -e "$blobs/${a_manifest#sha256:}" -a ! -e "$blobs/${a_config#sha256:}"
for d in $a_layers; do check "  layer $d stays (b or a cached step needs it)" test -e "$blobs/${d#sha256:}"; done
check_cmd "$IMGBUILD" rmi alias
outcome "by name, an image that has another name: no blob freed" "^0 blobs freed: 0 B$"
check_cmd "$IMGBUILD" rmi "sha256:${b_manifest:7:12}"
outcome "by digest, once it has one name" "^removed b (${b_manifest})"
check_cmd "$IMGBUILD" images
check "the store lists only the entry with no name" sh -c "test \$(wc -l <'$work/last.out') -eq 2"
check_cmd "$IMGBUILD" recipe.lua --progress plain
check "the build again takes every step from the cache: their layers were kept" \
  sh -c "grep -h '  copy ' '$work/last.err' '$work/last.out' >'$work/steps' && ! grep -v '(cached)' '$work/steps'"

step "a build replaces a damaged image of its name"
gone="sha256:$(printf gone | sha256sum | cut -c1-64)"
jq --arg d "$gone" '(.manifests[] | objects | select(.annotations["org.opencontainers.image.ref.name"] == "a") | .digest) = $d' \
  "$store/index.json" >"$work/index.new" && mv "$work/index.new" "$store/index.json"
check_cmd "$IMGBUILD" recipe.lua --progress plain
check "a names its image again" sh -c "test \"\$(jq -r '.manifests[] | objects | select(.annotations[\"org.opencontainers.image.ref.name\"] == \"a\") | .digest' '$store/index.json')\" != '$gone'"
check_cmd "$IMGBUILD" images
check "  and lists whole" sh -c "grep -q '^a .*B  1970-01-01T00:00:00Z\$' '$work/last.out' && ! grep -q '^a .*damaged' '$work/last.out'"

step "a damaged index.json"
cp "$store/index.json" "$work/index.good"
printf '{not json' >"$store/index.json"
"$IMGBUILD" images >"$work/out" 2>"$work/err"
check "images fails (exit 1), saying how to recover" \
  sh -c "test $? -eq 1 && grep -q 'index.json: not a valid index .*restore the file, or remove it to start with no images' '$work/err'"
"$IMGBUILD" rmi a >"$work/out" 2>"$work/err"
check "rmi fails and changes nothing" sh -c "test $? -eq 1 && test \"\$(cat '$store/index.json')\" = '{not json'"

finish
