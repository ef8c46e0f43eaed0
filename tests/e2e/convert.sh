#!/usr/bin/env bash
# Tier 3: `imgbuild convert` on the seed articles' Dockerfiles (../shared/seeds,
# read from there, never copied into the project). Each one converts; the
# recipe is built by imgbuild and the Dockerfile by `buildah bud` from the same
# context, with the same base images (look-alikes on a loopback registry: the
# FROM lines of both are rewritten to it, identically); the two images must
# hold the same files (paths, types, modes, owners, contents), the same
# configuration (entrypoint, cmd, env, workdir, user, ports, volumes) and run
# their entrypoint the same way under runc. Prints the time each seed takes
# to convert and to build with each tool.
#
#   tests/e2e/convert.sh IMGBUILD REPO_ROOT
#   SEED_FILTER=scratch-122x tests/e2e/convert.sh ...   (the seeds matching a regex)
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
SEEDS=${IMGBUILD_SEEDS:-"$ROOT/../shared/seeds"}
[[ -d $SEEDS ]] || skip "the seed articles are not at $SEEDS (set IMGBUILD_SEEDS)"
command -v buildah >/dev/null || skip "needs buildah (Debian package buildah)"
[[ $(id -u) -eq 0 ]] || skip "needs root: buildah's storage and runc"

step "the command line"
mkdir -p "$work/cli/app" "$work/cli/other"
printf 'FROM alpine\nCOPY . /src\n' >"$work/cli/app/Dockerfile"
printf '*.log\n' >"$work/cli/app/.dockerignore"
(cd "$work/cli/app" && "$IMGBUILD" convert >"$work/cli/here.lua" 2>"$work/cli/err")
check "./Dockerfile by default, and the context's .dockerignore is said to be kept" \
  grep -q "^-- The context's .dockerignore is kept as it is" "$work/cli/here.lua"
check "the target is named after the context folder" grep -qx 'image("app", stage0)' "$work/cli/here.lua"
"$IMGBUILD" convert "$work/cli/app" >"$work/cli/dir.lua" 2>"$work/cli/err"
check "a folder means its Dockerfile" diff <(tail -n +2 "$work/cli/here.lua") <(tail -n +2 "$work/cli/dir.lua")
"$IMGBUILD" convert -f "$work/cli/app/Dockerfile" "$work/cli/other" >"$work/cli/f.lua" 2>"$work/cli/err"
check "-f FILE DIR: DIR is the context (no .dockerignore there, named after it)" \
  sh -c "! grep -q dockerignore '$work/cli/f.lua' && grep -qx 'image(\"other\", stage0)' '$work/cli/f.lua'"
printf 'FROM alpine\n\nRUNN make\n' >"$work/cli/other/Dockerfile"
"$IMGBUILD" convert "$work/cli/other/Dockerfile" >/dev/null 2>"$work/cli/err"
check "a malformed Dockerfile: exit status 1, its line named" \
  sh -c "test $? -eq 1 && grep -qx 'imgbuild: $work/cli/other/Dockerfile:3: unknown instruction: RUNN' '$work/cli/err'"
"$IMGBUILD" convert a b >/dev/null 2>&1
check "two operands: a usage error" test $? -eq 2

# The seeds' own Go service: what every seed builds and runs. fmt and os
# only, so that it builds without cgo or a module download.
service() {
  mkdir -p "$1"
  printf 'module app\n\ngo 1.19\n' >"$1/go.mod"
  cat >"$1/server.go" <<'EOF'
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("seed service ok (GIN_MODE=%s)\n", os.Getenv("GIN_MODE"))
}
EOF
}

# A static build of the service, for the seeds that ADD a binary built
# outside Docker (bin/hello, app).
service "$work/service"
(cd "$work/service" && CGO_ENABLED=0 go build -o "$work/hello" .) || skip "go cannot build the seed service here"

step "look-alike base images on a loopback registry"
here "registry" registry_start open
REG=$REGISTRY_open
seeds=$(_reg_seeds)
here "the busybox and Go seed layouts" eval '_reg_build layout "$REG_LIB/base_images.sh" && _reg_build golang _reg_golang_layout'
# golang: the Go seed image plus what the seeds' RUN steps expect of Docker
# Hub's golang images without a network: GOPATH=/go with its bin on PATH,
# GO111MODULE=auto (the seeds' older Go default, for their GOPATH `go get`),
# apk and glide (no-ops: the CA bundle and zoneinfo `apk add` would bring are
# there already), and the packages the seeds `go get` already in GOPATH
# (GOPATH-mode go get installs what is present without downloading).
goroot=$(go env GOROOT)
lookalike() {
  local out=$1 rootfs
  cp -a "$seeds/golang/oci" "$out/oci"
  umoci unpack --image "$out/oci:golang" "$out/b" || return 1
  rootfs=$out/b/rootfs
  mkdir -p "$rootfs/sbin" "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/usr/share/zoneinfo" "$rootfs/go/bin"
  printf '#!/bin/sh\nexit 0\n' >"$rootfs/sbin/apk"
  cp "$rootfs/sbin/apk" "$rootfs/usr/local/bin/glide"
  chmod 755 "$rootfs/sbin/apk" "$rootfs/usr/local/bin/glide"
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
  cp -a /usr/share/zoneinfo/UTC /usr/share/zoneinfo/Europe "$rootfs/usr/share/zoneinfo/"
  local pop=$rootfs/go/src/github.com/markbates/pop hello=$rootfs/go/src/github.com/mccurdyc/goblogs/docker-multi-stage-builds/hello
  mkdir -p "$pop/soda" "$hello"
  printf 'package pop\n\nconst Name = "pop"\n' >"$pop/pop.go"
  printf 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println("soda ok") }\n' >"$pop/soda/main.go"
  cp "$work/service/server.go" "$hello/main.go"
  find "$rootfs" -newermt 2024-01-01T00:00:00Z -exec touch -h -d 2024-01-01T00:00:00Z {} +
  umoci repack --image "$out/oci:seed" --history.created 2024-01-01T00:00:00Z "$out/b" &&
    umoci config --image "$out/oci:seed" --no-history --clear=config.env --config.env GOPATH=/go \
      --config.env "PATH=/go/bin:$goroot/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
      --config.env GO111MODULE=auto --config.env GOTOOLCHAIN=local
}
mkdir -p "$work/look"
here "the golang look-alike" lookalike "$work/look"

# rewrite_from DOCKERFILE: its base images named on the loopback registry;
# prints each seed/NAME:TAG it names, for the push below.
rewrite_from() {
  python3 - "$1" "$REG" <<'EOF'
import re, sys
path, reg = sys.argv[1], sys.argv[2]
def seed(image):
    name, _, tag = image.partition(":")
    if name == "golang": return f"seed/golang:{tag or 'latest'}"
    if name == "lwolf/golang-glide": return f"seed/golang:glide-{tag or 'latest'}"
    if name == "alpine": return f"seed/alpine:{tag or 'latest'}"
    if name == "iron/go": return f"seed/alpine:iron-go-{tag or 'latest'}"
    return None
lines, used = [], []
for line in open(path):
    m = re.match(r"(\s*FROM\s+(?:--\S+\s+)*)(\S+)(.*)", line, re.I | re.S)
    if m and seed(m.group(2)):
        used.append(seed(m.group(2)))
        line = f"{m.group(1)}{reg}/{used[-1]}{m.group(3)}"
    lines.append(line)
open(path, "w").writelines(lines)
print("\n".join(used))
EOF
}

# The seeds' Dockerfiles, each in a context of its own: the service, and the
# files its COPY and ADD lines name.
mkdir -p "$work/ctx"
dockerfiles=()
for f in $(cd "$SEEDS" && find . -type f -name 'Dockerfile*' | sort); do
  f=${f#./}
  [[ $f =~ ${SEED_FILTER:-.} ]] || continue
  id=${f//\//-}
  id=${id,,}
  id=${id//_/-}
  ctx=$work/ctx/$id
  service "$ctx"
  case $f in
    gitlab-builder-by-lockfile/Dockerfile) printf 'package: app\n' >"$ctx/glide.yaml" && printf 'hash: 0\n' >"$ctx/glide.lock" ;;
    gitlab-builder-by-lockfile/release/Dockerfile) cp "$work/hello" "$ctx/app" ;;
    multistage-cgo-prelim/*) mkdir -p "$ctx/bin" && cp "$work/hello" "$ctx/bin/hello" ;;
  esac
  # The modes of a checkout: imgbuild normalises those it copies (0644, or
  # 0755 with an execute bit; imgbuild-recipe(5), COPY SEMANTICS), where
  # Docker keeps them, and the seeds' files are read-only.
  install -m 0644 "$SEEDS/$f" "$ctx/Dockerfile"
  rewrite_from "$ctx/Dockerfile" >>"$work/tags"
  dockerfiles+=("$f")
done
push_seeds() {
  local tag
  for tag in $(sort -u "$work/tags"); do
    case $tag in
      seed/golang:*) skopeo copy --dest-tls-verify=false "oci:$work/look/oci:seed" "docker://$REG/$tag" ;;
      *) skopeo copy --dest-tls-verify=false "oci:$seeds/layout/oci:busybox" "docker://$REG/$tag" ;;
    esac || return 1
  done
}
here "push them under the names the seeds' FROM lines use" push_seeds

# What the recipe language of this imgbuild lacks, probed: :add and
# :healthcheck (issue 20, landing beside this converter), and Docker's rule
# that a file copied onto an existing folder goes inside it. A seed whose
# recipe needs one of them is skipped, saying which.
missing=()
printf 'x\n' >"$work/probe-file"
probe() {  # NAME RECIPE: the recipe builds, or NAME is missing
  printf '%s\n' "$2" >"$work/probe.lua"
  "$IMGBUILD" "$work/probe.lua" --context "$work" --no-push >"$work/probe.out" 2>&1 || missing+=("$1")
}
probe ":add" 'image("p", scratch:add("probe-file", "/f"):doctor { ignore = { "entrypoint" } })'
probe ":healthcheck" 'image("p", scratch:healthcheck("true", { interval = "30s", retries = 3 }):healthcheck { "/x", timeout = "3s" }:healthcheck(false):doctor { ignore = { "entrypoint" } })'
probe ":copy onto an existing folder (Docker puts the file inside it)" \
  "image(\"p\", from(\"$REG/seed/alpine:latest\"):run(\"mkdir /app\"):copy(\"probe-file\", \"/app\"):run(\"test -f /app/probe-file\"):doctor { ignore = { \"entrypoint\", \"root\" } })"
# needs RECIPE DOCKERFILE: the missing features this seed needs, if any.
needs() {
  local what=()
  grep -q ':add(' "$1" && [[ " ${missing[*]} " == *" :add "* ]] && what+=(":add")
  grep -q ':healthcheck' "$1" && [[ " ${missing[*]} " == *" :healthcheck "* ]] && what+=(":healthcheck")
  if [[ " ${missing[*]} " == *"existing folder"* ]] && grep -Eiq '^RUN mkdir .*/app' "$2" &&
    grep -Eiq '^(ADD|COPY) [^ ]+ /app$' "$2"; then
    what+=(":copy onto an existing folder")
  fi
  printf '%s' "${what[*]}"
}

# files_of LAYOUT TAG OUT: the image's files, one line each: path, type,
# mode, owner, and the sha256 of a file's contents or a link's target.
# Left out: /root/.cache (Go's build cache, which records times), and what
# buildah's RUN steps leave behind and Docker's do not: the empty mount
# points /dev, /proc, /run, /sys, /etc/hosts, /etc/hostname, /etc/resolv.conf.
files_of() {
  rm -rf "$work/unpack"
  umoci unpack --image "$1:$2" "$work/unpack" >/dev/null 2>&1 || { echo "umoci cannot unpack $1:$2"; return 1; }
  python3 - "$work/unpack/rootfs" >"$3" <<'EOF'
import hashlib, os, stat, sys
root = sys.argv[1]
for stub in ("dev", "proc", "run", "sys", "etc/hosts", "etc/hostname", "etc/resolv.conf"):
    p = os.path.join(root, stub)
    if os.path.isfile(p) and os.path.getsize(p) == 0:
        os.remove(p)
    elif os.path.isdir(p) and not os.path.islink(p) and not os.listdir(p):
        os.rmdir(p)
for dirpath, dirs, files in os.walk(root):
    dirs.sort()
    rel = os.path.relpath(dirpath, root)
    if rel == "root/.cache" or rel.startswith("root/.cache/"):
        dirs[:] = []
        continue
    for name in sorted(dirs + files):
        p = os.path.join(dirpath, name)
        st = os.lstat(p)
        if stat.S_ISLNK(st.st_mode):
            what = "link " + os.readlink(p)
        elif stat.S_ISREG(st.st_mode):
            what = "file " + hashlib.sha256(open(p, "rb").read()).hexdigest()
        else:
            what = "dir" if stat.S_ISDIR(st.st_mode) else "other"
        print(f"/{os.path.relpath(p, root)} {what} {stat.S_IMODE(st.st_mode):04o} {st.st_uid}:{st.st_gid}")
EOF
  mv "$work/unpack" "$3.bundle"
}

# config_of LAYOUT TAG: the parts of the image's configuration Docker users
# see, as one JSON document (buildah's own io.buildah.version label left out).
config_of() {
  local m c
  m=$(jq -r --arg n "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $n) | .digest[7:]' "$1/index.json")
  c=$(jq -r '.config.digest[7:]' "$1/blobs/sha256/$m")
  jq -S '.config | {Entrypoint, Cmd, Env, WorkingDir: (.WorkingDir // ""), User: (.User // ""), StopSignal,
    ExposedPorts: ((.ExposedPorts // {}) | keys), Volumes: ((.Volumes // {}) | keys),
    Labels: ((.Labels // {}) | del(.["io.buildah.version"]))}' "$1/blobs/sha256/$c"
}

# run_once BUNDLE: runs the unpacked image's entrypoint and cmd under runc,
# as `docker run` would (HOME from the image or /root, no network of its own),
# for 2 minutes at most; prints its output and exit status.
run_once() {
  jq '.process.terminal = false | .linux.namespaces |= map(select(.type != "network"))
      | if any(.process.env[]; startswith("HOME=")) then . else .process.env += ["HOME=/root"] end' \
    "$1/config.json" >"$1/config.tmp" && mv "$1/config.tmp" "$1/config.json"
  (cd "$1" && timeout 120 runc --root "$work/runc" run "$container-$RANDOM" </dev/null 2>&1)
  echo "exit status $?"
}

# buildah reads $DOCKER_CONFIG/config.json, which this workspace leaves out.
BUILDAH=(env -u DOCKER_CONFIG buildah --root "$work/buildah/storage" --runroot "$work/buildah/run" --storage-driver overlay)
at_exit '"${BUILDAH[@]}" rm -a >/dev/null 2>&1; "${BUILDAH[@]}" rmi -a -f >/dev/null 2>&1;
  findmnt -rn -o TARGET | grep "^$work/" | sort -r | xargs -r umount -l'
export BUILDAH_ISOLATION=chroot

times=()
for f in "${dockerfiles[@]}"; do
  id=${f//\//-}
  id=${id,,}
  id=${id//_/-}
  ctx=$work/ctx/$id
  step "$f"
  t0=$SECONDS
  if "$IMGBUILD" convert "$ctx" >"$ctx/recipe.lua" 2>"$work/convert.err"; then
    pass "it converts"
  else
    fail "it converts"
    sed 's/^/        /' "$work/convert.err"
    continue
  fi
  t_convert=$((SECONDS - t0))
  sed 's/^/        | /' "$ctx/recipe.lua"
  target=$(sed -n 's/^image("\([^"]*\)".*/\1/p' "$ctx/recipe.lua")
  lacking=$(needs "$ctx/recipe.lua" "$ctx/Dockerfile")
  if [[ -n $lacking ]]; then
    printf '  SKIP  building %s: this imgbuild lacks %s (issue 20, merged beside the converter)\n' "$f" "$lacking"
    times+=("$f: convert ${t_convert}s; build skipped (lacks $lacking)")
    continue
  fi
  # GOPATH: Dockerfile_1's WORKDIR reads it from the golang image's
  # environment, which the recipe asks for as a param.
  set_gopath=()
  grep -q 'param("GOPATH"' "$ctx/recipe.lua" && set_gopath=(--set GOPATH=/go)
  t0=$SECONDS
  check_cmd "$IMGBUILD" "$ctx/recipe.lua" --no-push "${set_gopath[@]}" -o "oci:$work/imgbuild-$id"
  t_imgbuild=$((SECONDS - t0))
  t0=$SECONDS
  if (cd "$ctx" && "${BUILDAH[@]}" bud --tls-verify=false --isolation chroot -f Dockerfile -t "$id" . \
    >"$work/buildah.log" 2>&1 && "${BUILDAH[@]}" push "$id" "oci:$work/buildah-$id:$target" >>"$work/buildah.log" 2>&1); then
    pass "buildah bud builds the Dockerfile"
  else
    fail "buildah bud builds the Dockerfile"
    tail -n 20 "$work/buildah.log" | sed 's/^/        /'
    continue
  fi
  t_buildah=$((SECONDS - t0))
  times+=("$f: convert ${t_convert}s, imgbuild ${t_imgbuild}s, buildah ${t_buildah}s")
  [[ -d $work/imgbuild-$id ]] || continue
  files_of "$work/imgbuild-$id" "$target" "$work/files-imgbuild" && files_of "$work/buildah-$id" "$target" "$work/files-buildah"
  check "the same files: paths, types, modes, owners, contents" diff "$work/files-buildah" "$work/files-imgbuild"
  config_of "$work/imgbuild-$id" "$target" >"$work/config-imgbuild"
  config_of "$work/buildah-$id" "$target" >"$work/config-buildah"
  check "the same configuration: entrypoint, cmd, env, workdir, user, ports, volumes, labels" \
    diff "$work/config-buildah" "$work/config-imgbuild"
  run_once "$work/files-imgbuild.bundle" >"$work/run-imgbuild"
  run_once "$work/files-buildah.bundle" >"$work/run-buildah"
  check "the entrypoint runs, as in buildah's image" sh -c "grep -qx 'exit status 0' '$work/run-imgbuild' && diff '$work/run-buildah' '$work/run-imgbuild'"
  sed 's/^/        > /' "$work/run-imgbuild"
  rm -rf "$work/files-imgbuild.bundle" "$work/files-buildah.bundle"
done

step "time per seed"
printf '  %s\n' "${times[@]}"
finish
