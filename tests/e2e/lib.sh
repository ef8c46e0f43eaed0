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

finish() {
  printf '\n%d passed, %d failed\n' "$passed" "$failed"
  [[ $failed -eq 0 ]]
}
