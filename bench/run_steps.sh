#!/usr/bin/env bash
# bench/run_steps.sh: what one RUN step costs imgbuild beyond the command
# itself, next to runc running the same command in the same root, and next to
# an earlier imgbuild binary (to hold the sandbox's defences to their budget:
# issue 18 allows 50 ms more per step than before them).
#
#   bench/run_steps.sh [--runs N] [--steps S] [--before BIN] [--output F]
#
#   --runs N      builds per measurement (default 5); the median is reported
#   --steps S     RUN steps per build (default 20)
#   --before BIN  also measure BIN, an earlier imgbuild, with the same recipes
#   --output F    write the markdown there too (default: standard output only)
#
# A build of S steps `:run { "/bin/busybox", "true" }` on a busybox root,
# cache off, minus the same build without them, divided by S, is the cost of
# a step: namespaces, mounts, the overlay, the network helper, the diff, the
# layer. Each network mode is measured, since each sets up something else.
# runc's figure is `runc run` of the same command on a bundle of the same
# root (its default spec, as Docker's RUN gets it), one run per step.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
runs=5 steps=20 before="" output=""
while (($#)); do
  case $1 in
    --runs) runs=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --before) before=$(realpath "$2"); shift 2 ;;
    --output) output=$2; shift 2 ;;
    -h | --help) sed -n '7,12s/^# \{0,3\}//p' "$0"; exit 0 ;;
    *) echo "run_steps.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
bin=$(realpath "${IMGBUILD:-$repo/build/imgbuild}")
say() { echo "run_steps: $*" >&2; }
die() { say "$*"; exit 1; }
[[ $(id -u) -eq 0 ]] || die "RUN steps under runc need root here: run as root"
[[ -x $bin ]] || die "$bin is missing: build imgbuild first (scripts/setup)"
for tool in runc busybox jq; do command -v "$tool" >/dev/null || die "needs $tool (scripts/setup --deps)"; done

work=$(mktemp -d "${TMPDIR:-/tmp}/imgbuild-run-steps.XXXXXX")
trap 'rm -rf "$work"' EXIT
export XDG_DATA_HOME=$work/data XDG_CACHE_HOME=$work/cache SOURCE_DATE_EPOCH=1700000000

ctx=$work/ctx
mkdir -p "$ctx/root/bin" "$ctx/root/etc" "$ctx/root/tmp"
cp "$(command -v busybox)" "$ctx/root/bin/busybox"
echo root:x:0:0:root:/:/bin/sh >"$ctx/root/etc/passwd"
echo root:x:0: >"$ctx/root/etc/group"

# recipe NAME STEPS NETWORK: NETWORK is a :run network value, or "" for the default.
recipe() {
  local net=${3:+, network = \"$3\"}
  {
    echo 'local img = scratch:copy("root", "/")'
    for ((i = 0; i < $2; i++)); do echo "img = img:run { \"/bin/busybox\", \"true\"$net }"; done
    echo 'image("steps", img)'
  } >"$ctx/$1.lua"
}

median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
# seconds BIN RECIPE: median wall time of $runs builds with the cache off.
seconds() {
  local t0 t1 times=()
  for ((r = 0; r < runs; r++)); do
    t0=$(date +%s%N)
    (cd "$ctx" && "$1" build "$2" --no-cache --progress plain >>"$work/log" 2>&1) || {
      tail -n 20 "$work/log" >&2
      return 1
    }
    t1=$(date +%s%N)
    times+=("$(((t1 - t0) / 1000))")
  done
  printf '%s\n' "${times[@]}" | median
}

# per_step BIN NETWORK: milliseconds a step adds, or "failed".
per_step() {
  local with without
  recipe none 0 ""
  recipe some "$steps" "$2"
  without=$(seconds "$1" none.lua) && with=$(seconds "$1" some.lua) || {
    echo failed
    return
  }
  awk -v a="$with" -v b="$without" -v n="$steps" 'BEGIN {printf "%.1f", (a - b) / n / 1000}'
}

# runc: the same root as a bundle with runc's default spec, no terminal.
bundle=$work/bundle
mkdir -p "$bundle"
cp -a "$ctx/root" "$bundle/rootfs"
(cd "$bundle" && runc spec)
jq '.process.terminal = false | .process.args = ["/bin/busybox", "true"]' "$bundle/config.json" >"$bundle/c" &&
  mv "$bundle/c" "$bundle/config.json"
runc_ms() {
  local t0 t1 times=() n=$((runs * steps))
  for ((r = 0; r < n; r++)); do
    t0=$(date +%s%N)
    runc --root "$work/runc" run --bundle "$bundle" "bench-$r" </dev/null >>"$work/log" 2>&1 || { echo failed; return; }
    t1=$(date +%s%N)
    times+=("$(((t1 - t0) / 1000))")
  done
  printf '%s\n' "${times[@]}" | median | awk '{printf "%.1f", $1 / 1000}'
}

say "imgbuild $bin: $runs builds of $steps steps per figure"
declare -A MS=()
modes=(default none host)
for mode in "${modes[@]}"; do
  net=$mode
  [[ $mode == default ]] && net=""
  say "measuring imgbuild, network ${mode}"
  MS[now - $mode]=$(per_step "$bin" "$net")
  if [[ -n $before ]]; then
    say "measuring $before, network ${mode}"
    MS[before - $mode]=$(per_step "$before" "$net")
  fi
done
say "measuring runc run"
runc_step=$(runc_ms)

table() {
  echo "## RUN step cost ($(date -u +%Y-%m-%d), $(git -C "$repo" rev-parse --short HEAD), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))"
  echo
  echo "Milliseconds per \`:run { \"/bin/busybox\", \"true\" }\` step, median of $runs builds of $steps steps minus the same build without them; runc: median of $((runs * steps)) \`runc run\` of the same command on the same root."
  echo
  if [[ -n $before ]]; then
    echo "| network | imgbuild | before ($before) | difference | runc run | imgbuild / runc |"
    echo "|---|---|---|---|---|---|"
  else
    echo "| network | imgbuild | runc run | imgbuild / runc |"
    echo "|---|---|---|---|"
  fi
  for mode in "${modes[@]}"; do
    local now=${MS[now - $mode]} r
    r=$(awk -v a="$now" -v b="$runc_step" 'BEGIN {if (a + 0 > 0 && b + 0 > 0) printf "%.2fx", a / b; else print "-"}')
    if [[ -n $before ]]; then
      local was=${MS[before - $mode]} d
      d=$(awk -v a="$now" -v b="$was" 'BEGIN {if (a ~ /^[-0-9.]+$/ && b ~ /^[-0-9.]+$/) printf "%+.1f ms", a - b; else print "-"}')
      echo "| $mode | $now ms | $was ms | $d | $runc_step ms | $r |"
    else
      echo "| $mode | $now ms | $runc_step ms | $r |"
    fi
  done
}
if [[ -n $output ]]; then table | tee "$output"; else table; fi
