#!/usr/bin/env bash
# Tier 3: one image for several platforms. examples/hello built for
# linux/amd64 and linux/arm64 (go.build cross-compiles, nothing emulated) is
# an image index that skopeo reads, each platform with its config and the
# binary for its CPU; the arm64 one answers HTTP under qemu-aarch64-static. A
# copy the platforms share is one layer; a base's index gives each platform its
# manifest and a base without one fails at the recipe's line; a foreign RUN
# step is refused unless emulation is allowed, and allowed it runs through
# qemu-user-static registered for the step alone; docker-archive
# refuses an index; a push sends the manifests, then the index, both with the
# recipe's annotations (and without a default it emptied), the configs untouched.
#
#   tests/e2e/platforms.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
share_go_cache
export SOURCE_DATE_EPOCH=1700000000
FOREIGN=arm64 FOREIGN_MACHINE=aarch64
[[ $HOST_ARCH == arm64 ]] && FOREIGN=amd64 FOREIGN_MACHINE=x86_64
BOTH=linux/$HOST_ARCH,linux/$FOREIGN

# imgbuild ARGS...: runs it, keeping stdout and stderr for the checks.
imgbuild() { "$IMGBUILD" "$@" >"$work/last.out" 2>"$work/last.err"; }
# manifest_of LAYOUT NAME ARCH: the digest of ARCH's manifest in the index NAME.
manifest_of() {
  skopeo inspect --raw "oci:$1:$2" | jq -r --arg a "$3" '.manifests[] | select(.platform.architecture == $a) | .digest'
}
# blob LAYOUT DIGEST: the blob's path.
blob() { echo "$1/blobs/sha256/${2#sha256:}"; }

step "examples/hello for two platforms: an index, read back by skopeo"
check_cmd "$IMGBUILD" "$ROOT/examples/hello/recipe.lua" --platform "$BOTH" -o "oci:$work/oci"
skopeo inspect --raw "oci:$work/oci:hello" >"$work/index.json"
check "skopeo inspect --raw: an OCI image index" jq -e '.mediaType == "application/vnd.oci.image.index.v1+json"' "$work/index.json"
check "of linux/$HOST_ARCH then linux/$FOREIGN" jq -e --arg h "$HOST_ARCH" --arg f "$FOREIGN" \
  '[.manifests[].platform | .os + "/" + .architecture] == ["linux/" + $h, "linux/" + $f]' "$work/index.json"
check "oci_validate.py and check_promises.py say OK" valid_image "$work/oci"
check "the index says when and from what commit it was built, as its images do" jq -e \
  --arg rev "$(git -C "$ROOT" rev-parse HEAD)" '.annotations["org.opencontainers.image.revision"] == $rev and
    (.annotations["org.opencontainers.image.created"] | test("^[0-9-]+T[0-9:]+Z$"))' "$work/index.json"
for arch in "$HOST_ARCH" "$FOREIGN"; do
  check "skopeo: the $arch config says $arch" sh -c \
    "skopeo inspect --override-arch $arch --config 'oci:$work/oci:hello' | jq -e '.architecture == \"$arch\" and .os == \"linux\"'"
  m=$(manifest_of "$work/oci" hello "$arch")
  layer=$(jq -r '.layers[0].digest' "$(blob "$work/oci" "$m")")
  mkdir -p "$work/root-$arch"
  tar -xzf "$(blob "$work/oci" "$layer")" -C "$work/root-$arch"
done
check "the $HOST_ARCH entrypoint is built for $HOST_MACHINE" sh -c \
  "'$IMGBUILD' check '$work/root-$HOST_ARCH/app' | grep -q ' $HOST_MACHINE (linux/$HOST_ARCH), static'"
check "the $FOREIGN entrypoint is built for $FOREIGN_MACHINE" sh -c \
  "'$IMGBUILD' check '$work/root-$FOREIGN/app' | grep -q ' $FOREIGN_MACHINE (linux/$FOREIGN), static'"
check "the build printed each platform's image" grep -q "^hello@linux/$FOREIGN  sha256:" "$work/last.out"
check "and the index" grep -q "hello: index sha256:.* of 2 platforms" "$work/last.err"
check "go.build ran on this machine for $FOREIGN: no step was emulated" sh -c "! grep -qiE 'emulating|under emulation' '$work/last.err'"

step "the $FOREIGN entrypoint runs under qemu-$FOREIGN_MACHINE-static"
if command -v "qemu-$FOREIGN_MACHINE-static" >/dev/null; then
  port=$(free_port)
  PORT=$port "qemu-$FOREIGN_MACHINE-static" "$work/root-$FOREIGN/app" >"$work/qemu.log" 2>&1 &
  qemu=$!
  at_exit "kill $qemu 2>/dev/null"
  body=""
  for _ in $(seq 300); do
    body=$(curl -sf --max-time 1 "http://127.0.0.1:$port/" 2>/dev/null) && break
    sleep 0.1
  done
  check "GET 127.0.0.1:$port returns hello" grep -qx hello <<<"$body"
  kill "$qemu" 2>/dev/null
else
  fail "qemu-$FOREIGN_MACHINE-static is missing (scripts/setup installs qemu-user-static)"
fi

step "the store holds the index; images and inspect show it"
"$IMGBUILD" images >"$work/images.txt" 2>&1
check "images: one line, both platforms" grep -q "^hello  *linux/$HOST_ARCH,linux/$FOREIGN  *sha256:" "$work/images.txt"
check "inspect: the index and this machine's image" sh -c "'$IMGBUILD' inspect hello |
  jq -e '(.index.manifests | length) == 2 and .platform == \"linux/$HOST_ARCH\" and .config.architecture == \"$HOST_ARCH\"'"

step "the $HOST_ARCH image is the one a single-platform build makes"
check_cmd "$IMGBUILD" "$ROOT/examples/hello/recipe.lua" -o "oci:$work/single"
check "same manifest digest" test "$(jq -r '.manifests[0].digest' "$work/single/index.json")" = \
  "$(manifest_of "$work/oci" hello "$HOST_ARCH")"

step "docker-archive holds one platform's image"
imgbuild "$ROOT/examples/hello/recipe.lua" --platform "$BOTH" -o "docker-archive:$work/hello.tar"
check "refused (exit 2)" test $? -eq 2
check "with what to do instead" grep -qx "imgbuild: -o docker-archive: holds one platform's image, and 'hello' is built for linux/$HOST_ARCH, linux/$FOREIGN (.*recipe.lua:5): write the index with -o oci:DIR, or choose one platform with --platform" "$work/last.err"
check "nothing was written" test ! -e "$work/hello.tar"

step "the doctor examines each platform's image (the platforms side by side) and says it in their order"
# go.build told to make a $HOST_ARCH program for both: the $FOREIGN image gets the wrong CPU's entrypoint.
mkdir -p "$work/wrongcpu"
cp "$ROOT/examples/hello/"*.go "$ROOT/examples/hello/go.mod" "$work/wrongcpu/"
cat >"$work/wrongcpu/recipe.lua" <<LUA
local go = require "imgbuild.go"
image("wrongcpu", scratch
  :copy(go.build { main = ".", env = { GOARCH = "$HOST_ARCH" } }, "/app")
  :entrypoint { "/app" },
  { platforms = { "linux/$HOST_ARCH", "linux/$FOREIGN" } })
LUA
imgbuild "$work/wrongcpu/recipe.lua" -o "oci:$work/wrongcpu-out"
check "refused (exit 1)" test $? -eq 1
check "the $HOST_ARCH image's warnings, then the $FOREIGN image's error, then the refusal" test \
  "$(grep -oE "linux/$HOST_ARCH: the image runs as root|linux/$FOREIGN: entrypoint /app: built for $HOST_MACHINE|wrongcpu was not stored" "$work/last.err" | tr '\n' '|')" = \
  "linux/$HOST_ARCH: the image runs as root|linux/$FOREIGN: entrypoint /app: built for $HOST_MACHINE|wrongcpu was not stored|"
check "the error is at the entrypoint's line" grep -qx \
  "imgbuild: .*recipe.lua:4: linux/$FOREIGN: entrypoint /app: built for $HOST_MACHINE, image is linux/$FOREIGN" "$work/last.err"
check "nothing was stored under the name, nor written" sh -c "! '$IMGBUILD' images | grep -q '^wrongcpu ' && test ! -e '$work/wrongcpu-out/index.json'"

step "an image the recipe describes on one platform only fails in its turn, after the images before it"
mkdir -p "$work/oneonly"
echo hi >"$work/oneonly/data.txt"
cat >"$work/oneonly/recipe.lua" <<LUA
image("before", scratch:copy("data.txt", "/data.txt"), { platforms = { "linux/$HOST_ARCH", "linux/$FOREIGN" } })
if platform.arch == "$HOST_ARCH" then
  image("hostonly", scratch:copy("data.txt", "/d2.txt"), { platforms = { "linux/$HOST_ARCH", "linux/$FOREIGN" } })
end
LUA
imgbuild "$work/oneonly/recipe.lua"
check "exit 1" test $? -eq 1
check "the error at hostonly's line, naming the platform" grep -qx \
  "imgbuild: .*recipe.lua:3: hostonly is not described when the recipe is evaluated for linux/$FOREIGN (platform.arch is $FOREIGN then)" "$work/last.err"
check "said after the image before it was stored" sh -c \
  "test \$(grep -n 'before: index' '$work/last.err' | cut -d: -f1) -lt \$(grep -n 'hostonly is not described' '$work/last.err' | cut -d: -f1)"
check "before is stored, hostonly is not" sh -c "'$IMGBUILD' images | grep -q '^before ' && ! '$IMGBUILD' images | grep -q '^hostonly '"

step "--platform is checked as it is read"
for bad in "arm64|--platform: invalid platform 'arm64' (expected os/arch[/variant], e.g. linux/arm64)" \
  "linux/arm64,linux/arm64|--platform: linux/arm64 is listed twice"; do
  imgbuild "$ROOT/examples/hello/recipe.lua" --platform "${bad%%|*}"
  check "--platform ${bad%%|*}: exit 2" test $? -eq 2
  check "  saying: ${bad#*|}" grep -qxF "imgbuild: ${bad#*|}" "$work/last.err"
done

step "a copy the platforms share is one layer; the recipe reads platform"
mkdir -p "$work/shared"
echo "certificates" >"$work/shared/ca.pem"
cat >"$work/shared/recipe.lua" <<LUA
image("certs", scratch
  :copy("ca.pem", "/etc/ssl/ca.pem")
  :env { ARCH = platform.arch, BUILD = platform.build.arch },
  { platforms = { "linux/$HOST_ARCH", "linux/$FOREIGN" } })
LUA
check_cmd "$IMGBUILD" "$work/shared/recipe.lua" -o "oci:$work/certs" --progress plain
# The platforms are built at once: one makes the shared step, the other
# waits for it and takes it from the cache (one computation, not two).
check "built once: one platform made the copy, the other took it" sh -c "
  test \$(grep -cE '^  \[linux/[a-z0-9]+\] .*recipe\.lua:2  copy ca\.pem /etc/ssl/ca\.pem  [0-9.]+ [kMG]?B  \(' '$work/last.err') -eq 1 &&
  test \$(grep -cE '^  \[linux/[a-z0-9]+\] .*recipe\.lua:2  copy ca\.pem /etc/ssl/ca\.pem  \(cached\)$' '$work/last.err') -eq 1"
layers=$(for arch in "$HOST_ARCH" "$FOREIGN"; do jq -r '.layers[].digest' "$(blob "$work/certs" "$(manifest_of "$work/certs" certs "$arch")")"; done | sort -u)
check "both images have the one copy layer" test "$(wc -l <<<"$layers")" -eq 1
check_cmd "$IMGBUILD" "$work/shared/recipe.lua" -o "oci:$work/certs" --progress plain
check "built again, both platforms take the one cached step" \
  test "$(grep -c 'recipe.lua:2  copy ca.pem /etc/ssl/ca.pem  (cached)' "$work/last.err")" -eq 2
check "each config has its platform's ARCH and the machine's BUILD" sh -c "
  skopeo inspect --override-arch $FOREIGN --config oci:$work/certs:certs | jq -e '.config.Env | index(\"ARCH=$FOREIGN\") and index(\"BUILD=$HOST_ARCH\")' &&
  skopeo inspect --override-arch $HOST_ARCH --config oci:$work/certs:certs | jq -e '.config.Env | index(\"ARCH=$HOST_ARCH\")'"

step "progress and plan for two platforms: each step named by its platform"
check_cmd "$IMGBUILD" "$work/shared/recipe.lua" -o "oci:$work/certs" --progress plain --no-cache
for p in "$HOST_ARCH" "$FOREIGN"; do
  check "plain: the config step of linux/$p names it" grep -qE "^  \[linux/$p\] .*recipe\.lua:3  env ARCH=$p" "$work/last.err"
done
"$IMGBUILD" plan "$work/shared/recipe.lua" >"$work/plan.out" 2>&1
check "plan: the copy on each platform, one key (the same layer)" sh -c "
  test \$(grep -cE '^.*recipe\.lua:2  linux/($HOST_ARCH|$FOREIGN) +cached  +[0-9a-f]{12}  copy ca\.pem /etc/ssl/ca\.pem$' '$work/plan.out') -eq 2 &&
  test \$(grep -E '^.*recipe\.lua:2 ' '$work/plan.out' | awk '{print \$4}' | sort -u | wc -l) -eq 1"
check "plan: the image for both platforms" grep -qx "image certs (.*recipe.lua:1) for linux/$HOST_ARCH, linux/$FOREIGN" "$work/plan.out"
check "plan: the shared step counted once" grep -qx "1 cached, 0 from the registry cache, 0 to run for 2 platforms" "$work/plan.out"
check "plan: says why a key appears twice" grep -qx "a key on several platforms is one step, done once for all of them" "$work/plan.out"
"$IMGBUILD" plan "$work/shared/recipe.lua" --platform "linux/$FOREIGN" >"$work/plan.out" 2>&1
check "plan --platform linux/$FOREIGN: that platform's steps alone, as for one" sh -c "
  grep -qE '^.*recipe\.lua:2  cached  +[0-9a-f]{12}  copy ca\.pem' '$work/plan.out' && grep -qx 'image certs (.*recipe.lua:1)' '$work/plan.out'"
"$IMGBUILD" plan "$ROOT/examples/hello/recipe.lua" --platform "$BOTH" --cache-dir "$work/plan-cache" >"$work/plan.out" 2>&1
check "plan of hello with an empty cache: go build for each platform would run" sh -c "
  test \$(grep -cE '^.*recipe\.lua:6  linux/($HOST_ARCH|$FOREIGN) +run  +go build \.$' '$work/plan.out') -eq 2"

step "a base's index gives each platform its manifest (a registry with base/multi)"
here "registry" registry_start open
REG=$REGISTRY_open
here "seed busybox and base/multi (linux/amd64 busybox, linux/arm64)" seed_images "$REG"
mkdir -p "$work/base"
cat >"$work/base/recipe.lua" <<LUA
image("based", from "$REG/base/multi:oci"
  :label { built = platform.arch },
  { platforms = { "linux/amd64", "linux/arm64" } })
LUA
check_cmd "$IMGBUILD" "$work/base/recipe.lua" -o "oci:$work/based"
arm=$(manifest_of "$work/based" based arm64)
check "the arm64 image is built on the base's arm64 manifest (its /etc/arch)" sh -c \
  "tar -xzOf '$(blob "$work/based" "$(jq -r '.layers[0].digest' "$(blob "$work/based" "$arm")")")' etc/arch | grep -qx arm64"
check "the amd64 image on busybox" sh -c "skopeo inspect --override-arch amd64 --config oci:$work/based:based |
  jq -e '.config.Labels.built == \"amd64\" and .config.Cmd == [\"/bin/sh\"]'"

step "a base without a platform asked for fails at the recipe's line"
mkdir -p "$work/lacking"
cat >"$work/lacking/recipe.lua" <<LUA
image("lacking",
  from "$REG/base/multi:oci",
  { platforms = { "linux/amd64", "linux/s390x" } })
LUA
imgbuild "$work/lacking/recipe.lua"
check "exit 1" test $? -eq 1
check "names the line, the base, the platform and those it has" grep -q \
  "recipe.lua:2: .*$REG/base/multi:oci: no image for linux/s390x (the index has linux/amd64, linux/arm64)" "$work/last.err"
check "nothing was stored under the name" sh -c "! '$IMGBUILD' images | grep -q '^lacking '"

step "a RUN step of a foreign platform: refused, unless emulation is allowed"
mkdir -p "$work/foreign"
cat >"$work/foreign/recipe.lua" <<LUA
image("foreign", from "$REG/base/multi:oci"
  :run "echo hi > /etc/hi",
  { platforms = { "linux/$FOREIGN" } })
LUA
imgbuild "$work/foreign/recipe.lua"
check "without --emulate: exit 1" test $? -eq 1
check "at the step's line, naming the platforms and the way out" grep -qx \
  "imgbuild: .*recipe.lua:2: run: echo hi > /etc/hi: the image is linux/$FOREIGN and this machine is linux/$HOST_ARCH: its programs run here only under emulation; cross-compile on the build platform instead (go.build does; the recipe reads it as platform.build, linux/$HOST_ARCH), or allow emulation with --emulate or :run(..., { emulate = true })" "$work/last.err"
imgbuild "$work/foreign/recipe.lua" --emulate
status=$?
if command -v "qemu-$FOREIGN_MACHINE-static" >/dev/null; then
  # The base's $FOREIGN image has no shell: emulated, the step runs and fails in it.
  check "with --emulate: the step ran under emulation (and found no /bin/sh)" grep -q \
    "recipe.lua:2: run: echo hi > /etc/hi: exited with status" "$work/last.err"
else
  check "with --emulate and no emulator installed: exit 1" test $status -eq 1
  check "says what is missing and how to get it" grep -q \
    "recipe.lua:2: run: echo hi > /etc/hi: emulating linux/$FOREIGN needs qemu-user-static: .*: install Debian's qemu-user-static" "$work/last.err"
fi

step "an emulated RUN step: the $FOREIGN program runs, through an emulator registered for the step alone"
binfmt_before=$(ls /proc/sys/fs/binfmt_misc 2>/dev/null | sort | tr '\n' ' ')
mkdir -p "$work/emulated/src"
# What the program writes says it ran as $FOREIGN code, and whether the step
# could see or change the registration it runs under.
cat >"$work/emulated/src/main.go" <<'GO'
package main

import (
	"os"
	"runtime"
)

func main() {
	seen := "hidden"
	if entries, err := os.ReadDir("/proc/sys/fs/binfmt_misc"); err == nil && len(entries) > 0 {
		seen = "visible"
	}
	if os.WriteFile("/proc/sys/fs/binfmt_misc/register", []byte(":x:E::x::/x:"), 0) == nil {
		seen += ", writable"
	}
	os.WriteFile("/etc/ran", []byte(runtime.GOARCH+" "+seen+"\n"), 0o644)
}
GO
(cd "$work/emulated/src" && CGO_ENABLED=0 GOOS=linux GOARCH=$FOREIGN GO111MODULE=off go build -trimpath -o ../mark .)
cat >"$work/emulated/recipe.lua" <<LUA
image("emulated", from "$REG/base/multi:oci"
  :copy("mark", "/mark")
  :run { "/mark", emulate = true },
  { platforms = { "linux/$FOREIGN" } })
LUA
if command -v "qemu-$FOREIGN_MACHINE-static" >/dev/null; then
  check_cmd "$IMGBUILD" "$work/emulated/recipe.lua" -o "oci:$work/emulated/oci"
  layer=$(skopeo inspect --raw "oci:$work/emulated/oci:emulated" | jq -r '.layers[-1].digest')
  check "the step's layer holds what the $FOREIGN program wrote: it ran as $FOREIGN code, its emulator's registration out of its sight" \
    sh -c "tar -xzOf '$(blob "$work/emulated/oci" "$layer")' etc/ran | grep -qx '$FOREIGN hidden'"
  check "the machine's binfmt_misc is as it was" test "$(ls /proc/sys/fs/binfmt_misc 2>/dev/null | sort | tr '\n' ' ')" = "$binfmt_before"
  if [[ ! -e /proc/sys/fs/binfmt_misc/qemu-$FOREIGN_MACHINE ]]; then
    check "and, unregistered on the machine, runs nothing of $FOREIGN outside a step" sh -c "! '$work/emulated/mark' 2>/dev/null"
  fi
  IMGBUILD_CHROOT_ON_HOST=1 imgbuild "$work/emulated/recipe.lua" --isolation chroot --no-cache
  check "chroot isolation, which makes no namespace, refuses it at the step's line" grep -q \
    "recipe.lua:3: run: an emulated RUN step registers its emulator in a user namespace of its own, which chroot isolation does not make" "$work/last.err"
fi

step "push: the manifests, then the index, with the recipe's annotations"
mkdir -p "$work/push"
cat >"$work/push/recipe.lua" <<LUA
push(from "$REG/base/multi:oci":label { built = platform.arch }, "$REG/team/multi:1",
  { platforms = { "linux/amd64", "linux/arm64" },
    annotations = { ["org.example.team"] = "payments", ["org.opencontainers.image.created"] = "" } })
LUA
check_cmd "$IMGBUILD" "$work/push/recipe.lua"
check "the registry has an index of two platforms" sh -c "skopeo inspect --tls-verify=false --raw docker://$REG/team/multi:1 |
  jq -e '.mediaType == \"application/vnd.oci.image.index.v1+json\" and ([.manifests[].platform.architecture] == [\"amd64\", \"arm64\"])'"
check "skopeo pulls its arm64 image" sh -c "skopeo inspect --tls-verify=false --override-arch arm64 --config docker://$REG/team/multi:1 |
  jq -e '.config.Labels.built == \"arm64\"'"
check "the index carries what its images say alike: the annotation the recipe set and the base's name, not the default it emptied nor one platform's base digest" sh -c \
  "skopeo inspect --tls-verify=false --raw docker://$REG/team/multi:1 |
  jq -e '.annotations == {\"org.example.team\": \"payments\", \"org.opencontainers.image.base.name\": \"$REG/base/multi:oci\"}'"
for arch in amd64 arm64; do
  child=$(skopeo inspect --tls-verify=false --raw "docker://$REG/team/multi:1" |
    jq -r --arg a "$arch" '.manifests[] | select(.platform.architecture == $a) | .digest')
  check "the $arch manifest carries it, its emptied default gone, the others kept" sh -c \
    "skopeo inspect --tls-verify=false --raw docker://$REG/team/multi@$child |
    jq -e '.annotations[\"org.example.team\"] == \"payments\" and (.annotations | has(\"org.opencontainers.image.created\") | not)
      and .annotations[\"org.opencontainers.image.base.name\"] != null'"
  check "the $arch config's labels are the recipe's, untouched by the annotations" sh -c \
    "skopeo inspect --tls-verify=false --config docker://$REG/team/multi@$child |
    jq -e '.config.Labels.built == \"$arch\" and (.config.Labels | has(\"org.example.team\") | not)'"
done
check "the output names the index pushed" grep -q "^pushed $REG/team/multi:1@sha256:" "$work/last.out"
# What is attached goes to each platform's image, by its digest (the referrers
# tag schema: docker-registry has no referrers API), never into the index.
for arch in amd64 arm64; do
  child=$(skopeo inspect --tls-verify=false --raw "docker://$REG/team/multi:1" |
    jq -r --arg a "$arch" '.manifests[] | select(.platform.architecture == $a) | .digest')
  check "the $arch image has its SBOM and provenance attached" sh -c "curl -sf -H 'Accept: application/vnd.oci.image.index.v1+json' \
    http://$REG/v2/team/multi/manifests/sha256-${child#sha256:} |
    jq -e '[.manifests[].artifactType] | sort == [\"application/spdx+json\", \"application/vnd.in-toto+json\"]'"
done

step "imgbuild push of a stored index: the index under every tag, each platform's image before it"
# The name holds the index again (a single-platform build took it since): every step cached.
check_cmd "$IMGBUILD" "$ROOT/examples/hello/recipe.lua" --platform "$BOTH"
check_cmd "$IMGBUILD" push hello "$REG/team/hello:2" "$REG/team/hello:latest"
check "both tags hold the same index of two platforms" sh -c "
  a=\$(skopeo inspect --tls-verify=false --raw docker://$REG/team/hello:2) &&
  b=\$(skopeo inspect --tls-verify=false --raw docker://$REG/team/hello:latest) && [ \"\$a\" = \"\$b\" ] &&
  echo \"\$a\" | jq -e '.mediaType == \"application/vnd.oci.image.index.v1+json\" and (.manifests | length) == 2'"
check "skopeo pulls its $FOREIGN image" sh -c "skopeo inspect --tls-verify=false --override-arch $FOREIGN docker://$REG/team/hello:2 |
  jq -e '.Architecture == \"$FOREIGN\"'"

step "every platform's layers go up while the build runs (early uploads)"
# The machine's image waits in its last step (a RUN step on the host network)
# until the registry has the layer only the $FOREIGN image makes: the build
# succeeds only if that platform's layer was uploaded during the build, as
# soon as its step stored it. No timing is measured.
mkdir -p "$work/early"
cp /bin/busybox "$work/early/busybox"
echo "only on $FOREIGN" >"$work/early/foreign.txt"
cat >"$work/early/recipe.lua" <<LUA
local reg, wait = param("REGISTRY"), param("WAIT", "")
local img = scratch:copy("foreign.txt", "/foreign.txt")
if platform.arch == platform.build.arch then
  local script = "exit 0"
  if wait ~= "" then
    script = "for i in \$(seq 600); do wget -q -O /dev/null http://" .. reg .. "/v2/team/early/blobs/" .. wait ..
      " && exit 0; sleep 0.1; done; echo the $FOREIGN layer never reached the registry; exit 2"
  end
  img = scratch:copy("busybox", "/bin/busybox"):run { "/bin/busybox", "sh", "-c", script, network = "host" }
end
local platforms = { "linux/$HOST_ARCH", "linux/$FOREIGN" }
image("early", img, { platforms = platforms })
push(img, reg .. "/team/early:1", { platforms = platforms })
LUA
check_cmd "$IMGBUILD" "$work/early/recipe.lua" --no-push --set "REGISTRY=$REG" --platform "linux/$FOREIGN" -o "oci:$work/early-probe"
foreign_layer=$(jq -r '.layers[0].digest' "$(blob "$work/early-probe" "$(jq -r '.manifests[0].digest' "$work/early-probe/index.json")")")
check "the $FOREIGN layer is known ($foreign_layer)" grep -q '^sha256:' <<<"$foreign_layer"
check_cmd timeout 120 "$IMGBUILD" "$work/early/recipe.lua" --set "REGISTRY=$REG" --set "WAIT=$foreign_layer" --no-cache
check "the machine's image saw the $FOREIGN layer in the registry during the build" sh -c "! grep -q '| the $FOREIGN layer never reached' '$work/last.err'"
check "then the index went up with both platforms" sh -c "skopeo inspect --tls-verify=false --raw docker://$REG/team/early:1 |
  jq -e '[.manifests[].platform.architecture] | sort == ([\"$HOST_ARCH\", \"$FOREIGN\"] | sort)'"
check "each blob went up once: two layers and two configs (the RUN step made no layer), none found there twice" \
  grep -qE "^  $REG/team/early:1: 4 uploaded \(.*\), 0 mounted, 0 already there, 1 manifest put$" "$work/last.err"

finish
