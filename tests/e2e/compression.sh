#!/usr/bin/env bash
# Tier 3: zstd layers (--compression zstd) read by real tools: skopeo and the
# shared OCI validator on the layout, a registry push read back by skopeo, and
# imgbuild itself pulling the image and copying out of its layers. Also: the
# compression is part of the step keys, and both are deterministic.
#
#   tests/e2e/compression.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"

mkdir -p "$work/ctx/src"
for i in $(seq 1 40); do seq "$i" 3000 >"$work/ctx/src/f$i.txt"; done
head -c 3000000 /dev/urandom >"$work/ctx/random.bin"
cat >"$work/ctx/recipe.lua" <<'EOF'
local app = scratch:copy("src", "/src/"):copy("random.bin", "/random.bin")
image("app", app)
push(app, param("REGISTRY") .. "/z/app:1")
image("back", scratch:copy("/src/f7.txt", "/f7.txt", { from = from(param("REGISTRY") .. "/z/app:1") }))
EOF

step "a registry on 127.0.0.1"
here "registry_start open" registry_start open

step "build with --compression zstd"
check_cmd "$IMGBUILD" "$work/ctx/recipe.lua" app --compression zstd -o "oci:$work/zstd" --set "REGISTRY=$REGISTRY"
manifest=$(jq -r '.manifests[0].digest[7:]' "$work/zstd/index.json")
check "both layers are tar+zstd" jq -e '[.layers[].mediaType] == ["application/vnd.oci.image.layer.v1.tar+zstd", "application/vnd.oci.image.layer.v1.tar+zstd"]' "$work/zstd/blobs/sha256/$manifest"
layer=$(jq -r '.layers[0].digest[7:]' "$work/zstd/blobs/sha256/$manifest")
check "a layer blob starts with the zstd frame magic" sh -c "head -c 4 '$work/zstd/blobs/sha256/$layer' | od -An -tx1 | grep -q '28 b5 2f fd'"
diff_id=$(skopeo inspect --config "oci:$work/zstd:app" 2>/dev/null | jq -r '.rootfs.diff_ids[0]')
check "zstd's own tool decompresses it to the tar of the diff_id" \
  test "sha256:$(zstdcat "$work/zstd/blobs/sha256/$layer" | sha256sum | cut -c1-64)" = "$diff_id"
check "oci_validate.py and check_promises.py say OK" valid_image "$work/zstd"
check "skopeo inspect oci:DIR:app" skopeo inspect "oci:$work/zstd:app"
check "the push went to the registry" sh -c "skopeo inspect --raw --tls-verify=false docker://$REGISTRY/z/app:1 | jq -e '.layers[0].mediaType | endswith(\"+zstd\")'"
check "skopeo copies it back out of the registry" skopeo copy -q --src-tls-verify=false "docker://$REGISTRY/z/app:1" "oci:$work/copied:app"
check "what skopeo copied is valid too" sh -c "python3 '$VALIDATE' '$work/copied' | grep -qx OK"

step "imgbuild reads zstd layers it pulls"
check_cmd "$IMGBUILD" "$work/ctx/recipe.lua" back -o "oci:$work/back" --set "REGISTRY=$REGISTRY" --no-push
back=$(jq -r '.manifests[0].digest[7:]' "$work/back/index.json")
back_layer=$(jq -r '.layers[0].digest[7:]' "$work/back/blobs/sha256/$back")
check "the file copied out of the zstd image has its bytes" sh -c "tar -xzOf '$work/back/blobs/sha256/$back_layer' f7.txt | cmp - '$work/ctx/src/f7.txt'"

step "the compression is part of the step keys, and both are deterministic"
check_cmd "$IMGBUILD" "$work/ctx/recipe.lua" app --no-push --set "REGISTRY=$REGISTRY"
check "gzip after zstd runs the steps again" sh -c "! grep -q '(cached)' '$work/last.err'"
zstd_manifest=$(jq -r '.manifests[0].digest' "$work/zstd/index.json")
check "gzip and zstd images differ" test "$(grep -o 'sha256:[0-9a-f]*' "$work/last.out" | head -1)" != "$zstd_manifest"
check_cmd "$IMGBUILD" "$work/ctx/recipe.lua" app --compression zstd --no-push --set "REGISTRY=$REGISTRY"
check "zstd again finds its steps in the cache" test "$(grep -c '(cached)' "$work/last.err")" -eq 2
check "and makes the same manifest" grep -q "^app  $zstd_manifest " "$work/last.out"
rm -rf "$XDG_CACHE_HOME" "$XDG_DATA_HOME"
check_cmd "$IMGBUILD" "$work/ctx/recipe.lua" app --compression zstd --no-push --set "REGISTRY=$REGISTRY"
check "a cold zstd build makes the same manifest" grep -q "^app  $zstd_manifest " "$work/last.out"

step "usage errors"
"$IMGBUILD" "$work/ctx/recipe.lua" --compression lz4 >"$work/bad.out" 2>"$work/bad.err"
check "an unknown compression is a usage error (exit 2)" test $? -eq 2
check "it names the choices" grep -q "^imgbuild: --compression lz4: expected gzip or zstd" "$work/bad.err"

finish
