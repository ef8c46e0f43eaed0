#!/usr/bin/env bash
# Tier 3: uploads overlapped with the build. A build that pushes sends each
# layer as soon as its step has stored it, while later steps still run; the
# manifest goes last, only when the build succeeded. The recipe's last step
# waits (in a RUN step on the host network) until the registry has the layer
# made just before it, so the build can only succeed when that upload happened
# during the build: no timing is measured. The same image pushed after the
# build has the same digests; each blob goes up once; a build that fails, or
# is interrupted, after a layer went up leaves no tag.
#
#   tests/e2e/push_overlap.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
source "$ROOT/tests/faults/lib.sh"
build_pid=""
at_exit '[[ -n $build_pid ]] && kill -KILL "$build_pid" 2>/dev/null'
store=$XDG_DATA_HOME/imgbuild cache=$XDG_CACHE_HOME/imgbuild
ctx=$work/ctx
mkdir -p "$ctx"
# RUN steps without a base image: a scratch image with a static busybox.
cp /bin/busybox "$ctx/busybox"
for f in data data-fail data-int; do head -c 3000000 /dev/urandom >"$ctx/$f"; done

# WAIT: a blob the last step waits for in the pushed repository (none: it
# waits for nothing); FAIL: that step's exit status once the blob is there.
cat >"$ctx/overlap.lua" <<'EOF'
local reg, repo, tag = param("REGISTRY"), param("REPO", "test/overlap"), param("TAG", "v1")
local wait, fail = param("WAIT", ""), param("FAIL", "0")
local script = "exit " .. fail
if wait ~= "" then
  script = "for i in $(seq 1200); do wget -q -O /dev/null http://" .. reg .. "/v2/" .. repo .. "/blobs/" .. wait ..
    " && exit " .. fail .. "; sleep 0.1; done; echo the layer never reached the registry; exit 2"
end
local app = scratch
  :copy("busybox", "/bin/busybox")
  :copy(param("DATA", "data"), "/data")
  :run { "/bin/busybox", "sh", "-c", script, network = "host" }
image("overlap", app)
push(app, reg .. "/" .. repo .. ":" .. tag)
EOF

# data_layer DATA: the digest of the layer `copy(DATA, "/data")` makes, from a
# build that pushes nothing (the build that then pushes it remakes it: --no-cache).
data_layer() {
  "$IMGBUILD" "$ctx/overlap.lua" --no-push --set "REGISTRY=$PROXY" --set "DATA=$1" >/dev/null 2>"$work/probe.err" &&
    "$IMGBUILD" inspect overlap | jq -r '.manifest.layers[1].digest'
}

# uploads: the blob digests PUT to the registry since the last proxy_reset, one a line.
uploads() {
  proxy_requests 'select(.method == "PUT" and (.path | test("/blobs/uploads/"))) | .path' |
    grep -o 'digest=sha256[:%3A]*[0-9a-f]*' | sed 's/%3A/:/; s/digest=//'
}

step "registry, and a proxy that logs every request"
here "open registry" registry_start open
here "proxy in front of it" proxy_start "$REGISTRY"

step "a layer goes up while the next step runs"
layer=$(data_layer data)
check "the data layer's digest is known ($layer)" grep -q '^sha256:[0-9a-f]\{64\}$' <<<"$layer"
proxy_reset
check_cmd "$IMGBUILD" "$ctx/overlap.lua" --no-cache --progress json --set "REGISTRY=$PROXY" --set "WAIT=$layer"
cp "$work/last.out" "$work/overlap.json"
check "pushed once the build succeeded" jq -e 'select(.event == "push") | .pushed' "$work/overlap.json"
# The order of events agrees: the layer's transfer finished before the last step ended.
order() {
  jq -r --arg layer "$layer" 'if .event == "transfer" and .digest == $layer and .finished then "up"
    elif .event == "step_end" and .kind == "run" then "ran" else empty end' "$work/overlap.json" | paste -sd' '
}
check "json events: the layer's upload finished before the RUN step ended" test "$(order)" = "up ran"
# Under a tag; what is attached to the image (SBOM, provenance) goes by digest
# and under the sha256-HEX referrers tag, after it.
manifest_puts() {
  proxy_requests 'select(.method == "PUT" and (.path | test("/manifests/")) and (.path | test("/manifests/sha256") | not)) | .path'
}
check "one manifest put, after the build" test "$(manifest_puts | wc -l)" = 1
image_uploads() { uploads | grep -F "$("$IMGBUILD" inspect overlap | jq -r '.manifest.config.digest, .manifest.layers[].digest')"; }
check "every blob went up once (2 layers and the config)" \
  test "$(image_uploads | sort -u | wc -l) $(image_uploads | wc -l)" = "3 3"
overlapped=$(jq -r 'select(.event == "push") | .digest' "$work/overlap.json")
check "the pushed digest is the stored image's" test "$overlapped" = "$("$IMGBUILD" inspect overlap | jq -r .digest)"

step "the same image pushed after the build: the same digests"
check_cmd "$IMGBUILD" "$ctx/overlap.lua" --no-push --no-cache --set "REGISTRY=$PROXY" --set "WAIT=$layer"
check_cmd "$IMGBUILD" push overlap "$PROXY/test/after:v1"
after=$(grep -o 'sha256:[0-9a-f]*' "$work/last.out" | head -n 1)
check "build then push gives $overlapped too" test "$after" = "$overlapped"
raw() { skopeo inspect --raw --tls-verify=false "docker://$REGISTRY/$1"; }
check "the registry holds byte-identical manifests" cmp <(raw test/overlap:v1) <(raw test/after:v1)
check "the overlapped push reads back whole (skopeo verifies every blob)" \
  skopeo copy --src-tls-verify=false "docker://$REGISTRY/test/overlap:v1" "oci:$work/back:v1"

step "a build that fails after a layer went up pushes no tag"
layer=$(data_layer data-fail)
proxy_reset
if "$IMGBUILD" "$ctx/overlap.lua" --no-cache --set "REGISTRY=$PROXY" --set DATA=data-fail --set "WAIT=$layer" --set FAIL=3 \
  --set TAG=broken >"$work/last.out" 2>"$work/last.err"; then
  fail "the build failed (it succeeded)"
else
  check "it fails at the RUN step" grep -q 'overlap.lua:[0-9]*: run: .*exited with status 3' "$work/last.err"
fi
check "the layer did go up during that build" test "$(uploads | grep -c "$layer")" = 1
check "no manifest was put" test -z "$(manifest_puts)"
check "the tag does not exist" test "$(curl -s -o /dev/null -w '%{http_code}' \
  -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REGISTRY/v2/test/overlap/manifests/broken")" = 404

step "an upload the registry refuses fails at the push() line, with the message a later push gives"
proxy_faults '[{"method": "POST", "path": "/blobs/uploads/", "times": -1, "action": {"status": 400, "code": "DENIED"}}]'
if "$IMGBUILD" "$ctx/overlap.lua" --set "REGISTRY=$PROXY" --set REPO=test/refused >"$work/last.out" 2>"$work/last.err"; then
  fail "the build failed (it succeeded)"
else
  check "it fails at the push() line" grep -q '^imgbuild: .*overlap.lua:[0-9]*: push: push .*/test/refused: blob sha256:' \
    "$work/last.err"
fi
overlapped_error=$(grep '^imgbuild: .*push: push' "$work/last.err" | sed 's/^imgbuild: .*: push: push /push /; s/sha256:[0-9a-f]*/BLOB/')
"$IMGBUILD" push overlap "$PROXY/test/refused:v1" >"$work/last.out" 2>"$work/last.err"
later_error=$(grep '^imgbuild: push' "$work/last.err" | sed 's/^imgbuild: //; s/sha256:[0-9a-f]*/BLOB/')
check "the same message as imgbuild push ($later_error)" test "$overlapped_error" = "$later_error"
check "no manifest was put" test -z "$(manifest_puts | grep refused)"
proxy_faults '[]'

step "Ctrl-C while a layer is going up stops the upload and pushes no tag"
proxy_reset
proxy_faults '[{"method": "PUT", "path": "/blobs/uploads/", "times": -1, "action": {"delay": 86400}}]'
start_build "$ctx/overlap.lua" --no-cache --set "REGISTRY=$PROXY" --set DATA=data-int --set WAIT=sha256:none \
  --set TAG=interrupted
# The POST that opens an upload session is answered; the PUT with the bytes hangs.
upload_started() { [[ -n $(proxy_requests 'select(.method == "POST" and .status == 202)') ]]; }
if wait_until "an upload started" upload_started; then
  sleep 1
  stop_build INT
  check "exit status 130" test "$status" = 130
  check "says it was interrupted by SIGINT" grep -q "^imgbuild: interrupted by SIGINT" "$work/bg.err"
  check "no manifest was put" test -z "$(manifest_puts)"
  consistent "after Ctrl-C" "$store" "$cache"
fi
proxy_faults '[]'

finish
