#!/usr/bin/env bash
# Faults: canary secrets. Distinct canary values are planted everywhere a
# secret enters a build: a Basic-auth password (IMGBUILD_REGISTRY_AUTH_<HOST>),
# a password and an identity token in DOCKER_CONFIG's config.json, the bearer
# tokens the token server issues for them, a RUN step's secret mount, an
# environment variable the recipe reads, and the query string of a signed
# storage URL a registry redirects a download to. Builds pull, run, export
# the cache, write oci: and docker-archive: outputs and push, in every
# progress mode and with --debug; pushes and downloads are made to fail after
# authentication. No canary may appear in any stdout or stderr, in any file of
# the store, the cache or the outputs (gzip layers read decompressed).
#
#   tests/faults/secrets.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
e2e_workspace "$@"
store=$XDG_DATA_HOME/imgbuild cache=$XDG_CACHE_HOME/imgbuild
ctx=$work/ctx
mkdir -p "$ctx" "$work/outputs"

SECRET_MOUNT=canary-secret-mount-5d1c93
SECRET_ENV=canary-env-var-e8a2f1
SIGNATURE=canary-signed-url-0c77b4
printf '%s\n' "$REG_PASSWORD" "$REG_PASSWORD_BOB" "$REG_IDENTITY_TOKEN" "$SECRET_MOUNT" "$SECRET_ENV" \
  "$SIGNATURE" >"$work/canaries"
# base64 of what carries a password in a header or in config.json: a leak of
# the encoded form is a leak too.
for pair in "alice:$REG_PASSWORD" "bob:$REG_PASSWORD_BOB"; do printf '%s' "$pair" | base64 -w0; echo; done \
  >>"$work/canaries"

step "registries: Basic auth behind a proxy that redirects downloads to signed URLs, token auth"
here "basic-auth registry" registry_start basic
here "token-auth registry" registry_start token
BASIC=$REGISTRY_basic TOKEN=$REGISTRY_token
check "seed the basic registry" seed_images "$BASIC" "alice:$REG_PASSWORD"
check "seed the token registry" seed_images "$TOKEN" "alice:$REG_PASSWORD"
here "proxy in front of the basic registry" proxy_start "$BASIC" "alice:$REG_PASSWORD"
# Every layer download is sent on to a "storage host" with a signature in its query.
redirect='{"method": "GET", "path": "/blobs/sha256:", "times": -1, "action": {"redirect_other": true, "query": "X-Amz-Signature='$SIGNATURE'&X-Amz-Expires=300"}}'
proxy_faults "[$redirect]"

# The proxy's Basic password comes from the environment; the token registry's
# from config.json: bob's password (pull) and alice's identity token (push).
proxy_var=IMGBUILD_REGISTRY_AUTH_$(tr 'a-z.:' 'A-Z__' <<<"$PROXY")
export "$proxy_var=alice:$REG_PASSWORD"
export DEPLOY_TOKEN=$SECRET_ENV
# bob may only pull: pushes to the token registry go as alice, whose identity
# token config.json holds for a second name of the same registry (localhost).
TOKEN_PORT=${TOKEN##*:}
jq -n --arg pull "$TOKEN" --arg push "localhost:$TOKEN_PORT" \
  --arg bob "$(printf 'bob:%s' "$REG_PASSWORD_BOB" | base64 -w0)" --arg id "$REG_IDENTITY_TOKEN" \
  '{auths: {($pull): {auth: $bob}, ($push): {username: "<token>", identitytoken: $id}}}' \
  >"$DOCKER_CONFIG/config.json"
printf '%s\n' "$SECRET_MOUNT" >"$work/api-key"

cat >"$ctx/recipe.lua" <<EOF
-- The token decides something, as a deploy token would; it is never stored.
local deploy = env("DEPLOY_TOKEN", "") ~= ""
local base = from("$PROXY/base/busybox:oci")
local app = base
  :run { "sh", "-c", "wc -c < /run/secrets/api > /api-key-length; env | sort > /step-env",
         secrets = { api = "$work/api-key" } }
  :label { deploy = deploy and "yes" or "no" }
image("app", app)
push(app, "localhost:$TOKEN_PORT/team/app:1")
EOF
exists_recipe() {
  cat >"$ctx/exists.lua" <<EOF
if not exists("$TOKEN/base/busybox:oci") then error("the token registry has no base/busybox:oci") end
image("pulled", from("$TOKEN/base/busybox:docker"):label { checked = "yes" })
EOF
}
exists_recipe

# Every imgbuild run's stdout and stderr, for the scan at the end.
run() {
  "$IMGBUILD" "$@" >"$work/last.out" 2>"$work/last.err"
  status=$?
  cat "$work/last.out" "$work/last.err" >>"$work/all-output"
}
ok() {
  local what=$1
  shift
  run "$@"
  check "$what" test "$status" = 0
  [[ $status == 0 ]] || tail -n 10 "$work/last.err" | sed 's/^/        /'
}

# Every progress mode: the default (auto, which is plain here: no terminal)
# and each one forced; tty without a terminal falls back to plain lines.
modes=(default plain tty json)

step "builds that pull, run with a secret, read the environment, push and export the cache"
for mode in "${modes[@]}"; do
  progress=()
  [[ $mode != default ]] && progress=(--progress "$mode")
  ok "build (progress $mode)" "$ctx/recipe.lua" --no-cache "${progress[@]}" \
    -o "oci:$work/outputs/oci-$mode" -o "docker-archive:$work/outputs/archive-$mode.tar" \
    --cache-to "localhost:$TOKEN_PORT/team/cache:1"
done
check "the layers came through the signed URL" \
  test "$(proxy_requests 'select(.listener == "other" and (.path | test("X-Amz-Signature")))' | wc -l)" -gt 0
check "the pushes went as alice with her identity token" \
  test "$(token_requests 'select(.account == "alice" and .status == 200)' | wc -l)" -gt 0
ok "build with --debug" "$ctx/recipe.lua" --debug --no-cache
ok "exists() and a pull with bob's password" "$ctx/exists.lua" --debug
ok "imgbuild push" push app "localhost:$TOKEN_PORT/team/again:1" --debug
ok "imgbuild inspect" inspect app
ok "imgbuild images" images
ok "imgbuild cache ls" cache ls
ok "imgbuild plan" plan "$ctx/recipe.lua"

step "the image: the secret mount and the environment are not in it"
skopeo inspect --config "oci:$work/outputs/oci-default:app" >"$work/config.json" 2>&1
for b in "$work"/outputs/oci-default/blobs/sha256/*; do tar -xzOf "$b" api-key-length 2>/dev/null; done >"$work/api-key-length"
check "the secret was readable in the step (its length is in the image)" grep -qx "$((${#SECRET_MOUNT} + 1))" "$work/api-key-length"
for b in "$work"/outputs/oci-default/blobs/sha256/*; do tar -xzOf "$b" step-env 2>/dev/null; done >"$work/step-env"
check "the step's environment is the image's" grep -q '^PATH=' "$work/step-env"
check "the recipe saw the token" jq -e '.config.Labels.deploy == "yes"' "$work/config.json"

step "go build: the host's tools do not get the registry credentials"
mkdir -p "$ctx/app"
printf 'module example.com/app\n\ngo 1.19\n' >"$ctx/app/go.mod"
printf 'package main\n\nfunc main() { println("hi") }\n' >"$ctx/app/main.go"
# go runs every compiler and linker through -toolexec: each records what it was given.
printf '#!/bin/sh\nenv >>"%s"\nexec "$@"\n' "$work/tool-env" >"$work/record-env"
chmod +x "$work/record-env"
cat >"$ctx/go.lua" <<EOF
local go = require "imgbuild.go"
image("app", scratch:copy(go.build { main = "app", module = "app", flags = { "-toolexec=$work/record-env" } }, "/app"))
EOF
ok "go build" "$ctx/go.lua"
check "the tools ran with the environment" grep -q "^PATH=" "$work/tool-env"
# DEPLOY_TOKEN is the user's own variable: tools may see it, as any child would.
check "no registry credential in it" sh -c "! grep -v '^DEPLOY_TOKEN=' '$work/tool-env' | grep -F -f '$work/canaries'"

step "failures after authentication: the errors carry no secret"
proxy_faults '[{"method": "PUT", "path": "/manifests/", "times": -1, "action": {"status": 500}}]'
run push app "$PROXY/team/fails:1" --debug
check "a push refused after auth fails" test "$status" = 1
check "  and says why" grep -q "500" "$work/last.err"
proxy_faults '[{"method": "PUT", "path": "/manifests/", "times": -1, "action": {"status": 401}}]'
run push app "$PROXY/team/fails:2"
check "a push whose credentials are refused fails" test "$status" = 1
proxy_faults '['"$redirect"', {"path": "X-Amz-Signature", "listener": "other", "times": -1, "action": {"status": 403}}]'
# An empty store and cache, so that the layers are downloaded again.
XDG_DATA_HOME=$work/data-2 XDG_CACHE_HOME=$work/cache-2 run "$ctx/recipe.lua" --no-push
check "a download refused at the signed URL fails" test "$status" = 1
check "  and says it was refused" grep -q "DENIED" "$work/last.err"
proxy_faults "[$redirect]"
XDG_DATA_HOME=$work/data-2 XDG_CACHE_HOME=$work/cache-2 ok "the build works again" "$ctx/recipe.lua" --no-push

step "no canary anywhere"
cat "$TOKEN_ISSUED" >>"$work/canaries"
check "the token server issued tokens to look for" test -s "$TOKEN_ISSUED"
mkdir -p "$work/archives"
for a in "$work"/outputs/*.tar; do
  mkdir -p "$work/archives/$(basename "$a")"
  tar -xf "$a" -C "$work/archives/$(basename "$a")"
done
# leaks DIR...: the files under DIR holding a canary, as they are or gunzipped.
leaks() {
  local f
  find "$@" -type f -print0 | while IFS= read -r -d '' f; do
    if grep -qaF -f "$work/canaries" "$f"; then
      echo "$f"
    elif [[ $(head -c 2 "$f" | od -An -tx1 | tr -d ' ') == 1f8b ]] && zcat "$f" 2>/dev/null | grep -qaF -f "$work/canaries"; then
      echo "$f (gunzipped)"
    fi
  done
}
check "the canaries are planted where they are used" grep -q "$REG_IDENTITY_TOKEN" "$DOCKER_CONFIG/config.json"
# The scan itself: it finds a token inside a gzip stream.
mkdir -p "$work/planted"
tail -n 1 "$TOKEN_ISSUED" | gzip >"$work/planted/layer"
check "the scan finds a canary in a gzip layer" test -n "$(leaks "$work/planted")"
check "no canary in any stdout or stderr ($(wc -l <"$work/all-output") lines)" sh -c "! grep -aF -f '$work/canaries' '$work/all-output'"
for dir in "$store" "$cache" "$work/data-2" "$work/cache-2" "$work/outputs" "$work/archives"; do
  found=$(leaks "$dir")
  check "no canary in ${dir#"$work"/} ($(find "$dir" -type f | wc -l) files)" test -z "$found"
  [[ -n $found ]] && printf '        %s\n' $found
done

finish
