#!/usr/bin/env bash
# Tier 3: RUN steps and multi-stage builds. examples/multistage (the PRODUCT.md
# recipe) builds in a Go builder image pulled from a local registry that mirrors
# docker.io, and its scratch result runs under runc; a busybox final stage
# does too. RUN layers agree with umoci's view of them, secrets stay out of
# every blob, failing steps point at their line.
#
#   tests/e2e/multistage.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
EXAMPLE="$ROOT/examples/multistage"
mkdir -p "$work/ctx"

# imgbuild ARGS...: runs it, keeping stdout and stderr for the checks.
imgbuild() { "$IMGBUILD" "$@" >"$work/last.out" 2>"$work/last.err"; }
layers_of() {  # LAYOUT NAME: the image's layer blobs, one path a line
  local m
  m=$(jq -r --arg n "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $n) | .digest[7:]' "$1/index.json")
  jq -r --arg d "$1/blobs/sha256/" '.layers[].digest[7:] | $d + .' "$1/blobs/sha256/$m"
}

step "a registry mirroring docker.io, with a Go builder image and busybox"
here "registry" registry_start open
REG=$REGISTRY_open
here "seed busybox" seed_images "$REG"
here "seed golang:1.22-alpine (busybox and this machine's Go)" seed_golang "$REG" library/golang:1.22-alpine
MIRROR=(--registry-mirror "docker.io=$REG")

step "examples/multistage: the PRODUCT.md recipe"
imgbuild "$EXAMPLE/recipe.lua" "${MIRROR[@]}" -o "oci:$work/oci" --no-push
outcome "it builds" "^hello  sha256:"
check "go build ran in the builder, its output streamed with the recipe line" grep -q "recipe.lua:9  run \[\"go\",\"build\"" "$work/last.err"
branch=$(git -C "$ROOT" rev-parse --abbrev-ref HEAD 2>/dev/null) sha=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null)
check "push() says where it would push: ci.branch and ci.sha from the repository" \
  grep -q "^would push localhost:5000/hello:${branch}_${sha}@sha256:" "$work/last.out"
check "oci_validate.py and check_promises.py say OK" valid_image "$work/oci"
: >"$work/listing"
for l in $(layers_of "$work/oci" hello); do tar -tzf "$l" >>"$work/listing"; done
check "the scratch image holds the binary and the CA bundle, no Go toolchain" \
  sh -c "grep -qx app '$work/listing' && grep -q 'etc/ssl/certs/ca-certificates.crt' '$work/listing' && ! grep -q 'usr/lib/go' '$work/listing'"
run_image "$work/oci:hello" 8080 http://127.0.0.1:8080/ "hello from a multi-stage build (GIN_MODE=release)" \
  "the binary built in the builder stage answers on 8080 under runc"
stop_image
imgbuild "$EXAMPLE/recipe.lua" "${MIRROR[@]}" --no-push
outcome "an unchanged rebuild reuses the unpacked builder root" "^hello  sha256:"

step "examples/multistage outside a git checkout: no branch, no commit, no Lua error"
cp -r "$EXAMPLE" "$work/no-checkout"
imgbuild plan "$work/no-checkout/recipe.lua" "${MIRROR[@]}"
outcome "it plans, tagged detached_unknown" "^push localhost:5000/hello:detached_unknown (.*recipe.lua:[0-9]*)$"

step "a busybox final stage (alpine-like) with a tool from the builder"
cat >"$work/ctx/busybox.lua" <<EOF
local builder = from "golang:1.22-alpine"
  :workdir "/src"
  :copy(".", ".")
  :run { "go", "build", "-o", "/out/app", ".", env = { CGO_ENABLED = "0" } }
image("tools", from "$REG/base/busybox:oci"
  :copy("/out/app", "/usr/local/bin/app", { from = builder, static = true })
  :user "app"
  :entrypoint { "/usr/local/bin/app" })
EOF
imgbuild "$work/ctx/busybox.lua" --context "$EXAMPLE" "${MIRROR[@]}" -o "oci:$work/busybox"
outcome "it builds" "^tools  sha256:"
run_image "$work/busybox:tools" 8080 http://127.0.0.1:8080/ "hello from a multi-stage build" \
  "it runs as the image's user 'app' under runc"
check "the user came from the image's /etc/passwd" sh -c "jq -c .process.user \"$work/bundle/config.json\"; jq -e '.process.user.uid == 1000' \"$work/bundle/config.json\""
stop_image

step "what a step changes is the layer umoci sees"
echo "canary-secret-5f2e91" >"$work/ctx/token.txt"
token_sum=$(sha256sum <"$work/ctx/token.txt" | cut -c1-64)
cat >"$work/ctx/diff.lua" <<EOF
local base = from "$REG/base/busybox:oci"
  :run "mkdir -p /data/d1 /data/d2 && echo a > /data/d1/a && echo b > /data/d2/b && echo keep > /data/keep"
local changed = base:run({ "sh", "-c", [[
  rm /data/keep /bin/ls && rm -rf /data/d1 && echo file > /data/d1 &&
  rm -rf /data/d2 && mkdir /data/d2 && echo new > /data/d2/new &&
  sha256sum /run/secrets/token | grep -q $token_sum && echo secret-seen &&
  find /data /bin/ls -exec stat -c '%n %F %s' {} + 2>/dev/null | sort > /listing
]], secrets = { token = "token.txt" }, network = "none" })
image("diff", changed:doctor { ignore = { "root", "entrypoint" } })
EOF
imgbuild "$work/ctx/diff.lua" -o "oci:$work/diff"
outcome "it builds" "^diff  sha256:"
check "the step saw its secret at /run/secrets/token" grep -q "diff.lua:3 | secret-seen" "$work/last.err"
last=$(layers_of "$work/diff" diff | tail -n1)
tar -tzf "$last" >"$work/step-layer"
check "the layer has whiteouts for deleted files" sh -c "grep -qx 'data/.wh.keep' '$work/step-layer' && grep -qx 'bin/.wh.ls' '$work/step-layer'"
check "and an opaque marker for the replaced folder" grep -qx 'data/d2/.wh..wh..opq' "$work/step-layer"
check "nothing mounted into the step is in it" sh -c "! grep -Eq '^(proc|dev|run|etc/hosts|etc/resolv.conf)' '$work/step-layer'"
here "umoci unpacks the image" umoci unpack --image "$work/diff:diff" "$work/diff-bundle"
(cd "$work/diff-bundle/rootfs" && find data bin/ls -exec stat -c '/%n %F %s' {} + 2>/dev/null | sort) >"$work/umoci-listing"
check "umoci's tree is the tree the step left" diff "$work/umoci-listing" "$work/diff-bundle/rootfs/listing"
check "the secret is in no blob of the output or the store" \
  sh -c "! grep -rqa canary-secret-5f2e91 '$work/diff/blobs' '$XDG_DATA_HOME/imgbuild/blobs'"
check "nor in the config or history" sh -c "! grep -rq token.txt '$work/diff/blobs'"

step "independent stages build at the same time"
# Each stage's step waits (up to 20 s) for the other's mark in a shared cache
# mount: built one after the other, the first would give up and fail.
cat >"$work/ctx/parallel.lua" <<'EOF'
local function waits_for(me, other)
  return from(param("REGISTRY") .. "/base/busybox:oci"):run({ "sh", "-c",
    "touch /sync/" .. me .. "; i=0; while [ ! -e /sync/" .. other .. " ]; do i=$((i+1)); [ $i -gt 200 ] && exit 9; sleep 0.1; done; echo " .. me .. " > /" .. me,
    cache = { "/sync" } })
end
local a, b = waits_for("a", "b"), waits_for("b", "a")
image("both", scratch:copy("/a", "/a", { from = a }):copy("/b", "/b", { from = b })
  :doctor { ignore = { "entrypoint" } })
EOF
imgbuild "$work/ctx/parallel.lua" --set "REGISTRY=$REG"
outcome "two stages that wait for each other both finish" "^both  sha256:"

step "rootless: the same step as an unprivileged user, in a user namespace"
mkdir -p "$work/rootless"
chmod 755 "$work"
# network = "none": a rootless default network needs /dev/net/tun open to
# the user, which some hosts deny (tests/e2e/hostile_network.sh tries it).
printf '%s\n' "image(\"r\", from(\"$REG/base/busybox:oci\"):run(\"id -u; echo made > /made\", { network = \"none\" }):doctor { ignore = { \"root\", \"entrypoint\" } })" \
  >"$work/rootless/r.lua"
chown -R nobody "$work/rootless"
(cd "$work/rootless" && setpriv --reuid=nobody --regid=nogroup --clear-groups \
  env HOME="$work/rootless" XDG_DATA_HOME="$work/rootless/data" XDG_CACHE_HOME="$work/rootless/cache" \
  "$IMGBUILD" r.lua) >"$work/last.out" 2>"$work/last.err"
outcome "it builds" "^r  sha256:"
check "the step ran as root inside its user namespace" grep -q "r.lua:1 | 0$" "$work/last.err"
m=$(jq -r '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == "r") | .digest[7:]' "$work/rootless/data/imgbuild/index.json" 2>/dev/null)
l=$(jq -r '.layers[-1].digest[7:]' "$work/rootless/data/imgbuild/blobs/sha256/$m" 2>/dev/null)
check "its file is owned by root in the layer, not by the invoking user" \
  sh -c "tar -tvzf '$work/rootless/data/imgbuild/blobs/sha256/$l' | grep -q '^-rw-r--r-- 0/0 .* made$'"

step "a base image steps run in is read once: unpacked, and listed in the same read"
if command -v strace >/dev/null; then
  mkdir -p "$work/once"
  echo hello >"$work/once/greeting"
  # The image is a scratch one: the doctor reads the files of an output's
  # base image, which would be a read of its own.
  cat >"$work/once/recipe.lua" <<EOF
local b = from("$REG/base/busybox:oci"):copy("greeting", "/greeting"):run("cat /greeting; cp /greeting /out")
image("once", scratch:copy("/out", "/out", { from = b }):doctor { ignore = { "root", "entrypoint" } })
EOF
  # The base's layers in the store first (an image of the base alone needs
  # them, and unpacks nothing): the traced build then reads each from there.
  # (On an empty store a layer is unpacked as it downloads, read through the
  # download's own file: tests/e2e/registry.sh.)
  printf 'image("pre", from("%s/base/busybox:oci"):doctor { ignore = { "root", "entrypoint" } })\n' "$REG" >"$work/once/pre.lua"
  (cd "$work/once" && XDG_DATA_HOME="$work/once/data" XDG_CACHE_HOME="$work/once/cache" "$IMGBUILD" pre.lua) \
    >"$work/last.out" 2>"$work/last.err"
  outcome "the base alone builds" "^pre  sha256:"
  # LeakSanitizer cannot run under ptrace (see doctor_kept.sh).
  (cd "$work/once" && ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" XDG_DATA_HOME="$work/once/data" \
    XDG_CACHE_HOME="$work/once/cache" strace -f -qq -e trace=openat -o "$work/once/trace.log" "$IMGBUILD" recipe.lua) \
    >"$work/last.out" 2>"$work/last.err"
  outcome "it builds" "^once  sha256:"
  check "the step ran in the base" grep -q "recipe.lua:1 | hello$" "$work/last.err"
  base_layers=$(skopeo inspect --tls-verify=false --raw "docker://$REG/base/busybox:oci" | jq -r '.layers[].digest[7:]')
  for l in $base_layers; do
    # LayerStream's open (read-only, blocking, no O_NOFOLLOW): the store's checks of a blob open it otherwise.
    check "base layer ${l:0:12} read once" test "$(grep -c "blobs/sha256/$l\", O_RDONLY|O_CLOEXEC)" "$work/once/trace.log")" -eq 1
    check "  and its listing kept" test -s "$work/once/cache/imgbuild/layer-listings/$l"
  done
else
  echo "SKIP: needs strace (scripts/setup installs it)"
fi

step "a failing step"
cat >"$work/ctx/fails.lua" <<EOF
image("f", from "$REG/base/busybox:oci"
  :run "echo preparing; echo broken >&2; exit 3")
EOF
imgbuild "$work/ctx/fails.lua"
check "exit status 1" test $? -eq 1
check "the recipe line, the step and its status" grep -q "fails.lua:2: run: echo preparing; echo broken >&2; exit 3: exited with status 3:" "$work/last.err"
check "the last lines of its output" sh -c "grep -q '^    preparing$' '$work/last.err' && grep -q '^    broken$' '$work/last.err'"
cat >"$work/ctx/nouser.lua" <<EOF
image("u", from "$REG/base/busybox:oci":run({ "true", user = "nobody" }))
EOF
imgbuild "$work/ctx/nouser.lua"
check "an unknown user is an error naming it" grep -q "nouser.lua:1: run: user 'nobody' is not in the image's /etc/passwd" "$work/last.err"

finish
