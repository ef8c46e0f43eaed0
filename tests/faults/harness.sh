#!/usr/bin/env bash
# Faults in the test harness itself: signals that reach a fork of the test
# shell instead of imgbuild. bash runs the test shell's EXIT trap in a child
# that a signal ends between its fork and its exec, so that trap's cleanup
# must do nothing there; and a fault test signals its background build only
# on output that build wrote, never on what the previous build left.
#
#   tests/faults/harness.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
# Every shell that runs the EXIT trap notes its pid, then the harness cleans
# up as usual (registry_start chains this trap after its own).
trap 'echo "$BASHPID" >>"$work/exit-traps"; _e2e_cleanup' EXIT

step "a fork of the test shell ended by SIGTERM before its exec leaves the work folder and the registries alone"
here "open registry" registry_start open
touch "$work/marker"
# SIGTERM right after the fork lands before the child has reset its traps
# nearly every time (bash 5.2.15: 296 of 300); 20 tries. What such a child
# prints (bash's "wait_for: No record of process") goes to a log. A SIGTERM
# that lands just before the exec is sometimes lost (bash notes it, then
# execs): the sleep is short, so such a child ends on its own and the wait
# cannot hang (a sleep of a day did, under the sanitized suite's load).
{
  for _ in $(seq 20); do
    sleep 1 &
    kill -TERM "$!"
    wait "$!"
  done
} 2>"$work/forks.log"
check "the work folder is still there" test -e "$work/marker"
check "the registry still answers" curl -sf --max-time 5 -o /dev/null "http://$REGISTRY/v2/"
check "a fork ran the EXIT trap (else this bash shows no race and the case proves nothing)" \
  test -s "$work/exit-traps"

step "start_build empties the previous build's output before it starts the next one; its pid is forgotten after the wait"
printf 'x | started\nimgbuild: interrupted by SIGINT\n' >"$work/bg.err"
start_build --version
# Read at once, with builtins only: no fork here lets the child run first.
first=""
IFS= read -r first <"$work/bg.err"
check "bg.err holds nothing of the previous build ($first)" test -z "$first"
finish_build
check "the build ran to its end" test "$status" = 0
# bash has reaped it: its pid may name another process before the at_exit kill.
check "its pid is forgotten once waited for" test -z "$build_pid"

finish
