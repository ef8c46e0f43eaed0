#!/usr/bin/env bash
# Tier 3: examples/lockfile-builder, the seed's "glide lock" flow. The first
# build finds no builder-<md5 of the lockfile> in the registry, builds the
# builder and pushes it; the next build pulls it and runs no `go mod
# download`; a changed lockfile names a new builder. --no-push pushes nothing,
# and an unreachable registry is an error at the cached() line.
#
#   tests/e2e/lockfile_builder.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"

# A plain folder, not a git checkout: ci.branch and ci.sha are nil there, and
# the lockfile can be changed.
APP="$work/app"
cp -r "$ROOT/examples/lockfile-builder" "$APP"

imgbuild() { "$IMGBUILD" "$@" >"$work/last.out" 2>"$work/last.err"; }
lockfile_md5() { cat "$APP/go.mod" "$APP/go.sum" | md5sum | cut -c1-32; }
in_registry() { skopeo inspect --tls-verify=false "docker://$REG/$1" >/dev/null; }

step "a registry mirroring docker.io with a Go builder image"
here "registry" registry_start open
REG=$REGISTRY_open
here "seed golang:1.22-alpine (busybox and this machine's Go)" seed_golang "$REG" library/golang:1.22-alpine
ARGS=(--registry-mirror "docker.io=$REG" --set "registry=$REG")
tag=$(lockfile_md5)
cached_line=$(grep -n '^local builder = cached(' "$APP/recipe.lua" | cut -d: -f1)

step "first build with --no-push: the builder is built, nothing is pushed"
imgbuild "$APP/recipe.lua" "${ARGS[@]}" --no-push
outcome "it builds" "^lockfile-app  sha256:"
check "go mod download ran in the builder" grep -q "recipe.lua:[0-9]*  run go mod download" "$work/last.err"
check "the builder would be pushed to builder-<md5 of go.mod and go.sum>" \
  grep -q "^would push $REG/lockfile-builder:builder-$tag@sha256:" "$work/last.out"
check "and the app under the fallback tag (no git checkout)" grep -q "^would push $REG/lockfile-app:dev@sha256:" "$work/last.out"
check "the registry has no builder tag" sh -c "! skopeo inspect --tls-verify=false docker://$REG/lockfile-builder:builder-$tag"
check "nor the app" sh -c "! skopeo inspect --tls-verify=false docker://$REG/lockfile-app:dev"

step "first build: exists is false, the builder is built and pushed"
imgbuild "$APP/recipe.lua" "${ARGS[@]}" -o "oci:$work/first"
outcome "it builds" "^lockfile-app  sha256:"
check "the builder was pushed" grep -q "^pushed $REG/lockfile-builder:builder-$tag@sha256:" "$work/last.out"
check "the registry now has builder-$tag" in_registry "lockfile-builder:builder-$tag"
# Besides the referrers tag (sha256-HEX) docker-registry keeps the pushed
# image's SBOM and provenance under.
check "its only tag is builder-<md5sum of the lockfile>" \
  sh -c "skopeo list-tags --tls-verify=false docker://$REG/lockfile-builder |
    jq -e '[.Tags[] | select(test(\"^sha256-[0-9a-f]{64}\$\") | not)] == [\"builder-$tag\"]'"
check "the app was pushed too" in_registry "lockfile-app:dev"
check "oci_validate.py and check_promises.py say OK" valid_image "$work/first"

step "second build: the builder comes from the registry"
imgbuild "$APP/recipe.lua" "${ARGS[@]}" -o "oci:$work/second"
outcome "it builds" "^lockfile-app  sha256:"
check "no go mod download step ran" sh -c "! grep -q 'go mod download' '$work/last.err'"
check "the app's stage starts from the pulled builder, at the cached() line" \
  grep -q "recipe.lua:$cached_line  from $REG/lockfile-builder:builder-$tag@sha256:" "$work/last.err"
check "the builder was not pushed again" sh -c "! grep -q 'lockfile-builder' '$work/last.out'"
check "oci_validate.py and check_promises.py say OK" valid_image "$work/second"
run_image "$work/second:lockfile-app" 8080 http://127.0.0.1:8080/ "hello from a cached builder" \
  "the app built on the pulled builder answers on 8080 under runc"
stop_image

step "a changed lockfile names a new builder"
printf '\n// a new dependency would change this file\n' >>"$APP/go.mod"
new_tag=$(lockfile_md5)
check "the lockfile's md5 changed" test "$new_tag" != "$tag"
# A named target: the builder's push still follows the build that needs it.
imgbuild "$APP/recipe.lua" lockfile-app "${ARGS[@]}" --no-push
outcome "it builds" "^lockfile-app  sha256:"
check "go mod download ran again" grep -q "recipe.lua:[0-9]*  run go mod download" "$work/last.err"
check "the new builder would be pushed under builder-$new_tag" \
  grep -q "^would push $REG/lockfile-builder:builder-$new_tag@sha256:" "$work/last.out"

step "a registry that cannot be asked is an error at the cached() line"
imgbuild "$APP/recipe.lua" "${ARGS[@]}" --set "registry=127.0.0.1:$(free_port)" --no-push
check "exit status 1" test $? -eq 1
check "the message names the recipe line and the registry" \
  grep -q "^imgbuild: $APP/recipe.lua:$cached_line: cached: 127.0.0.1:[0-9]*/lockfile-builder:builder-$new_tag: .*Couldn't connect" "$work/last.err"

step "exists() on its own"
mkdir -p "$work/probe"
cat >"$work/probe/recipe.lua" <<'EOF'
print("exists: " .. tostring(exists(param("ref"))))
image("probe", scratch:doctor { ignore = { "entrypoint", "root" } })
EOF
imgbuild "$work/probe/recipe.lua" --set "ref=$REG/lockfile-builder:builder-$tag"
check "true for the pushed builder" grep -qx "exists: true" "$work/last.err"
imgbuild "$work/probe/recipe.lua" --set "ref=$REG/lockfile-builder:builder-$new_tag"
check "false for the builder that --no-push left out" grep -qx "exists: false" "$work/last.err"
imgbuild "$work/probe/recipe.lua" --set "ref=$REG/nothing-here:1"
check "false for a repository the registry does not know" grep -qx "exists: false" "$work/last.err"
here "a registry that needs a password" registry_start basic
imgbuild "$work/probe/recipe.lua" --set "ref=$REGISTRY_basic/lockfile-builder:1"
check "without credentials: exit status 1" test $? -eq 1
check "and the registry's refusal at the recipe line" \
  grep -q "^imgbuild: $work/probe/recipe.lua:1: exists: .*401" "$work/last.err"

finish
