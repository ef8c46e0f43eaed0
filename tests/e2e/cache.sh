#!/usr/bin/env bash
# The step cache (issue 5): an unchanged rebuild runs nothing and writes no
# layer; an edit re-runs exactly the steps whose inputs changed; builds killed
# with SIGKILL at random moments leave a cache the next build trusts; two
# builds share one cache; a second machine reuses a first one's steps through
# the registry, downloading only the layers its result needs; plan, cache ls
# and cache prune say and do what they should; roots share their files, cache
# ls counts each once and prune keeps run caches longest (issue 20).
#
# Where the time goes (sanitized imgbuild, a busy two-core machine, 346 s):
# seeding the registry 3 s (the Go image is built once, by a ctest fixture),
# the first build 57 s, the edits 110 s (five builds: each re-runs a
# different set of steps, the last with --no-cache), the second machine 1 s,
# the 24 kills 94 s, the two builds at once 22 s, prune 59 s (mostly the
# rebuild after it). Each build is there for what it shows; the kills no
# longer wait past the end of a build that finished first.
#
#   tests/e2e/cache.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"

# machine NAME: the store and cache of one (simulated) machine.
machine() { export XDG_DATA_HOME="$work/$1/data" XDG_CACHE_HOME="$work/$1/cache"; }
imgbuild() { "$IMGBUILD" "$@" >"$work/last.out" 2>"$work/last.err"; }
# ran: the recipe lines of the steps the last build ran (not taken from the cache).
ran() {
  grep -oE 'recipe\.lua:[0-9]+  (run|copy) .*' "$work/last.err" | grep -v '(cached)$' |
    sed -E 's/^recipe\.lua:([0-9]+) .*/\1/' | sort -un | tr '\n' ' ' | sed 's/ $//'
}
digest_of() { grep -oE "^$1  sha256:[0-9a-f]{64}" "$work/last.out" | cut -d' ' -f3; }  # NAME: its sha256:...
blob_count() { find "$XDG_DATA_HOME/imgbuild/blobs/sha256" -type f | wc -l; }
expect_ran() {  # DESCRIPTION "LINES"
  local got
  got=$(ran)
  if [[ $got == "$2" ]]; then pass "$1 (steps at lines: ${got:-none})"; else
    fail "$1: expected lines '$2' to run, got '$got'"
    tail -n 15 "$work/last.err" | sed 's/^/        /'
  fi
}

step "a registry mirroring docker.io with the Go builder image"
here "registry" registry_start open
REG=$REGISTRY_open
here "seed golang:1.22-alpine" seed_golang "$REG" library/golang:1.22-alpine
MIRROR=(--registry-mirror "docker.io=$REG")

# The app: examples/multistage with an env value before the steps, lines numbered.
mkdir -p "$work/app"
cp "$ROOT"/examples/multistage/{go.mod,go.sum,main.go} "$work/app/"
cat >"$work/app/recipe.lua" <<'EOF'
local certs = require "imgbuild.certs"
local builder = from "golang:1.22-alpine"
  :workdir "/go/src/app"
  :env { FLAVOR = param("flavor", "plain") }
  :copy({ "go.mod", "go.sum" }, "./")
  :run "go mod download"
  :copy(".", ".")
  :run { "go", "build", "-o", "/out/app", ".", env = { CGO_ENABLED = "0" } }
image("app", scratch
  :copy("/out/app", "/app", { from = builder, static = true })
  :copy(certs.bundle, "/etc/ssl/certs/ca-certificates.crt")
  :entrypoint { "/app" })
EOF
APP="$work/app/recipe.lua"

step "an unchanged rebuild runs no step and writes no layer"
machine a
imgbuild "$APP" "${MIRROR[@]}" --cache-to "$REG/cache/app:main"
outcome "the first build builds" "^app  sha256:"
expect_ran "the first build runs every step" "5 6 7 8 10 11"
first=$(digest_of app)
check "--cache-to exported the steps" grep -q "exported 6 cached steps to $REG/cache/app:main@sha256:" "$work/last.err"
blobs=$(blob_count)
imgbuild "$APP" "${MIRROR[@]}"
outcome "the rebuild builds the same image" "^app  $first"
expect_ran "the rebuild runs nothing" ""
check "the rebuild wrote no blob" test "$(blob_count)" = "$blobs"
"$IMGBUILD" plan "$APP" "${MIRROR[@]}" >"$work/plan.out" 2>&1
check "plan: every step hits the local cache" grep -qx "6 cached, 0 from the registry cache, 0 to run" "$work/plan.out"
check "plan shows each step's key" grep -qE "recipe\.lua:6 +cached +[0-9a-f]{12}  run go mod download$" "$work/plan.out"

step "edits re-run exactly the steps whose inputs changed"
sed -i 's/hello from a multi-stage build/hello from an edited build/' "$work/app/main.go"
imgbuild "$APP" "${MIRROR[@]}"
# The certificates' copy runs too: it lands on a different file system (a new binary below it).
expect_ran "a Go file: copy . and go build, the copy of the new binary and what lies on it" "7 8 10 11"
echo "" >>"$work/app/go.sum"
imgbuild "$APP" "${MIRROR[@]}"
# Go builds the same binary: its layer is the same, so the certificates' copy stays cached.
expect_ran "go.sum: from its copy on, go mod download included" "5 6 7 8 10"
imgbuild "$APP" "${MIRROR[@]}" --set flavor=spicy
ran_now=$(ran)
check "an env value: both RUN steps after it run again (got: $ran_now)" sh -c "echo ' $ran_now ' | grep -q ' 6 ' && echo ' $ran_now ' | grep -q ' 8 '"
check "an env value: copies, which do not read it, stay cached" sh -c "! echo ' $ran_now ' | grep -qE ' (5|7|11) '"
"$IMGBUILD" plan "$APP" "${MIRROR[@]}" --set flavor=sour >"$work/plan.out" 2>&1
check "plan of a changed env: go mod download runs, the steps after it are unknown" \
  sh -c "grep -qE 'recipe\.lua:6 +run ' '$work/plan.out' && grep -qE 'recipe\.lua:8 +run +\?' '$work/plan.out'"
imgbuild "$APP" "${MIRROR[@]}" --no-cache
expect_ran "--no-cache runs everything" "5 6 7 8 10 11"

step "a second machine reuses the first one's steps through the registry"
machine b
# The sources machine a exported its steps for.
cp "$ROOT/examples/multistage/main.go" "$work/app/main.go"
cp "$ROOT/examples/multistage/go.sum" "$work/app/go.sum"
"$IMGBUILD" plan "$APP" "${MIRROR[@]}" --cache-from "$REG/cache/app:main" >"$work/plan.out" 2>&1
check "plan with the exported sources: all 6 steps from the registry cache" \
  grep -qx "0 cached, 6 from the registry cache, 0 to run" "$work/plan.out"
imgbuild "$APP" "${MIRROR[@]}" --cache-from "$REG/cache/app:main" -o "oci:$work/b-oci"
outcome "machine b builds the same image as machine a" "^app  $first"
expect_ran "machine b runs no step" ""
check "machine b has no builder layer: only the result's layers and the base's documents" \
  test "$(blob_count)" -le 6
check "the image validates" valid_image "$work/b-oci"
imgbuild "$APP" "${MIRROR[@]}"
expect_ran "what came from the registry is in machine b's local cache now" ""

# wait_at_most SECONDS PID: returns after SECONDS, or as soon as PID (a child
# of this shell, so a zombie once it is done) has ended: a kill planned for
# after the end of the build finds nothing to kill either way, so the rest of
# the wait would only cost time.
# SECONDS is given with two decimals; the times here are in microseconds.
wait_at_most() {
  local state end=$((${EPOCHREALTIME//[!0-9]/} + 10#${1//[!0-9]/} * 10000))
  while ((${EPOCHREALTIME//[!0-9]/} < end)); do
    read -r _ _ state _ 2>/dev/null <"/proc/$2/stat" || return 0
    [[ $state == Z ]] && return 0
    sleep 0.05
  done
}

step "builds killed with SIGKILL at random moments leave a usable cache"
machine kill
for i in $(seq 1 24); do
  echo "// edit $i" >>"$work/app/main.go"
  setsid "$IMGBUILD" "$APP" "${MIRROR[@]}" >/dev/null 2>&1 &
  pid=$!
  wait_at_most "$(awk -v r="$RANDOM" 'BEGIN { printf "%.2f", (r % 600) / 100 }')" "$pid"
  kill -KILL -- "-$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
done
imgbuild "$APP" "${MIRROR[@]}" -o "oci:$work/kill-oci"
outcome "the build after 24 kills succeeds" "^app  sha256:"
after_kills=$(digest_of app)
check "its image validates" valid_image "$work/kill-oci"
machine clean
imgbuild "$APP" "${MIRROR[@]}"
clean=$(digest_of app)
check "a clean build of the same sources gives the same digest ($clean, after the kills: $after_kills)" test "$clean" = "$after_kills"

step "two builds of different recipes at once on one cache"
machine shared
"$IMGBUILD" "$APP" "${MIRROR[@]}" -o "oci:$work/shared-app" >"$work/one.out" 2>"$work/one.err" &
one=$!
"$IMGBUILD" "$ROOT/examples/static-site/recipe.lua" -o "oci:$work/shared-site" >"$work/two.out" 2>"$work/two.err" &
two=$!
wait $one
r1=$?
wait $two
r2=$?
check "both succeed" test "$r1$r2" = 00
check "the app image validates" valid_image "$work/shared-app"
check "the site image validates" valid_image "$work/shared-site"

step "cache ls and cache prune"
"$IMGBUILD" cache ls >"$work/ls.out" 2>&1
check "cache ls lists the steps with size and last use" grep -qE "^[0-9a-f]{12} +[0-9.]+ [kMG]?B +20[0-9-]+ [0-9:]+  run go mod download$" "$work/ls.out"
"$IMGBUILD" cache prune --keep-bytes 100GB >"$work/prune.out" 2>&1
check "prune --keep-bytes 100GB keeps a cache that fits" grep -q "^removed 0 steps, 0 unpacked trees" "$work/prune.out"
"$IMGBUILD" cache prune --older-than 1d >"$work/prune.out" 2>&1
check "prune --older-than 1d keeps what was just used" grep -q "^removed 0 steps" "$work/prune.out"
"$IMGBUILD" cache prune >"$work/prune.out" 2>&1
check "prune removes every step" grep -qE "^removed [1-9][0-9]* steps" "$work/prune.out"
"$IMGBUILD" cache ls >"$work/ls.out" 2>&1
check "the cache is empty" grep -q "^0 steps" "$work/ls.out"
check "the stored images keep their blobs" sh -c "skopeo inspect --raw 'oci:$XDG_DATA_HOME/imgbuild:app' >/dev/null && \
  for d in \$(skopeo inspect --raw 'oci:$XDG_DATA_HOME/imgbuild:app' | jq -r '.layers[].digest[7:]'); do test -f '$XDG_DATA_HOME/imgbuild/blobs/sha256/'\$d || exit 1; done"
imgbuild "$APP" "${MIRROR[@]}"
expect_ran "after prune, every step runs again" "5 6 7 8 10 11"
outcome "and makes the same image" "^app  $after_kills"

step "cache disk: roots share files, cache ls counts each once, prune keeps run caches longest"
machine disk
cache=$XDG_CACHE_HOME/imgbuild
mkdir -p "$work/disk-app"
cp "$ROOT"/examples/multistage/{go.mod,go.sum,main.go} "$work/disk-app/"
# The app with Go's build cache on a :run cache, lines unchanged.
sed 's|env = { CGO_ENABLED = "0" } }|env = { CGO_ENABLED = "0" }, cache = { "/root/.cache/go-build" } }|' \
  "$APP" >"$work/disk-app/recipe.lua"
imgbuild "$work/disk-app/recipe.lua" "${MIRROR[@]}"
outcome "the app with a run cache builds" "^app  sha256:"
# trees: the cache's trees, as `cache ls` lists them.
trees() { find "$cache"/roots "$cache"/files "$cache"/run-cache -mindepth 1 -maxdepth 1 -type d ! -name '.*' 2>/dev/null; }
# du counts a file linked from several of its arguments once.
disk() { trees | xargs du -scB1 | tail -n 1 | cut -f1; }
human() {  # BYTES, as imgbuild prints sizes
  awk -v b="$1" 'BEGIN { split("B kB MB GB TB", u, " "); n = 1
    while (b >= 1000 && n < 5) { b /= 1000; n++ }
    printf(n == 1 ? "%.0f %s" : "%.1f %s", b, u[n]) }'
}
before_edit=$(disk)
echo "// edited" >>"$work/disk-app/main.go"
imgbuild "$work/disk-app/recipe.lua" "${MIRROR[@]}"
expect_ran "an edit runs the copy, go build and what lies on the binary" "7 8 10 11"
one_root=$(du -sB1 "$(trees | grep '/roots/' | head -n 1)" | cut -f1)
after_edit=$(disk)
check "the edit's roots link the builder's files: they add $(human $((after_edit - before_edit))), under a tenth of one root ($(human "$one_root"))" \
  test $(((after_edit - before_edit) * 10)) -lt "$one_root"
"$IMGBUILD" cache ls >"$work/ls.out" 2>&1
separately=0
for t in $(trees); do separately=$((separately + $(du -sB1 "$t" | cut -f1))); done
check "cache ls counts each file once: $(human "$after_edit") of trees, as du says (each tree alone: $(human $separately))" \
  grep -qE "^[0-9]+ steps; [0-9.]+ [kMG]?B in all: [0-9.]+ [kMG]?B of layers, $(human "$after_edit") of trees \([0-9.]+ [kMG]?B of it shared between trees\)$" "$work/ls.out"
check "and says what a root shares with the others" \
  grep -qE "^root +[0-9.]+ [kMG]?B +20[0-9-]+ [0-9:]+  [0-9a-f]{64}\.v \(and [0-9.]+ [kMG]?B shared with other trees\)$" "$work/ls.out"
steps=$(grep -cE '^[0-9a-f]{12} ' "$work/ls.out")
ntrees=$(trees | wc -l)
run_cache=$(trees | grep '/run-cache/')
# Everything else was used after the run cache; the cache fits only once all of it is gone.
find "$cache"/steps "$cache"/roots "$cache"/files -mindepth 1 -maxdepth 1 -exec touch -h -d '1 hour ago' {} + 2>/dev/null
touch -d '2 days ago' "$run_cache" "$run_cache.bytes"
"$IMGBUILD" cache prune --keep-bytes "$(du -sB1 "$run_cache" | cut -f1)" >"$work/prune.out" 2>&1
check "prune --keep-bytes evicts every step and tree but the run cache, the oldest of all" \
  grep -qxE "removed $steps steps, $((ntrees - 1)) unpacked trees and [0-9]+ blobs: [0-9.]+ [kMG]?B freed" "$work/prune.out"
"$IMGBUILD" cache ls >"$work/ls.out" 2>&1
check "cache ls: the run cache alone" test "$(sed 1d "$work/ls.out" | awk '{ print $1 }' | tr '\n' ,)" = "run-cache,0,"
echo "// edited again" >>"$work/disk-app/main.go"
imgbuild "$work/disk-app/recipe.lua" "${MIRROR[@]}"
outcome "the next build builds" "^app  sha256:"

finish
