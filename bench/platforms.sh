#!/usr/bin/env bash
# bench/platforms.sh: what a second platform costs. examples/hello (the
# host-built Go service) built for this machine's platform alone, then for
# linux/amd64,linux/arm64, in alternating runs; prints the medians, the
# ratio two / one of wall times (issue 21: at most 1.3x) and of CPU times
# (what the ratio tends to on a busy machine), and the load average. The
# peer in the same runs: the go commands imgbuild runs (go.build's), alone,
# one platform then both side by side: what the Go toolchain's own work
# makes of a second platform on this machine.
# See bench/README.md.
#
#   bench/platforms.sh              5 alternating runs of each build
#   bench/platforms.sh --runs N     N runs
#   bench/platforms.sh --output F   the markdown table also written to F
#
# IMGBUILD=path/to/imgbuild picks the binary (default build/imgbuild).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

usage() { sed -n '12,16s/^# \{0,3\}//p' "$repo/bench/platforms.sh"; }
die() { printf 'bench/platforms: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'bench/platforms: %s\n' "$*" >&2; }

runs=5 md=""
while (($#)); do
  case $1 in
    --runs) (($# >= 2)) || die "--runs needs a number"; runs=$2; shift ;;
    --runs=*) runs=${1#*=} ;;
    --output) (($# >= 2)) || die "--output needs a file"; md=$2; shift ;;
    --output=*) md=${1#*=} ;;
    -h | --help) usage; exit 0 ;;
    *) printf 'bench/platforms: unknown option %s\n' "$1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs: expected a positive integer, got '$runs'"
bin=$(realpath -e "${IMGBUILD:-build/imgbuild}" 2>/dev/null) || die "no imgbuild at ${IMGBUILD:-build/imgbuild} (build it, or set IMGBUILD)"
for t in go jq /usr/bin/time; do command -v "$t" >/dev/null || die "$t is missing (scripts/setup installs it)"; done

case $(uname -m) in
  x86_64) host=linux/amd64 ;;
  aarch64) host=linux/arm64 ;;
  *) die "this machine is $(uname -m): the benchmark builds linux/amd64 and linux/arm64, one of them this machine's" ;;
esac
both=linux/amd64,linux/arm64

mkdir -p bench/out
tmp=$(mktemp -d "$repo/bench/out/platforms.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
logs=$repo/bench/out/logs/platforms
mkdir -p "$logs"
rm -f "$logs"/*.log

# A copy of the example (the edit case rewrites its source), built at a fixed
# time: it is no git checkout.
cp -r examples/hello "$tmp/hello"
export SOURCE_DATE_EPOCH=1700000000
# Go's build cache is one of the benchmark's own, kept between runs of the
# script (bench/out/gocache) and warmed for both architectures before
# anything is timed: Go defaults it to $XDG_CACHE_HOME/go-build, which the
# runs empty as imgbuild's cache.
export GOCACHE=$repo/bench/out/gocache
export XDG_DATA_HOME=$tmp/data XDG_CACHE_HOME=$tmp/cache
say "warming Go's build cache for $both (the standard library for each: a minute or two)"
"$bin" build "$tmp/hello/recipe.lua" --platform "$both" --progress plain >"$logs/warm.log" 2>&1 ||
  die "the warm-up build failed: see bench/out/logs/platforms/warm.log"

# The cases: what is kept between runs, and what each run starts from.
#  cold:  imgbuild's store and cache empty, Go's build cache warm (a CI runner
#         that keeps GOCACHE, or a first build on a developer's machine).
#  edit:  store and cache kept, main.go changed: the developer's loop; go
#         build runs again for each platform, compiling the main package.
#  no-op: store and cache kept, nothing changed: every step cached.
cases=(cold edit no-op)
edits=0
prepare() {  # CASE
  case $1 in
    cold) rm -rf "$XDG_DATA_HOME" "$XDG_CACHE_HOME" "$tmp/out" ;;
    edit)
      edits=$((edits + 1))
      sed -i "s|w.Write(\[\]byte(\"hello.*\\\\n\"))|w.Write([]byte(\"hello $edits\\\\n\"))|" "$tmp/hello/main.go"
      grep -q "hello $edits" "$tmp/hello/main.go" || die "could not edit $tmp/hello/main.go"
      rm -rf "$tmp/out" ;;
    no-op) rm -rf "$tmp/out" ;;
  esac
  sync
}

# The go command go.build runs (stdlib/imgbuild/go.lua), for PLATFORM
# ("linux/arm64"), its binary written to a fresh path: Go's build cache is
# warm, so this is what the cold case leaves to Go.
go_build() {  # PLATFORM OUT
  (cd "$tmp/hello" && env GOOS="${1%%/*}" GOARCH="${1##*/}" CGO_ENABLED=0 \
    go build -buildvcs=false "-ldflags=-s -w" -trimpath -o "$2" .)
}
go_alone() {  # one | two
  rm -rf "$tmp/go-out" && mkdir -p "$tmp/go-out"
  if [[ $1 == one ]]; then
    go_build "$host" "$tmp/go-out/app"
  else
    go_build linux/amd64 "$tmp/go-out/amd64" & local amd64=$!
    go_build linux/arm64 "$tmp/go-out/arm64" || { wait "$amd64"; return 1; }
    wait "$amd64"
  fi
}

declare -A WALL CPU
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average $load_start; $runs alternating runs of ${cases[*]}, each for $host then $both"
for ((run = 1; run <= runs; run++)); do
  for c in "${cases[@]}"; do
    for p in one two; do
      platforms=$host
      [[ $p == two ]] && platforms=$both
      prepare "$c"
      log=$logs/$c-$p-$run.log
      start=$(date +%s%N)
      /usr/bin/time -f '%U %S' -o "$tmp/time" \
        "$bin" build "$tmp/hello/recipe.lua" --platform "$platforms" -o "oci:$tmp/out" --progress plain >"$log" 2>&1 ||
        die "imgbuild build --platform $platforms failed: see ${log#"$repo"/}"
      end=$(date +%s%N)
      WALL[$c-$p]+="$(((end - start) / 1000000)) "
      CPU[$c-$p]+="$(awk '{printf "%d", ($1 + $2) * 1000}' "$tmp/time") "
    done
  done
  for p in one two; do
    sync
    start=$(date +%s%N)
    /usr/bin/time -f '%U %S' -o "$tmp/time" bash -c "$(declare -f go_build go_alone); tmp='$tmp' host='$host' go_alone $p" \
      >"$logs/go-$p-$run.log" 2>&1 || die "go build alone ($p) failed: see ${logs#"$repo"/}/go-$p-$run.log"
    end=$(date +%s%N)
    WALL[go-$p]+="$(((end - start) / 1000000)) "
    CPU[go-$p]+="$(awk '{printf "%d", ($1 + $2) * 1000}' "$tmp/time") "
  done
  say "run $run of $runs done (load $(cut -d' ' -f1 /proc/loadavg))"
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)

median() { tr ' ' '\n' | grep . | sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }
range() { tr ' ' '\n' | grep . | sort -n | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f–%.2f s", lo / 1000, hi / 1000}'; }
secs() { awk -v ms="$1" 'BEGIN {printf "%.2f s", ms / 1000}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }

table() {
  echo "examples/hello, imgbuild $("$bin" --version 2>/dev/null | head -n1), $(nproc) cores, load average $load_start at the start, $load_end at the end; $runs alternating runs, medians (min–max); CPU is user + system of all processes. Go's build cache is warm for both architectures in every case."
  echo
  echo "| case | $host | range | CPU | $both | range | CPU | two / one | CPU two / one |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for c in "${cases[@]}" go; do
    one=$(median <<<"${WALL[$c-one]}") two=$(median <<<"${WALL[$c-two]}")
    cpu_one=$(median <<<"${CPU[$c-one]}") cpu_two=$(median <<<"${CPU[$c-two]}")
    echo "| ${c/#go/go build alone} | $(secs "$one") | $(range <<<"${WALL[$c-one]}") | $(secs "$cpu_one") |" \
      "$(secs "$two") | $(range <<<"${WALL[$c-two]}") | $(secs "$cpu_two") | $(ratio "$two" "$one") | $(ratio "$cpu_two" "$cpu_one") |"
  done
  echo
  awk -v l="${load_start%% *}" -v n="$(nproc)" 'BEGIN {exit !(l > n / 2)}' &&
    echo "**The load average ($load_start) is above half the $(nproc) cores: the platforms' builds compete with other processes for the CPU, and the ratio measures that contention (it tends to the ratio of CPU times), not how well the platforms overlap on idle cores.**" && echo
  echo "*cold*: imgbuild's store and cache empty (the issue's figure: a CI runner that keeps Go's cache but not imgbuild's, or a first build). *edit*: main.go changed, store and cache kept (a developer's rebuild: go build runs for each platform). *no-op*: nothing changed, every step cached. *go build alone*: the go commands go.build runs for the cold case, without imgbuild (both platforms' side by side): the Go toolchain's own ratio on this machine, which imgbuild's can only approach."
}
table
[[ -z $md ]] || table >"$md"
