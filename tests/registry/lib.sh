# shellcheck shell=bash disable=SC2034
# (SC2034: REGISTRY, PROXY and the like are set for the caller.)
# Real registries for end-to-end tests: docker-registry (distribution 2.8) with
# no auth, Basic auth or token auth, a fault-injecting proxy, and seeded base
# images. Everything listens on 127.0.0.1 only. See README.md for the API.
#
# Source it, then call registry_start and proxy_start directly, never inside
# $(...) or a pipeline: they record the processes they start and set variables
# in the calling shell, which a subshell would lose. Every function returns
# non-zero after printing what failed (and the log tail of a process that died).

REG_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REG_PASSWORD=${REG_PASSWORD:-canary-pw-7f3a9c}
REG_PASSWORD_BOB=${REG_PASSWORD_BOB:-canary-pw-bob-41d2}
REG_IDENTITY_TOKEN=${REG_IDENTITY_TOKEN:-canary-refresh-9b1e}
REG_TOKEN_TTL=${REG_TOKEN_TTL:-300}
REG_SERVICE=imgbuild-test-registry
REG_ISSUER=imgbuild-test-token-server

if [[ -n ${REG_WORK:-} ]]; then
  mkdir -p "$REG_WORK"
  _reg_own_work=0
else
  REG_WORK=$(mktemp -d /tmp/imgbuild-registry.XXXXXX)
  _reg_own_work=1
fi
REG_CACHE=${REG_CACHE:-$REG_WORK/cache}
_reg_pids=()
_reg_names=()
_reg_logs=()
_reg_proxies=0
_reg_prev_trap=""
_reg_shell=$BASHPID

# registry_cleanup: stops every process started here and removes $REG_WORK if
# this library created it. Runs from the EXIT trap; safe to call again, and
# under `set -e` (a process that is already gone is not a failure). Does
# nothing in a fork of the shell that sourced this library: bash may run the
# EXIT trap in a child that a signal ends before it has reset its traps, and
# the registries are not that child's to stop.
registry_cleanup() {
  local rc=$? i
  [[ $BASHPID == "$_reg_shell" ]] || return "$rc"
  for i in "${!_reg_pids[@]}"; do
    if ! kill -0 "${_reg_pids[i]}" 2>/dev/null; then
      _reg_report "${_reg_names[i]} (pid ${_reg_pids[i]}) had already exited" "${_reg_logs[i]}"
    fi
    kill "${_reg_pids[i]}" 2>/dev/null || true
  done
  for i in "${!_reg_pids[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "${_reg_pids[i]}" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "${_reg_pids[i]}" 2>/dev/null || true
    wait "${_reg_pids[i]}" 2>/dev/null || true
  done
  _reg_pids=() _reg_names=() _reg_logs=()
  if ((_reg_own_work)); then rm -rf "$REG_WORK"; fi
  return "$rc"
}

# The EXIT trap runs registry_cleanup, then whatever EXIT trap was set before.
# Checked again before each start, so a caller's `trap ... EXIT` set after
# sourcing gets chained too; a caller whose own trap calls registry_cleanup is
# left alone.
# shellcheck disable=SC2120 # $3 is from `set --`, not an argument
_reg_trap() {
  local current
  current=$(trap -p EXIT)
  [[ $current == *registry_cleanup* ]] && return
  _reg_prev_trap=""
  if [[ -n $current ]]; then
    eval "set -- $current" # trap -- 'COMMAND' EXIT
    _reg_prev_trap=$3
  fi
  trap 'registry_cleanup; eval "$_reg_prev_trap"' EXIT
}
_reg_trap

_reg_report() {
  printf 'tests/registry: %s\n' "$1" >&2
  if [[ -s ${2:-} ]]; then
    printf '  last lines of %s:\n' "$2" >&2
    tail -n 20 "$2" | sed 's/^/    /' >&2
  fi
}

# _reg_spawn NAME LOG COMMAND...: starts COMMAND in the background, tracked for
# cleanup. The parent-death signal stops it even if this shell is SIGKILLed
# (a CTest timeout) and never gets to run its trap.
_reg_spawn() {
  local name=$1 log=$2
  shift 2
  setpriv --pdeathsig TERM "$@" </dev/null >"$log" 2>&1 &
  _reg_pids+=("$!")
  _reg_names+=("$name")
  _reg_logs+=("$log")
}

# _reg_wait_for TEST...: polls TEST for up to 30 s (a loaded machine running
# tests side by side may be slow to start a server) while the last spawned
# process is alive.
_reg_wait_for() {
  local indexes=("${!_reg_pids[@]}") i rc
  i=${indexes[-1]}
  for _ in $(seq 300); do
    "$@" && return 0
    if ! kill -0 "${_reg_pids[i]}" 2>/dev/null; then
      wait "${_reg_pids[i]}"
      rc=$?
      _reg_report "${_reg_names[i]} (pid ${_reg_pids[i]}) exited with status $rc while starting" "${_reg_logs[i]}"
      unset "_reg_pids[i]" "_reg_names[i]" "_reg_logs[i]" # reported once is enough
      return 1
    fi
    sleep 0.1
  done
  _reg_report "${_reg_names[i]} (pid ${_reg_pids[i]}) did not come up within 30 s" "${_reg_logs[i]}"
  return 1
}

_reg_answers() {
  local code
  code=$(curl -sk -o /dev/null -w '%{http_code}' --max-time 1 "$1/v2/") && [[ $code == 200 || $code == 401 ]]
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# registry_start MODE [NAME]: MODE is open, basic, token or tls (open, served
# over https with a self-signed certificate for 127.0.0.1 whose CA file is
# $REG_WORK/NAME/tls.crt, also set as TLS_CA(_<NAME>)); NAME (default MODE,
# [A-Za-z0-9_]) tells several registries apart. Sets REGISTRY and
# REGISTRY_<NAME> to 127.0.0.1:PORT; token mode also sets TOKEN_REALM(_<NAME>),
# TOKEN_LOG(_<NAME>) and TOKEN_ISSUED(_<NAME>) (every token issued, one a
# line). Files live in $REG_WORK/NAME/.
registry_start() {
  local mode=${1:-} name=${2:-${1:-}} dir port auth=""
  case $mode in
    open | basic | token | tls) ;;
    *) _reg_report "registry_start: mode must be open, basic, token or tls, not '$mode'"; return 1 ;;
  esac
  if [[ ! $name =~ ^[A-Za-z0-9_]+$ || -e $REG_WORK/$name ]]; then
    _reg_report "registry_start: '$name' is not a usable registry name (taken, or not [A-Za-z0-9_]+)"
    return 1
  fi
  _reg_trap
  dir=$REG_WORK/$name
  mkdir -p "$dir/storage"
  case $mode in
    basic)
      if ! { htpasswd -cBb "$dir/htpasswd" alice "$REG_PASSWORD" && htpasswd -Bb "$dir/htpasswd" bob "$REG_PASSWORD_BOB"; } \
        >"$dir/htpasswd.log" 2>&1; then
        _reg_report "registry_start: htpasswd failed" "$dir/htpasswd.log"
        return 1
      fi
      auth="auth: {htpasswd: {realm: imgbuild-test, path: $dir/htpasswd}}"
      ;;
    token)
      # Passed to this process only: exported, they would also reach imgbuild
      # and could show up where a test looks for leaked passwords.
      _reg_spawn "token server of registry '$name'" "$dir/token-server.log" \
        env REG_PASSWORD="$REG_PASSWORD" REG_PASSWORD_BOB="$REG_PASSWORD_BOB" REG_IDENTITY_TOKEN="$REG_IDENTITY_TOKEN" python3 "$REG_LIB/token_server.py" --dir "$dir" --service "$REG_SERVICE" --issuer "$REG_ISSUER" \
        --expires-in "$REG_TOKEN_TTL" --log "$dir/token.log" --port-file "$dir/token.port" --tokens "$dir/tokens"
      _reg_wait_for test -s "$dir/token.port" || return 1
      TOKEN_REALM=http://127.0.0.1:$(<"$dir/token.port")/token TOKEN_LOG=$dir/token.log TOKEN_ISSUED=$dir/tokens
      printf -v "TOKEN_REALM_$name" '%s' "$TOKEN_REALM"
      printf -v "TOKEN_LOG_$name" '%s' "$TOKEN_LOG"
      printf -v "TOKEN_ISSUED_$name" '%s' "$TOKEN_ISSUED"
      : >"$TOKEN_LOG"
      auth="auth: {token: {realm: '$TOKEN_REALM', service: $REG_SERVICE, issuer: $REG_ISSUER, rootcertbundle: $dir/token-cert.pem}}"
      ;;
    tls)
      openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$dir/tls.key" -out "$dir/tls.crt" 2>/dev/null || return 1
      auth="  tls: {certificate: $dir/tls.crt, key: $dir/tls.key}"
      TLS_CA=$dir/tls.crt
      printf -v "TLS_CA_$name" '%s' "$TLS_CA"
      ;;
  esac
  port=$(free_port) || return 1
  cat >"$dir/config.yml" <<EOF
version: 0.1
log: {level: info, formatter: text}
storage:
  filesystem: {rootdirectory: $dir/storage}
  delete: {enabled: true}
http:
  addr: 127.0.0.1:$port
  secret: imgbuild-test-secret
$auth
EOF
  _reg_spawn "docker-registry '$name'" "$dir/registry.log" docker-registry serve "$dir/config.yml"
  local scheme=http
  [[ $mode == tls ]] && scheme=https
  _reg_wait_for _reg_answers "$scheme://127.0.0.1:$port" || return 1
  printf -v "REGISTRY_$name" '127.0.0.1:%s' "$port"
  REGISTRY=127.0.0.1:$port
}

# token_requests [JQ_FILTER]: the requests the last started token server
# answered, one JSON object a line.
token_requests() {
  jq -c "${1:-.}" "$TOKEN_LOG"
}

# proxy_start UPSTREAM [USER:PASSWORD]: starts fault_proxy.py in front of
# UPSTREAM (HOST:PORT). Sets PROXY (127.0.0.1:PORT), PROXY_OTHER
# (localhost:PORT2, the "other host" of redirect_other), PROXY_LOG and
# PROXY_RULES. The credentials are only used by the other listener, to fetch
# from an upstream that needs auth.
proxy_start() {
  local upstream=${1:?proxy_start UPSTREAM [USER:PASSWORD]} dir ports
  _reg_trap
  _reg_proxies=$((_reg_proxies + 1))
  dir=$REG_WORK/proxy$_reg_proxies
  mkdir -p "$dir"
  PROXY_RULES=$dir/rules.json PROXY_LOG=$dir/requests.log
  : >"$PROXY_LOG"
  _reg_spawn "fault proxy $_reg_proxies (to $upstream)" "$dir/proxy.log" \
    env FAULT_PROXY_UPSTREAM_CREDS="${2:-}" python3 "$REG_LIB/fault_proxy.py" \
    --upstream "$upstream" --rules "$PROXY_RULES" --log "$PROXY_LOG" --port-file "$dir/port"
  _reg_wait_for test -s "$dir/port" || return 1
  read -r -a ports <"$dir/port"
  PROXY=127.0.0.1:${ports[0]} PROXY_OTHER=localhost:${ports[1]}
}

# proxy_faults JSON: replaces the rules of the last started proxy (atomically,
# which also resets their counters). '[]' removes all faults.
proxy_faults() {
  if ! jq -e 'type == "array"' >/dev/null 2>&1 <<<"${1:-}"; then
    _reg_report "proxy_faults: rules must be a JSON list, got: ${1:-}"
    return 1
  fi
  printf '%s\n' "$1" >"$PROXY_RULES.tmp" && mv "$PROXY_RULES.tmp" "$PROXY_RULES"
}

# proxy_requests [JQ_FILTER]: the proxy's request log, one JSON object a line,
# e.g. proxy_requests 'select(.method == "PATCH") | .status'.
proxy_requests() {
  jq -c "${1:-.}" "$PROXY_LOG"
}

# proxy_reset: no faults and an empty request log.
proxy_reset() {
  proxy_faults '[]' && : >"$PROXY_LOG"
}

# _reg_seeds: the folder of the seed layouts for this machine's inputs, under
# $REG_CACHE: keyed by the scripts that build them, busybox and the Go
# toolchain, so a cache shared across runs (ctest points every test at one in
# the build folder) never serves an image that its inputs no longer make.
_reg_seeds() {
  local key
  key=$({ cat "$REG_LIB/base_images.sh" "$REG_LIB/golang_image.sh" /bin/busybox; go version; go env GOROOT; } 2>&1 |
    sha256sum | cut -c1-16)
  printf '%s\n' "$REG_CACHE/$key"
}

# _reg_build NAME COMMAND...: makes $seeds/NAME once: COMMAND writes it into a
# temporary folder given as its last argument, which then takes its place. A
# test sharing $REG_CACHE that finished first keeps its copy, so what a
# reader sees there is always whole and never changes.
_reg_build() {
  local name=$1 tmp=$seeds/$1.$$ log=$seeds/$1.$$.log
  shift
  [[ -d $seeds/$name ]] && return 0
  mkdir -p "$seeds"
  rm -rf "$tmp"
  if ! "$@" "$tmp" >"$log" 2>&1; then
    _reg_report "building the $name seed failed" "$log"
    return 1
  fi
  mv -T "$tmp" "$seeds/$name" 2>/dev/null || rm -rf "$tmp"
  rm -f "$log"
}

# _reg_golang_layout OUT: base_images.sh's layout plus the Go builder image,
# in OUT/oci (golang_image.sh adds to the layout it is given, so it gets a copy).
_reg_golang_layout() {
  mkdir -p "$1" && cp -a "$seeds/layout/oci" "$1/oci" && "$REG_LIB/golang_image.sh" "$1/oci"
}

# seed_prepare: builds every seed layout in $REG_CACHE now. ctest runs it as a
# fixture before the tests that seed registries, so that they share one build.
seed_prepare() {
  local seeds
  seeds=$(_reg_seeds)
  _reg_build layout "$REG_LIB/base_images.sh" && _reg_build golang _reg_golang_layout
}

# seed_images ADDR [USER:PASSWORD]: pushes base/busybox:oci, base/busybox:docker,
# base/multi:oci and base/multi:docker to the registry at ADDR.
seed_images() {
  local addr=${1:?seed_images ADDR [USER:PASSWORD]} seeds layout dest log
  dest=(--dest-tls-verify=false)
  [[ -n ${2:-} ]] && dest+=(--dest-creds "$2")
  seeds=$(_reg_seeds)
  _reg_build layout "$REG_LIB/base_images.sh" || return 1
  layout=$seeds/layout/oci
  log=$REG_WORK/seed.log
  if ! {
    skopeo copy --format oci "${dest[@]}" "oci:$layout:busybox" "docker://$addr/base/busybox:oci" &&
      skopeo copy --format v2s2 "${dest[@]}" "oci:$layout:busybox" "docker://$addr/base/busybox:docker" &&
      skopeo copy --all --format oci "${dest[@]}" "oci:$layout:multi" "docker://$addr/base/multi:oci" &&
      skopeo copy --all --format v2s2 "${dest[@]}" "oci:$layout:multi" "docker://$addr/base/multi:docker"
  } >"$log" 2>&1; then
    _reg_report "seed_images: pushing to $addr failed" "$log"
    return 1
  fi
}

# seed_golang ADDR NAME [USER:PASSWORD]: pushes the Go builder image
# (golang_image.sh: busybox plus this machine's Go toolchain) as ADDR/NAME, e.g.
# library/golang:1.22-alpine for recipes that say from "golang:1.22-alpine"
# and a build that mirrors docker.io to ADDR.
seed_golang() {
  local addr=${1:?seed_golang ADDR NAME [USER:PASSWORD]} name=${2:?seed_golang ADDR NAME} seeds dest log
  dest=(--dest-tls-verify=false)
  [[ -n ${3:-} ]] && dest+=(--dest-creds "$3")
  seeds=$(_reg_seeds)
  _reg_build layout "$REG_LIB/base_images.sh" && _reg_build golang _reg_golang_layout || return 1
  log=$REG_WORK/seed-golang.log
  if ! skopeo copy --format oci "${dest[@]}" "oci:$seeds/golang/oci:golang" "docker://$addr/$name" >"$log" 2>&1; then
    _reg_report "seed_golang: pushing to $addr failed" "$log"
    return 1
  fi
}
