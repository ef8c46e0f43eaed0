#!/usr/bin/env bash
# Tier 3: examples/alpine-tools, the seed article's alpine image carrying a
# second tool (soda's role) built in a preliminary stage. alpine:3.20 and
# golang:1.22-alpine come from a local registry that mirrors docker.io
# (busybox-based stand-ins); under runc the entrypoint runs the tool, then the
# service, which reports what the tool did.
#
#   tests/e2e/alpine_tools.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
RECIPE="$ROOT/examples/alpine-tools/recipe.lua"

step "a registry mirroring docker.io: alpine (busybox) and a Go builder image"
here "registry" registry_start open
REG=$REGISTRY_open
here "seed busybox" seed_images "$REG"
here "busybox as library/alpine:3.20" \
  skopeo copy --src-tls-verify=false --dest-tls-verify=false "docker://$REG/base/busybox:oci" "docker://$REG/library/alpine:3.20"
here "seed golang:1.22-alpine (busybox and this machine's Go)" seed_golang "$REG" library/golang:1.22-alpine
MIRROR=(--registry-mirror "docker.io=$REG")

step "build examples/alpine-tools"
check_cmd "$IMGBUILD" "$RECIPE" "${MIRROR[@]}" -o "oci:$work/oci"
digest=$(jq -r '.manifests[0].digest' "$work/oci/index.json")
check "the build printed name and digest" grep -q "^alpine-tools  $digest " "$work/last.out"
check "the tool and the service were built in their own stages" sh -c \
  "grep -q 'run \[\"go\",\"build\",\"-o\",\"/out/migrate\"' '$work/last.err' && grep -q 'run \[\"go\",\"build\",\"-o\",\"/out/server\"' '$work/last.err'"
check "the doctor found nothing to say" sh -c "! grep -q warning '$work/last.err'"
check "oci_validate.py and check_promises.py say OK" valid_image "$work/oci"

step "what the image holds"
manifest="$work/oci/blobs/sha256/${digest:7}"
: >"$work/listing"
for layer in $(jq -r '.layers[].digest[7:]' "$manifest"); do tar -tzf "$work/oci/blobs/sha256/$layer" >>"$work/listing"; done
check "alpine's layer first: busybox" grep -qx 'bin/busybox' "$work/listing"
check "both binaries, the migrations and the CA bundle" sh -c "grep -qx usr/local/bin/migrate '$work/listing' && \
  grep -qx usr/local/bin/server '$work/listing' && grep -qx migrations/0002_add_email.sql '$work/listing' && \
  grep -qx etc/ssl/certs/ca-certificates.crt '$work/listing'"
check "no Go toolchain" sh -c "test -s '$work/listing' && ! grep -q 'lib/go' '$work/listing'"
check "the service's own user" test "$(skopeo inspect --config "oci:$work/oci:alpine-tools" | jq -r .config.User)" = service

step "under runc the tool runs, then the service"
run_image "$work/oci:alpine-tools" 8080 http://127.0.0.1:8080/ "^alpine-tools: schema 0002_add_email$" \
  "GET / reports the schema version migrate recorded"
check "migrate applied both migrations" grep -q "^migrate: 2 migrations applied, schema at 0002_add_email$" "$work/runc.log"
check "as uid 10001, from the image's /etc/passwd" jq -e '.process.user.uid == 10001' "$work/bundle/config.json"
stop_image

step "an unchanged rebuild runs no step"
check_cmd "$IMGBUILD" "$RECIPE" "${MIRROR[@]}"
check "same digest" grep -q "^alpine-tools  $digest " "$work/last.out"
check "every step came from the cache" sh -c "grep -q '(cached)' '$work/last.err' && ! grep -E 'recipe.lua:[0-9]+  (run|copy) ' '$work/last.err' | grep -v '(cached)$'"

finish
