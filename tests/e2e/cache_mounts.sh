#!/usr/bin/env bash
# `:run` cache mounts through the registry cache (issue 24): what a step wrote
# into a cache mount on runner A (its own store and cache) is what the same
# step sees on runner B (fresh folders) through --cache-to/--cache-from on
# the loopback registry, and not on runner C (no --cache-from); exporting the
# same cache twice gives the same cache digest; and a secret a step copies
# into a cache mount (a canary) reaches no blob of the registry, nor runner B.
# busybox steps only: a few seconds.
#
#   tests/e2e/cache_mounts.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"

ctx=$work/ctx
mkdir -p "$ctx"
busybox_root "$ctx/base/root" sh cat cp echo ls wc
canary="canary-$RANDOM$RANDOM-do-not-export"
printf '%s\n' "$canary" >"$ctx/token.txt"

step "a registry on 127.0.0.1"
here "registry" registry_start open
REG=$REGISTRY_open
CACHE=$REG/cache/mounts:main

# runner NAME: a machine of its own: store and cache.
runner() { export XDG_DATA_HOME="$work/$1/data" XDG_CACHE_HOME="$work/$1/cache"; }
# said NAME LINE: the step output of build NAME has LINE.
said() { grep -qF -- "| $2" "$work/$1.err"; }
recipe='local base = scratch:copy("base/root", "/")
local input = base:copy("input.txt", "/input.txt")
image("app", input:run([[
if [ -f /cache/data ]; then echo "seen $(cat /cache/data)"; else echo "cold cache"; fi
cp /input.txt /cache/data
]], { cache = { "/cache" } }))
image("leaky", input:run([[
if [ -e /leaky/stolen ]; then echo "leaky cache came along"; else echo "leaky cache fresh"; fi
cat /run/secrets/token >/leaky/stolen
]], { cache = { "/leaky" }, secrets = { token = "token.txt" } }))'
export_digest() { grep -oE "to $CACHE@sha256:[0-9a-f]{64}" "$work/$1.err" | cut -d@ -f2; }

step "runner A fills the caches and exports them"
runner a
echo alpha >"$ctx/input.txt"
check "runner A builds" build_recipe a1 "$recipe" --cache-to "$CACHE"
check "the step found its cache empty" said a1 "cold cache"
check "the cache mount went with the steps" grep -q "exported [0-9]* cached steps and 1 cache mount to $CACHE@" "$work/a1.err"
check "the cache a secret was exposed to stayed home, and the build said why" grep -qF \
  "the cache mounted at /leaky is not exported: a step with a secret mounted it" "$work/a1.err"
check "runner A's leaky cache does hold the canary (the scan below can find it)" \
  grep -rqF "$canary" "$XDG_CACHE_HOME/imgbuild/run-cache"
check "runner A exports again, nothing changed" build_recipe a2 "$recipe" --cache-to "$CACHE"
first=$(export_digest a1)
check "the same cache exports to the same digest ($first)" test -n "$first" -a "$first" = "$(export_digest a2)"

step "no blob in the registry holds the secret"
leaks=0
while IFS= read -r -d '' blob; do
  if { zstdcat -q "$blob" 2>/dev/null || zcat -q "$blob" 2>/dev/null || cat "$blob"; } | grep -qF "$canary"; then
    leaks=$((leaks + 1))
  fi
done < <(find "$REG_WORK/open/storage" -type f -name data -print0)
check "the canary is in none of the registry's blobs ($leaks)" test "$leaks" -eq 0
blobs=$(find "$REG_WORK/open/storage" -type f -name data | wc -l)
check "the scan read the exported blobs ($blobs)" test "$blobs" -ge 4

step "runner B, fresh, edits the input: its step sees what runner A's wrote"
runner b
echo beta >"$ctx/input.txt"
check "runner B builds from the registry cache" build_recipe b "$recipe" --cache-from "$CACHE" --no-push
check "the step saw runner A's cache" said b "seen alpha"
check "the leaky cache did not come along" said b "leaky cache fresh"

step "runner C, fresh, without --cache-from: a cold cache (the check above can fail)"
runner c
echo gamma >"$ctx/input.txt"
check "runner C builds" build_recipe c "$recipe" --no-push
check "its step found the cache empty" said c "cold cache"

finish
