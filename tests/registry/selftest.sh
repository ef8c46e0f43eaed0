#!/usr/bin/env bash
# shellcheck disable=SC2154 # REGISTRY_<NAME> and TOKEN_*_<NAME> are set by lib.sh
# Checks the registry test infrastructure itself with skopeo and curl only:
# the three registry modes, the seeded images, the token server's ACL and
# expiry, and every fault of the proxy.
#
#   tests/registry/selftest.sh
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../e2e/lib.sh"
source "$here/lib.sh"

pw=$REG_PASSWORD
accept='application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json'

# check_here DESCRIPTION COMMAND...: like check, but runs COMMAND in this shell,
# where lib.sh's functions must run to keep their processes and variables.
check_here() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}

# media_type ADDR REPO:TAG: the Content-Type of a manifest.
media_type() {
  local addr=$1 ref=$2
  curl -sf -I -H "Accept: $accept" "http://$addr/v2/${ref%%:*}/manifests/${ref#*:}" |
    tr -d '\r' | sed -n 's/^content-type: //Ip'
}

# token [CURL_ARGS...] SCOPE: asks the token server for SCOPE, prints the token.
token() {
  local scope=${*: -1}
  curl -sf "${@:1:$#-1}" "$TOKEN_REALM?service=imgbuild-test-registry&scope=$scope" | jq -r .token
}

step "three registries come up"
check_here "open registry answers" registry_start open
check_here "basic-auth registry answers" registry_start basic
check_here "token-auth registry answers" registry_start token

step "seed_images pushes the base images"
check_here "seed the open registry" seed_images "$REGISTRY_open"
check_here "seed the basic registry as alice" seed_images "$REGISTRY_basic" "alice:$pw"
check_here "seed the token registry as alice" seed_images "$REGISTRY_token" "alice:$pw"
check_here "seeding again is fine (cached layout)" seed_images "$REGISTRY_open"
declare -A want=(
  [base/busybox:oci]=application/vnd.oci.image.manifest.v1+json
  [base/busybox:docker]=application/vnd.docker.distribution.manifest.v2+json
  [base/multi:oci]=application/vnd.oci.image.index.v1+json
  [base/multi:docker]=application/vnd.docker.distribution.manifest.list.v2+json
)
for ref in base/busybox:oci base/busybox:docker base/multi:oci base/multi:docker; do
  check "$ref is ${want[$ref]}" test "$(media_type "$REGISTRY_open" "$ref")" = "${want[$ref]}"
  digest=$(skopeo inspect --raw --tls-verify=false "docker://$REGISTRY_open/$ref" | sha256sum | cut -d' ' -f1)
  printf '        %s  sha256:%s\n' "$ref" "$digest"
  check "$ref has the same digest in the token registry" test "$(skopeo inspect --raw --tls-verify=false \
    --creds "alice:$pw" "docker://$REGISTRY_token/$ref" | sha256sum | cut -d' ' -f1)" = "$digest"
done
check "busybox config: PATH, Cmd and amd64" sh -c "skopeo inspect --config --tls-verify=false docker://$REGISTRY_open/base/busybox:docker |
  jq -e '.config.Env == [\"PATH=/bin:/usr/bin\"] and .config.Cmd == [\"/bin/sh\"] and .architecture == \"amd64\"'"
check "multi:docker resolves to arm64 for arm64" sh -c "skopeo inspect --override-arch arm64 --tls-verify=false \
  docker://$REGISTRY_open/base/multi:docker | jq -e '.Architecture == \"arm64\"'"

step "basic auth"
check "no credentials: 401" test "$(curl -s -o /dev/null -w '%{http_code}' "http://$REGISTRY_basic/v2/")" = 401
check "alice: 200" test "$(curl -s -o /dev/null -w '%{http_code}' -u "alice:$pw" "http://$REGISTRY_basic/v2/")" = 200
check "bob: 200" test "$(curl -s -o /dev/null -w '%{http_code}' -u "bob:$REG_PASSWORD_BOB" "http://$REGISTRY_basic/v2/")" = 200
check "wrong password: 401" test "$(curl -s -o /dev/null -w '%{http_code}' -u alice:wrong "http://$REGISTRY_basic/v2/")" = 401

step "token auth"
check "the registry challenges with the token realm" sh -c "curl -sI http://$REGISTRY_token/v2/ |
  grep -qi '^www-authenticate: Bearer realm=\"$TOKEN_REALM\",service=\"imgbuild-test-registry\"'"
token -u "bob:$REG_PASSWORD_BOB" 'repository:base/busybox:pull,push' >/dev/null
check "bob asking pull,push gets pull" test "$(token_requests '.granted' | tail -n1)" = '["repository:base/busybox:pull"]'
token -u "alice:$pw" 'repository:base/busybox:pull,push' >/dev/null
check "alice asking pull,push gets both" test "$(token_requests '.granted' | tail -n1)" = '["repository:base/busybox:pull,push"]'
token 'repository:public/x:pull&scope=repository:base/busybox:pull' >/dev/null
check "anonymous gets pull under public/ only" test "$(token_requests '.granted' | tail -n1)" = '["repository:public/x:pull"]'
check "a wrong password gets 401" test "$(curl -s -o /dev/null -w '%{http_code}' -u alice:wrong "$TOKEN_REALM?scope=x")" = 401
check "bob cannot push" sh -c "! skopeo copy --dest-tls-verify=false --src-tls-verify=false --src-creds bob:$REG_PASSWORD_BOB \
  --dest-creds bob:$REG_PASSWORD_BOB docker://$REGISTRY_token/base/busybox:oci docker://$REGISTRY_token/bob/busybox:1"
check "bob can pull" skopeo inspect --raw --tls-verify=false --creds "bob:$REG_PASSWORD_BOB" "docker://$REGISTRY_token/base/busybox:oci"
check "alice can push" skopeo copy --src-tls-verify=false --dest-tls-verify=false --src-creds "alice:$pw" \
  --dest-creds "alice:$pw" "docker://$REGISTRY_token/base/busybox:oci" "docker://$REGISTRY_token/alice/busybox:1"
check "anonymous cannot pull base/" sh -c "! skopeo inspect --raw --tls-verify=false docker://$REGISTRY_token/base/busybox:oci"
check "the token log never holds a password" sh -c "! grep -rqF -e '$pw' -e '$REG_PASSWORD_BOB' $REG_WORK/token/*.log"
check "the log shows skopeo asking to mount from base/busybox" test -n "$(token_requests \
  'select(.requested == ["repository:alice/busybox:pull,push", "repository:base/busybox:pull"])')"

REG_TOKEN_TTL=2 check_here "a token registry with 2 s tokens answers" registry_start token short_token
reply=$(curl -s "$TOKEN_REALM?service=imgbuild-test-registry&scope=repository:public/x:pull")
tok=$(jq -r .token <<<"$reply")
check "expires_in is REG_TOKEN_TTL" test "$(jq .expires_in <<<"$reply")" = 2
status() { curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $tok" "http://$REGISTRY_short_token/v2/public/x/tags/list"; }
check "a fresh token is accepted (404: no such repository)" test "$(status)" = 404
sleep 3
check "2 s later the registry refuses it" test "$(status)" = 401

step "fault proxy in front of the open registry"
check_here "a proxy starts in front of it" proxy_start "$REGISTRY_open"
url=http://$PROXY/v2/base/busybox/manifests/oci
layer=$(curl -s -H "Accept: $accept" "$url" | jq -r '.layers[0].digest')
blob=http://$PROXY/v2/base/busybox/blobs/$layer
check "manifests pass through unchanged" test "$(curl -s -H "Accept: $accept" "$url" | sha256sum | cut -d' ' -f1)" = \
  "$(curl -s -H "Accept: $accept" "http://$REGISTRY_open/v2/base/busybox/manifests/oci" | sha256sum | cut -d' ' -f1)"
check "a blob passes through intact" test "sha256:$(curl -s "$blob" | sha256sum | cut -d' ' -f1)" = "$layer"
check "connections are kept alive" sh -c "curl -sv -o /dev/null -o /dev/null '$blob' '$url' 2>&1 | grep -q 'Re-using existing connection'"
check "the log records method, path, status, bytes, no Authorization" test -n "$(proxy_requests \
  'select(.method == "GET" and .status == 200 and .authorization == false and .bytes > 1000000)')"

head -c 3000000 /dev/urandom >"$REG_WORK/big"
big_digest=sha256:$(sha256sum <"$REG_WORK/big" | cut -d' ' -f1)
location() { tr -d '\r' | sed -n 's/^location: //Ip'; }
upload=$(curl -si -X POST "http://$PROXY/v2/test/upload/blobs/uploads/" | location)
check "upload Locations are rewritten to the proxy" test "${upload#"http://$PROXY/"}" != "$upload"
upload=$(curl -si -X PATCH -H 'Transfer-Encoding: chunked' -H 'Content-Type: application/octet-stream' \
  --data-binary @"$REG_WORK/big" "$upload" | location)
check "a chunked 3 MB PATCH goes through" test "$(proxy_requests 'select(.method == "PATCH") | [.status, .request_bytes]' | tail -n1)" = '[202,3000000]'
check "the upload completes" test "$(curl -s -o /dev/null -w '%{http_code}' -X PUT "$upload&digest=$big_digest")" = 201
upload=$(curl -si -X POST "http://$PROXY/v2/test/upload/blobs/uploads/" | location)
check "a Content-Length PUT (with Expect: 100-continue) goes through" test "$(curl -s -o /dev/null -w '%{http_code}' \
  -X PUT -H 'Content-Type: application/octet-stream' --data-binary @"$REG_WORK/big" "$upload&digest=$big_digest")" = 201

proxy_faults '[{"method": "GET", "path": "/manifests/", "action": {"status": 500}}]'
check "status 500 once, with a distribution error body" sh -c "curl -s '$url' | jq -e '.errors[0].code == \"UNKNOWN\"'"
check "then the manifest again" test "$(curl -s -o /dev/null -w '%{http_code}' -H "Accept: $accept" "$url")" = 200
proxy_faults '[{"path": "/manifests/", "times": 2, "action": {"status": 429, "headers": {"Retry-After": "1"}}}]'
check "429 with Retry-After" sh -c "curl -si '$url' | tr -d '\r' | grep -qx 'Retry-After: 1'"
check "times: 2 gives a second 429" test "$(curl -s -o /dev/null -w '%{http_code}' "$url")" = 429
check "and then 200" test "$(curl -s -o /dev/null -w '%{http_code}' -H "Accept: $accept" "$url")" = 200
proxy_faults '[{"method": "PATCH", "action": {"status": 401}}]'
upload=$(curl -si -X POST "http://$PROXY/v2/test/upload/blobs/uploads/" | location)
check "an injected 401 reaches a client waiting on 100-continue before it uploads" test \
  "$(curl -s -o /dev/null -w '%{http_code}' -X PATCH --data-binary @"$REG_WORK/big" "$upload")" = 401
check "so no body was read" test "$(proxy_requests 'select(.method == "PATCH") | .request_bytes' | tail -n1)" = 0

proxy_faults '[{"path": "/blobs/", "action": {"drop_after": 1000}}]'
curl -s -o "$REG_WORK/dropped" "$blob"
check "drop_after: curl reports a partial transfer (18)" test $? -eq 18
check "drop_after: 1000 bytes arrived" test "$(stat -c %s "$REG_WORK/dropped")" = 1000
proxy_faults '[{"path": "/blobs/", "action": {"corrupt": true}}]'
curl -s -o "$REG_WORK/corrupt" "$blob"
check "corrupt: same length" test "$(stat -c %s "$REG_WORK/corrupt")" = "$(curl -s "$blob" | wc -c)"
check "corrupt: another digest" test "sha256:$(sha256sum <"$REG_WORK/corrupt" | cut -d' ' -f1)" != "$layer"
proxy_faults '[{"path": "/manifests/", "action": {"replace_body": "{\"schemaVersion\": 2}"}}]'
check "replace_body" test "$(curl -s -H "Accept: $accept" "$url")" = '{"schemaVersion": 2}'
proxy_faults '[{"path": "/manifests/", "action": {"oversize": 5000000}}]'
check "oversize: Content-Length and body are 5000000" test "$(curl -s -H "Accept: $accept" -w ' %header{content-length}' "$url" |
  wc -c)" = 5000008
proxy_reset
check "proxy_reset empties the log" test "$(proxy_requests | wc -l)" = 0

step "redirect_other never forwards Authorization (basic and token upstreams)"
check_here "a proxy with alice's credentials starts in front of the basic registry" proxy_start "$REGISTRY_basic" "alice:$pw"
proxy_faults '[{"path": "/blobs/", "action": {"redirect_other": true}}]'
check "curl -L -u alice follows to the other host and gets the blob" test "sha256:$(curl -sL -u "alice:$pw" \
  "http://$PROXY/v2/base/busybox/blobs/$layer" | sha256sum | cut -d' ' -f1)" = "$layer"
check "main: 307, Authorization arrived" test "$(proxy_requests 'select(.listener == "main") | [.status, .authorization]')" = '[307,true]'
check "other: 200, no Authorization arrived" test "$(proxy_requests 'select(.listener == "other") | [.status, .authorization]')" = '[200,false]'
proxy_faults '[{"path": "/blobs/", "action": {"redirect_other": true}}]'
check "the redirect points at $PROXY_OTHER" test "$(curl -s -o /dev/null -w '%{redirect_url}' -u "alice:$pw" \
  "http://$PROXY/v2/base/busybox/blobs/$layer")" = "http://$PROXY_OTHER/v2/base/busybox/blobs/$layer"

check_here "one starts in front of the token registry" proxy_start "$REGISTRY_token" "alice:$pw"
TOKEN_REALM=$TOKEN_REALM_token
proxy_faults '[{"path": "/blobs/", "action": {"redirect_other": true}}]'
tok=$(token -u "alice:$pw" 'repository:base/busybox:pull')
check "a bearer token is not sent to the other host, which gets the blob with its own token" test \
  "sha256:$(curl -sL -H "Authorization: Bearer $tok" "http://$PROXY/v2/base/busybox/blobs/$layer" | sha256sum | cut -d' ' -f1)" = "$layer"
check "other: 200, no Authorization arrived" test "$(proxy_requests 'select(.listener == "other") | [.status, .authorization]')" = '[200,false]'

finish
