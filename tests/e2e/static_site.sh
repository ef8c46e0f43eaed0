#!/usr/bin/env bash
# Tier 3: examples/static-site: the rest of the recipe API seen from outside.
# Parameters and SOURCE_DATE_EPOCH reach the config, .dockerignore keeps drafts
# out, chown gives the content to a non-root user, the server runs as that user
# under runc, and two builds running at once share one store safely.
#
#   tests/e2e/static_site.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
RECIPE="$ROOT/examples/static-site/recipe.lua"

step "build with --set and SOURCE_DATE_EPOCH"
SOURCE_DATE_EPOCH=1700000000 check_cmd "$IMGBUILD" "$RECIPE" --set VERSION=1.2.3 -o "oci:$work/oci"
check "oci_validate.py and check_promises.py say OK" valid_image "$work/oci"
skopeo inspect --config "oci:$work/oci:static-site" >"$work/config.json" 2>&1
cfg() { jq -e "$1" "$work/config.json" >/dev/null; }
check "the version label comes from --set" cfg '.config.Labels["org.opencontainers.image.version"] == "1.2.3"'
check "created comes from SOURCE_DATE_EPOCH" cfg '.created == "2023-11-14T22:13:20Z"'
check "env, user, workdir" cfg '.config.Env == ["LISTEN=:8081","ROOT=/srv/www"] and .config.User == "10001:10001" and .config.WorkingDir == "/srv"'
check "entrypoint, cmd, port, volume, stop signal" cfg '.config.Entrypoint == ["/usr/local/bin/server"] and .config.Cmd == ["-quiet"] and (.config.ExposedPorts | has("8081/tcp")) and (.config.Volumes | has("/srv/cache")) and .config.StopSignal == "SIGINT"'
check "the doctor found nothing to say" sh -c "! grep -q warning '$work/last.err'"
check "one history entry per step, two of them layers" cfg '(.history | length) == 11 and ([.history[] | select(.empty_layer != true)] | length) == 2'

step "the layers"
manifest=$(jq -r '.manifests[0].digest[7:]' "$work/oci/index.json")
: >"$work/listing"
for layer in $(jq -r '.layers[].digest[7:]' "$work/oci/blobs/sha256/$manifest"); do
  tar -tvzf "$work/oci/blobs/sha256/$layer" >>"$work/listing"
done
check "the content belongs to 10001" grep -Eq '^-rw-r--r-- 10001/10001 .* srv/www/index.html$' "$work/listing"
check "implied parents belong to root" grep -Eq '^drwxr-xr-x 0/0 .* srv/$' "$work/listing"
check "every mtime is SOURCE_DATE_EPOCH" sh -c "! grep -v ' 2023-11-14 22:13 ' '$work/listing'"
check "drafts are excluded by .dockerignore" sh -c "! grep -q drafts '$work/listing'"

step "it runs as uid 10001 under runc and serves the folder"
run_image "$work/oci:static-site" 8081 http://127.0.0.1:8081/ "served from a scratch image" "GET / returns the page"
check "the bundle runs as 10001" jq -e '.process.user.uid == 10001' "$work/bundle/config.json"

step "--context: the recipe can live outside its build context"
mkdir -p "$work/recipes"
cp "$RECIPE" "$work/recipes/site.lua"
SOURCE_DATE_EPOCH=1700000000 check_cmd "$IMGBUILD" "$work/recipes/site.lua" --context "$ROOT/examples/static-site" \
  --set VERSION=1.2.3
check "same image as built from the example's folder" grep -q "^static-site  sha256:$manifest " "$work/last.out"
"$IMGBUILD" "$work/recipes/site.lua" >/dev/null 2>"$work/err.txt"
check "without --context, go build fails at the recipe line" \
  grep -qx "imgbuild: $work/recipes/site.lua:10: go build .: exited with status 1:" "$work/err.txt"

step "two builds at once share one store"
"$IMGBUILD" "$RECIPE" >"$work/a.out" 2>&1 &
a=$!
"$IMGBUILD" "$ROOT/examples/hello/recipe.lua" >"$work/b.out" 2>&1 &
b=$!
wait $a; ra=$?
wait $b; rb=$?
check "both succeeded" test "$ra$rb" = "00"
check "the store lists both" sh -c "'$IMGBUILD' images | grep -q '^hello ' && '$IMGBUILD' images | grep -q '^static-site '"
check "the store is a valid layout" valid_image "$XDG_DATA_HOME/imgbuild"

finish
