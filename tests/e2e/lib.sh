# Shared by the end-to-end scripts: named checks, a running count, and the
# closing "N passed, N failed" line that CI reads.
passed=0
failed=0

step() { printf '\n== %s\n' "$*"; }

pass() {
  passed=$((passed + 1))
  printf '  ok    %s\n' "$1"
}

fail() {
  failed=$((failed + 1))
  printf '  FAIL  %s\n' "$1"
}

# check DESCRIPTION COMMAND...: runs COMMAND quietly; its output is shown only on failure.
check() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then
    pass "$what"
  else
    fail "$what"
    printf '%s\n' "$out" | tail -n 20 | sed 's/^/        /'
  fi
}

# check_cmd COMMAND...: runs an imgbuild command, keeping stdout and stderr in
# $work/last.out and $work/last.err for later checks.
check_cmd() {
  if "$@" >"$work/last.out" 2>"$work/last.err"; then
    pass "$(basename "$1") ${*:2}"
  else
    fail "$(basename "$1") ${*:2}"
    tail -n 20 "$work/last.err" | sed 's/^/        /'
  fi
}

# here DESCRIPTION COMMAND...: like check, but in this shell, so that the
# variables a command sets (tests/registry/lib.sh's REGISTRY_*, PROXY...) stay set.
here() {
  local what=$1
  shift
  if "$@" >"$work/here.log" 2>&1; then
    pass "$what"
  else
    fail "$what"
    tail -n 20 "$work/here.log" | sed 's/^/        /'
  fi
}

# outcome DESCRIPTION PATTERN: the last run's stdout ($work/last.out) has
# PATTERN; shows the end of its stderr when not.
outcome() {
  if grep -q -- "$2" "$work/last.out"; then
    pass "$1"
  else
    fail "$1"
    tail -n 15 "$work/last.err" | sed 's/^/        /'
  fi
}

finish() {
  printf '\n%d passed, %d failed\n' "$passed" "$failed"
  [[ $failed -eq 0 ]]
}

# run_image LAYOUT:NAME PORT URL PATTERN DESCRIPTION: unpacks the image with
# umoci, runs it under runc on the host network (crun refuses these machines'
# hybrid cgroups; runc works), waits for URL and checks that its body matches
# PATTERN. Needs $work and $container; the caller's cleanup kills the container.
run_image() {
  local image=$1 port=$2 url=$3 pattern=$4 what=$5 body=""
  if [[ $(id -u) -ne 0 ]]; then
    fail "$what: runc needs root here (run the suite as root)"
    return
  fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "$what: port $port is already in use on this machine"
    return
  fi
  # A fresh bundle each time: umoci refuses an existing one, and running the
  # previous image instead would pass for the wrong reason.
  rm -rf "$work/bundle"
  if ! umoci unpack --image "$image" "$work/bundle" >"$work/umoci.log" 2>&1; then
    fail "$what: umoci unpack failed"
    tail -n 5 "$work/umoci.log" | sed 's/^/        /'
    return
  fi
  jq '.process.terminal = false | .linux.namespaces |= map(select(.type != "network"))' \
    "$work/bundle/config.json" >"$work/bundle.json" && mv "$work/bundle.json" "$work/bundle/config.json"
  (cd "$work/bundle" && runc --root "$work/runc" run -d "$container" >"$work/runc.log" 2>&1 </dev/null)
  for _ in $(seq 50); do
    body=$(curl -sf --max-time 1 "$url" 2>/dev/null) && break
    sleep 0.1
  done
  check "$what" grep -q "$pattern" <<<"$body"
}

# stop_image: kills and deletes the container run_image started.
stop_image() {
  runc --root "$work/runc" kill "$container" KILL >/dev/null 2>&1
  runc --root "$work/runc" delete -f "$container" >/dev/null 2>&1
}
