#!/usr/bin/env bash
# Tier 3: reusable libraries as an installed imgbuild finds them. A recipe in a
# temporary folder requires a library from IMGBUILD_PATH, one from its own
# folder and the shipped stdlib, with the binary copied away from the source
# tree, run from another folder, and the source tree hidden by an empty mount
# (which needs root: skipped without): the stdlib comes from inside the binary.
#
#   tests/e2e/require.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
[[ $(id -u) -eq 0 ]] || skip "hiding the source tree needs a mount namespace, so root (run the suite as root)"
share_go_cache
mkdir -p "$work/bin" "$work/lib/team" "$work/app" "$work/elsewhere"
cp "$IMGBUILD" "$work/bin/imgbuild"

# A shared library on IMGBUILD_PATH: a stage factory taking and returning images.
cat >"$work/lib/team/labels.lua" <<'LUA'
local M = {}
function M.owned(img, team)
  return img:label { ["com.example.team"] = team }
end
return M
LUA
# helpers.lua on IMGBUILD_PATH and next to the recipe: the recipe's folder is
# searched first.
cat >"$work/lib/helpers.lua" <<'LUA'
return { origin = "IMGBUILD_PATH" }
LUA
cat >"$work/app/helpers.lua" <<'LUA'
return { origin = "recipe folder", port = 9090 }
LUA
printf 'module example.com/app\n\ngo 1.19\n' >"$work/app/go.mod"
printf 'package main\n\nimport "net/http"\n\nfunc main() { http.ListenAndServe(":9090", nil) }\n' >"$work/app/main.go"
cat >"$work/app/recipe.lua" <<'LUA'
local team = require "team.labels"          -- IMGBUILD_PATH
local helpers = require "helpers"           -- the recipe's folder, before IMGBUILD_PATH
local service = require "imgbuild.service"  -- the stdlib in the binary
local app = team.owned(service.image { name = "app", port = helpers.port }, "payments")
  :label { ["com.example.helpers"] = helpers.origin }
image("required", app)
LUA

# run_isolated COMMAND...: in a mount namespace where the source tree is an
# empty folder.
run_isolated() {
  unshare -m sh -c 'mount -t tmpfs none "$0" && exec "$@"' "$ROOT" "$@"
}

step "the copied binary, from another folder, with the source tree hidden"
check "the source tree is hidden in the namespace" \
  unshare -m sh -c 'mount -t tmpfs none "$0" && ! ls "$0/stdlib"' "$ROOT"
(cd "$work/elsewhere" && IMGBUILD_PATH="$work/missing:$work/lib" \
  run_isolated "$work/bin/imgbuild" ../app/recipe.lua -o "oci:$work/oci") >"$work/last.out" 2>"$work/last.err"
outcome "it builds" "^required  sha256:"
check "the doctor found nothing to say" sh -c "! grep -q warning '$work/last.err'"
check "oci_validate.py and check_promises.py say OK" valid_image "$work/oci"
skopeo inspect --config "oci:$work/oci:required" >"$work/config.json" 2>&1
check "the IMGBUILD_PATH library labelled it" jq -e '.config.Labels["com.example.team"] == "payments"' "$work/config.json"
check "the recipe folder's helpers won over IMGBUILD_PATH's" \
  jq -e '.config.Labels["com.example.helpers"] == "recipe folder" and (.config.ExposedPorts | has("9090/tcp"))' "$work/config.json"
check "imgbuild.service made the rest" \
  jq -e '.config.User == "65534" and .config.Entrypoint == ["/usr/local/bin/app"]' "$work/config.json"

step "without IMGBUILD_PATH the shared library is not found, at the require line"
(unset IMGBUILD_PATH && cd "$work/elsewhere" && run_isolated "$work/bin/imgbuild" ../app/recipe.lua) \
  >"$work/last.out" 2>"$work/last.err"
check "exit status 1" test $? -eq 1
check "the message names the line and where it looked" sh -c "grep -q \"^imgbuild: ../app/recipe.lua:1: module 'team.labels' not found:\" '$work/last.err' &&
  grep -q \"no file '../app/team/labels.lua'\" '$work/last.err' && grep -q \"no module 'team.labels' in imgbuild's stdlib\" '$work/last.err'"

finish
