# shellcheck shell=bash
# Shared by the fault suites (tests/faults/*.sh), on top of tests/e2e/lib.sh:
# an imgbuild run in the background that a test stops with a signal, and the
# checks that a store and a cache were left consistent.

# start_build ARGS...: runs imgbuild ARGS in the background; $build_pid, its
# output in $work/bg.out and $work/bg.err. Both files are emptied here, before
# the fork: the child truncates them only once the scheduler runs it, and a
# wait_until that meanwhile found the previous build's "| started" would
# signal that child, a copy of this shell that has not yet become imgbuild
# (bash then runs this shell's EXIT trap in it). $build_pid is emptied once
# the build has been waited for: bash reaps a child as soon as it ends, so
# its pid may soon be another process's, which an at_exit kill must not hit.
start_build() {
  : >"$work/bg.out"
  : >"$work/bg.err"
  "$IMGBUILD" "$@" >"$work/bg.out" 2>"$work/bg.err" &
  build_pid=$!
}

# wait_until DESCRIPTION TEST...: polls TEST for up to 120 s while the
# background build runs; when it never holds, fails the check, kills the
# build and returns 1. TEST must only hold on what this build made, never on
# what an earlier one left.
wait_until() {
  local what=$1
  shift
  for _ in $(seq 1200); do
    "$@" 2>/dev/null && return 0
    kill -0 "$build_pid" 2>/dev/null || break
    sleep 0.1
  done
  fail "$what (never happened)"
  tail -n 20 "$work/bg.err" | sed 's/^/        /'
  kill -KILL "$build_pid" 2>/dev/null
  wait "$build_pid" 2>/dev/null
  build_pid=""
  return 1
}

# stop_build SIGNAL: sends SIGNAL to the background build and waits for its
# end, 60 s at most (then it fails the check and kills it); $status is its
# exit status.
stop_build() {
  kill -"$1" "$build_pid"
  # A build that does not end on a signal is a failure, not a test that hangs.
  for _ in $(seq 600); do
    kill -0 "$build_pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$build_pid" 2>/dev/null; then
    fail "the build still ran 60 s after SIG$1"
    tail -n 20 "$work/bg.err" | sed 's/^/        /'
    kill -KILL "$build_pid"
  fi
  wait "$build_pid"
  status=$?
  build_pid=""
}

# finish_build: waits for the background build; $status is its exit status.
finish_build() {
  wait "$build_pid"
  status=$?
  build_pid=""
}

# no_process PATTERN: no process has PATTERN in its command line (zombies
# waiting for their reaper do not count).
no_process() {
  local pid
  for pid in $(pgrep -f -- "$1"); do
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) == Z ]] || return 1
  done
  return 0
}

# consistent WHAT STORE CACHE: the checks every fault ends with. Nothing
# temporary is left (run and host-build folders, half-unpacked roots, blobs
# and index files being written), index.json is a valid index, every blob the
# store names is whole, no lock is held, and `imgbuild images` reads the store.
# tmp/trash is no leftover: what a successful build's RUN steps left to be
# removed (see imgbuild(1), FILES), emptied by the next build.
consistent() {
  local what=$1 store=$2 cache=$3 lock
  check "$what: no temporary folder left in the cache" \
    sh -c "! find '$cache/tmp' -mindepth 1 -not -path '$cache/tmp/trash' -not -path '$cache/tmp/trash/*' 2>/dev/null | grep -q ."
  check "$what: no half-unpacked root left" sh -c "! find '$cache' -maxdepth 2 -name '.unpack-*' | grep -q ."
  check "$what: no partial file left in the store or the cache" \
    sh -c "! find '$store' '$cache' -name '*.tmp-*' | grep -q ."
  check "$what: index.json is a valid index" jq -e '.schemaVersion == 2 and (.manifests | type == "array")' \
    "$store/index.json"
  check "$what: every blob is whole (named by its digest)" blobs_whole "$store"
  for lock in "$store"/.imgbuild*.lock "$cache"/.imgbuild*.lock; do
    [[ -e $lock ]] && check "$what: lock ${lock#"$work"/} released" flock -n -x "$lock" true
  done
  check "$what: imgbuild images reads the store" "$IMGBUILD" images
}

# blobs_whole STORE: every file under blobs/sha256 hashes to its name.
blobs_whole() {
  local f
  for f in "$1"/blobs/sha256/*; do
    [[ -e $f ]] || continue
    [[ $(sha256sum "$f" | cut -d' ' -f1) == "$(basename "$f")" ]] || { echo "torn blob: $f"; return 1; }
  done
}
