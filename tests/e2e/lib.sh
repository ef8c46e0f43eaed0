# shellcheck shell=bash disable=SC2034
# (SC2034: e2e_workspace sets IMGBUILD, ROOT, VALIDATE, HOST_ARCH and the like for the caller.)
# Shared by the end-to-end scripts: the workspace every script starts with,
# named checks, a running count, and the closing "N passed, N failed" line
# that CI reads.
passed=0
failed=0

# e2e_workspace IMGBUILD REPO_ROOT: the start of every script, which ctest
# calls with these two arguments. Sets IMGBUILD, ROOT, VALIDATE (the shared
# OCI validator; valid_image runs it), HOST_MACHINE and HOST_ARCH (this
# machine's CPU as uname and as OCI name it, which binaries built here
# carry), $work (a fresh folder, removed on exit unless KEEP is set)
# and $container (a runc container name for run_image); sources
# tests/registry/lib.sh with its files under $work/reg; points the store, the
# cache and DOCKER_CONFIG (empty: no credentials of this machine's user) into
# $work, so that nothing a test does reaches the machine's own. The folder
# and container names come from the script's: tests/faults/full_disk.sh gets
# /tmp/imgbuild-faults-full-disk.XXXXXX. A script with more to undo on exit
# adds it with at_exit.
e2e_workspace() {
  local name
  name=$(basename "$(dirname "$0")")-$(basename "$0" .sh)
  name=${name//_/-}
  IMGBUILD=$(realpath "$1")
  ROOT=$(realpath "$2")
  # OCI_VALIDATE: where the validator is when the checkout has no ../shared
  # beside it (a git worktree).
  VALIDATE=${OCI_VALIDATE:-"$ROOT/../shared/tools/oci_validate.py"}
  HOST_MACHINE=$(uname -m)
  HOST_ARCH=$(oci_architecture "$HOST_MACHINE")
  work=$(mktemp -d "/tmp/imgbuild-$name.XXXXXX")
  container="imgbuild-$name-$$"
  _e2e_at_exit=()
  _e2e_shell=$BASHPID
  trap _e2e_cleanup EXIT
  REG_WORK="$work/reg"
  # shellcheck source=tests/registry/lib.sh
  source "$ROOT/tests/registry/lib.sh"
  export XDG_DATA_HOME="$work/data" XDG_CACHE_HOME="$work/cache" DOCKER_CONFIG="$work/docker"
  mkdir -p "$DOCKER_CONFIG"
}

# oci_architecture MACHINE: the OCI (and Go) name of a uname -m machine name,
# as imgbuild's Platform::host() gives it.
oci_architecture() {
  case $1 in
    x86_64) echo amd64 ;;
    aarch64 | arm64) echo arm64 ;;
    armv7* | armv6*) echo arm ;;
    i?86) echo 386 ;;
    *) echo "$1" ;;
  esac
}

# skip REASON: ends a script that cannot run here with status 77, which ctest
# (SKIP_RETURN_CODE) shows as skipped: a missing tool or privilege never
# passes for a test that did not run.
skip() {
  printf 'SKIPPED: %s\n' "$*"
  exit 77
}

# The attack scripts (hostile_*.sh) check what a root step may not do, with
# static C helpers run inside the steps: without root or cc they cannot run.
attacks_need_root_and_cc() {
  [[ $(id -u) -eq 0 ]] || skip "the attacks need root: they check what a root step may not do"
  command -v cc >/dev/null || skip "needs cc"
}

# busybox_root DIR APPLET...: a root of this machine's static busybox in DIR,
# the APPLETs as symlinks to it in bin/, and a tmp/, for images built with
# scratch:copy.
busybox_root() {
  local dir=$1 applet
  shift
  mkdir -p "$dir/bin" "$dir/tmp"
  cp /bin/busybox "$dir/bin/busybox"
  for applet in "$@"; do ln -s busybox "$dir/bin/$applet"; done
}

# build_recipe NAME RECIPE [OPTION...]: writes RECIPE to $ctx/NAME.lua and
# builds it there with OPTIONs, for 120 s at most; its output is in
# $work/NAME.out and $work/NAME.err, its status the function's.
build_recipe() {
  local name=$1 recipe=$2
  shift 2
  printf '%s\n' "$recipe" >"$ctx/$name.lua"
  (cd "$ctx" && timeout 120 "$IMGBUILD" "$name.lua" "$@" >"$work/$name.out" 2>"$work/$name.err")
}

# valid_image LAYOUT: the shared OCI validator and what imgbuild promises
# beyond the spec (tests/oci/check_promises.py) both pass LAYOUT, a layout
# imgbuild wrote (another tool's copy gets the validator alone); what either
# found is the output.
valid_image() {
  local out
  out=$(python3 "$VALIDATE" "$1" 2>&1)
  grep -qx OK <<<"$out" || { printf '%s\n' "$out"; return 1; }
  python3 "$ROOT/tests/oci/check_promises.py" "$1"
}

# share_go_cache: host Go builds (go.build steps) use this machine's Go build
# cache, so the compiled standard library is reused. Only for scripts that do
# not time or interrupt a compilation. Go keeps its cache under
# $XDG_CACHE_HOME, which e2e_workspace points at the test's own folder: the
# machine's is where Go puts it without that.
share_go_cache() {
  GOCACHE=$(env -u XDG_CACHE_HOME go env GOCACHE)
  export GOCACHE
}

# at_exit COMMAND: run on exit (as one eval'd string), before $work is removed;
# the last one added runs first.
at_exit() { _e2e_at_exit=("$*" "${_e2e_at_exit[@]}"); }

# _e2e_cleanup: the EXIT trap, in the script's own shell only. A fork of it
# (an `&` child before its exec, a $(...)) that a signal ends before bash
# has reset its traps runs this trap too (bash 5.2 does, nearly every time
# when SIGTERM comes right after the fork); it must leave $work alone.
_e2e_cleanup() {
  local command
  [[ $BASHPID == "$_e2e_shell" ]] || return 0
  for command in "${_e2e_at_exit[@]}"; do eval "$command"; done
  stop_image
  [[ -n ${KEEP:-} ]] || rm -rf "$work"
}

# step TITLE: a section header, with the seconds since the script started, so
# that a slow section shows in the log.
# screen_until SOCKET FILE PATTERN [PANE]: captures the tmux pane (PANE, or
# the server's current one) into FILE until a line matches PATTERN (grep -E)
# or a minute has passed; the checks that follow read FILE either way.
screen_until() {
  local target=()
  [[ -n ${4:-} ]] && target=(-t "$4")
  for _ in $(seq 300); do
    tmux -S "$1" capture-pane "${target[@]}" -p -J -S - >"$2" 2>/dev/null
    grep -qE "$3" "$2" && return 0
    sleep 0.2
  done
}

step() { printf '\n== %s  (at %ds)\n' "$*" "$SECONDS"; }

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

# other_checkout DIR: another checkout of this tree's commit in DIR, with the
# same origin (images name both), holding the examples as this tree has them;
# outside a git checkout, a folder with the examples.
other_checkout() {
  if git -C "$ROOT" rev-parse -q --verify HEAD >/dev/null 2>&1; then
    git clone -q "$ROOT" "$1"
    if origin=$(git -C "$ROOT" config --get remote.origin.url); then
      git -C "$1" remote set-url origin "$origin"
    else
      git -C "$1" remote remove origin
    fi
  else
    mkdir -p "$1"
  fi
  rm -rf "$1/examples"
  cp -r "$ROOT/examples" "$1/examples"
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
  # Up to 30 s: with tests running side by side, a loaded machine may take a
  # while to start the container; the loop ends as soon as it answers.
  for _ in $(seq 300); do
    body=$(curl -sf --max-time 1 "$url" 2>/dev/null) && break
    sleep 0.1
  done
  check "$what" grep -q "$pattern" <<<"$body"
}

# stop_image: kills and deletes the container run_image started, if any.
stop_image() {
  [[ -d $work/runc ]] || return 0
  runc --root "$work/runc" kill "$container" KILL >/dev/null 2>&1
  runc --root "$work/runc" delete -f "$container" >/dev/null 2>&1
}
