#!/usr/bin/env bash
# The disk the build cache takes after a morning's builds (issue 20, item 6),
# and what `cache ls` and `cache prune` make of it. The seed build series:
# examples/multistage, examples/lockfile-builder and multistage with its go
# build on a :run cache (Go's build cache, /root/.cache/go-build), each built
# once and then again after each of EDITS edits of main.go, on the Go builder
# image of tests/registry/golang_image.sh (this machine's Go toolchain, about
# 230 MB unpacked) pulled from a registry on 127.0.0.1. Then:
#   - the disk used: `du` of the cache and of the store (a file linked from
#     several roots counted once), the sum of `du` of each root alone (what
#     counting per tree says) and the total `cache ls` prints;
#   - `cache prune --keep-bytes` of half the cache, timed, and the build of
#     the run-cache app after one more edit, timed (its Go build cache should
#     have been kept).
#
#   bench/cache_disk.sh IMGBUILD [EDITS]     (EDITS: 3 unless given)
#   KEEP=1 bench/cache_disk.sh ...           keeps its folder (printed) to look into
set -euo pipefail
IMGBUILD=$(realpath "$1")
EDITS=${2:-3}
repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/imgbuild-cache-disk.XXXXXX)
REG_WORK=$tmp/registry
source "$repo/tests/registry/lib.sh"
if [[ -n ${KEEP:-} ]]; then
  echo "keeping $tmp"
  trap 'registry_cleanup' EXIT
else
  trap 'registry_cleanup; rm -rf "$tmp"' EXIT
fi
export XDG_DATA_HOME=$tmp/data XDG_CACHE_HOME=$tmp/cache SOURCE_DATE_EPOCH=1700000000
cache=$XDG_CACHE_HOME/imgbuild store=$XDG_DATA_HOME/imgbuild

registry_start open >"$tmp/registry.log" 2>&1
REG=$REGISTRY_open
seed_golang "$REG" library/golang:1.22-alpine >>"$tmp/registry.log" 2>&1
ARGS=(--registry-mirror "docker.io=$REG" --set "registry=$REG" --no-push)

for app in multistage lockfile-builder; do cp -r "$repo/examples/$app" "$tmp/$app"; done
cp -r "$repo/examples/multistage" "$tmp/runcache"
# Its push names the git commit, which a copy outside the checkout has not.
sed -i '/^push(/d' "$tmp/multistage/recipe.lua" "$tmp/runcache/recipe.lua"
sed -i 's|env = { CGO_ENABLED = "0" } }|env = { CGO_ENABLED = "0" }, cache = { "/root/.cache/go-build" } }|' \
  "$tmp/runcache/recipe.lua"
grep -q 'cache = { "/root/.cache/go-build" }' "$tmp/runcache/recipe.lua"

# seconds COMMAND...: runs it quietly, prints its wall time in seconds.
seconds() {
  local start=$EPOCHREALTIME
  "$@" >"$tmp/last.out" 2>"$tmp/last.err" || { tail -n 20 "$tmp/last.err" >&2; return 1; }
  awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'
}
build() { seconds "$IMGBUILD" "$tmp/$1/recipe.lua" "${ARGS[@]}"; }
edit() { echo "// edit $2" >>"$tmp/$1/main.go"; }
bytes() { du -sB1 "$@" 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.0f MB", b / 1e6 }'; }

for app in multistage lockfile-builder runcache; do
  times=$(build "$app")
  for i in $(seq 1 "$EDITS"); do
    edit "$app" "$i"
    times+=" $(build "$app")"
  done
  echo "builds of $app (s): $times"
done

roots=("$cache"/roots/*/)
per_root=0
for r in "${roots[@]}"; do per_root=$((per_root + $(bytes "$r"))); done
echo "roots: ${#roots[@]}"
echo "cache on disk (du, each file once): $(mb "$(bytes "$cache")"), of it roots $(mb "$(bytes "$cache/roots")"), run caches $(mb "$(bytes "$cache/run-cache")")"
echo "store on disk: $(mb "$(bytes "$store")")"
echo "roots counted one by one: $(mb "$per_root")"
"$IMGBUILD" cache ls >"$tmp/ls.out"
echo "cache ls says: $(tail -n 1 "$tmp/ls.out")"
grep -E '^(root|file|run-cache) +[0-9.]+ (MB|GB) ' "$tmp/ls.out" | sed 's/^/  /' || true

keep=$(($(bytes "$cache") / 2))
echo "cache prune --keep-bytes $keep: $(seconds "$IMGBUILD" cache prune --keep-bytes "$keep") s: $(cat "$tmp/last.out")"
echo "cache on disk after prune: $(mb "$(bytes "$cache")"), run caches $(mb "$(bytes "$cache/run-cache")")"
edit runcache after-prune
echo "the run-cache app after one more edit: $(build runcache) s"
