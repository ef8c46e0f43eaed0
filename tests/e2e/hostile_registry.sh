#!/usr/bin/env bash
# Tier 3: imgbuild against registries that attack it (tests/registry/hostile_registry.py,
# every listener on a loopback address): credentials by exact host, redirects and
# upload locations to another host, to plain HTTP or to an internal address, and
# registries that trickle or hang. Each case asserts the error and where the
# test's canary credentials went, from the requests the fake registries record.
#
#   tests/e2e/hostile_registry.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
CANARY=canary-hostile-pw-5e1d
ARCH=$HOST_ARCH
cd "$work" || exit 1
printf 'image("pulled", from(param("REF")))\n' >pull.lua
echo "pushed by the test" >f.txt
printf 'image("small", scratch:copy("f.txt", "/f.txt"))\n' >small.lua

# hostile NAME CONFIG: starts a hostile registry from the JSON CONFIG (see
# hostile_registry.py), serving an image of its own; sets
# PORT_<NAME>_<LISTENER> for each listener. Its request log is $work/NAME/log.
# Call it directly (it sets variables).
hostile() {
  local name=$1 dir=$work/$1 pid listener port
  mkdir -p "$dir"
  printf '%s\n' "$2" >"$dir/config.json"
  python3 "$ROOT/tests/registry/hostile_registry.py" --config "$dir/config.json" --log "$dir/log" \
    --port-file "$dir/ports" --seed "$name" >"$dir/server.log" 2>&1 &
  pid=$!
  at_exit "kill $pid 2>/dev/null"
  for _ in $(seq 100); do
    [[ -s $dir/ports ]] && break
    sleep 0.1
  done
  [[ -s $dir/ports ]] || { cat "$dir/server.log"; return 1; }
  while read -r listener port; do printf -v "PORT_${name}_${listener}" %s "$port"; done <"$dir/ports"
}
# run [NAME=VALUE...] ARGS...: imgbuild ARGS, with those variables too (their
# names may be computed); outputs in last.out and last.err, kept for the canary
# check; $status and $elapsed (seconds) after it.
run() {
  local start=$SECONDS assignments=()
  while [[ $1 =~ ^[A-Za-z_][A-Za-z0-9_]*= ]]; do
    assignments+=("$1")
    shift
  done
  env "${assignments[@]}" "$IMGBUILD" "$@" >"$work/last.out" 2>"$work/last.err"
  status=$?
  elapsed=$((SECONDS - start))
  cat "$work/last.out" "$work/last.err" >>"$work/all-output"
}
# refused WHAT PATTERN: the last run failed, its error matching PATTERN (grep -E).
refused() {
  if [[ $status -ne 0 ]] && grep -qE -- "$2" "$work/last.err"; then
    pass "$1"
  else
    fail "$1 (status $status)"
    tail -n 5 "$work/last.err" | sed 's/^/        /'
  fi
}
# succeeded WHAT: the last run succeeded.
succeeded() {
  if [[ $status -eq 0 ]]; then pass "$1"; else
    fail "$1"
    tail -n 5 "$work/last.err" | sed 's/^/        /'
  fi
}
# requests NAME JQ_FILTER: how many requests of registry NAME's log match the filter.
requests() {
  if [[ -s $work/$1/log ]]; then jq -s "map(select($2)) | length" "$work/$1/log"; else echo 0; fi
}
# none NAME JQ_FILTER WHAT: no request of NAME's log matches.
none() { check "$3" test "$(requests "$1" "$2")" = 0; }
# some NAME JQ_FILTER WHAT: at least one request of NAME's log matches.
some() { check "$3" test "$(requests "$1" "$2")" -gt 0; }

step "credentials by exact host: a variable meant for one host never reaches another"
here "a registry asking for alice's password" hostile team \
  "{\"architecture\": \"$ARCH\", \"listeners\": [{\"name\": \"main\", \"auth\": \"alice:$CANARY\"}]}"
P=$PORT_team_main
export IMGBUILD_TESTING_RESOLVE="team-registry.test:$P:127.0.0.1 team.registry.test:$P:127.0.0.1"
export IMGBUILD_INSECURE_REGISTRIES="team-registry.test:$P,team.registry.test:$P"
run "IMGBUILD_REGISTRY_AUTH_TEAM_REGISTRY_TEST_$P=alice:$CANARY" pull.lua --set "REF=team-registry.test:$P/app:1"
refused "the old-form variable is refused for team-registry.test, naming both hosts" \
  "IMGBUILD_REGISTRY_AUTH_TEAM_REGISTRY_TEST_$P could be meant for team\.registry\.test:$P as well as team-registry\.test:$P, so it is not used"
run "IMGBUILD_REGISTRY_AUTH_TEAM_REGISTRY_TEST_$P=alice:$CANARY" pull.lua --set "REF=team.registry.test:$P/app:1"
refused "and for team.registry.test too: it could have been meant for either" \
  "could be meant for team-registry\.test:$P as well as team\.registry\.test:$P"
none team '.authorization != null' "no Authorization header was sent by either"
IMGBUILD_REGISTRY_AUTH_TEAM="team.registry.test:$P=alice:$CANARY" run pull.lua --set "REF=team-registry.test:$P/app:1"
refused "a credential named for team.registry.test is not sent to team-registry.test" \
  "team-registry\.test:$P asks for a login and no credentials are configured for it"
none team '.authorization != null' "still no Authorization header"
IMGBUILD_REGISTRY_AUTH_TEAM="TEAM.registry.test:$P=alice:$CANARY" run pull.lua --set "REF=team.registry.test:$P/app:1"
succeeded "the same variable logs in to team.registry.test (host names match whatever their case)"
some team '.authorization != null' "with an Authorization header"
IMGBUILD_REGISTRY_AUTH_TEAM="team.registry.test:$P=alice:wrong-$CANARY" run pull.lua --pull --set "REF=team.registry.test:$P/app:1"
refused "a refused password names the variable it came from" \
  "team\.registry\.test:$P rejected the credentials from IMGBUILD_REGISTRY_AUTH_TEAM \("
IMGBUILD_REGISTRY_AUTH_A="team.registry.test:$P=alice:$CANARY" IMGBUILD_REGISTRY_AUTH_B="team.registry.test:$P=bob:$CANARY" \
  run pull.lua --pull --set "REF=team.registry.test:$P/app:1"
refused "two variables giving different credentials for one host are refused" \
  "IMGBUILD_REGISTRY_AUTH_A and IMGBUILD_REGISTRY_AUTH_B both give credentials for team\.registry\.test:$P"
unset IMGBUILD_TESTING_RESOLVE IMGBUILD_INSECURE_REGISTRIES

step "a download redirected or an upload sent to another host gets no credentials"
here "a registry with a storage host beside it" hostile moved "{\"architecture\": \"$ARCH\", \"listeners\": [
  {\"name\": \"main\", \"auth\": \"alice:$CANARY\"}, {\"name\": \"store\"}],
  \"rules\": [{\"method\": \"GET\", \"path\": \"/blobs/sha256:\", \"action\": {\"redirect\": \"http://localhost:{port:store}/\"}},
              {\"method\": \"POST\", \"path\": \"/blobs/uploads/\", \"action\": {\"upload_location\": \"http://localhost:{port:store}/upload/1?_state=CANARY-state\"}}]}"
M=127.0.0.1:$PORT_moved_main
export IMGBUILD_REGISTRY_AUTH_MOVED="$M=alice:$CANARY"
run pull.lua --set "REF=$M/app:1" -o "oci:$work/moved-out"
succeeded "the pull follows the redirect to the storage host"
some moved '.listener == "store" and .method == "GET"' "the storage host served the blobs"
none moved '.listener == "store" and .authorization != null' "without ever seeing an Authorization header"
some moved '.listener == "main" and .authorization != null' "while the registry itself got one"
run small.lua
succeeded "a small image to push"
run push small "$M/team/small:1"
succeeded "the push sends its blobs to the upload location on the other host"
some moved '.listener == "store" and .method == "PUT"' "the storage host received the uploads"
none moved '.listener == "store" and .authorization != null' "without an Authorization header"
unset IMGBUILD_REGISTRY_AUTH_MOVED

step "an https registry cannot send this client to plain HTTP"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
here "an https registry and a plain-HTTP host beside it" hostile tls "{\"architecture\": \"$ARCH\", \"listeners\": [
  {\"name\": \"main\", \"auth\": \"alice:$CANARY\", \"tls\": {\"cert\": \"$work/tls.crt\", \"key\": \"$work/tls.key\"}},
  {\"name\": \"plain\"}],
  \"rules\": [{\"method\": \"GET\", \"path\": \"/blobs/sha256:\", \"action\": {\"redirect\": \"http://127.0.0.1:{port:plain}/\"}},
              {\"method\": \"POST\", \"path\": \"/blobs/uploads/\", \"action\": {\"upload_location\": \"http://127.0.0.1:{port:plain}/upload/1?_state=CANARY-state-token\"}}]}"
T=127.0.0.1:$PORT_tls_main Q=127.0.0.1:$PORT_tls_plain
export SSL_CERT_FILE=$work/tls.crt IMGBUILD_REGISTRY_AUTH_TLS="$T=alice:$CANARY"
run pull.lua --set "REF=$T/app:1" -o "oci:$work/tls-out"
refused "a blob redirect from https to http is refused, naming both URLs" \
  "refused to follow https://$T/v2/app/blobs/sha256:[0-9a-f]{64} to the plain-HTTP http://$Q/v2/app/blobs/sha256:[0-9a-f]{64} \(the registry is reached over https\)"
run push small "$T/team/small:1"
refused "an upload location on plain HTTP is refused, naming both" \
  "refused to follow https://$T to the plain-HTTP http://$Q/upload/1 \(the registry is reached over https\)"
check "the upload location's query (its token) is not shown" bash -c "! grep -q CANARY-state-token '$work/last.err'"
none tls '.listener == "plain"' "the plain-HTTP host received no request at all"
unset SSL_CERT_FILE IMGBUILD_REGISTRY_AUTH_TLS

step "a public registry cannot send this client to an internal address"
# 127.0.0.2 plays a public address; names resolve through the test hook.
here "a 'public' registry and an internal host" hostile inside "{\"architecture\": \"$ARCH\", \"listeners\": [
  {\"name\": \"main\", \"address\": \"127.0.0.2\"}, {\"name\": \"inner\"}],
  \"rules\": [{\"method\": \"GET\", \"path\": \"/blobs/sha256:\", \"action\": {\"redirect\": \"http://metadata.example.com:{port:inner}/\"}},
              {\"method\": \"POST\", \"path\": \"/blobs/uploads/\", \"action\": {\"upload_location\": \"http://127.0.0.1:{port:inner}/upload/1\"}}]}"
R=public.registry.test:$PORT_inside_main I=$PORT_inside_inner
export IMGBUILD_TESTING_PUBLIC_ADDRESSES=127.0.0.2 IMGBUILD_INSECURE_REGISTRIES=$R
export IMGBUILD_TESTING_RESOLVE="$R:127.0.0.2 metadata.example.com:$I:127.0.0.1"
run pull.lua --set "REF=$R/app:1" -o "oci:$work/inside-out"
refused "a redirect to a public-looking name that resolves to loopback is refused, with the address" \
  "GET http://metadata\.example\.com:$I/v2/app/blobs/sha256:[0-9a-f]{64}: refused: the registry $R \(at a public address\) sent this client here, to the internal address 127\.0\.0\.1 \(IMGBUILD_ALLOW_PRIVATE_REDIRECTS=1 allows it\)"
run push small "$R/team/small:1"
refused "an upload location on a loopback address is refused" \
  "PUT http://127\.0\.0\.1:$I/upload/1: refused: the registry $R \(at a public address\) sent this client here, to the internal address 127\.0\.0\.1"
none inside '.listener == "inner"' "the internal host received no request"
IMGBUILD_ALLOW_PRIVATE_REDIRECTS=1 run pull.lua --set "REF=$R/app:1" -o "oci:$work/inside-out"
succeeded "IMGBUILD_ALLOW_PRIVATE_REDIRECTS=1 lets the pull follow it"
some inside '.listener == "inner"' "and then the internal host serves it"
IMGBUILD_ALLOW_PRIVATE_REDIRECTS=yes run pull.lua --set "REF=$R/app:1"
refused "a malformed IMGBUILD_ALLOW_PRIVATE_REDIRECTS is a usage error" "IMGBUILD_ALLOW_PRIVATE_REDIRECTS='yes': expected 1 or 0"
here "a 'public' registry whose name then resolves to loopback" hostile rebind "{\"architecture\": \"$ARCH\", \"listeners\": [
  {\"name\": \"main\", \"address\": \"127.0.0.2\"}, {\"name\": \"inner\", \"port_of\": \"main\"}],
  \"rules\": [{\"method\": \"GET\", \"path\": \"/manifests/\", \"action\": {\"close_listener\": true}}]}"
B=rebind.registry.test:$PORT_rebind_main
# Its name stands for both addresses: once 127.0.0.2 stops listening, curl connects to 127.0.0.1.
export IMGBUILD_INSECURE_REGISTRIES=$B IMGBUILD_TESTING_RESOLVE="$B:127.0.0.2,127.0.0.1"
run pull.lua --set "REF=$B/app:1" -o "oci:$work/rebind-out"
refused "a registry's own name resolving anew to an internal address is refused" \
  "GET http://$B/v2/app/blobs/sha256:[0-9a-f]{64}: refused: the registry $B, reached at a public address before, now resolves to the internal address 127\.0\.0\.1"
some rebind '.listener == "main" and (.path | test("/manifests/"))' "the manifest came from the public address"
none rebind '.listener == "inner"' "and the internal address received no request"
unset IMGBUILD_TESTING_PUBLIC_ADDRESSES IMGBUILD_INSECURE_REGISTRIES IMGBUILD_TESTING_RESOLVE

step "a registry that trickles or hangs does not hold a pull"
here "a registry that sends a layer 1 byte every 0.2 s" hostile slow "{\"architecture\": \"$ARCH\", \"listeners\": [{\"name\": \"main\"}],
  \"rules\": [{\"method\": \"GET\", \"path\": \"/blobs/sha256:\", \"action\": {\"trickle\": [1, 0.2]}}]}"
S=127.0.0.1:$PORT_slow_main
IMGBUILD_REGISTRY_MIN_RATE=1KB/1s run pull.lua --set "REF=$S/app:1" -o "oci:$work/slow-out"
refused "the stalled layer is cut, naming the registry, the blob and the bytes so far" \
  "$S/app: blob sha256:[0-9a-f]{64}: GET http://$S/v2/app/blobs/sha256:[0-9a-f]{64}: stalled: [0-9]+ bytes in the last [0-9.]+ m?s, under the minimum of 1000 per 1 s \([0-9]+ of [0-9]+ bytes moved\); IMGBUILD_REGISTRY_MIN_RATE sets the minimum"
check "within seconds, retries included ($elapsed s)" test "$elapsed" -lt 40
here "a registry that sends 4 KiB every 50 ms" hostile steady "{\"architecture\": \"$ARCH\", \"listeners\": [{\"name\": \"main\"}],
  \"rules\": [{\"method\": \"GET\", \"path\": \"/blobs/sha256:\", \"action\": {\"trickle\": [4096, 0.05]}}]}"
D=127.0.0.1:$PORT_steady_main
IMGBUILD_REGISTRY_MIN_RATE=0/1s IMGBUILD_REGISTRY_TRANSFER_TIMEOUT=1s run pull.lua --set "REF=$D/app:1" -o "oci:$work/steady-out"
refused "a transfer past its overall deadline is cut, however steadily it moves" \
  "$D/app: blob sha256:[0-9a-f]{64}: GET http://$D/v2/app/blobs/sha256:[0-9a-f]{64}: did not finish in time \([0-9]+ of [0-9]+ bytes moved\); IMGBUILD_REGISTRY_TIMEOUT and IMGBUILD_REGISTRY_TRANSFER_TIMEOUT set the deadlines"
check "after that deadline, not retried ($elapsed s)" test "$elapsed" -lt 10
run pull.lua --pull --set "REF=$D/app:1" -o "oci:$work/steady-out"
succeeded "with the default limits, a slow but moving registry is waited for"
here "a registry that answers manifests after 5 s" hostile hang "{\"architecture\": \"$ARCH\", \"listeners\": [{\"name\": \"main\"}],
  \"rules\": [{\"method\": \"GET\", \"path\": \"/manifests/\", \"action\": {\"delay\": 5}}]}"
H=127.0.0.1:$PORT_hang_main
IMGBUILD_REGISTRY_TIMEOUT=1s run pull.lua --set "REF=$H/app:1"
refused "a request past IMGBUILD_REGISTRY_TIMEOUT is cut" \
  "$H/app:1: GET http://$H/v2/app/manifests/1: did not finish in time"
check "at once ($elapsed s)" test "$elapsed" -lt 5
IMGBUILD_REGISTRY_MIN_RATE=fast run pull.lua --set "REF=$H/app:1"
refused "a malformed IMGBUILD_REGISTRY_MIN_RATE is a usage error" \
  "IMGBUILD_REGISTRY_MIN_RATE='fast': expected SIZE/DURATION, such as 512KB/60s"

step "no output ever held a credential"
check "the canary password appears in no output" bash -c "! grep -q '$CANARY' '$work/all-output'"
check "nor any upload token" bash -c "! grep -q 'CANARY-state' '$work/all-output'"

finish
