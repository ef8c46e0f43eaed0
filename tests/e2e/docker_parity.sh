#!/usr/bin/env bash
# Tier 3: what a Dockerfile translated into a recipe gives, beside what
# `buildah bud` (Debian's, chroot isolation, a private storage root) makes of
# the Dockerfile: HEALTHCHECK's encoding, writes under a VOLUME dropped, a RUN
# step's HOSTNAME; and imgbuild's own daily-use promises: `created` from the
# checkout's commit, `plan` listing a go.build compile, a doctor warning told
# once for an image pushed twice.
#
#   tests/e2e/docker_parity.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
[[ $(id -u) -eq 0 ]] || skip "RUN steps and buildah's chroot isolation need root here"
command -v buildah >/dev/null || skip "needs buildah"
share_go_cache
ctx="$work/ctx"
busybox_root "$ctx" sh mkdir ln rm uname
BUILDAH=(buildah --root "$work/buildah/root" --runroot "$work/buildah/run" --storage-driver vfs)
# buildah reads DOCKER_CONFIG's credentials (none here) before it opens a local image.
printf '{}\n' >"$DOCKER_CONFIG/config.json"
at_exit "${BUILDAH[*]} rm -a >/dev/null 2>&1; ${BUILDAH[*]} rmi -a -f >/dev/null 2>&1"

# bud NAME DOCKERFILE: buildah builds DOCKERFILE (docker format: OCI configs
# have no Healthcheck) in $ctx as NAME.
bud() {
  printf '%s\n' "$2" >"$ctx/$1.Dockerfile"
  timeout 300 "${BUILDAH[@]}" bud --isolation chroot --network host --format docker -f "$ctx/$1.Dockerfile" \
    -t "$1" "$ctx" >"$work/$1.bud" 2>&1
}
buildah_config() { "${BUILDAH[@]}" inspect --type image "$1" | jq -cS "$2"; }
# buildah_files NAME PATH: what the image NAME holds in its folder PATH.
buildah_files() {
  local c
  c=$("${BUILDAH[@]}" from "$1") && (ls -A "$("${BUILDAH[@]}" mount "$c")$2" | sort | tr '\n' ' ')
  "${BUILDAH[@]}" rm "$c" >/dev/null
}
imgbuild_config() { "$IMGBUILD" inspect "$1" | jq -cS "$2"; }
# unpack NAME: the stored image NAME's layers applied in order (whiteouts
# included) by umoci into $work/unpacked.
unpack() {
  rm -rf "$work/unpacked" && umoci raw unpack --rootless --image "$XDG_DATA_HOME/imgbuild:$1" "$work/unpacked" >/dev/null
}
imgbuild_files() { ls -A "$work/unpacked$1" | sort | tr '\n' ' '; }

step "HEALTHCHECK: the exec form, the shell form and NONE, as buildah writes them"
for form in exec shell none; do
  case $form in
    exec)
      docker='HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=4 CMD ["/bin/busybox", "true"]'
      recipe='scratch:copy("bin", "/bin"):healthcheck { "/bin/busybox", "true", interval = "30s", timeout = "3s", start_period = "5s", retries = 4 }' ;;
    shell)
      docker='HEALTHCHECK --interval=1m30s CMD /bin/busybox wget -q -O- http://127.0.0.1:8080/ || exit 1'
      recipe='scratch:copy("bin", "/bin"):healthcheck("/bin/busybox wget -q -O- http://127.0.0.1:8080/ || exit 1", { interval = "1m30s" })' ;;
    none)
      docker=$'HEALTHCHECK CMD ["/bin/busybox", "true"]\nHEALTHCHECK NONE'
      recipe='scratch:copy("bin", "/bin"):healthcheck { "/bin/busybox", "true" }:healthcheck(false)' ;;
  esac
  here "buildah bud: $form" bud "hc-$form" "FROM scratch
COPY bin /bin
$docker"
  here "imgbuild: $form" build_recipe "hc-$form" "image(\"hc-$form\", $recipe)"
  want=$(buildah_config "hc-$form" .Docker.config.Healthcheck)
  got=$(imgbuild_config "hc-$form" .config.config.Healthcheck)
  check "$form: imgbuild inspect shows buildah's Healthcheck ($want)" test "$got" = "$want"
done
check "the images pass the OCI validator" valid_image "$XDG_DATA_HOME/imgbuild"

step "VOLUME: what RUN writes below a volume after it is declared is dropped"
here "buildah bud" bud vol 'FROM scratch
COPY bin /bin
RUN mkdir -p /data /srv/data && echo before >/data/before && ln -s /srv/data /link && echo kept >/srv/data/kept
VOLUME /data /link /made
RUN echo after >/data/after; rm /data/before; echo lost >/link/lost; mkdir -p /made/sub; echo out >/outside'
here "imgbuild" build_recipe vol 'image("vol", scratch
  :copy("bin", "/bin")
  :run "mkdir -p /data /srv/data && echo before >/data/before && ln -s /srv/data /link && echo kept >/srv/data/kept"
  :volume("/data", "/link", "/made")
  :run "echo after >/data/after; rm /data/before; echo lost >/link/lost; mkdir -p /made/sub; echo out >/outside")'
here "umoci unpacks it" unpack vol
for dir in /data /srv/data /made; do
  want=$(buildah_files vol "$dir")
  check "$dir holds what buildah's has: $want" test "$(imgbuild_files "$dir")" = "$want"
done
check "a write outside the volumes stays" test -f "$work/unpacked/outside"
: >"$work/vol.listing"
for l in $("$IMGBUILD" inspect vol | jq -r '.manifest.layers[].digest[7:]'); do
  tar -tzf "$XDG_DATA_HOME/imgbuild/blobs/sha256/$l" >>"$work/vol.listing"
done
check "the dropped writes are in no layer" sh -c "! grep -E 'after|lost|\.wh\.before|made/sub' '$work/vol.listing'"

step "RUN: HOSTNAME is the step's host name"
# As the environment has it: a busybox shell would set HOSTNAME for itself.
show_host='busybox env | busybox grep ^HOSTNAME= >/host.txt; busybox uname -n >>/host.txt'
here "imgbuild" build_recipe host "image(\"host\", scratch
  :copy(\"bin\", \"/bin\")
  :run \"$show_host\"
  :run { \"/bin/sh\", \"-c\", \"busybox env | busybox grep ^HOSTNAME= >/env.txt\", env = { HOSTNAME = \"db\" } })"
here "umoci unpacks it" unpack host
check "HOSTNAME is the step's host name, imgbuild on every build" \
  test "$(tr '\n' ' ' <"$work/unpacked/host.txt")" = "HOSTNAME=imgbuild imgbuild "
check "a step's own HOSTNAME wins" test "$(cat "$work/unpacked/env.txt")" = HOSTNAME=db
here "buildah bud" bud host "FROM scratch
COPY bin /bin
RUN $show_host"
c=$("${BUILDAH[@]}" from host)
check "buildah's HOSTNAME is its host name too" \
  sh -c "test \"\$(sed -n 's/^HOSTNAME=//p' '$("${BUILDAH[@]}" mount "$c")/host.txt' | tr '\n' ' ')\" = \"\$(tail -1 '$("${BUILDAH[@]}" mount "$c")/host.txt') \""
"${BUILDAH[@]}" rm "$c" >/dev/null

step "created: the commit time of the context's checkout"
repo="$work/repo"
busybox_root "$repo"
printf 'image("app", scratch:copy("bin", "/bin"))\n' >"$repo/recipe.lua"
here "a checkout committed at 2024-03-09T16:00:00Z" sh -c "cd '$repo' && git init -q -b main && git add . &&
  GIT_COMMITTER_DATE='@1710000000 +0000' git -c user.name=t -c user.email=t@example.com commit -qm first"
created() { "$IMGBUILD" inspect app | jq -r .config.created; }
check_cmd "$IMGBUILD" "$repo/recipe.lua" --progress plain
check "created is the commit's time" test "$(created)" = 2024-03-09T16:00:00Z
first_layers=$("$IMGBUILD" inspect app | jq -c '[.manifest.layers[].digest]')
echo changed >"$repo/uncommitted.txt"
check_cmd "$IMGBUILD" "$repo/recipe.lua" --progress plain
check "a dirty tree keeps HEAD's time" test "$(created)" = 2024-03-09T16:00:00Z
check_cmd env SOURCE_DATE_EPOCH=1700000000 "$IMGBUILD" "$repo/recipe.lua" --progress plain
check "SOURCE_DATE_EPOCH wins" test "$(created)" = 2023-11-14T22:13:20Z
here "a new commit" sh -c "cd '$repo' && git add . &&
  GIT_COMMITTER_DATE='@1720000000 +0000' git -c user.name=t -c user.email=t@example.com commit -qm second"
check_cmd "$IMGBUILD" "$repo/recipe.lua" --progress plain
check "created follows it" test "$(created)" = 2024-07-03T09:46:40Z
check "the copy came from the step cache" grep -q "copy bin /bin  (cached)" "$work/last.err"
check "the layers are those of the first commit" test "$("$IMGBUILD" inspect app | jq -c '[.manifest.layers[].digest]')" = "$first_layers"
rm -rf "$repo/.git"
check_cmd "$IMGBUILD" "$repo/recipe.lua" --progress plain
check "outside a checkout: 1970" test "$(created)" = 1970-01-01T00:00:00Z
check "and no warning about it" sh -c "! grep -q 'git checkout' '$work/last.err'"
mkdir -p "$repo/.git"
check_cmd "$IMGBUILD" "$repo/recipe.lua" --progress plain
check "a checkout git cannot read: a warning naming it, then 1970" \
  grep -q "^imgbuild: warning: the git checkout $repo: git log -1 HEAD failed: .*: images are created at 1970-01-01 (set SOURCE_DATE_EPOCH)$" "$work/last.err"
check "  the build still succeeds" test "$(created)" = 1970-01-01T00:00:00Z

step "plan lists the go.build compile"
check_cmd "$IMGBUILD" plan "$ROOT/examples/hello/recipe.lua"
outcome "go build . would run" "recipe.lua:6  run  *go build \.$"

step "a doctor warning is told once for an image pushed to two tags"
here "imgbuild" build_recipe twice 'local app = scratch:copy("bin", "/bin"):entrypoint { "/bin/busybox", "true" }
push(app, "localhost:5000/twice:a")
push(app, "localhost:5000/twice:b")' --no-push
check "the root warning, once" test "$(grep -c 'the image runs as root' "$work/twice.err")" -eq 1
here "imgbuild" build_recipe stored 'local app = scratch:copy("bin", "/bin"):entrypoint { "/bin/busybox", "true" }
image("stored", app)
image("again", app)
push(app, "localhost:5000/stored:a")' --no-push
check "stored twice and pushed: once" test "$(grep -c 'the image runs as root' "$work/stored.err")" -eq 1

finish
