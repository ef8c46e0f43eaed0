#!/usr/bin/env bash
# Tier 3: one image pushed to many tags in one push, and the annotations that
# say where it came from. Four tags: two of one repository and one of another
# on registry A (behind a proxy that logs every request), one on registry B.
# Each blob goes up once per registry: A's second repository mounts what the
# first got (and the first mounts the base's layers from the base's
# repository), B gets its own upload; then the manifest goes under every tag.
# The counts are asserted from imgbuild's output (plain and JSON) and from the
# registries' view (the proxy's log, skopeo of every tag). A tag on a registry
# that is down fails by name and hides none of the others. The manifest
# carries created/source/revision/version/base annotations from the context's
# git checkout, the remote's token stripped; two builds give one digest.
#
#   tests/e2e/push_tags.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
unset SOURCE_DATE_EPOCH
ctx=$work/ctx
mkdir -p "$ctx"
echo "hello from one upload" >"$ctx/hello.txt"
cat >"$ctx/app.lua" <<'LUA'
local a, b = param("A"), param("B")
local app = from(a .. "/base/busybox:oci")
  :copy("hello.txt", "/hello.txt")
  :label { ["org.opencontainers.image.title"] = "app" }
  :entrypoint { "/bin/cat", "/hello.txt" }
  :doctor { ignore = { "root" } }
image("app", app)
push(app, { a .. "/team/app:latest", a .. "/team/app:v1", a .. "/other/app:v1", b .. "/app:v1" })
LUA
secret=tok-$RANDOM-canary
(cd "$ctx" && git init -q . && git add -A && git remote add origin "https://ci:$secret@git.example.com/team/app.git?x=$secret" &&
  GIT_CONFIG_GLOBAL=/dev/null GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t \
    GIT_COMMITTER_EMAIL=t@example.com GIT_COMMITTER_DATE='1700000000 +0000' git commit -q -m app) >"$work/git.log" 2>&1 ||
  fail "a git checkout for the context"
revision=$(git -C "$ctx" rev-parse HEAD)
# A tag build on GitHub Actions: ci.tag is the version.
export GITHUB_ACTIONS=true GITHUB_REF_TYPE=tag GITHUB_REF_NAME=v1.2.3 GITHUB_REF=refs/tags/v1.2.3 GITHUB_SHA=$revision

step "registries A (behind a logging proxy, seeded with busybox) and B"
here "registry A" registry_start open A
here "registry B" registry_start open B
check "seed registry A" seed_images "$REGISTRY_A"
here "proxy in front of A" proxy_start "$REGISTRY_A"
A=$PROXY B=$REGISTRY_B

step "one push, four tags: the blobs once per registry, the manifest under every tag"
check_cmd "$IMGBUILD" "$ctx/app.lua" --set "A=$A" --set "B=$B" --progress plain
cp "$work/last.out" "$work/push.out"
cp "$work/last.err" "$work/push.err"
digest=$("$IMGBUILD" inspect app | jq -r .digest)
layers=$("$IMGBUILD" inspect app | jq '.manifest.layers | length')
blobs=$((layers + 1))
for ref in "$A/team/app:latest" "$A/team/app:v1" "$A/other/app:v1" "$B/app:v1"; do
  check "stdout: pushed $ref" grep -qxF "pushed $ref@$digest" "$work/push.out"
  check "the registry serves $ref as $digest" \
    test "sha256:$(skopeo inspect --raw --tls-verify=false "docker://$ref" | sha256sum | cut -c1-64)" = "$digest"
done
# A/team/app: the base's layers mounted from base/busybox, the new layer and
# the config uploaded; A/other/app: all mounted from team/app; B: all uploaded.
uploaded=$((2 + blobs)) mounted=$((layers - 1 + blobs))
check "the counts: $uploaded uploaded, $mounted mounted, 4 manifests put" \
  grep -qE "^  4 tags: $uploaded uploaded \([^)]*\), $mounted mounted, 0 already there, 4 manifests put$" "$work/push.err"
# The paths the proxy saw, as they were (jq -r: no JSON quotes).
paths() { jq -r "select($1) | .path" "$PROXY_LOG"; }
mounts() { paths '.method == "POST" and (.path | test("mount=")) and .status == 201'; }
put_blobs() { paths '.method == "PUT" and (.path | test("/blobs/uploads/"))'; }
check "registry A: $((layers - 1)) mounts into team/app from base/busybox, $blobs into other/app from team/app" \
  test "$(mounts | grep -c '^/v2/team/app/.*from=base%2Fbusybox') $(mounts | grep -c '^/v2/other/app/.*from=team%2Fapp') $(mounts | wc -l)" \
  = "$((layers - 1)) $blobs $((layers - 1 + blobs))"
# The config is not in base/busybox: the registry answers that mount with an
# upload session (202), and the blob is sent in it.
check "registry A: a mount answered with 202 became an upload" \
  test "$(paths '.method == "POST" and (.path | test("mount=")) and .status == 202' | grep -c '^/v2/team/app/')" = 1
# The image's own blobs and tags; what is attached to it (SBOM, provenance:
# blobs, manifests put by digest, the sha256-HEX referrers tag) comes after.
image_hexes=$(skopeo inspect --raw --tls-verify=false "docker://$A/team/app:latest" |
  jq -r '.config.digest, .layers[].digest' | cut -d: -f2)
put_image_blobs() { put_blobs | grep -F "$image_hexes"; }
check "registry A: 2 blobs uploaded, to team/app only" \
  test "$(put_image_blobs | grep -c '^/v2/team/app/') $(put_image_blobs | wc -l)" = "2 2"
check "registry A: 3 manifests put under tags" \
  test "$(proxy_requests 'select(.method == "PUT" and (.path | test("/manifests/")) and (.path | test("/manifests/sha256") | not)) | .path' | wc -l)" = 3

step "the same push again, in JSON: everything already there"
check_cmd "$IMGBUILD" "$ctx/app.lua" --set "A=$A" --set "B=$B" --progress json
check "one push event for the four tags, with its counts" jq -s -e --arg d "$digest" --argjson n "$((3 * blobs))" \
  '[.[] | select(.event == "push")] | length == 1 and (.[0] | .digest == $d and (.refs | length) == 4 and
   .uploaded == 0 and .mounted == 0 and .present == $n and .manifests == 4 and .failed == [])' "$work/last.out"

step "a tag on a registry that is down fails by name; the others are still pushed"
dead=127.0.0.1:$(free_port)
if "$IMGBUILD" push app "$B/app:cli" "$dead/app:cli" "$A/team/app:cli" >"$work/last.out" 2>"$work/last.err"; then
  fail "the push failed (it succeeded)"
else
  check "the error names the dead tag" grep -qF "$dead/app:cli: " "$work/last.err"
  check "and says 1 of 3 failed" grep -qF "push: 1 of 3 tags failed" "$work/last.err"
  check "the live tags are pushed" test "$(grep -c "^pushed .*@$digest$" "$work/last.out")" = 2
  check "2 manifests put" grep -q ", 2 manifests put$" "$work/last.err"
  for ref in "$B/app:cli" "$A/team/app:cli"; do
    check "the registry has $ref" skopeo inspect --raw --tls-verify=false "docker://$ref"
  done
fi

step "the manifest says where it came from"
skopeo inspect --raw --tls-verify=false "docker://$B/app:v1" >"$work/manifest.json"
check "created is the commit time" jq -e '.annotations["org.opencontainers.image.created"] == "2023-11-14T22:13:20Z"' "$work/manifest.json"
check "source is the remote, without its token or query" \
  jq -e '.annotations["org.opencontainers.image.source"] == "https://git.example.com/team/app.git"' "$work/manifest.json"
check "revision is the commit" jq -e --arg r "$revision" '.annotations["org.opencontainers.image.revision"] == $r' "$work/manifest.json"
check "version is the CI tag" jq -e '.annotations["org.opencontainers.image.version"] == "v1.2.3"' "$work/manifest.json"
check "the base, by name and digest" jq -e --arg b "$A/base/busybox:oci" --arg d "sha256:$(skopeo inspect --raw \
  --tls-verify=false "docker://$A/base/busybox:oci" | sha256sum | cut -c1-64)" \
  '.annotations["org.opencontainers.image.base.name"] == $b and .annotations["org.opencontainers.image.base.digest"] == $d' \
  "$work/manifest.json"
check "labels of other names stay labels" jq -e '.annotations | has("org.opencontainers.image.title") | not' "$work/manifest.json"
check "the token is nowhere: output, store, registry" \
  sh -c "! grep -rqF '$secret' '$work/push.out' '$work/push.err' '$work/last.out' '$work/last.err' '$XDG_DATA_HOME' '$REG_WORK/B/storage'"

step "reproducible: a build without cache of the same checkout gives the same digest"
check_cmd "$IMGBUILD" "$ctx/app.lua" --set "A=$A" --set "B=$B" --no-cache --no-push
check "the same digest" grep -qxF "would push $B/app:v1@$digest (--no-push)" "$work/last.out"

step "a label overrides an annotation, an empty one drops it; no remote, no tag: no source, no version"
sed -i 's|:label { \["org.opencontainers.image.title"\] = "app" }|:label { ["org.opencontainers.image.version"] = "2.0", ["org.opencontainers.image.revision"] = "" }|' "$ctx/app.lua"
git -C "$ctx" remote remove origin
check_cmd "$IMGBUILD" "$ctx/app.lua" --set "A=$A" --set "B=$B" -o "oci:$work/labelled" --no-push
m=$(jq -r '.manifests[0].digest[7:]' "$work/labelled/index.json")
check "version from the label, no revision, no source" jq -e '.annotations["org.opencontainers.image.version"] == "2.0" and
  (.annotations | has("org.opencontainers.image.revision") or has("org.opencontainers.image.source") | not)' \
  "$work/labelled/blobs/sha256/$m"
unset GITHUB_ACTIONS GITHUB_REF_TYPE GITHUB_REF_NAME GITHUB_REF GITHUB_SHA
sed -i 's|\["org.opencontainers.image.version"\] = "2.0", ||' "$ctx/app.lua"
check_cmd "$IMGBUILD" "$ctx/app.lua" --set "A=$A" --set "B=$B" -o "oci:$work/untagged" --no-push
m=$(jq -r '.manifests[0].digest[7:]' "$work/untagged/index.json")
check "outside CI: no version" jq -e '.annotations | has("org.opencontainers.image.version") | not' "$work/untagged/blobs/sha256/$m"
finish
