#!/usr/bin/env bash
# Tier 3: build examples/hello with the real binary and check the result with
# real OCI tools: skopeo, the shared OCI validator, umoci, and runc running the
# image and answering HTTP. Also: reproducibility across checkouts, the size
# bound of a scratch image, the store listing and the exit statuses.
#
#   tests/e2e/hello.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"

step "build examples/hello to the store, an OCI layout and a docker archive"
check_cmd "$IMGBUILD" "$ROOT/examples/hello/recipe.lua" -o "oci:$work/oci" -o "docker-archive:$work/hello.tar"
digest=$(jq -r '.manifests[0].digest' "$work/oci/index.json")
check "the build printed name, digest and size" grep -q "^hello  $digest  [0-9.]* [kM]B" "$work/last.out"

step "real tools read the outputs"
check "skopeo inspect oci:DIR:hello" skopeo inspect "oci:$work/oci:hello"
check "skopeo reports the entrypoint's port" sh -c "skopeo inspect --config oci:$work/oci:hello | grep -q 8080/tcp"
check "oci_validate.py and check_promises.py say OK" valid_image "$work/oci"
check "skopeo inspect docker-archive:" skopeo inspect "docker-archive:$work/hello.tar"
check "the store layout is valid too" valid_image "$XDG_DATA_HOME/imgbuild"

step "the doctor looked at the image before it was stored"
check "it warns that the image runs as root" grep -q "^imgbuild: warning: .*recipe.lua:5: the image runs as root.* \[root\]$" "$work/last.err"
check "it warns that TLS would fail without CA certificates" grep -q "^imgbuild: warning: .*recipe.lua:8: entrypoint /app links crypto/x509 .* \[tls\]$" "$work/last.err"
"$IMGBUILD" "$ROOT/examples/hello/recipe.lua" --strict >"$work/strict.out" 2>"$work/strict.err"
check "--strict makes those warnings errors (exit 1)" test $? -eq 1
check "--strict says the image was not stored" grep -q "^imgbuild: hello was not stored (--strict makes warnings errors)$" "$work/strict.err"
check "--ignore silences them" "$IMGBUILD" "$ROOT/examples/hello/recipe.lua" --strict --ignore root --ignore tls

step "imgbuild check reports the binary"
binary=$(find "$XDG_CACHE_HOME/imgbuild/files" -type f -name hello | head -1)
"$IMGBUILD" check "$binary" >"$work/check.txt" 2>&1
check "static, stripped, linux/$HOST_ARCH" grep -q ": ELF 64-bit little-endian $HOST_MACHINE (linux/$HOST_ARCH), static, stripped$" "$work/check.txt"
check "the Go build settings" grep -q "example.com/hello (devel); CGO_ENABLED=0 GOOS=linux GOARCH=$HOST_ARCH -trimpath=true" "$work/check.txt"
check "--json says the same" sh -c "'$IMGBUILD' check --json '$binary' | jq -e '.[0].static and .[0].go.uses_x509 and .[0].architecture == \"$HOST_ARCH\"'"
"$IMGBUILD" check "$ROOT/examples/hello/main.go" >"$work/check2.txt" 2>&1
check "a source file is not ELF" grep -q "main.go: not an ELF file$" "$work/check2.txt"

step "imgbuild images and inspect"
check "images lists hello with its digest" sh -c "'$IMGBUILD' images | grep -q '^hello  *linux/$HOST_ARCH  *sha256:${digest:7:12}'"
check "inspect shows the entrypoint" sh -c "'$IMGBUILD' inspect hello | jq -e '.config.config.Entrypoint == [\"/app\"]'"
check "inspect oci:DIR:hello gives the same digest" sh -c "'$IMGBUILD' inspect oci:$work/oci:hello | jq -e '.digest == \"$digest\"'"

step "the image runs under runc and answers HTTP"
run_image "$work/oci:hello" 8080 http://127.0.0.1:8080/ "^hello$" "GET 127.0.0.1:8080 returns hello"

step "reproducible: another checkout, a cold cache, the same manifest"
# Of the same commit and origin: outside SOURCE_DATE_EPOCH, created is the
# commit's time, and the image names the commit and the origin.
here "another checkout of the same commit" other_checkout "$work/checkout2"
XDG_DATA_HOME="$work/data2" XDG_CACHE_HOME="$work/cache2" \
  check_cmd "$IMGBUILD" "$work/checkout2/examples/hello/recipe.lua" -o "oci:$work/oci2"
digest2=$(jq -r '.manifests[0].digest' "$work/oci2/index.json")
check "same manifest digest ($digest)" test "$digest" = "$digest2"
check "byte-identical manifests" cmp "$work/oci/blobs/sha256/${digest:7}" "$work/oci2/blobs/sha256/${digest2:7}"

step "a scratch image is its binary and little else"
gz=$(gzip -6 -c "$binary" | wc -c)
image_size=$("$IMGBUILD" inspect hello | jq '.size')
echo "  figures: binary $(stat -c %s "$binary") B, gzip -6 of binary $gz B, whole image $image_size B (bound: $((gz + 4096)))"
check "image size <= gzip size of the binary + 4 KiB" test "$image_size" -le $((gz + 4096))

step "a rebuild with the binary cached"
start=$(date +%s%N)
check_cmd "$IMGBUILD" "$ROOT/examples/hello/recipe.lua"
echo "  figures: rebuild took $(( ($(date +%s%N) - start) / 1000000 )) ms"
check "the rebuild used the cached binary" grep -q "go build .  (cached)" "$work/last.err"
check "the rebuild gives the same digest" grep -q "^hello  $digest " "$work/last.out"

step "exit statuses"
"$IMGBUILD" "$ROOT/examples/hello/recipe.lua" --frobnicate >/dev/null 2>&1
check "an unknown option exits 2" test $? -eq 2
"$IMGBUILD" "$work/no-such-recipe.lua" >/dev/null 2>&1
check "a missing recipe exits 2" test $? -eq 2
printf 'image("a", scratch:copy("go.sm", "/"))\n' >"$work/recipe.lua"
(cd "$work" && "$IMGBUILD" recipe.lua >/dev/null 2>"$work/err.txt")
check "a recipe error exits 1" test $? -eq 1
check "with one located line" test "$(cat "$work/err.txt")" = "imgbuild: recipe.lua:1: copy: no such file in the build context: go.sm"

finish
