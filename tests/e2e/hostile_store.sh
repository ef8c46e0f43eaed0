#!/usr/bin/env bash
# A hostile store (issue 19): blobs are trusted by what they hold, never by
# their names. An image whose config copies a trusted base's diff_ids over
# another layer is refused before anything runs on its files, and poisons
# neither the unpacked roots nor the step cache of the trusted base; a base
# layer swapped for an attacker's or damaged in place is found, removed and
# fetched again; a built image's damaged layer is never pushed; an oci:DIR
# output never keeps a planted file; `imgbuild store verify` says what is wrong.
#
#   tests/e2e/hostile_store.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"

imgbuild() { "$IMGBUILD" "$@" >"$work/last.out" 2>"$work/last.err"; }
store=$XDG_DATA_HOME/imgbuild
blob() { printf '%s\n' "$store/blobs/sha256/${1#sha256:}"; }
# stored_layer NAME N: the digest of layer N (from 0) of the stored image NAME.
stored_layer() {
  local manifest
  manifest=$(jq -r --arg n "$1" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $n) | .digest' "$store/index.json" | head -n 1)
  jq -r ".layers[$2].digest" "$(blob "$manifest")"
}
# whole DIR: every blob of the layout DIR holds what its name says.
whole() {
  local f
  for f in "$1"/blobs/sha256/*; do
    [[ $(sha256sum "$f" | cut -d' ' -f1) == "$(basename "$f")" ]] || { echo "$f does not match its name"; return 1; }
  done
}
# errors PATTERN: the last run failed and its stderr has PATTERN (grep -E).
errors() {
  if [[ -s $work/last.err ]] && grep -qE -- "$2" "$work/last.err" && ! grep -q . "$work/last.out"; then pass "$1"; else
    fail "$1"
    tail -n 15 "$work/last.err" | sed 's/^/        /'
  fi
}
# ran_run: whether the last build ran its RUN step (rather than taking it from the cache).
ran_run() { grep -E 'recipe\.lua:[0-9]+  run ' "$work/last.err" | grep -vq '(cached)'; }

step "a registry with a trusted base, and an image that lies about it"
here "registry" registry_start open
REG=$REGISTRY_open
check "seed the trusted base" seed_images "$REG"
# The liar: the trusted base's config (its diff_ids) unchanged, over a layer
# of the attacker's files. skopeo copies blobs as they are, checking digests only.
skopeo copy --src-tls-verify=false "docker://$REG/base/busybox:oci" "oci:$work/liar:x" >"$work/skopeo.log" 2>&1
mkdir -p "$work/evil/bin"
echo "the attacker's files" >"$work/evil/EVIL"
printf '#!/bin/sh\necho pwned\n' >"$work/evil/bin/sh"
chmod +x "$work/evil/bin/sh"
python3 - "$work/liar" "$work/evil" <<'EOF'
import gzip, hashlib, io, json, os, sys, tarfile
layout, files = sys.argv[1], sys.argv[2]
def put(data):
    digest = hashlib.sha256(data).hexdigest()
    open(os.path.join(layout, "blobs", "sha256", digest), "wb").write(data)
    return "sha256:" + digest
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
    tar.add(files, arcname=".")
layer = gzip.compress(raw.getvalue(), mtime=0)
index = json.load(open(os.path.join(layout, "index.json")))
manifest_desc = index["manifests"][0]
manifest = json.load(open(os.path.join(layout, "blobs", "sha256", manifest_desc["digest"][7:])))
manifest["layers"] = [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(layer), "size": len(layer)}
                      for _ in manifest["layers"]]
body = json.dumps(manifest).encode()
manifest_desc.update(digest=put(body), size=len(body))
json.dump(index, open(os.path.join(layout, "index.json"), "w"))
EOF
check "push the liar" skopeo copy --dest-tls-verify=false "oci:$work/liar:x" "docker://$REG/liar/busybox:1"
evil_layer=$(jq -r '.layers[0].digest' "$work/liar/blobs/sha256/$(jq -r '.manifests[0].digest[7:]' "$work/liar/index.json")")

# One recipe, two bases: the same RUN step on each, so that its key is the same
# on the liar as on the trusted base (both claim the same diff_ids).
mkdir -p "$work/app"
cat >"$work/app/recipe.lua" <<'EOF'
local base = from(param("BASE"))
  :run "test ! -e /EVIL && echo built on trusted files > /built"
  :doctor { ignore = { "root" } }
image("app", base)
EOF
APP=$work/app/recipe.lua
TRUSTED=(--set "BASE=$REG/base/busybox:oci")
LIAR=(--set "BASE=$REG/liar/busybox:1")

step "the liar first: refused before its files are run; no root or step is kept"
imgbuild "$APP" "${LIAR[@]}"
errors "the build of the liar fails, naming the image, the layer and both diff_ids" \
  "from $REG/liar/busybox:1 \(layer 1\): layer $evil_layer is not what the image's config says: diff_id sha256:[0-9a-f]{64} in the config, sha256:[0-9a-f]{64} in the layer; the image is refused"
check "nothing ran: no step output" bash -c "! grep -q pwned '$work/last.err'"
check "no unpacked root is left" bash -c "[[ -z \$(ls -A '$XDG_CACHE_HOME/imgbuild/roots' 2>/dev/null) ]]"
check "no RUN step is cached" bash -c "! '$IMGBUILD' cache ls | grep -q 'run '"

step "the liar under a copy before its RUN step: unpacked ahead for its listing, refused all the same"
# A tree asks for the base's listing at the copy, so the builder unpacks the
# base then (unpack_for_listing), in a store and cache of their own, where
# nothing is on record about the liar yet.
mkdir -p "$work/ahead"
echo hello >"$work/ahead/greeting"
cat >"$work/ahead/recipe.lua" <<'EOF'
local base = from(param("BASE"))
  :copy("greeting", "/greeting")
  :run "test ! -e /EVIL && echo built on trusted files > /built"
  :doctor { ignore = { "root" } }
image("app", base)
EOF
ahead() { (cd "$work/ahead" && XDG_DATA_HOME="$work/ahead/data" XDG_CACHE_HOME="$work/ahead/cache" "$IMGBUILD" "$@"); }
ahead recipe.lua "${LIAR[@]}" >"$work/last.out" 2>"$work/last.err"
errors "the build fails, naming the image, the layer and both diff_ids" \
  "from $REG/liar/busybox:1 \(layer 1\): layer $evil_layer is not what the image's config says: diff_id sha256:[0-9a-f]{64} in the config, sha256:[0-9a-f]{64} in the layer; the image is refused"
check "nothing ran: no step output" bash -c "! grep -q pwned '$work/last.err'"
check "no unpacked root is left" bash -c "[[ -z \$(ls -A '$work/ahead/cache/imgbuild/roots' 2>/dev/null) ]]"
check "no RUN step is cached" bash -c "! XDG_DATA_HOME='$work/ahead/data' XDG_CACHE_HOME='$work/ahead/cache' '$IMGBUILD' cache ls | grep -q 'run '"

step "the trusted base after it: its RUN step runs on its own files"
imgbuild "$APP" "${TRUSTED[@]}"
outcome "the trusted build builds" "^app  sha256:"
check "its RUN step ran rather than taking the liar's result" ran_run
trusted_app=$(grep -oE '^app  sha256:[0-9a-f]{64}' "$work/last.out" | cut -d' ' -f3)

step "the liar again, with the trusted root and step in the cache"
imgbuild "$APP" "${LIAR[@]}"
errors "still refused (its layer's true diff_id is on record)" "layer $evil_layer is not what the image's config says"
check "the trusted image is still the one stored" bash -c "[[ \$(jq -r '.manifests[] | select(.annotations[\"org.opencontainers.image.ref.name\"] == \"app\") | .digest' '$store/index.json') == '$trusted_app' ]]"
"$IMGBUILD" store verify >"$work/verify.out" 2>"$work/verify.err"
check "store verify fails" test $? -ne 0
check "store verify names the liar, its layer and both diff_ids" \
  grep -qE "^imgbuild: $REG/liar/busybox:1: layer 1 \($evil_layer\) is not what the image's config says: diff_id sha256:[0-9a-f]{64} in the config, sha256:[0-9a-f]{64} in the layer" "$work/verify.err"
check "store verify says how to repair" grep -q "imgbuild rmi NAME" "$work/verify.err"

step "the trusted base's layer swapped for the attacker's: found, removed, fetched again"
base_layer=$(stored_layer "$REG/base/busybox:oci" 0)
cp "$work/liar/blobs/sha256/${evil_layer#sha256:}" "$work/swap" && mv "$work/swap" "$(blob "$base_layer")"
rm -rf "$XDG_CACHE_HOME/imgbuild/roots"
imgbuild "$APP" "${TRUSTED[@]}" --no-cache
outcome "the build succeeds" "^app  $trusted_app"
check "its RUN step ran, on the trusted files" ran_run
check "the swap is reported with the digest and path" \
  grep -qE "warning: store blob $base_layer \($(blob "$base_layer")\) .*: damaged or replaced; removed it" "$work/last.err"
check "the store holds the true layer again" whole "$store"

step "a byte flipped in the base layer, and two blobs swapped: --pull and the cache find them"
python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(100); b = f.read(1); f.seek(100); f.write(bytes([b[0] ^ 1]))' "$(blob "$base_layer")"
imgbuild "$APP" "${TRUSTED[@]}" --pull
outcome "--pull builds the same image" "^app  $trusted_app"
check "the damaged layer was reported" grep -qF "warning: store blob $base_layer ($(blob "$base_layer"))" "$work/last.err"
check "and fetched again" whole "$store"
run_layer=$(stored_layer app 1)
mv "$(blob "$run_layer")" "$work/swap" && mv "$(blob "$base_layer")" "$(blob "$run_layer")" && mv "$work/swap" "$(blob "$base_layer")"
imgbuild "$APP" "${TRUSTED[@]}"
outcome "the build after the swap builds the same image" "^app  $trusted_app"
check "the RUN step's layer, swapped, was not taken from the cache" ran_run
check "every blob holds its name again" whole "$store"

step "a built layer replaced by bytes of the same size: never pushed"
size=$(stat -c %s "$(blob "$run_layer")")
head -c "$size" /dev/urandom >"$work/same-size"
touch -r "$(blob "$run_layer")" "$work/same-size"
mv "$work/same-size" "$(blob "$run_layer")"
imgbuild push app "$REG/pushed/app:1"
errors "the push fails, naming the blob and how to recover" "blob $run_layer \($(blob "$run_layer")\) .*: build the image again"
check "the damage was reported" grep -qF "warning: store blob $run_layer ($(blob "$run_layer")) holds content whose digest is" "$work/last.err"
check "the registry has no such image" bash -c "[[ \$(curl -s -o /dev/null -w '%{http_code}' 'http://$REG/v2/pushed/app/manifests/1') == 404 ]]"
"$IMGBUILD" store verify >"$work/verify.out" 2>"$work/verify.err"
check "store verify: the image misses its layer" grep -qF "imgbuild: app: layer 2 ($run_layer) is missing" "$work/verify.err"
imgbuild "$APP" "${TRUSTED[@]}"
outcome "a build makes it again" "^app  $trusted_app"
imgbuild push app "$REG/pushed/app:1"
check "and the push goes through" grep -q "$trusted_app" "$work/last.out"

step "an oci:DIR output with wrong files planted under the image's blob names"
mkdir -p "$work/out/blobs/sha256"
head -c "$size" /dev/urandom >"$work/out/blobs/sha256/${run_layer#sha256:}"
echo '{}' >"$work/out/blobs/sha256/${trusted_app#sha256:}"
ln -s "$work/liar/blobs/sha256/${evil_layer#sha256:}" "$work/out/blobs/sha256/${base_layer#sha256:}"
imgbuild "$APP" "${TRUSTED[@]}" -o "oci:$work/out"
outcome "the build with the output succeeds" "^app  $trusted_app"
check "the output holds every blob by its name" whole "$work/out"
check "the output is a valid layout" valid_image "$work/out"

step "store verify on a store that is whole again"
"$IMGBUILD" rmi "$REG/liar/busybox:1" >/dev/null 2>&1 || python3 - "$store" "$REG/liar/busybox:1" <<'EOF'
# Without imgbuild rmi (another branch), the liar is taken out of index.json by hand.
import json, os, sys
path = os.path.join(sys.argv[1], "index.json")
index = json.load(open(path))
index["manifests"] = [m for m in index["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") != sys.argv[2]]
json.dump(index, open(path, "w"))
EOF
"$IMGBUILD" store verify >"$work/verify.out" 2>"$work/verify.err"
check "store verify passes" test $? -eq 0
check "and says what it checked" grep -qE "^[0-9]+ blobs and [0-9]+ images checked in .*: nothing wrong$" "$work/verify.out"

finish
