#!/usr/bin/env bash
# bench/peers.sh: imgbuild next to what its users run today, on the seed's own
# job: the scratch-122x Dockerfiles (Dockerfile.blank: a Go builder stage then
# FROM scratch; Dockerfile.multi: then FROM alpine) built by `docker build`
# (Debian's docker.io engine with its BuildKit), `buildah bud --layers` and
# imgbuild (bench/peers/*.lua), alternating runs. See bench/README.md.
#
#   bench/peers.sh                       3 alternating runs of every job
#   bench/peers.sh --runs N              N runs
#   bench/peers.sh --recipes blank       only Dockerfile.blank (or multi)
#   bench/peers.sh --output F            also write the markdown section to F
#   bench/peers.sh --trace-writes DIR    no timings: where the bytes an imgbuild
#                                        edit rebuild writes go (strace), in DIR
#   bench/peers.sh --trace-steps DIR     no peers: when each phase of an imgbuild
#                                        edit rebuild ends (roots, RUN, layers), in DIR
#   bench/peers.sh --run-parity DIR      the builder's `go build` alone, timed inside
#                                        imgbuild's RUN, BuildKit's RUN and plain runc, in DIR
#   bench/peers.sh --cache-mounts ...    --trace-writes and --trace-steps with the Go
#                                        caches mounted (Dockerfile.blank.cache's recipe)
#
# IMGBUILD=path/to/imgbuild picks the binary (default build/imgbuild). Needs
# root: it starts its own dockerd on a private socket and runs buildah with a
# private storage root; everything talks to 127.0.0.1 only.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
started=$(date +%s)

usage() { sed -n '8,19s/^# \{0,3\}//p' "$repo/bench/peers.sh"; }
die() { printf 'bench/peers: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'bench/peers: %s\n' "$*" >&2; }
now() { date +%s%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b - a) / 1e9}'; }

runs=3 recipes=(blank multi) md="" trace="" phases="" parity="" traced_mounts=no
while (($#)); do
  case $1 in
    --runs) (($# >= 2)) || die "--runs needs a number"; runs=$2; shift ;;
    --recipes) (($# >= 2)) || die "--recipes needs blank, multi or blank,multi"; IFS=, read -ra recipes <<<"$2"; shift ;;
    --output) (($# >= 2)) || die "--output needs a file"; md=$2; shift ;;
    --trace-writes) (($# >= 2)) || die "--trace-writes needs a folder"; trace=$2; shift ;;
    --trace-steps) (($# >= 2)) || die "--trace-steps needs a folder"; phases=$2; shift ;;
    --run-parity) (($# >= 2)) || die "--run-parity needs a folder"; parity=$2; shift ;;
    --cache-mounts) traced_mounts=yes ;;
    -h | --help) usage; exit 0 ;;
    *) printf 'bench/peers: unknown option %s\n' "$1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs: expected a positive integer, got '$runs'"
for r in "${recipes[@]}"; do [[ $r == blank || $r == multi ]] || die "--recipes: expected blank or multi, got '$r'"; done
[[ $(id -u) -eq 0 ]] || die "needs root: it starts dockerd and gives buildah a storage root of its own"
bin=${IMGBUILD:-$repo/build/imgbuild}
bin=$(realpath -e "$bin" 2>/dev/null) || die "no imgbuild binary at ${IMGBUILD:-build/imgbuild} (build it, or set IMGBUILD)"
# Debian's docker.io client (/usr/local/bin may hold another one) and engine.
for t in /usr/bin/docker dockerd buildah skopeo docker-registry python3 go curl; do
  command -v "$t" >/dev/null || die "cannot run without $t (scripts/setup installs docker.io, buildah, skopeo, docker-registry, golang-go)"
done

out=$repo/bench/out
logs=$out/logs/peers
mkdir -p "$logs"
rm -f "$logs"/*.log
tmp=$(mktemp -d "$out/peers.XXXXXX")
source bench/workfs.sh
workfs_mount "$tmp"
dockerd_pid="" goproxy_pid=""
stop_pid() {  # PID: TERM, up to 30 s to finish (dockerd stops its containerd), then KILL
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 300); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
cleanup() {
  [[ -z $dockerd_pid ]] || stop_pid "$dockerd_pid"
  [[ -z $goproxy_pid ]] || stop_pid "$goproxy_pid"
  # what dockerd and buildah leave mounted under their roots, innermost first
  # (|| true: no mount left is no failure, and set -e would skip the rm)
  { findmnt -rn -o TARGET | grep -F "$tmp/" | sort -r | while read -r m; do umount -l "$m"; done; } 2>/dev/null || true
  workfs_unmount
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
unset SOURCE_DATE_EPOCH IMGBUILD_PATH DOCKER_HOST

# --- The loopback registry: the golang look-alike, busybox as alpine ----------
REG_WORK=$tmp/registry
# the seed images (the golang look-alike takes minutes to make) are kept between runs
REG_CACHE=$out/registry-seeds
source tests/registry/lib.sh
registry_start open >>"$logs/registry.log" 2>&1 || die "the registry did not start (see ${logs#"$repo"/}/registry.log)"
REG=$REGISTRY
{ seed_golang "$REG" library/golang:1.22-alpine && seed_images "$REG" &&
  skopeo copy --src-tls-verify=false --dest-tls-verify=false "docker://$REG/base/busybox:oci" "docker://$REG/library/alpine:3"; } \
  >>"$logs/registry.log" 2>&1 || die "seeding the registry failed (see ${logs#"$repo"/}/registry.log)"

# --- The loopback module proxy: Debian's module sources, served over HTTP ------
python3 tests/e2e/goproxy.py "$tmp/goproxy" \
  github.com/pkg/errors@v0.9.1=/usr/share/gocode/src/github.com/pkg/errors \
  github.com/opencontainers/go-digest@v1.0.0=/usr/share/gocode/src/github.com/opencontainers/go-digest ||
  die "tests/e2e/goproxy.py failed (are golang-github-pkg-errors-dev and golang-github-opencontainers-go-digest-dev installed?)"
port=$(free_port)
setpriv --pdeathsig TERM python3 -m http.server "$port" --bind 127.0.0.1 --directory "$tmp/goproxy" \
  </dev/null >"$logs/goproxy.log" 2>&1 &
goproxy_pid=$!
GOPROXY=http://127.0.0.1:$port
for _ in $(seq 100); do curl -sf "$GOPROXY/github.com/pkg/errors/@v/list" >/dev/null && break; sleep 0.1; done

# --- The work folder: the service (edited between builds), the Dockerfiles ----
ctx=$tmp/service
cp -r bench/peers/service "$ctx"
for f in bench/peers/Dockerfile.*; do
  sed -e "s|@REG@|$REG|g" -e "s|@GOPROXY@|$GOPROXY|g" "$f" >"$tmp/${f##*/}"
done
edit_n=0
edit() {  # rewrites the one Go file every edit job changes, never to the same text twice
  edit_n=$((edit_n + 1))
  printf 'package main\n\n// version is the file bench/peers.sh rewrites for its one-Go-file edit.\nconst version = "edit %d %s"\n' \
    "$edit_n" "$(date +%s%N)" >"$ctx/version.go"
}

# --- --trace-writes: one imgbuild edit rebuild of blank.lua under strace ------------
idir=$tmp/imgbuild
IMGBUILD_CMD=(env XDG_DATA_HOME="$idir/data" XDG_CACHE_HOME="$idir/cache" "$bin")
if [[ -n $trace ]]; then
  command -v strace >/dev/null || die "--trace-writes needs strace (apt-get install strace)"
  mkdir -p "$trace"
  trace=$(realpath "$trace")
  args=(build bench/peers/blank.lua --context "$ctx" --set "registry=$REG" --set "goproxy=$GOPROXY" --no-push
    --set "cache_mounts=$traced_mounts"
    --ignore entrypoint --ignore root --ignore tls)
  say "building bench/peers/blank.lua cold, then an edit rebuild under GNU time, then one under strace"
  "${IMGBUILD_CMD[@]}" "${args[@]}" >"$trace/cold.log" 2>&1 || die "the cold build failed (see $trace/cold.log)"
  edit
  sync
  /usr/bin/time -f '%e s wall, %U s user, %S s system, %O blocks written (512 bytes), %M KB max RSS' -o "$trace/time.txt" \
    "${IMGBUILD_CMD[@]}" "${args[@]}" >"$trace/edit.log" 2>&1 || die "the edit rebuild failed (see $trace/edit.log)"
  edit
  sync
  strace -f -y -qq -o "$trace/strace.log" \
    -e trace=write,pwrite64,writev,pwritev,pwritev2,copy_file_range,sendfile,splice \
    "${IMGBUILD_CMD[@]}" "${args[@]}" >"$trace/edit-strace.log" 2>&1 || die "the traced edit rebuild failed (see $trace/edit-strace.log)"
  python3 bench/write_attribution.py "$trace/strace.log" "$idir/data" "$idir/cache" >"$trace/attribution.md"
  echo "GNU time, untraced edit rebuild: $(cat "$trace/time.txt")"
  cat "$trace/attribution.md"
  exit 0
fi

# --- --trace-steps: one imgbuild edit rebuild of blank.lua, its phases timed -----------
if [[ -n $phases ]]; then
  command -v strace >/dev/null || die "--trace-steps needs strace (apt-get install strace)"
  mkdir -p "$phases"
  phases=$(realpath "$phases")
  args=(build bench/peers/blank.lua --context "$ctx" --set "registry=$REG" --set "goproxy=$GOPROXY" --no-push
    --set "cache_mounts=$traced_mounts"
    --ignore entrypoint --ignore root --ignore tls --progress plain)
  say "building bench/peers/blank.lua cold, then an edit rebuild, then one under strace of the calls that end its phases"
  "${IMGBUILD_CMD[@]}" "${args[@]}" >"$phases/cold.log" 2>&1 || die "the cold build failed (see $phases/cold.log)"
  # The first edit makes the roots and shares the files a later one finds made.
  edit
  "${IMGBUILD_CMD[@]}" "${args[@]}" >"$phases/edit.log" 2>&1 || die "the edit rebuild failed (see $phases/edit.log)"
  edit
  sync
  # --seccomp-bpf: only these calls stop the build, which runs at nearly its own speed.
  strace -f --seccomp-bpf -ttt -qq -o "$phases/strace.log" -e trace=mount,rename,rmdir,exit_group \
    "${IMGBUILD_CMD[@]}" "${args[@]}" >"$phases/edit-strace.log" 2>&1 ||
    die "the traced edit rebuild failed (see $phases/edit-strace.log)"
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores); the steps as --progress plain timed them:"
  grep -E '\(([0-9.]+s)\)$' "$phases/edit-strace.log" | sed 's/^ */    /'
  python3 bench/step_phases.py "$phases/strace.log" | tee "$phases/phases.md"
  # What the whole edit rebuild costs in CPU, untraced: the phases above are wall times.
  edit
  sync
  /usr/bin/time -f '%e s wall, %U s user, %S s system' -o "$phases/time.txt" \
    "${IMGBUILD_CMD[@]}" "${args[@]}" >"$phases/edit-timed.log" 2>&1 || die "the timed edit rebuild failed (see $phases/edit-timed.log)"
  echo "GNU time, one more edit rebuild untraced: $(cat "$phases/time.txt"), load average $(cut -d' ' -f1-3 /proc/loadavg)"
  grep -E '\(([0-9.]+s)\)$' "$phases/edit-timed.log" | sed 's/^ */    /'
  exit 0
fi

# --- Debian's docker engine on a private socket ----------------------------------
dd=$tmp/docker
mkdir -p "$dd/config"
setpriv --pdeathsig TERM dockerd -H "unix://$dd/docker.sock" --data-root "$dd/data" --exec-root "$dd/exec" \
  --pidfile "$dd/pid" --bridge=none --iptables=false --ip6tables=false </dev/null >"$logs/dockerd.log" 2>&1 &
dockerd_pid=$!
DOCKER=(env DOCKER_HOST="unix://$dd/docker.sock" DOCKER_CONFIG="$dd/config" DOCKER_BUILDKIT=1 /usr/bin/docker)
for _ in $(seq 300); do "${DOCKER[@]}" info >/dev/null 2>&1 && break; sleep 0.1; done
"${DOCKER[@]}" info >/dev/null 2>&1 || die "dockerd did not come up within 30 s (see ${logs#"$repo"/}/dockerd.log)"
# Debian's docker.io 20.10 has no buildx plugin: `docker build` with
# DOCKER_BUILDKIT=1 drives the BuildKit built into dockerd, which cannot export
# a registry cache (--cache-to type=registry needs buildx); its registry cache
# is the inline one, read back with --cache-from IMAGE.
buildx="no buildx: inline cache"
"${DOCKER[@]}" buildx version >/dev/null 2>&1 && buildx="buildx $("${DOCKER[@]}" buildx version | awk '{print $2}')"

bd=$tmp/buildah
mkdir -p "$bd/tmp"
# TMPDIR: buildah keeps RUN --mount=type=cache folders there
BUILDAH=(env -u DOCKER_CONFIG TMPDIR="$bd/tmp" buildah --root "$bd/root" --runroot "$bd/run" --storage-driver overlay)

# --- --run-parity: the same `go build` inside each tool's RUN, and under plain runc ----
# Whether a RUN step costs its command anything: the builder stage of
# Dockerfile.blank with its command under busybox `time -v` (the command's
# own wall, user and system time, from wait4), after what the step sees of
# itself (nproc, seccomp, cgroups). imgbuild and BuildKit run it as an edit
# rebuild; runc runs it with `runc spec`'s default config (no seccomp filter,
# the host's network) on an overlay of the builder image as umoci unpacks it,
# with the edited source in its upper folder. Runs alternate between the three.
if [[ -n $parity ]]; then
  { command -v runc && command -v umoci; } >/dev/null || die "--run-parity needs runc and umoci"
  mkdir -p "$parity"
  parity=$(realpath "$parity")
  # shellcheck disable=SC2016 # expanded by the step's shell
  probe='echo "PROBE nproc=$(nproc) $(grep -E "^(Seccomp|Seccomp_filters|NoNewPrivs|Cpus_allowed_list):" /proc/self/status | tr -d "\t" | tr "\n" " ")"; cat /proc/self/cgroup | sed "s/^/PROBE /"; time -v env CGO_ENABLED=0 go build -o app . 2>&1 | sed "s/^/TIME /"'
  cat >"$tmp/parity.lua" <<LUA
local builder = from("$REG/library/golang:1.22-alpine")
  :env { GOPROXY = "$GOPROXY", GOSUMDB = "off" }
  :workdir "/go/src/app"
  :copy(".", ".")
  :run([[$probe]], { network = "host" })
image("peers-parity", scratch:copy("/go/src/app/app", "/app", { from = builder }))
LUA
  { sed -n '/^FROM .* AS builder/,/^COPY \. \./p' "$tmp/Dockerfile.blank" && echo "RUN $probe"; } >"$tmp/Dockerfile.parity"
  imgbuild_parity() {
    "${IMGBUILD_CMD[@]}" build "$tmp/parity.lua" --context "$ctx" --no-push --ignore entrypoint --ignore root --ignore tls --progress plain
  }
  docker_parity() { "${DOCKER[@]}" build --progress plain --network host -f "$tmp/Dockerfile.parity" -t peers-parity "$ctx"; }
  rb=$tmp/runc
  mkdir -p "$rb"
  { skopeo copy --src-tls-verify=false "docker://$REG/library/golang:1.22-alpine" "oci:$rb/oci:golang" >"$parity/umoci.log" 2>&1 &&
    umoci unpack --image "$rb/oci:golang" "$rb/image" >>"$parity/umoci.log" 2>&1; } || die "unpacking the builder image for runc failed (see $parity/umoci.log)"
  (cd "$rb" && runc spec) || die "runc spec failed"
  python3 - "$rb/config.json" "$probe" "$GOPROXY" "$(jq -r '.process.env[] | select(startswith("PATH="))' "$rb/image/config.json")" <<'PY'
import json, sys
path, probe, goproxy, env_path = sys.argv[1:]
c = json.load(open(path))
c["process"].update(terminal=False, args=["/bin/sh", "-c", probe], cwd="/go/src/app",
                    env=[env_path, "GOTOOLCHAIN=local", "GOPROXY=" + goproxy, "GOSUMDB=off", "HOME=/root"])
c["root"] = {"path": "merged", "readonly": False}
c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != "network"]
json.dump(c, open(path, "w"), indent=1)
PY
  # shellcheck disable=SC2317 # called as "${tool}_parity"
  runc_parity() {
    { rm -rf "$rb/upper" "$rb/work" && mkdir -p "$rb/upper/go/src" "$rb/work" "$rb/merged" && cp -r "$ctx" "$rb/upper/go/src/app" &&
      mount -t overlay overlay -o "lowerdir=$rb/image/rootfs,upperdir=$rb/upper,workdir=$rb/work" "$rb/merged"; } || return 1
    local rc=0
    (cd "$rb" && runc --root "$rb/state" run "peers-parity-$$" </dev/null) || rc=$?
    umount "$rb/merged"
    return "$rc"
  }
  say "one untimed build each, then $runs alternating edit rebuilds of the builder stage: imgbuild, BuildKit, runc"
  imgbuild_parity >"$parity/imgbuild-cold.log" 2>&1 || die "imgbuild's first build failed (see $parity/imgbuild-cold.log)"
  docker_parity >"$parity/docker-cold.log" 2>&1 || die "docker's first build failed (see $parity/docker-cold.log)"
  echo "load average $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores) at the start"
  echo "| run | tool | go build: wall | user + system (CPU-s) | CPU-s / wall | whole build | load |"
  echo "|---|---|---|---|---|---|---|"
  for ((run = 1; run <= runs; run++)); do
    for tool in imgbuild docker runc; do
      edit
      sync
      t0=$(now)
      "${tool}_parity" >"$parity/$tool-$run.log" 2>&1 || die "$tool failed (see $parity/$tool-$run.log)"
      t1=$(now)
      awk -v run="$run" -v tool="$tool" -v whole="$(secs "$t0" "$t1")" -v load="$(cut -d' ' -f1 /proc/loadavg)" '
        /TIME.*User time/ {u = $NF} /TIME.*System time/ {s = $NF}
        /TIME.*Elapsed/ {w = $NF + 0; if ($(NF - 1) ~ /m$/) w += 60 * $(NF - 1)}  # busybox: "0m 6.33s"
        END {printf "| %d | %s | %.2f s | %.2f | %.2f | %.2f s | %s |\n", run, tool, w, u + s, (u + s) / w, whole, load}' "$parity/$tool-$run.log"
    done
  done
  echo
  echo "What each RUN saw of itself (run 1):"
  for tool in imgbuild docker runc; do grep -hE 'PROBE (nproc=[0-9]|[0-9]+:cpu[,:])' "$parity/$tool-1.log" | sed "s/^.*PROBE/    $tool:/"; done
  exit 0
fi

# --- Each tool's commands: TOOL_reset, TOOL_build RECIPE MOUNTS [FROM_CACHE],
# TOOL_push RECIPE, TOOL_export RECIPE MOUNTS (untimed: a registry cache for the
# fresh runner). MOUNTS is "" or ".cache"; the image is bench/peers-RECIPE.
docker_reset() {
  "${DOCKER[@]}" image rm -f "$REG/bench/peers-blank:docker" "$REG/bench/peers-multi:docker" >/dev/null 2>&1 || true
  "${DOCKER[@]}" system prune -af && "${DOCKER[@]}" builder prune -af
}
docker_build() {
  # BUILDKIT_INLINE_CACHE: the pushed image carries the cache a fresh runner reads
  "${DOCKER[@]}" build --progress plain --network host --build-arg BUILDKIT_INLINE_CACHE=1 \
    ${3:+--cache-from "$REG/bench/peers-$1:docker"} -f "$tmp/Dockerfile.$1$2" -t "$REG/bench/peers-$1:docker" "$ctx"
}
docker_push() { "${DOCKER[@]}" push "$REG/bench/peers-$1:docker"; }
docker_export() { :; } # the inline cache went up with the push

buildah_reset() {
  "${BUILDAH[@]}" rm -a && "${BUILDAH[@]}" rmi -a -f && rm -rf "${bd:?}/tmp" && mkdir -p "$bd/tmp"
}
buildah_build() {
  "${BUILDAH[@]}" bud --layers --network host --tls-verify=false \
    ${3:+--cache-from "$REG/bench/cache-$1$2-buildah"} -f "$tmp/Dockerfile.$1$2" -t "peers-$1" "$ctx"
}
buildah_push() { "${BUILDAH[@]}" push --tls-verify=false "peers-$1" "docker://$REG/bench/peers-$1:buildah"; }
buildah_export() {
  "${BUILDAH[@]}" bud --layers --network host --tls-verify=false --cache-to "$REG/bench/cache-$1$2-buildah" \
    -f "$tmp/Dockerfile.$1$2" -t "peers-$1" "$ctx"
}

imgbuild_reset() { rm -rf "${idir:?}/data" "$idir/cache"; }
imgbuild_args() {  # RECIPE MOUNTS
  printf '%s\n' "bench/peers/$1.lua" --context "$ctx" --set "registry=$REG" --set "goproxy=$GOPROXY" \
    --set "cache_mounts=$([[ -n $2 ]] && echo yes || echo no)" --set "push=$REG/bench/peers-$1:imgbuild" --ignore entrypoint --ignore root --ignore tls
}
imgbuild_build() {
  local args
  mapfile -t args < <(imgbuild_args "$1" "$2")
  "${IMGBUILD_CMD[@]}" build "${args[@]}" --no-push ${3:+--cache-from "$REG/bench/cache-$1$2:imgbuild"}
}
imgbuild_push() { "${IMGBUILD_CMD[@]}" push "peers-$1" "$REG/bench/peers-$1:imgbuild"; }
imgbuild_export() {
  local args
  mapfile -t args < <(imgbuild_args "$1" "$2")
  "${IMGBUILD_CMD[@]}" build "${args[@]}" --cache-to "$REG/bench/cache-$1$2:imgbuild"
}

# --- Measuring ------------------------------------------------------------------
# T[RECIPE MOUNTS TOOL JOB] holds one wall time a run; JOB is cold, noop, edit
# or fresh, and JOB+push the same build followed by its push.
declare -A T=() FAILED=()
job() {  # KEY LOG TOOL RECIPE MOUNTS [FROM_CACHE]: times the build, then the push
  local key=$1 log=$2 tool=$3 t0 t1 t2
  shift 3
  sync
  t0=$(now)
  "${tool}_build" "$@" >>"$log" 2>&1 || return 1
  t1=$(now)
  "${tool}_push" "$1" >>"$log" 2>&1 || return 1
  t2=$(now)
  T[$key]+="$(secs "$t0" "$t1") "
  T[$key+push]+="$(secs "$t0" "$t2") "
  say "  ${key##* }: $(secs "$t0" "$t1") s, + push $(secs "$t0" "$t2") s"
}
sequence() {  # RUN RECIPE MOUNTS TOOL: cold, no-op, edit, then an edit on a fresh runner
  local run=$1 r=$2 m=$3 tool=$4 log
  local k="$r $m $tool"
  log=$logs/$r$m-$tool.log
  [[ -z ${FAILED[$k]:-} ]] || return 0
  echo "=== run $run" >>"$log"
  say "run $run/$runs: Dockerfile.$r$m, $tool"
  if ! { "${tool}_reset" >>"$log" 2>&1 &&
    job "$k cold" "$log" "$tool" "$r" "$m" &&
    job "$k noop" "$log" "$tool" "$r" "$m" &&
    edit && job "$k edit" "$log" "$tool" "$r" "$m" &&
    "${tool}_export" "$r" "$m" >>"$log" 2>&1 &&
    "${tool}_reset" >>"$log" 2>&1 &&
    edit && job "$k fresh" "$log" "$tool" "$r" "$m" from-cache; }; then
    FAILED[$k]="failed in run $run (see bench/out/logs/peers/${log##*/})"
    say "${FAILED[$k]}"
  fi
}

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
say "load average at the start: $load_start"
tools=(docker buildah imgbuild)
for ((run = 1; run <= runs; run++)); do
  for r in "${recipes[@]}"; do
    for m in "" .cache; do
      for tool in "${tools[@]}"; do sequence "$run" "$r" "$m" "$tool"; done
    done
  done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$(($(date +%s) - started))

# --- Report -----------------------------------------------------------------------
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
med() { [[ -n ${T[$1]:-} ]] && echo "${T[$1]}" | median; }
cell() {  # KEY -> "median (min–max)" or why there is none
  local k=$1
  [[ -n ${T[$k]:-} ]] || { echo "${FAILED[${k% *}]:-not measured}"; return; }
  local vals
  vals=$(echo "${T[$k]}" | tr ' ' '\n' | grep . | sort -g)
  printf '%.2f s (%.2f–%.2f)' "$(med "$k")" "$(head -n1 <<<"$vals")" "$(tail -n1 <<<"$vals")"
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }
target() {  # RECIPE MOUNTS JOB -> the issue's target for imgbuild / BuildKit, and whether it is met
  local r=$1 m=$2 j=$3 goal="" i b
  i=$(med "$r $m imgbuild $j") b=$(med "$r $m docker $j")
  case $j in
    cold) goal=0.9 ;;
    noop) goal=0.5 ;;
    edit) goal=$([[ -n $m ]] && echo 0.8 || echo 1.0) ;;
    edit+push) goal=0.7 ;;
    fresh) goal=0.5 ;;
  esac
  [[ -n $goal && -n $i && -n $b ]] || { echo "${goal:+≤ ${goal}x}"; return; }
  local s
  s=$(awk -v i="$i" -v b="$b" -v g="$goal" 'BEGIN {print (i / b <= g ? "met" : "**not met**")}')
  if [[ $j == fresh ]]; then
    local w
    w=$(med "$r $m imgbuild edit")
    [[ -n $w ]] && s+=", $(ratio "$i" "$w") of imgbuild's warm edit (≤ 1.3x): $(awk -v i="$i" -v w="$w" 'BEGIN {print (i / w <= 1.3 ? "met" : "**not met**")}')"
  fi
  echo "≤ ${goal}x: $s"
}

{
  echo "## 5. The seed's job next to docker build (BuildKit) and buildah bud"
  echo
  echo "Written by \`bench/peers.sh --runs $runs\` on $(date -u '+%Y-%m-%d %H:%M UTC'); $((elapsed / 60)) min $((elapsed % 60)) s. **Load average: $load_start at the start, $load_end at the end** ($(nproc) cores)."
  echo "Tools: Debian's $(dpkg-query -W -f='docker.io ${Version}' docker.io 2>/dev/null) ($buildx), $(buildah --version | awk '{print "buildah " $3}'), imgbuild \`${bin#"$repo"/}\` (built $(date -u -r "$bin" '+%Y-%m-%d %H:%M UTC')), $(go version | awk '{print $3}') in the builder image."
  echo "Work folder (every tool's state, the registry's storage): $WORKFS."
  echo
  echo "The job: the seed's scratch-122x Dockerfiles (bench/peers/Dockerfile.blank and .multi, with their registry and module proxy written in) and the equivalent recipes (bench/peers/blank.lua, multi.lua), building the service in bench/peers/service (net/http and two modules from Debian's sources through a module proxy on 127.0.0.1, tests/e2e/goproxy.py). The builder image (tests/registry/golang_image.sh) and the alpine stand-in (busybox) are pulled from docker-registry on 127.0.0.1. \`docker build --network host\` (DOCKER_BUILDKIT=1), \`buildah bud --layers --network host\` (overlay, private storage root), \`imgbuild build --no-push\`; each build is followed by a push of its image to the same registry (docker and buildah compress only then)."
  echo "*cold*: no local state (docker: every image and the build cache pruned; buildah: every image and its cache mounts removed; imgbuild: empty store and cache). *no-op*: the same build again. *edit*: version.go rewritten. *fresh runner*: version.go rewritten again, no local state, the registry cache of the previous build available: imgbuild \`--cache-from\` (exported by \`--cache-to\`), BuildKit \`--cache-from\` the pushed image with its inline cache (no buildx here: no \`type=registry\` cache, and an inline cache holds no builder stage), buildah \`--cache-from\` (exported by \`--cache-to\`). *+ push*: the build then the push, what CI waits for. Runs alternate between the tools (run 1 of each job for every tool, then run 2, ...); each cell is the median of $runs (min–max). Ratio: imgbuild / BuildKit, below 1 is faster; the targets are the issue's."
  for r in "${recipes[@]}"; do
    for m in "" .cache; do
      echo
      if [[ -n $m ]]; then
        echo "### Dockerfile.$r with cache mounts (\`RUN --mount=type=cache\` for the Go build and module caches; \`:run { cache = ... }\`)"
      else
        echo "### Dockerfile.$r, no cache mounts"
      fi
      echo
      echo "| job | docker build (BuildKit) | buildah bud --layers | imgbuild | imgbuild / BuildKit | target (imgbuild / BuildKit) |"
      echo "|---|---|---|---|---|---|"
      for j in cold cold+push noop noop+push edit edit+push fresh fresh+push; do
        case $j in
          cold) label="cold" ;; cold+push) label="cold + push" ;;
          noop) label="no-op rebuild" ;; noop+push) label="no-op + push" ;;
          edit) label="one Go file edited" ;; edit+push) label="edit + push" ;;
          fresh) label="edit on a fresh runner, registry cache" ;; fresh+push) label="fresh runner + push" ;;
        esac
        i=$(med "$r $m imgbuild $j") b=$(med "$r $m docker $j")
        rt=""
        [[ -z $i || -z $b ]] || rt=$(ratio "$i" "$b")
        echo "| $label | $(cell "$r $m docker $j") | $(cell "$r $m buildah $j") | $(cell "$r $m imgbuild $j") | $rt | $(target "$r" "$m" "$j") |"
      done
    done
  done
} >"$tmp/peers.md"
[[ -z $md ]] || { mkdir -p "$(dirname "$md")" && cp "$tmp/peers.md" "$md"; }
cat "$tmp/peers.md"
((${#FAILED[@]} == 0))
