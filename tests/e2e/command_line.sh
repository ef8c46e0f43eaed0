#!/usr/bin/env bash
# The command line as imgbuild(1) states it: the options of each command in
# both spellings (--option VALUE, --option=VALUE), and the exact message and
# exit status 2 of each kind of wrong call, per command, since every command
# reads its words through the one argument table (src/cli/options.cpp).
# Nothing is built and no registry is asked: a recipe of one config step is
# planned, against an empty store and cache.
#
#   tests/e2e/command_line.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
cd "$work" || exit 1
printf 'image("a", scratch:env { A = param("who", "x") })\n' >recipe.lua

# usage_error MESSAGE ARGS...: imgbuild ARGS exits 2, saying MESSAGE and where the help is.
usage_error() {
  local message=$1
  shift
  "$IMGBUILD" "$@" >"$work/out" 2>"$work/err"
  check "imgbuild $* exits 2" test $? -eq 2
  check "  saying: $message" diff <(printf 'imgbuild: %s\n(see imgbuild --help)\n' "$message") "$work/err"
}

step "help and version"
"$IMGBUILD" >/dev/null 2>"$work/err"
check "no arguments: exit 2, the usage on stderr" test $? -eq 2 -a "$(head -c 16 "$work/err")" = "usage: imgbuild "
check "--help anywhere prints the usage" sh -c "'$IMGBUILD' plan recipe.lua --help | head -1 | grep -q '^usage: imgbuild '"
check "help prints the usage" sh -c "'$IMGBUILD' help | grep -q '^  --progress MODE '"
check "--version" sh -c "'$IMGBUILD' --version | grep -qx 'imgbuild [0-9.]*'"
usage_error "unknown option '--version'" build --version

step "build and plan: both spellings of a value, options anywhere"
check_cmd "$IMGBUILD" plan --set who=me recipe.lua --progress json --cache-dir "$work/c2" -o "oci:$work/o"
cp "$work/last.out" "$work/spaced.out"
check_cmd "$IMGBUILD" plan --set=who=me recipe.lua --progress=json --cache-dir="$work/c2" --output="oci:$work/o"
check "the same plan" diff "$work/spaced.out" "$work/last.out"
outcome "--set reached the recipe" "env A=me"
check_cmd "$IMGBUILD" plan recipe.lua --pull --push --no-push --no-cache --strict --debug --ignore=tls \
  --compression=zstd --insecure-registry=localhost --registry-mirror=docker.io=localhost --context=.

step "build and plan: wrong calls"
usage_error "no recipe given" build --no-cache
usage_error "cannot open recipe -: no such file" plan -
usage_error "cannot open recipe nothing.lua: no such file" nothing.lua
usage_error "unknown option '--frob'" recipe.lua --frob
usage_error "unknown option '-o=oci:x'" plan recipe.lua -o=oci:x
usage_error "unknown option '--strict=yes'" plan recipe.lua --strict=yes
usage_error "unknown option '--json'" plan recipe.lua --json
usage_error "-o needs a value" plan recipe.lua -o
usage_error "--output needs a value" plan recipe.lua --output
usage_error "invalid output '' (expected oci:DIR or docker-archive:FILE)" plan recipe.lua --output=
usage_error "--set expects NAME=VALUE, got 'who'" plan recipe.lua --set who --frob
usage_error "unknown option '--frob'" plan recipe.lua --frob --set who
usage_error "--ignore foo: no such warning (known: cgo, entrypoint, root, tls, tzdata)" plan recipe.lua --ignore foo
usage_error "--compression bz2: expected gzip or zstd" plan recipe.lua --compression bz2
usage_error "--progress loud: expected auto, tty, plain or json" plan recipe.lua --progress=loud
usage_error "--cache-to localhost:5000/c@sha256:$(printf '0%.0s' {1..64}): name a tag, not a digest" \
  plan recipe.lua --cache-to "localhost:5000/c@sha256:$(printf '0%.0s' {1..64})"
usage_error "registry mirror 'docker.io': expected REGISTRY=MIRROR, e.g. docker.io=mirror.example.com" \
  plan recipe.lua --registry-mirror docker.io

step "cache"
check_cmd "$IMGBUILD" cache ls --cache-dir="$work/c2"
check_cmd "$IMGBUILD" cache prune --cache-dir "$work/c2" --keep-bytes=1GB --older-than 7d
usage_error "cache needs a command: ls or prune" cache
usage_error "cache: unknown command 'list' (ls or prune)" cache list
usage_error "cache list: unknown option '--frob'" cache list --frob
usage_error "cache ls: unknown option 'extra'" cache ls extra
usage_error "cache ls: unknown option '--keep-bytes'" cache ls --keep-bytes 1GB
usage_error "--keep-bytes: 'lots' is not a size (e.g. 10GB, 500MB, 2GiB)" cache prune --keep-bytes=lots
usage_error "--older-than: '7x' is not a duration (e.g. 7d, 12h, 30m)" cache prune --older-than 7x
usage_error "--cache-dir needs a value" cache prune --cache-dir

step "push, images, inspect, check"
usage_error "push takes a stored image and one or more references: imgbuild push NAME REF..." push a
usage_error "unknown option '-'" push a -
usage_error "unknown option '--registry-mirror'" push --registry-mirror docker.io=m a b
usage_error "unknown option '--debug=1'" push --debug=1 a b
usage_error "--insecure-registry needs a value" push a b --insecure-registry
"$IMGBUILD" push --debug --insecure-registry=localhost a localhost:5000/a:1 >/dev/null 2>"$work/err"
check "push's options in both spellings, then a missing image (exit 1)" \
  test $? -eq 1 -a "$(cat "$work/err")" = "imgbuild: no image named 'a' in the store (see imgbuild images)"
usage_error "images takes no arguments" images --all
usage_error "inspect takes one image: NAME or oci:DIR[:NAME]" inspect a b
usage_error "check needs at least one file" check --json
usage_error "unknown option '-'" check -
usage_error "unknown option '--json=1'" check --json=1 /bin/true
check "check --json may follow the files" sh -c "'$IMGBUILD' check /bin/true --json | jq -e '.[0].elf'"

finish
