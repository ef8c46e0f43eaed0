#!/usr/bin/env bash
# Tier 3: imgbuild login / logout and the credentials files podman, skopeo,
# buildah and docker share, against real registries (basic and token auth on
# 127.0.0.1): what imgbuild login writes, skopeo reads, and what skopeo login
# writes, imgbuild reads; a refused or missing credential is named by its
# source and user; a push's credential is checked before the build starts;
# and no password appears in any output.
#
#   tests/e2e/login.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
# Every credentials file in $work: no login of this machine's user is read or
# touched. DOCKER_CONFIG is unset, as on most machines: with it set, podman and
# skopeo read and write only $DOCKER_CONFIG/config.json (a step below).
export HOME="$work/home" XDG_RUNTIME_DIR="$work/run"
unset REGISTRY_AUTH_FILE XDG_CONFIG_HOME DOCKER_CONFIG
mkdir -p "$HOME" "$XDG_RUNTIME_DIR" "$work/ctx"
cd "$work/ctx" || exit 1
RUNTIME_AUTH=$XDG_RUNTIME_DIR/containers/auth.json
CONFIG_AUTH=$HOME/.config/containers/auth.json
DOCKER_JSON=$HOME/.docker/config.json
WRONG=wrong-$REG_PASSWORD

# Every output of every imgbuild run, for the canary check at the end.
keep() { cat "$work/last.out" "$work/last.err" >>"$work/all-output"; }
# login PASSWORD ARGS...: imgbuild login with PASSWORD on stdin.
login() {
  local password=$1
  shift
  printf '%s\n' "$password" | "$IMGBUILD" login "$@" >"$work/last.out" 2>"$work/last.err"
  local rc=$?
  keep
  return $rc
}
# imgbuild ARGS...: any other imgbuild command, output kept.
imgbuild() {
  "$IMGBUILD" "$@" >"$work/last.out" 2>"$work/last.err"
  local rc=$?
  keep
  return $rc
}
# said DESCRIPTION TEXT: the last line of the last run's stderr (after a
# build's progress lines) is exactly TEXT.
said() {
  local last
  last=$(tail -n 1 "$work/last.err")
  if [[ $last == "$2" ]]; then
    pass "$1"
  else
    fail "$1"
    printf '        expected: %s\n        got:      %s\n' "$2" "$last"
  fi
}
# failed DESCRIPTION: the last run exited with status 1 (set by the caller in $rc).
failed() { check "$1" test "$rc" = 1; }
# succeeded DESCRIPTION: the last run exited with status 0 ($rc); else its stderr's end.
succeeded() {
  if [[ $rc == 0 ]]; then
    pass "$1"
  else
    fail "$1 (exit status $rc)"
    tail -n 5 "$work/last.err" | sed 's/^/        /'
  fi
}
# seconds_since START: whole seconds since the `date +%s` START.
seconds_since() { echo $(($(date +%s) - $1)); }

step "registries: basic auth and token auth"
here "basic-auth registry" registry_start basic
here "token-auth registry" registry_start token
BASIC=$REGISTRY_basic TOKEN=$REGISTRY_token
check "seed the basic registry" seed_images "$BASIC" "alice:$REG_PASSWORD"
check "seed the token registry" seed_images "$TOKEN" "alice:$REG_PASSWORD"
skopeo_inspect() { skopeo inspect --tls-verify=false "$@" "docker://$BASIC/base/busybox:oci"; }
printf '%s\n' 'image("pulled", from(param("REGISTRY") .. "/base/busybox:oci"):doctor { ignore = { "root" } })' \
  >"$work/ctx/pull.lua"

step "login checks the password with the registry before saving anything"
login "$WRONG" --username alice --password-stdin "$BASIC"
rc=$?
failed "a wrong password: exit status 1"
said "the registry's refusal names the password's source and the user" \
  "imgbuild: login $BASIC: $BASIC rejected the credentials from --password-stdin (UNAUTHORIZED: authentication required (HTTP 401)) for user alice; nothing was saved"
check "nothing was written" test ! -e "$DOCKER_JSON" -a ! -e "$RUNTIME_AUTH"
login "$WRONG" --username alice --password-stdin "$TOKEN"
rc=$?
failed "a wrong password at a token registry: exit status 1"
said "the token server's refusal names the password's source and the user" \
  "imgbuild: login $TOKEN: the token server of $TOKEN rejected the credentials from --password-stdin (UNAUTHORIZED: wrong user name, password or token (HTTP 401)) for user alice; nothing was saved"
check "still nothing written" test ! -e "$DOCKER_JSON"
imgbuild login --password-stdin "$BASIC" </dev/null
rc=$?
check "--password-stdin without --username is a usage error" test "$rc" = 2
imgbuild login --username alice --password "$REG_PASSWORD" "$BASIC"
rc=$?
check "there is no --password option: a password never goes on a command line" test "$rc" = 2

step "imgbuild login writes where skopeo (and docker) read"
login "$REG_PASSWORD" --username alice --password-stdin "$BASIC"
said "login says who and where" "imgbuild: logged in to $BASIC as alice (saved in $DOCKER_JSON)"
check "config.json is private (mode 600)" test "$(stat -c %a "$DOCKER_JSON")" = 600
check "skopeo reads it with its default lookup" skopeo_inspect
check "skopeo reads it with --authfile" skopeo_inspect --authfile "$DOCKER_JSON"
check "imgbuild builds from the registry with it" imgbuild pull.lua --set "REGISTRY=$BASIC"
mv "$DOCKER_JSON" "$work/saved.json"
printf '{"auths":{"ghcr.io":{"auth":"Z2g6cHc="}},"psFormat":"table {{.ID}}"}\n' >"$DOCKER_JSON"
login "$REG_PASSWORD" --username alice --password-stdin "$TOKEN"
said "login at a token registry (a token fetched without scope)" "imgbuild: logged in to $TOKEN as alice (saved in $DOCKER_JSON)"
check "other entries and fields are kept" jq -e '.auths["ghcr.io"].auth == "Z2g6cHc=" and .psFormat == "table {{.ID}}"' "$DOCKER_JSON"
check "the token server granted no scope to a login" \
  sh -c "jq -c 'select(.account == \"alice\" and .requested == [])' '$TOKEN_LOG' | grep -q ."
mv "$work/saved.json" "$DOCKER_JSON"

step "logout removes it"
imgbuild logout "$BASIC"
said "logout says where from" "imgbuild: logged out of $BASIC (removed from $DOCKER_JSON)"
check "the entry is gone" jq -e --arg h "$BASIC" '.auths | has($h) | not' "$DOCKER_JSON"
check "skopeo no longer gets in" sh -c "! skopeo inspect --tls-verify=false docker://$BASIC/base/busybox:oci"
imgbuild logout "$BASIC"
rc=$?
failed "a second logout: exit status 1"
said "and it says where it looked" \
  "imgbuild: not logged in to $BASIC: no saved credential in IMGBUILD_REGISTRY_AUTH_*, $RUNTIME_AUTH, $CONFIG_AUTH, $DOCKER_JSON"

step "a missing credential: where imgbuild looked"
rm -rf "$XDG_DATA_HOME"
imgbuild pull.lua --set "REGISTRY=$BASIC"
rc=$?
failed "exit status 1"
said "every place is named, and the command that fixes it" \
  "imgbuild: pull.lua:1: from: $BASIC/base/busybox:oci: $BASIC asks for a login and no credentials are configured for it (UNAUTHORIZED: authentication required (HTTP 401)); looked in IMGBUILD_REGISTRY_AUTH_*, $RUNTIME_AUTH, $CONFIG_AUTH, $DOCKER_JSON: run imgbuild login $BASIC"

step "skopeo login writes where imgbuild reads"
check "skopeo login" sh -c "printf '%s' '$REG_PASSWORD' | skopeo login --tls-verify=false -u alice --password-stdin $BASIC"
check "into \$XDG_RUNTIME_DIR/containers/auth.json" jq -e --arg h "$BASIC" '.auths | has($h)' "$RUNTIME_AUTH"
check "imgbuild builds with what skopeo saved" imgbuild pull.lua --set "REGISTRY=$BASIC" --pull
LOCALHOST=localhost:${BASIC#*:}
imgbuild pull.lua --set "REGISTRY=$LOCALHOST" --pull
rc=$?
failed "hosts match exactly: the same server named localhost gets no credential"
check "and the message says so" grep -q "^imgbuild: pull.lua:1: from: $LOCALHOST/base/busybox:oci: $LOCALHOST asks for a login and no credentials are configured" "$work/last.err"
jq --arg h "$BASIC" --arg a "$(printf 'alice:%s' "$WRONG" | base64 -w0)" '.auths[$h].auth = $a' "$RUNTIME_AUTH" >"$work/auth.tmp"
cp "$work/auth.tmp" "$RUNTIME_AUTH"
imgbuild pull.lua --set "REGISTRY=$BASIC" --pull
rc=$?
failed "a wrong password saved in auth.json fails"
said "the refusal names the file, its key and the user" \
  "imgbuild: pull.lua:1: from: $BASIC/base/busybox:oci: $BASIC rejected the credentials from $RUNTIME_AUTH auths[\"$BASIC\"] (UNAUTHORIZED: authentication required (HTTP 401)) for user alice"
login "$REG_PASSWORD" --username alice --password-stdin "$BASIC"
said "login replaces the entry in use rather than hiding it behind another file" \
  "imgbuild: logged in to $BASIC as alice (saved in $RUNTIME_AUTH)"
check "skopeo reads the replaced entry" skopeo_inspect
imgbuild logout "$BASIC"
said "logout removes it" "imgbuild: logged out of $BASIC (removed from $RUNTIME_AUTH)"

step "\$DOCKER_CONFIG: where skopeo login writes, and imgbuild login too"
export DOCKER_CONFIG=$work/docker
check "skopeo login" sh -c "printf '%s' '$REG_PASSWORD' | skopeo login --tls-verify=false -u alice --password-stdin $BASIC"
check "into \$DOCKER_CONFIG/config.json" jq -e --arg h "$BASIC" '.auths | has($h)' "$DOCKER_CONFIG/config.json"
check "imgbuild builds with it" imgbuild pull.lua --set "REGISTRY=$BASIC" --pull
imgbuild logout "$BASIC"
said "imgbuild logout removes it" "imgbuild: logged out of $BASIC (removed from $DOCKER_CONFIG/config.json)"
login "$REG_PASSWORD" --username alice --password-stdin "$BASIC"
said "imgbuild login writes it" "imgbuild: logged in to $BASIC as alice (saved in $DOCKER_CONFIG/config.json)"
check "skopeo reads it" skopeo_inspect
imgbuild logout "$BASIC"
unset DOCKER_CONFIG

step "\$REGISTRY_AUTH_FILE: the one file, for reading and writing"
export REGISTRY_AUTH_FILE=$work/ci/auth.json
login "$REG_PASSWORD" --username alice --password-stdin "$BASIC"
said "login writes it" "imgbuild: logged in to $BASIC as alice (saved in $REGISTRY_AUTH_FILE)"
check "skopeo reads it (its default lookup)" skopeo_inspect
check "skopeo reads it (--authfile)" skopeo_inspect --authfile "$REGISTRY_AUTH_FILE"
check "imgbuild reads it" imgbuild pull.lua --set "REGISTRY=$BASIC" --pull
unset REGISTRY_AUTH_FILE

step "a push's credential is checked before the build starts"
printf '%s\n' 'local reg = param("REGISTRY")' \
  'local app = from(reg .. "/base/busybox:oci"):run("sleep 30"):doctor { ignore = { "root" } }' \
  'push(app, reg .. "/team/app:1")' >"$work/ctx/slow.lua"
login "$REG_PASSWORD_BOB" --username bob --password-stdin "$TOKEN"
said "bob (pull only) logs in" "imgbuild: logged in to $TOKEN as bob (saved in $DOCKER_JSON)"
rm -rf "$XDG_DATA_HOME"
start=$(date +%s)
imgbuild slow.lua --set "REGISTRY=$TOKEN"
rc=$?
failed "bob's push is refused"
said "at the push line, naming the user and the source" \
  "imgbuild: slow.lua:3: push: push $TOKEN/team/app: the credentials of user bob for $TOKEN from $DOCKER_JSON auths[\"$TOKEN\"] do not allow pushing to team/app (its token server granted no push access) (checked before building)"
check "in seconds, not after the 30 s RUN step" test "$(seconds_since "$start")" -lt 20
check "writing nothing: no upload was started" sh -c "! grep -q '\"POST /v2/team/app/' '$REG_WORK/token/registry.log'"
check "before anything was pulled" test ! -e "$XDG_DATA_HOME/imgbuild/index.json" -o -z "$(ls "$XDG_DATA_HOME/imgbuild/blobs/sha256" 2>/dev/null)"
printf '%s\n' 'local reg = param("REGISTRY")' \
  'push(from(reg .. "/base/busybox:oci"):doctor { ignore = { "root" } }, reg .. "/team/app:2")' >"$work/ctx/quick.lua"
imgbuild quick.lua --set "REGISTRY=$TOKEN" --no-push
rc=$?
succeeded "--no-push checks nothing: bob's build goes through"
imgbuild logout "$TOKEN"
start=$(date +%s)
imgbuild slow.lua --set "REGISTRY=$TOKEN"
rc=$?
failed "no credential for the push"
check "is named at the push line before building" grep -q "^imgbuild: slow.lua:3: push: push $TOKEN/team/app: $TOKEN asks for a login and no credentials are configured for it .*: run imgbuild login $TOKEN (checked before building)$" "$work/last.err"
check "in seconds" test "$(seconds_since "$start")" -lt 20
login "$REG_PASSWORD" --username alice --password-stdin "$TOKEN" --debug
check "alice's push passes the check and goes through" imgbuild quick.lua --set "REGISTRY=$TOKEN" --debug
check "skopeo reads the pushed image" skopeo inspect --tls-verify=false "docker://$TOKEN/team/app:2"

step "no password in any output"
check "the canary passwords appear nowhere (stdout, stderr, --debug)" \
  sh -c "! grep -q -e '$REG_PASSWORD' -e '$REG_PASSWORD_BOB' '$work/all-output'"
check "and no base64 of one" sh -c "! grep -q -e '$(printf 'alice:%s' "$REG_PASSWORD" | base64 -w0)' '$work/all-output'"

finish
