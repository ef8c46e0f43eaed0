#!/usr/bin/env bash
# Tier 3: examples/api-certs, the ECR article's image: a scratch image with CA
# certificates, zoneinfo and GIN_MODE=release. The doctor has nothing to say,
# the layout is valid, the API finds its roots and zones under runc, and the
# push logs in with config.json credentials, as a CI job does after
# `aws ecr get-login-password | docker login`.
#
#   tests/e2e/api_certs.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
RECIPE="$ROOT/examples/api-certs/recipe.lua"
share_go_cache
# A build outside CI would take the checkout's commit: one fixed commit instead.
CI_ENV=(env -u GITLAB_CI -u TRAVIS GITHUB_ACTIONS=true GITHUB_REF_NAME=main GITHUB_SHA=5eed0123456789abcdef0123456789abcdef0123)

step "build examples/api-certs"
check_cmd "${CI_ENV[@]}" "$IMGBUILD" "$RECIPE" -o "oci:$work/oci"
digest=$(jq -r '.manifests[0].digest' "$work/oci/index.json")
check "the build printed name and digest" grep -q "^api-certs  $digest " "$work/last.out"
check "the doctor found nothing to say" sh -c "! grep -q warning '$work/last.err'"
check "nor with --strict" "$IMGBUILD" "$RECIPE" --strict
check "no registry given: nothing pushed" sh -c "! grep -q push '$work/last.out'"
check "oci_validate.py and check_promises.py say OK" valid_image "$work/oci"

step "what the image holds"
skopeo inspect --config "oci:$work/oci:api-certs" >"$work/config.json" 2>&1
cfg() { jq -e "$1" "$work/config.json" >/dev/null; }
check "GIN_MODE=release, a non-root user, the entrypoint" \
  cfg '.config.Env == ["GIN_MODE=release"] and .config.User == "65534" and .config.Entrypoint == ["/api"]'
: >"$work/listing"
for layer in $(jq -r '.layers[].digest[7:]' "$work/oci/blobs/sha256/${digest:7}"); do
  tar -tzf "$work/oci/blobs/sha256/$layer" >>"$work/listing"
done
check "the CA bundle" grep -qx 'etc/ssl/certs/ca-certificates.crt' "$work/listing"
check "zoneinfo" grep -qx 'usr/share/zoneinfo/Asia/Tokyo' "$work/listing"
check "three layers: binary, certificates, zones" test "$(jq '.layers | length' "$work/oci/blobs/sha256/${digest:7}")" -eq 3

step "the API runs under runc: it finds its CA roots and time zones"
run_image "$work/oci:api-certs" 8080 http://127.0.0.1:8080/ "^mode=release zone=Asia/Tokyo offset=+09:00 roots=[1-9][0-9]*$" \
  "GET / reports GIN_MODE, a zone and the CA roots"
check "another zone by name" sh -c "curl -sf 'http://127.0.0.1:8080/?zone=America/New_York' | grep -q 'offset=-05:00'"
stop_image

step "push with a registry login from config.json (the ECR step)"
here "a registry that needs a password" registry_start basic
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$REGISTRY_basic" "$(printf 'alice:%s' "$REG_PASSWORD" | base64 -w0)" \
  >"$DOCKER_CONFIG/config.json"
check_cmd "${CI_ENV[@]}" "$IMGBUILD" "$RECIPE" --set "registry=$REGISTRY_basic/team"
check "pushed under the commit's short sha" grep -q "^pushed $REGISTRY_basic/team/api-certs:5eed0123@$digest$" "$work/last.out"
pushed=$(skopeo inspect --tls-verify=false --creds "alice:$REG_PASSWORD" \
  "docker://$REGISTRY_basic/team/api-certs:5eed0123" | jq -r .Digest)
check "the registry has that manifest" test "$pushed" = "$digest"
check "the password is in no output" sh -c "! grep -q '$REG_PASSWORD' '$work/last.out' '$work/last.err'"

finish
