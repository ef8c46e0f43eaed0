#!/usr/bin/env bash
# End to end: a hostile build context and hostile interrupts. Named pipes and
# sockets in the context are refused at once by hash(), :copy (a name, a glob,
# a folder) with their path in the context and the recipe line, never waited
# on, and one that .dockerignore excludes is no error. A build interrupted by
# a SIGINT delivered twice at once (to the process and then to its group, as
# GNU `timeout -s INT` does it), at any moment and under load, always ends
# with status 130, says so, and leaves no temporary folder and no process of
# its step behind.
#
#   tests/e2e/hostile_context.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
# shellcheck source=tests/faults/lib.sh
source "$(dirname "$0")/../faults/lib.sh"
e2e_workspace "$@"
build_pid=""
busy=()
at_exit '[[ -n $build_pid ]] && kill -KILL "$build_pid" 2>/dev/null; for p in "${busy[@]}"; do kill "$p" 2>/dev/null; done'
store=$XDG_DATA_HOME/imgbuild cache=$XDG_CACHE_HOME/imgbuild
ctx=$work/ctx
mkdir -p "$ctx/examples/x"
only_files=": a build context holds only files, folders and symlinks"

# refused WHAT RECIPE MESSAGE: building RECIPE ends within 20 s (no wait on a
# pipe) with status 1 and MESSAGE as its error.
refused() {
  local rc
  timeout -s KILL 20 "$IMGBUILD" "$2" >"$work/last.out" 2>"$work/last.err"
  rc=$?
  check "$1: exit status 1 at once (got $rc)" test "$rc" = 1
  check "$1: says what it is, where, at which line" grep -qxF "imgbuild: $3" "$work/last.err"
}

step "special files in the context are refused at once, with their path and the recipe line"
mkfifo "$ctx/examples/x/pipe"
printf 'data\n' >"$ctx/examples/x/file"
printf 'local tag = hash "examples/x/file"\nlocal other = hash "examples/x/pipe"\nimage("a", scratch)\n' \
  >"$ctx/hash.lua"
refused "hash() of a named pipe" "$ctx/hash.lua" \
  "$ctx/hash.lua:2: hash: examples/x/pipe is a named pipe$only_files"
for source in examples/x/pipe 'examples/x/*' examples .; do
  printf 'image("a", scratch\n  :copy("%s", "/in/"))\n' "$source" >"$ctx/copy.lua"
  refused ":copy(\"$source\") over a named pipe" "$ctx/copy.lua" \
    "$ctx/copy.lua:2: copy: examples/x/pipe is a named pipe$only_files"
done
rm "$ctx/examples/x/pipe"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "$ctx/examples/x/agent.sock"
printf 'image("a", scratch\n  :copy("examples", "/in/"))\n' >"$ctx/copy.lua"
refused ":copy of a folder holding a socket" "$ctx/copy.lua" \
  "$ctx/copy.lua:2: copy: examples/x/agent.sock is a socket$only_files"

step "a special file .dockerignore excludes is not part of the context: no error"
mkfifo "$ctx/examples/x/pipe"
printf 'examples/x/pipe\n**/*.sock\n' >"$ctx/.dockerignore"
check_cmd timeout -s KILL 20 "$IMGBUILD" "$ctx/copy.lua"
outcome "the folder is copied without them" "^a  sha256:"
refused "hash() of an ignored pipe" "$ctx/hash.lua" \
  "$ctx/hash.lua:2: hash: no such file in the build context: examples/x/pipe"
rm -f "$ctx/.dockerignore" "$ctx/examples/x/pipe" "$ctx/examples/x/agent.sock"

step "Ctrl-C delivered twice at once, at any moment, under load: exit 130, a message, nothing left behind"
# A RUN step that never ends by itself, its sleep named per round.
cp /bin/busybox "$ctx/busybox"
cat >"$ctx/run.lua" <<'EOF'
image("slow", scratch
  :copy("busybox", "/bin/busybox")
  :run { "/bin/busybox", "sh", "-c", "echo started; /bin/busybox sleep " .. param("SECONDS", "0") .. " & wait" })
EOF
# Load: a busy loop per core, as a parallel job on a CI machine makes.
for _ in $(seq "$(nproc)"); do
  (while :; do :; done) &
  busy+=($!)
done
# Each background build a process group of its own, as a job in a shell is.
set -m
# left_behind ROUND: what the interrupted build of ROUND left, if anything.
left_behind() {
  find "$cache/tmp" -mindepth 1 -maxdepth 1 2>/dev/null
  find "$store" "$cache" -name '*.tmp-*' -o -name '.unpack-*' 2>/dev/null
  no_process "sleep $((86500 + $1))" || echo "the step's process: $(pgrep -af "sleep $((86500 + $1))")"
}
# is_imgbuild: the background build has become imgbuild (is past its exec)
# and catches SIGINT (bit 2 of SigCgt): before main installs its handlers, a
# sanitized binary under load spends a while loading, and SIGINT then ends
# it as it ends any program.
is_imgbuild() {
  [[ $(readlink "/proc/$build_pid/exe") == "$IMGBUILD" ]] &&
    (($(printf '%d' "0x$(awk '/^SigCgt:/ {print $2}' "/proc/$build_pid/status")") & 2))
}
rounds=20 clean=0
for round in $(seq "$rounds"); do
  if ((round % 4 == 0)); then
    # The real thing: timeout signals the build, then its own process group.
    timeout --preserve-status -s INT "1.$((RANDOM % 10))" \
      "$IMGBUILD" "$ctx/run.lua" --set SECONDS=$((86500 + round)) >"$work/bg.out" 2>"$work/bg.err"
    status=$?
  else
    start_build "$ctx/run.lua" --set SECONDS=$((86500 + round))
    # Past exec and the handlers' installation, then: while the step runs
    # (odd rounds), or at any moment of the build before it (even rounds).
    wait_until "round $round: imgbuild runs" is_imgbuild || continue
    if ((round % 2)); then
      wait_until "round $round: the step started" grep -q "| started" "$work/bg.err" || continue
    else
      sleep "0.$((1 + RANDOM % 9))"
    fi
    kill -INT "$build_pid"
    kill -INT -- "-$build_pid"
    finish_build
  fi
  # The step's processes are killed with SIGKILL; their reaping may take a moment.
  for _ in $(seq 50); do [[ -z $(left_behind "$round") ]] && break; sleep 0.1; done
  what=$(left_behind "$round")
  if [[ $status == 130 ]] && grep -q "^imgbuild: interrupted by SIGINT; temporary files removed" "$work/bg.err" &&
    [[ -z $what ]]; then
    clean=$((clean + 1))
  else
    fail "round $round: exit status $status, cleanup $(grep -c 'interrupted by' "$work/bg.err") time(s)"
    { tail -n 5 "$work/bg.err"; printf '%s\n' "$what"; } | sed 's/^/        /'
    # Each round is judged on what it left itself.
    rm -rf "${cache:?}/tmp"/*
  fi
done
set +m
check "every round ended cleanly ($clean of $rounds)" test "$clean" = "$rounds"
for p in "${busy[@]}"; do kill "$p" 2>/dev/null; done
busy=()
consistent "after the interrupted builds" "$store" "$cache"

finish
