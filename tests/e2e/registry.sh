#!/usr/bin/env bash
# Tier 3: the registry client against real registries (Debian's docker-registry
# on 127.0.0.1): pulling OCI and Docker, single and multi-platform bases that
# skopeo pushed; pushing what imgbuild built and reading it back with skopeo;
# basic and token auth; a fault-injecting proxy; and a canary password that
# must never appear in any output.
#
#   tests/e2e/registry.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
# No credentials of this machine's user (DOCKER_CONFIG is empty): each case says which it gives.
mkdir -p "$work/ctx/www"
echo "served by busybox httpd from a pulled base" >"$work/ctx/www/index.html"

# recipe NAME BODY: writes $work/ctx/NAME.lua.
recipe() { printf '%s\n' "$2" >"$work/ctx/$1.lua"; }
# build RECIPE ARGS...: runs imgbuild, output in $work/last.out / last.err.
build() { check_cmd "$IMGBUILD" "$work/ctx/$1.lua" "${@:2}"; }
# fails RECIPE PATTERN DESCRIPTION ARGS...: the build must fail with PATTERN on stderr.
fails() {
  local r=$1 pattern=$2 what=$3
  shift 3
  if "$IMGBUILD" "$work/ctx/$r.lua" "$@" >"$work/last.out" 2>"$work/last.err"; then
    fail "$what (the build succeeded)"
  else
    check "$what" grep -q -- "$pattern" "$work/last.err"
  fi
}
# Every output of every imgbuild run, for the canary check at the end.
keep() { cat "$work/last.out" "$work/last.err" >>"$work/all-output"; }

step "registries: open, basic auth, token auth; bases pushed by skopeo"
here "open registry" registry_start open
here "basic-auth registry" registry_start basic
here "token-auth registry" registry_start token
OPEN=$REGISTRY_open BASIC=$REGISTRY_basic TOKEN=$REGISTRY_token
check "seed the open registry" seed_images "$OPEN"
check "seed the basic registry" seed_images "$BASIC" "alice:$REG_PASSWORD"
check "seed the token registry" seed_images "$TOKEN" "alice:$REG_PASSWORD"
here "proxy in front of the open registry" proxy_start "$OPEN"

step "from an OCI base: build on it, run it"
recipe web 'local reg = param("REGISTRY")
local web = from(reg .. "/base/busybox:oci")
  :copy("www/index.html", "/www/index.html")
  :entrypoint { "/bin/httpd", "-f", "-p", "8093", "-h", "/www" }
  :doctor { ignore = { "root" } }
image("web", web)
push(web, reg .. "/team/web:1")'
build web --set "REGISTRY=$PROXY" -o "oci:$work/oci" --no-push
keep
check "oci_validate.py and check_promises.py say OK" valid_image "$work/oci"
skopeo inspect --config "oci:$work/oci:web" >"$work/config.json" 2>&1
check "the base's env and history carry over" jq -e '(.config.Env | index("PATH=/bin:/usr/bin")) and (.history | length) > 2' "$work/config.json"
check "the entrypoint drops the base's cmd" jq -e '.config.Entrypoint[0] == "/bin/httpd" and (.config.Cmd == null)' "$work/config.json"
manifest=$(jq -r '.manifests[0].digest[7:]' "$work/oci/index.json")
check "the manifest names its base" jq -e --arg b "$PROXY/base/busybox:oci" '.annotations["org.opencontainers.image.base.name"] == $b and (.annotations["org.opencontainers.image.base.digest"] | startswith("sha256:"))' "$work/oci/blobs/sha256/$manifest"
outcome "--no-push says what it would push" "^would push $PROXY/team/web:1@sha256:$manifest (--no-push)$"
run_image "$work/oci:web" 8093 http://127.0.0.1:8093/ "pulled base" "busybox httpd of the base serves the copied page under runc"
stop_image

step "the pulled base is recorded by digest"
proxy_reset
build web --set "REGISTRY=$PROXY" --no-push
check "a rebuild asks the registry nothing" test "$(proxy_requests | wc -l)" -eq 0
build web --set "REGISTRY=$PROXY" --no-push --pull
check "--pull resolves the tag again, downloading no layer again" \
  sh -c "[ \$(jq -c 'select(.path | test(\"/manifests/\"))' '$PROXY_LOG' | wc -l) -ge 1 ] && ! jq -e 'select(.path | test(\"/blobs/sha256\")) | select(.method == \"GET\")' '$PROXY_LOG' | grep -q ."
check "imgbuild images lists the base under its full name" sh -c "'$IMGBUILD' images | grep -q '^$PROXY/base/busybox:oci '"
check "imgbuild inspect shows it" sh -c "'$IMGBUILD' inspect '$PROXY/base/busybox:oci' | jq -e '.config.architecture == \"amd64\"'"

step "Docker schema 2 bases and multi-platform indexes"
recipe bases 'local reg = param("REGISTRY")
local function plain(img) return img:doctor { ignore = { "root", "entrypoint" } } end
image("docker-v2s2", plain(from(reg .. "/base/busybox:docker")))
image("oci-index", plain(from(reg .. "/base/multi:oci")))
image("docker-list", plain(from(reg .. "/base/multi:docker")))
image("arm", plain(from(reg .. "/base/multi:oci", { platform = "linux/arm64" })):copy("www/index.html", "/www/"))'
build bases --set "REGISTRY=$OPEN" -o "oci:$work/bases"
keep
check "oci_validate.py and check_promises.py say OK for all four" valid_image "$work/bases"
for name in docker-v2s2 oci-index docker-list; do
  skopeo inspect --raw "oci:$work/bases:$name" >"$work/raw.json" 2>&1
  check "$name: an OCI manifest with OCI gzip layers" jq -e '.mediaType == "application/vnd.oci.image.manifest.v1+json" and all(.layers[]; .mediaType == "application/vnd.oci.image.layer.v1.tar+gzip")' "$work/raw.json"
  skopeo inspect --config "oci:$work/bases:$name" >"$work/cfg.json" 2>&1
  # busybox:docker is one amd64 image; the indexes have this host's too.
  [[ $name == docker-v2s2 ]] && expected=amd64 || expected=$HOST_ARCH
  check "$name: the $expected image was chosen" jq -e --arg a "$expected" '.architecture == $a' "$work/cfg.json"
done
skopeo inspect --config "oci:$work/bases:arm" >"$work/cfg.json" 2>&1
check "platform = linux/arm64 picks the arm64 image" jq -e '.architecture == "arm64" and (.rootfs.diff_ids | length) == 2' "$work/cfg.json"
recipe noplatform 'image("x", from(param("REGISTRY") .. "/base/multi:oci", { platform = "linux/s390x" }))'
fails noplatform "noplatform.lua:1: from: $OPEN/base/multi:oci: no image for linux/s390x (the index has linux/amd64, linux/arm64)" \
  "a platform the index lacks is an error naming what it has" --set "REGISTRY=$OPEN"
recipe badref 'image("x", from("Alpine:3.20"))'
fails badref 'badref.lua:1: from: invalid image reference "Alpine:3.20"' "a malformed reference fails at its line"
recipe missing 'image("x", from(param("REGISTRY") .. "/base/nothing:1"))'
fails missing "missing.lua:1: from: $OPEN/base/nothing:1: not found: MANIFEST_UNKNOWN" \
  "a missing image is the registry's own error at the recipe line" --set "REGISTRY=$OPEN"
keep

step "push, and read it back with skopeo"
proxy_reset
build web --set "REGISTRY=$PROXY"
keep
outcome "prints the pushed digest" "^pushed $PROXY/team/web:1@sha256:$manifest$"
check "skopeo copies it out" skopeo copy --src-tls-verify=false "docker://$OPEN/team/web:1" "oci:$work/pulled:web"
check "the copy passes oci_validate.py" sh -c "python3 '$VALIDATE' '$work/pulled' | grep -qx OK"
check "the layers were mounted from the base's repository" grep -q "mounted" "$work/last.err"
check "mount requests were made" sh -c "jq -e 'select(.method == \"POST\" and (.path | test(\"mount=\")) and .status == 201)' '$PROXY_LOG' | grep -q ."
proxy_reset
start=$(date +%s%N)
build web --set "REGISTRY=$PROXY"
elapsed_ms=$((($(date +%s%N) - start) / 1000000))
check "a second push uploads no blob" sh -c "! jq -e 'select(.method == \"POST\" or .method == \"PATCH\" or (.method == \"PUT\" and (.path | test(\"/blobs/\"))))' '$PROXY_LOG' | grep -q ."
check "  ...only HEADs and the manifest PUT (under its tag; the attachments go by digest)" \
  sh -c "[ \$(jq -c 'select(.method == \"PUT\" and (.path | test(\"/manifests/sha256\") | not))' '$PROXY_LOG' | wc -l) -eq 1 ]"
echo "        (second build and push: $elapsed_ms ms)"
check_cmd "$IMGBUILD" push web "$OPEN/other/web:2"
check "imgbuild push NAME REF pushes a stored image" skopeo inspect --tls-verify=false "docker://$OPEN/other/web:2"

step "chunked upload of a large blob"
head -c 80000000 /dev/urandom >"$work/ctx/big.bin"
recipe big 'push(scratch:copy("big.bin", "/big.bin"):doctor { ignore = { "entrypoint" } }, param("REGISTRY") .. "/big/blob:1")'
proxy_reset
build big --set "REGISTRY=$PROXY"
check "the 80 MB layer went up in PATCH chunks" sh -c "[ \$(jq -c 'select(.method == \"PATCH\" and .status == 202)' '$PROXY_LOG' | wc -l) -ge 2 ]"
check "skopeo reads the chunked blob back" skopeo copy --src-tls-verify=false "docker://$OPEN/big/blob:1" "oci:$work/big:b"
rm -f "$work/ctx/big.bin"

step "basic auth"
recipe auth 'local reg = param("REGISTRY")
local img = from(reg .. "/base/busybox:oci"):doctor { ignore = { "root" } }
image("auth", img)
push(img, reg .. "/team/auth:1")'
fails auth "asks for a login and no credentials are configured" "no credentials: a clear error" --set "REGISTRY=$BASIC"
keep
hostvar=IMGBUILD_REGISTRY_AUTH_$(tr 'a-z.:-' 'A-Z___' <<<"$BASIC")
env "$hostvar=alice:wrong-$REG_PASSWORD" "$IMGBUILD" "$work/ctx/auth.lua" --set "REGISTRY=$BASIC" >"$work/last.out" 2>"$work/last.err"
check "a wrong password is rejected with the registry's words" grep -q "rejected the credentials" "$work/last.err"
keep
env "$hostvar=alice:$REG_PASSWORD" "$IMGBUILD" "$work/ctx/auth.lua" --set "REGISTRY=$BASIC" --debug >"$work/last.out" 2>"$work/last.err"
outcome "credentials from IMGBUILD_REGISTRY_AUTH_*: pull and push" "^pushed $BASIC/team/auth:1@"
keep

mkdir -p "$work/bin" "$work/docker-helper"
cat >"$work/bin/docker-credential-imgtest" <<EOF
#!/bin/sh
[ "\$1" = get ] || exit 1
read -r server
printf '{"ServerURL":"%s","Username":"alice","Secret":"%s"}\n' "\$server" "$REG_PASSWORD"
EOF
chmod +x "$work/bin/docker-credential-imgtest"
printf '{"credHelpers":{"%s":"imgtest"}}\n' "$BASIC" >"$work/docker-helper/config.json"
PATH="$work/bin:$PATH" DOCKER_CONFIG="$work/docker-helper" "$IMGBUILD" "$work/ctx/auth.lua" --set "REGISTRY=$BASIC" --debug >"$work/last.out" 2>"$work/last.err"
outcome "credentials from a docker-credential-* helper named in credHelpers" "^pushed $BASIC/team/auth:1@"
keep

step "token auth (scoped bearer tokens)"
mkdir -p "$work/docker-alice"
auth=$(printf 'alice:%s' "$REG_PASSWORD" | base64 -w0)
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$TOKEN" "$auth" >"$work/docker-alice/config.json"
DOCKER_CONFIG="$work/docker-alice" "$IMGBUILD" "$work/ctx/auth.lua" --set "REGISTRY=$TOKEN" --debug >"$work/last.out" 2>"$work/last.err"
outcome "credentials from config.json: pull and push through tokens" "^pushed $TOKEN/team/auth:1@"
keep
check "the token server was asked for pull on the base and push on the target" \
  sh -c "token_requests() { jq -c \"\$1\" '$TOKEN_LOG'; }; token_requests 'select(.requested | index(\"repository:team/auth:pull,push\"))' | grep -q . && token_requests 'select(.requested | index(\"repository:base/busybox:pull\"))' | grep -q ."
mkdir -p "$work/docker-bob"
printf '{"auths":{"%s":{"auth":"%s"}}}\n' "$TOKEN" "$(printf 'bob:%s' "$REG_PASSWORD_BOB" | base64 -w0)" >"$work/docker-bob/config.json"
DOCKER_CONFIG="$work/docker-bob" "$IMGBUILD" "$work/ctx/auth.lua" --set "REGISTRY=$TOKEN" >"$work/last.out" 2>"$work/last.err"
check "bob (pull only) cannot push: the registry's error at the push line" grep -q "auth.lua:4: push: " "$work/last.err"
keep
mkdir -p "$work/docker-identity"
printf '{"auths":{"%s":{"identitytoken":"%s"}}}\n' "$TOKEN" "$REG_IDENTITY_TOKEN" >"$work/docker-identity/config.json"
DOCKER_CONFIG="$work/docker-identity" "$IMGBUILD" "$work/ctx/auth.lua" --set "REGISTRY=$TOKEN" >"$work/last.out" 2>"$work/last.err"
check "an identity token from config.json is exchanged for bearer tokens (OAuth2 refresh grant)" \
  sh -c "grep -q '^pushed $TOKEN/team/auth:1@' '$work/last.out' && jq -e 'select(.method == \"POST\" and .account == \"alice\" and .status == 200)' '$TOKEN_LOG' | grep -q ."
keep
recipe public 'image("pub", from(param("REGISTRY") .. "/public/busybox:1"):doctor { ignore = { "root" } })'
skopeo copy --src-tls-verify=false --dest-tls-verify=false --src-creds "alice:$REG_PASSWORD" --dest-creds "alice:$REG_PASSWORD" \
  "docker://$TOKEN/base/busybox:oci" "docker://$TOKEN/public/busybox:1" >/dev/null 2>&1
build public --set "REGISTRY=$TOKEN"
outcome "anonymous pull of a public repository through an anonymous token" "^pub "
keep

step "faults between imgbuild and the registry"
recipe faulty 'image("f", from(param("REGISTRY") .. "/base/busybox:docker"):doctor { ignore = { "root" } })'
fault_case() {
  local what=$1 rules=$2 expect=$3 pattern=${4:-}
  rm -rf "$XDG_DATA_HOME"
  proxy_reset
  proxy_faults "$rules"
  if "$IMGBUILD" "$work/ctx/faulty.lua" --set "REGISTRY=$PROXY" >"$work/last.out" 2>"$work/last.err"; then
    if [[ $expect == ok ]]; then pass "$what: the build succeeds"; else fail "$what: the build succeeded"; fi
  elif [[ $expect == ok ]]; then
    fail "$what: the build failed"
    tail -n 5 "$work/last.err" | sed 's/^/        /'
  else
    check "$what: $pattern" grep -q -- "$pattern" "$work/last.err"
  fi
  keep
  # Whatever happened, every blob in the store is what its name says.
  check "$what: every stored blob matches its digest" sh -c "cd '$XDG_DATA_HOME/imgbuild/blobs/sha256' 2>/dev/null || exit 0; for f in *; do [ -e \"\$f\" ] || continue; [ \"\$f\" = \"\$(sha256sum < \"\$f\" | cut -c1-64)\" ] || exit 1; done"
}
# The busybox layer (base_images.sh makes it the same everywhere), not the config.
blob='/v2/base/busybox/blobs/sha256:c177603a'
fault_case "500 on the manifest" '[{"method":"GET","path":"/manifests/","action":{"status":500}}]' ok
fault_case "429 with Retry-After" '[{"method":"GET","path":"/manifests/","times":2,"action":{"status":429,"headers":{"Retry-After":"1"}}}]' ok
fault_case "a connection dropped mid-blob" '[{"method":"GET","path":"'"$blob"'","action":{"drop_after":100000}}]' ok
fault_case "a corrupted blob" '[{"method":"GET","path":"'"$blob"'","times":-1,"action":{"corrupt":true}}]' fail \
  "does not match its digest"
fault_case "a wrong manifest body" '[{"method":"GET","path":"/manifests/","times":-1,"action":{"replace_body":"{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{}}"}}]' fail \
  "faulty.lua:1: from: "
fault_case "an oversized manifest" '[{"method":"GET","path":"/manifests/","times":-1,"action":{"oversize":5000000}}]' fail \
  "more than 4 MiB: refused"
fault_case "a 500 that never ends" '[{"method":"GET","path":"/manifests/","times":-1,"action":{"status":500}}]' fail \
  "faulty.lua:1: from: .*(HTTP 500)"

proxy_reset
proxy_faults '[{"method":"GET","path":"'"$blob"'","action":{"drop_after":100000}}]'
rm -rf "$XDG_DATA_HOME"
"$IMGBUILD" "$work/ctx/faulty.lua" --set "REGISTRY=$PROXY" >/dev/null 2>&1
check "a dropped download resumes with Range" sh -c "jq -e 'select(.range == \"bytes=100000-\" and .status == 206)' '$PROXY_LOG' | grep -q ."
proxy_reset
build web --set "REGISTRY=$PROXY" --no-push
proxy_faults '[{"method":"PUT","path":"/blobs/uploads/","action":{"status":500}}]'
check_cmd "$IMGBUILD" push web "$PROXY/retry/web:1"
keep
check "an upload that failed with 500 is restarted from a new session" \
  sh -c "[ \$(jq -c 'select(.method == \"PUT\" and (.path | test(\"/blobs/uploads/\")))' '$PROXY_LOG' | wc -l) -ge 2 ] && grep -q '^pushed $PROXY/retry/web:1@' '$work/last.out'"

step "a base unpacked as it downloads, checked whole before its root is kept"
# A RUN step needs the base's root: on an empty store its layer is unpacked
# while it arrives. What the step sees must be the verified blob's files,
# whatever the download went through.
recipe unpacked 'image("u", from(param("REGISTRY") .. "/base/busybox:docker")
  :run "sha256sum /bin/busybox"
  :doctor { ignore = { "root" } })'
# unpacked_case WHAT RULES: a build from an empty store and cache through the proxy with RULES.
unpacked_case() {
  rm -rf "$XDG_DATA_HOME" "$XDG_CACHE_HOME"
  proxy_reset
  proxy_faults "$2"
  "$IMGBUILD" "$work/ctx/unpacked.lua" --set "REGISTRY=$PROXY" --progress plain >"$work/last.out" 2>"$work/last.err"
}
# The busybox program's sum as the step printed it.
step_sum() { sed -n 's/^.*unpacked.lua:2 | \([0-9a-f]\{64\}\)  \/bin\/busybox$/\1/p' "$work/last.err"; }
rm -rf "$XDG_DATA_HOME" "$XDG_CACHE_HOME"
proxy_reset
build unpacked --set "REGISTRY=$PROXY" --progress plain
keep
# The store holds the layer now: with no root and no cached step, the root
# is unpacked from the stored blob, as before any download overlapped.
rm -rf "$XDG_CACHE_HOME"
build unpacked --set "REGISTRY=$PROXY" --progress plain
keep
reference=$(step_sum)
check "the step ran on the root unpacked from the stored blob" test -n "$reference"
unpacked_case "no fault" '[]'
keep
check "unpacked while downloading: the same files" test "$(step_sum)" = "$reference"
unpacked_case "dropped" '[{"method":"GET","path":"'"$blob"'","action":{"drop_after":100000}}]'
keep
check "a download dropped mid-blob and resumed: the same files" test "$(step_sum)" = "$reference"
check "  ...resumed with Range" sh -c "jq -e 'select(.range == \"bytes=100000-\" and .status == 206)' '$PROXY_LOG' | grep -q ."
# The first answer is damaged past its middle, then cut; the resume gets
# the whole blob, intact. What was unpacked of the first answer must not count.
unpacked_case "started over" '[{"method":"GET","path":"'"$blob"'","action":{"corrupt":true,"drop_after":800000}},
  {"method":"GET","path":"'"$blob"'","action":{"ignore_range":true}}]'
keep
check "a damaged download that started over (no Range support): the same files, unpacked again from the whole blob" \
  test "$(step_sum)" = "$reference"
check "  ...the registry answered the resume with the whole blob" \
  sh -c "jq -e 'select(.range == \"bytes=800000-\" and .status == 200)' '$PROXY_LOG' | grep -q ."
if unpacked_case "corrupt" '[{"method":"GET","path":"'"$blob"'","times":-1,"action":{"corrupt":true}}]'; then
  fail "a corrupted blob unpacked as it came: the build succeeded"
else
  check "a corrupted blob unpacked as it came: the download's error" grep -q "does not match its digest" "$work/last.err"
fi
keep
check "  ...and the step never ran" sh -c "! grep -q 'unpacked.lua:2 | ' '$work/last.err'"
check "  ...and no root was kept of it" sh -c "[ -z \"\$(find '$XDG_CACHE_HOME/imgbuild/roots' -mindepth 1 -maxdepth 1 ! -name '.*' 2>/dev/null)\" ]"
proxy_reset

step "an expired token is renewed"
REG_TOKEN_TTL=2 here "a token registry whose tokens live 2 s" registry_start token short
here "seed it" seed_images "$REGISTRY_short" "alice:$REG_PASSWORD"
here "a proxy that holds the first blob request for 3 s" proxy_start "$REGISTRY_short"
proxy_faults '[{"method":"GET","path":"/blobs/","action":{"delay":3}}]'
rm -rf "$XDG_DATA_HOME"
hostvar=IMGBUILD_REGISTRY_AUTH_$(tr 'a-z.:-' 'A-Z___' <<<"$PROXY")
env "$hostvar=alice:$REG_PASSWORD" "$IMGBUILD" "$work/ctx/faulty.lua" --set "REGISTRY=$PROXY" >"$work/last.out" 2>"$work/last.err"
outcome "the build succeeds across token expiry" "^f "
keep
check "  ...having asked for a new token" sh -c "[ \$(jq -c 'select(.status == 200)' '$TOKEN_LOG_short' | wc -l) -ge 2 ]"

step "a redirect to another host gets no credentials"
here "proxy in front of the basic-auth registry" proxy_start "$BASIC" "alice:$REG_PASSWORD"
rm -rf "$XDG_DATA_HOME"
proxy_faults '[{"method":"GET","path":"'"$blob"'","times":-1,"action":{"redirect_other":true}}]'
hostvar=IMGBUILD_REGISTRY_AUTH_$(tr 'a-z.:-' 'A-Z___' <<<"$PROXY")
env "$hostvar=alice:$REG_PASSWORD" "$IMGBUILD" "$work/ctx/faulty.lua" --set "REGISTRY=$PROXY" --debug >"$work/last.out" 2>"$work/last.err"
outcome "the build follows the redirect" "^f "
keep
check "the other host served blobs" sh -c "jq -e 'select(.listener == \"other\")' '$PROXY_LOG' | grep -q ."
check "no Authorization arrived at the other host" sh -c "! jq -e 'select(.listener == \"other\" and .authorization)' '$PROXY_LOG' | grep -q ."

step "TLS: verified by default, never downgraded"
here "a registry on https with a self-signed certificate" registry_start tls
here "seed it" seed_images "$REGISTRY_tls"
recipe tlsbase 'image("t", from(param("REGISTRY") .. "/base/busybox:oci"):doctor { ignore = { "root" } })'
fails tlsbase "tlsbase.lua:1: from: .*certificate" "an unknown CA is an error (no fallback to http)" --set "REGISTRY=$REGISTRY_tls"
keep
SSL_CERT_FILE=$TLS_CA build tlsbase --set "REGISTRY=$REGISTRY_tls"
keep
rm -rf "$XDG_DATA_HOME"
build tlsbase --set "REGISTRY=$REGISTRY_tls" --insecure-registry "$REGISTRY_tls"
keep

step "no credential in any output"
check "the canary passwords appear nowhere (stdout, stderr, --debug)" \
  sh -c "! grep -q -e '$REG_PASSWORD' -e '$REG_PASSWORD_BOB' -e '$REG_IDENTITY_TOKEN' -e '$auth' '$work/all-output'"
check "nor in any stored blob" sh -c "! grep -rq -e '$REG_PASSWORD' -e '$REG_PASSWORD_BOB' '$XDG_DATA_HOME'"

finish
