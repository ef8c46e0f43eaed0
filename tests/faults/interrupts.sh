#!/usr/bin/env bash
# Faults: Ctrl-C and SIGTERM. A build stopped by a signal while a RUN step
# runs, while `go build` compiles, while the recipe itself is evaluated, or
# while a registry stalls a download (also one that a root's unpack reads
# as it arrives) ends with status 130 (SIGINT) or 143
# (SIGTERM); the step's processes are killed, temporary roots and partial
# files are removed, locks are released, and the next build succeeds.
#
#   tests/faults/interrupts.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
build_pid=""
at_exit '[[ -n $build_pid ]] && kill -KILL "$build_pid" 2>/dev/null'
store=$XDG_DATA_HOME/imgbuild cache=$XDG_CACHE_HOME/imgbuild
mkdir -p "$work/ctx"
ctx=$work/ctx
# RUN steps without a registry: a scratch image with a static busybox.
cp /bin/busybox "$ctx/busybox"

# interrupted WHAT SIGNAL STATUS: the background build was stopped by SIGNAL:
# it says so, exits with STATUS, and left the store and the cache consistent.
interrupted() {
  local what=$1 signal=$2 expected=$3
  stop_build "$signal"
  check "$what: exit status $expected" test "$status" = "$expected"
  check "$what: says it was interrupted by SIG$signal" grep -q "^imgbuild: interrupted by SIG$signal" "$work/bg.err"
  consistent "$what" "$store" "$cache"
}

step "a RUN step interrupted with Ctrl-C (SIGINT) is killed, with what it started"
cat >"$ctx/run.lua" <<'EOF'
local seconds = param("SECONDS", "0")
image("slow", scratch
  :copy("busybox", "/bin/busybox")
  :run { "/bin/busybox", "sh", "-c", "echo started; /bin/busybox sleep " .. seconds .. " & wait; echo done > /done" })
EOF
start_build "$ctx/run.lua" --set SECONDS=86401
if wait_until "the step started" grep -q "| started" "$work/bg.err"; then
  interrupted "SIGINT in a RUN step" INT 130
  check "the step's processes are gone (a child of the step included)" no_process "sleep 86401"
fi
check_cmd "$IMGBUILD" "$ctx/run.lua"
outcome "the next build succeeds" "^slow  sha256:"

step "a RUN step stopped with SIGTERM (a cancelled CI job)"
start_build "$ctx/run.lua" --set SECONDS=86402
if wait_until "the step started" grep -q "| started" "$work/bg.err"; then
  interrupted "SIGTERM in a RUN step" TERM 143
  check "the step's processes are gone" no_process "sleep 86402"
fi

step "go build interrupted: the compiler and everything go started are killed, its work folder removed"
if command -v go >/dev/null; then
  mkdir -p "$ctx/app"
  printf 'module example.com/app\n\ngo 1.19\n' >"$ctx/app/go.mod"
  printf 'package main\n\nfunc main() { println("hi") }\n' >"$ctx/app/main.go"
  # A compiler that hangs: go runs every tool through -toolexec.
  cat >"$work/slow-tool" <<EOF
#!/bin/sh
echo \$\$ >>"$work/tool-started"
exec sleep 86403
EOF
  chmod +x "$work/slow-tool"
  cat >"$ctx/go.lua" <<EOF
local go = require "imgbuild.go"
image("app", scratch:copy(go.build { main = "app", module = "app", flags = { param("TOOLEXEC", "-v") } }, "/app"))
EOF
  start_build "$ctx/go.lua" --set "TOOLEXEC=-toolexec=$work/slow-tool"
  if wait_until "go started the tool" test -s "$work/tool-started"; then
    interrupted "SIGINT in go build" INT 130
    check "go and its tools are gone" no_process "sleep 86403"
  fi
  check_cmd "$IMGBUILD" "$ctx/go.lua"
  outcome "the next build succeeds" "^app  sha256:"
else
  fail "go is not installed: the host-build case cannot run"
fi

step "a recipe that loops for ever stops on Ctrl-C"
cat >"$ctx/loop.lua" <<EOF
io.open("$work/evaluating", "w"):close()
while true do end
EOF
start_build "$ctx/loop.lua"
if wait_until "the recipe runs" test -e "$work/evaluating"; then
  interrupted "SIGINT while the recipe is evaluated" INT 130
fi

step "a download the registry stalls is abandoned on Ctrl-C"
here "open registry" registry_start open
check "seed it" seed_images "$REGISTRY"
here "proxy in front of it" proxy_start "$REGISTRY"
# Blob downloads (config and layers) hang for a day; manifests go through.
proxy_faults '[{"method": "GET", "path": "/blobs/sha256:", "times": -1, "action": {"delay": 86400}}]'
cat >"$ctx/pull.lua" <<EOF
image("pulled", from("$PROXY/base/busybox:oci"):run "echo ran > /ran")
EOF
start_build "$ctx/pull.lua"
# The config download follows the manifest's at once, and hangs.
manifest_fetched() { [[ -n $(proxy_requests 'select(.path | test("/manifests/")) | select(.status == 200)') ]]; }
if wait_until "the manifest was fetched" manifest_fetched; then
  sleep 1
  interrupted "SIGINT in a stalled download" INT 130
fi

step "a base layer unpacked as it downloads: Ctrl-C while the unpack waits for the download"
# The config comes; the layer's download hangs once started, while the
# root's unpack waits for its first bytes.
layer=$(skopeo inspect --tls-verify=false --raw "docker://$REGISTRY/base/busybox:oci" | jq -r '.layers[0].digest[7:]')
proxy_faults '[{"method": "GET", "path": "/blobs/sha256:'"${layer:0:12}"'", "times": -1, "action": {"delay": 86400}}]'
start_build "$ctx/pull.lua"
layer_download_started() { compgen -G "$store/blobs/sha256/.$layer.tmp-*" >/dev/null; }
if wait_until "the layer's download started" layer_download_started; then
  sleep 1
  interrupted "SIGINT in a stalled download that a root's unpack reads" INT 130
fi
proxy_reset
check_cmd "$IMGBUILD" "$ctx/pull.lua"
outcome "the next build succeeds" "^pulled  sha256:"
consistent "after the builds that followed" "$store" "$cache"

finish
