#!/usr/bin/env bash
# Builds inside an unprivileged CI container (issue 23), as GitLab's Docker
# and Kubernetes executors run them: Debian's docker engine, started here on
# a private socket with no bridge, runs the runner image of docs/ci.md
# (built by imgbuild from the page's own staging commands and recipe) with
# docker's default seccomp profile and capabilities. As root with
# --isolation chroot, examples/multistage gives the digest it has on the
# host; --isolation auto falls back and says so once; the default isolation
# fails naming --isolation chroot; a secret reaches no blob. As a non-root
# user, examples/hello (a host build, with this machine's Go mounted
# read-only) gives the host's digest, and a RUN step fails saying why and
# what works. The images built in the container run under runc. The job
# definitions' imgbuild lines of docs/ci.md are planned against a loopback
# registry. Most of its time is the two compilations of examples/multistage
# (on the host and in the container, each compiling Go's standard library):
# 6.3 minutes on a 2-core machine shared at load 13 (not measured idle).
#
#   tests/e2e/unprivileged_ci.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
[[ $(id -u) -eq 0 ]] || skip "starts the docker engine and runs images under runc: needs root"
command -v dockerd >/dev/null || skip "needs Debian's docker.io (scripts/setup)"
command -v go >/dev/null || skip "needs Go for examples/hello"
export SOURCE_DATE_EPOCH=1700000000
# As GitLab CI sets them, for the recipes' `ci` table (examples/multistage
# names the commit in its push line), on the host and in the container alike.
export GITLAB_CI=true CI_COMMIT_SHA=5f1c2e9d0a7b3c4d5e6f708192a3b4c5d6e7f809 CI_COMMIT_BRANCH=main
DOC="$ROOT/docs/ci.md"
BLOCKS="$ROOT/tests/ci/doc_blocks.py"
share_go_cache

# digest_of FILE NAME: the digest a build printed for target NAME.
digest_of() { sed -n "s/^$2  \(sha256:[0-9a-f]*\).*/\1/p" "$1" | head -n1; }

step "a registry mirroring docker.io, with busybox and a Go builder image"
here "registry" registry_start open
REG=$REGISTRY_open
here "seed busybox" seed_images "$REG"
here "seed golang:1.22-alpine" seed_golang "$REG" library/golang:1.22-alpine

step "on the host, with namespaces: the digests to match"
# The examples outside any git checkout, on both sides: the runner image has
# no git, and an image names the commit it was built from when git can tell.
mkdir -p "$work/src"
cp -r "$ROOT/examples" "$work/src/examples"
"$IMGBUILD" build "$work/src/examples/multistage/recipe.lua" --registry-mirror "docker.io=$REG" --no-push \
  >"$work/host-ms.out" 2>"$work/host-ms.err"
host_ms=$(digest_of "$work/host-ms.out" hello)
check "examples/multistage builds on the host" test -n "$host_ms"
"$IMGBUILD" build "$work/src/examples/hello/recipe.lua" >"$work/host-hello.out" 2>"$work/host-hello.err"
host_hello=$(digest_of "$work/host-hello.out" hello)
check "examples/hello builds on the host" test -n "$host_hello"
mkdir -p "$work/small"
echo "canary-3c9d7a" >"$work/small/token"
token_sum=$(sha256sum <"$work/small/token" | cut -c1-64)
cat >"$work/small/small.lua" <<EOF
image("small", from "$REG/base/busybox:oci"
  :run({ "sh", "-c", "sha256sum /run/secrets/token | grep -q $token_sum && mkdir -p /out && echo made > /out/made",
         secrets = { token = "token" } })
  :doctor { ignore = { "root", "entrypoint" } })
EOF
"$IMGBUILD" build "$work/small/small.lua" >"$work/host-small.out" 2>"$work/host-small.err"
host_small=$(digest_of "$work/host-small.out" small)
check "a busybox step with a secret builds on the host" test -n "$host_small"

step "docs/ci.md: its job definitions' imgbuild lines parse (imgbuild plan, CACHE on the loopback registry)"
mkdir -p "$work/plan" && cp "$ROOT/examples/multistage/"* "$work/plan/"
"$BLOCKS" "$DOC" --imgbuild >"$work/job-lines" 2>"$work/job-lines.err"
check "the page has job definitions with imgbuild lines" test -s "$work/job-lines"
while IFS= read -r line; do
  (
    cd "$work/plan" || exit 1
    export CACHE="$REG/team/cache:buildcache" IMGBUILD_REGISTRY_MIRRORS="docker.io=$REG"
    imgbuild() { [[ $1 == build ]] && shift; "$IMGBUILD" plan "$@"; }
    eval "$line"
  ) >"$work/plan.out" 2>"$work/plan.err"
  check "plans: $line" test $? -eq 0
done <"$work/job-lines"

step "docs/ci.md: the runner image, staged and built with imgbuild as the page says"
mkdir -p "$work/runner" "$work/bin"
ln -s "$IMGBUILD" "$work/bin/imgbuild"
"$BLOCKS" "$DOC" lua 1 >"$work/runner/runner-image.lua"
"$BLOCKS" "$DOC" sh 1 >"$work/runner/stage.sh"
(cd "$work/runner" && PATH="$work/bin:$PATH" bash -e stage.sh) >"$work/runner.out" 2>"$work/runner.err"
check "the staging commands and runner-image.lua build it" test -s "$work/runner/imgbuild-runner.tar"
tail -n 5 "$work/runner.err" | sed 's/^/        /'

step "Debian's docker engine on a private socket, no bridge, data under the test's folder"
D="$work/docker"
mkdir -p "$D"
dockerd -H "unix://$D/docker.sock" --data-root "$D/data" --exec-root "$D/exec" --pidfile "$D/pid" \
  --bridge=none --iptables=false --ip6tables=false >"$D/log" 2>&1 &
dockerd_pid=$!
# stop_docker: dockerd by its PID (it stops its own containerd), what is left
# of them by theirs, then whatever they left mounted below $D.
stop_docker() {
  local pidfile
  kill "$dockerd_pid" 2>/dev/null
  for _ in $(seq 100); do kill -0 "$dockerd_pid" 2>/dev/null || break; sleep 0.2; done
  kill -9 "$dockerd_pid" 2>/dev/null
  for pidfile in "$D"/exec/containerd/*.pid; do
    [[ -f $pidfile ]] && kill -9 "$(<"$pidfile")" 2>/dev/null
  done
  awk -v d="$D" 'index($2, d) == 1 { print $2 }' /proc/self/mounts | sort -r | xargs -r -n1 umount -l
}
at_exit stop_docker
docker() { command docker -H "unix://$D/docker.sock" "$@"; }
for _ in $(seq 150); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
here "the engine answers" docker info
here "docker load takes the image imgbuild wrote" docker load -i "$work/runner/imgbuild-runner.tar"
IMAGE=$(sed -n 's/^Loaded image: //p' "$work/here.log" | head -n1)
check "it names the image" test -n "$IMAGE"

# in_container WORK [DOCKER OPTION...] -- COMMAND...: runs COMMAND in the
# runner image with docker's defaults (no --privileged, default seccomp and
# capabilities), the examples read-only at /src, WORK at /work (the store
# and cache there), on the host network (the engine has no bridge).
in_container() {
  local w=$1 opts=()
  shift
  while [[ $1 != -- ]]; do opts+=("$1"); shift; done
  shift
  docker run --rm --network host -v "$work/src:/src:ro" -v "$w:/work" -e SOURCE_DATE_EPOCH \
    -e GITLAB_CI -e CI_COMMIT_SHA -e CI_COMMIT_BRANCH \
    -e XDG_DATA_HOME=/work/data -e XDG_CACHE_HOME=/work/cache -e HOME=/work/home "${opts[@]}" "$IMAGE" "$@"
}

step "as root in the container: --isolation chroot"
mkdir -p "$work/root/home" "$work/root-ms/home" "$work/root-auto/home"
cp -r "$work/small" "$work/root/small"
in_container "$work/root" -e IMGBUILD_ISOLATION=namespaces -- imgbuild build /work/small/small.lua \
  >"$work/last.out" 2>"$work/last.err"
check "the default isolation (namespaces) fails" test $? -ne 0
check "naming --isolation chroot and what it gives up" \
  grep -q "cannot create the step's namespaces: Operation not permitted.*--isolation chroot.*no /proc" "$work/last.err"
in_container "$work/root" -- imgbuild build /work/small/small.lua --isolation chroot -o oci:/work/small-oci \
  >"$work/last.out" 2>"$work/last.err"
check "a busybox step with a secret: the host's digest" test "$(digest_of "$work/last.out" small)" = "$host_small"
check "what chroot isolation gives up is said once" test "$(grep -c 'chroot isolation: no /proc' "$work/last.err")" = 1
check "the secret is in no blob of the output or the store" \
  sh -c "! grep -rqa canary-3c9d7a '$work/root/small-oci/blobs' '$work/root/data/imgbuild/blobs'"
cp -r "$work/small" "$work/root-auto/small"
# The runner image sets IMGBUILD_ISOLATION=auto.
in_container "$work/root-auto" -- imgbuild build /work/small/small.lua >"$work/last.out" 2>"$work/last.err"
check "the image's IMGBUILD_ISOLATION=auto falls back: the same digest" test "$(digest_of "$work/last.out" small)" = "$host_small"
check "and says once that it fell back, and why" \
  test "$(grep -c "chroot isolation, as cannot create the step's namespaces: Operation not permitted" "$work/last.err")" = 1
in_container "$work/root-ms" -- imgbuild build /src/examples/multistage/recipe.lua --isolation chroot \
  --registry-mirror "docker.io=$REG" --no-push -o oci:/work/ms >"$work/last.out" 2>"$work/last.err"
check "examples/multistage: the host's digest" test "$(digest_of "$work/last.out" hello)" = "$host_ms"
tail -n 3 "$work/last.err" | sed 's/^/        /'
run_image "$work/root-ms/ms:hello" 8080 http://127.0.0.1:8080/ "hello from a multi-stage build" \
  "the image built in the container runs under runc"
stop_image

step "as a non-root user in the container (uid 1000), with this machine's Go read-only"
goroot=$(go env GOROOT)
# Debian's GOROOT links its sources from /usr/share/go-VERSION: both go in.
go_mounts=(-v "$goroot:$goroot:ro")
gosrc=$(dirname "$(realpath "$goroot/src")")
[[ $gosrc == "$goroot" ]] || go_mounts+=(-v "$gosrc:$gosrc:ro")
mkdir -p "$work/user/home"
cp -r "$work/small" "$work/user/small"
chown -R 1000:1000 "$work/user"
in_container "$work/user" --user 1000:1000 "${go_mounts[@]}" -e "PATH=$goroot/bin:/usr/local/bin:/bin" -- \
  imgbuild build /src/examples/hello/recipe.lua -o oci:/work/hello >"$work/last.out" 2>"$work/last.err"
check "examples/hello: the host's digest" test "$(digest_of "$work/last.out" hello)" = "$host_hello"
tail -n 3 "$work/last.err" | sed 's/^/        /'
run_image "$work/user/hello:hello" 8080 http://127.0.0.1:8080/ "^hello$" "the image built by uid 1000 runs under runc"
stop_image
in_container "$work/user" --user 1000:1000 -- imgbuild build /work/small/small.lua >"$work/last.out" 2>"$work/last.err"
check "a RUN step fails, saying why and what works" \
  grep -q "cannot create a user namespace for a rootless RUN step.*What works: run imgbuild as root" "$work/last.err"
in_container "$work/user" --user 1000:1000 -- imgbuild build /work/small/small.lua --isolation chroot \
  >"$work/last.out" 2>"$work/last.err"
check "--isolation chroot says it needs root" grep -q "chroot isolation runs RUN steps only as root" "$work/last.err"

finish
