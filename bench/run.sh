#!/usr/bin/env bash
# bench/run.sh: imgbuild's benchmark harness. Measures, side by side on this
# machine, layer assembly against tar|gzip, tar|pigz and umoci, build times of
# the examples against a plain `go build`, imgbuild's peak memory on a 1 GB
# layer, push and pull through a local registry against skopeo copy, and
# (bench/peers.sh) the seed's Dockerfiles against docker build and buildah bud.
# Prints medians and ratios and writes docs/benchmarks.md.
# See bench/README.md.
#
#   bench/run.sh               5 runs per measurement (about 8 minutes on 2 cores)
#   bench/run.sh --quick       2 runs per measurement (about 3.5 minutes)
#   bench/run.sh --runs N      N runs per measurement
#   bench/run.sh --no-install  do not apt-get install missing tools
#   bench/run.sh --output F    write the markdown to F instead of docs/benchmarks.md
#   bench/run.sh --peers-from F  section 5's peer table from F (what bench/peers.sh
#                              --output F wrote earlier) instead of running it again
#
# IMGBUILD=path/to/imgbuild picks the binary; default build/imgbuild, built into
# build-bench (RelWithDebInfo) when build/imgbuild does not exist.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
started=$(date +%s)

usage() { sed -n '9,16s/^# \{0,3\}//p' "$repo/bench/run.sh"; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
say() { printf 'bench: %s\n' "$*" >&2; }

runs=5 mode="" install=1 md=docs/benchmarks.md peers_from=""
while (($#)); do
  case $1 in
    --quick) runs=2 mode=" --quick" ;;
    --runs) (($# >= 2)) || die "--runs needs a number"; runs=$2; mode=" --runs $2"; shift ;;
    --runs=*) runs=${1#*=}; mode=" $1" ;;
    --no-install) install=0 ;;
    --output) (($# >= 2)) || die "--output needs a file"; md=$2; shift ;;
    --output=*) md=${1#*=} ;;
    --peers-from) (($# >= 2)) || die "--peers-from needs a file"; peers_from=$(realpath -e "$2") || die "--peers-from: no file $2"; shift ;;
    -h | --help) usage; exit 0 ;;
    *) printf 'bench: unknown option %s\n' "$1" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs: expected a positive integer, got '$runs'"

out=$repo/bench/out          # generated trees (gitignored), kept between runs
logs=$out/logs               # the output of every measured command, kept for post-mortems
mkdir -p "$out" "$logs"
rm -f "$logs"/*.log
tmp=$(mktemp -d "$out/run.XXXXXX")
source bench/workfs.sh
cleanup() { workfs_unmount; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
workfs_mount "$tmp"
# Nothing from the caller's environment may change what imgbuild builds.
unset SOURCE_DATE_EPOCH IMGBUILD_PATH

# ---------------------------------------------------------------------------
# Tools. Missing ones are installed with apt; a peer that is still missing is
# reported as "unavailable" with the reason, never skipped silently.
declare -A why_missing=()
apt_log=$logs/apt.log
install_pkgs() {  # PACKAGE... : install those not installed yet; never fails
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  if ((!install)); then
    for p in "${missing[@]}"; do why_missing[$p]="package $p is not installed (--no-install)"; done
    return 0
  fi
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  say "installing ${missing[*]} (apt-get, log: ${apt_log#"$repo"/})"
  if ! { $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq \
    --no-install-recommends "${missing[@]}"; } >>"$apt_log" 2>&1; then
    for p in "${missing[@]}"; do
      why_missing[$p]="apt-get install $p failed (see bench/out/logs/apt.log)"
    done
  fi
}
# command:package
tools=(pigz:pigz umoci:umoci /usr/bin/time:time tar:tar gzip:gzip openssl:openssl jq:jq
  /usr/bin/python3:python3 git:git go:golang-go sha256sum:coreutils skopeo:skopeo
  docker-registry:docker-registry)
mapfile -t pkgs < <(printf '%s\n' "${tools[@]}" | cut -d: -f2)
install_pkgs "${pkgs[@]}"
unavailable() {  # COMMAND -> prints why it is missing, or nothing when it is there
  local t
  for t in "${tools[@]}"; do
    [[ ${t%%:*} == "$1" ]] || continue
    command -v "$1" >/dev/null 2>&1 && return 0
    local pkg=${t#*:}
    if [[ -n ${why_missing[$pkg]:-} ]]; then
      echo "${why_missing[$pkg]}"
    elif dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed"; then
      echo "$1 is not on PATH, although package $pkg is installed"
    else
      echo "$1 not found after installing package $pkg"
    fi
    return 0
  done
  command -v "$1" >/dev/null 2>&1 || echo "$1 not found"
}
for t in /usr/bin/time tar gzip openssl jq /usr/bin/python3 sha256sum; do
  r=$(unavailable "$t")
  [[ -z $r ]] || die "cannot run without $t: $r"
done
umoci_ok=$(unavailable umoci) pigz_ok=$(unavailable pigz) go_ok=$(unavailable go)
registry_ok=$(unavailable docker-registry)
[[ -n $registry_ok ]] || registry_ok=$(unavailable skopeo)

# ---------------------------------------------------------------------------
# The imgbuild binary.
build_type() {  # BINARY -> CMAKE_BUILD_TYPE of the build folder it sits in, if known
  local cache
  cache=$(dirname "$1")/CMakeCache.txt
  [[ -f $cache ]] && sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$cache" | head -n1
  return 0
}
if [[ -n ${IMGBUILD:-} ]]; then
  bin=$(realpath -e "$IMGBUILD" 2>/dev/null) || die "IMGBUILD=$IMGBUILD does not exist"
  [[ -x $bin ]] || die "IMGBUILD=$IMGBUILD is not executable"
elif [[ -x build/imgbuild ]]; then
  bin=$repo/build/imgbuild
else
  say "build/imgbuild is missing: building imgbuild into build-bench (RelWithDebInfo, log: bench/out/logs/build.log)"
  ((install)) && { scripts/setup --deps >>"$logs/build.log" 2>&1 || say "scripts/setup --deps failed; trying to build anyway"; }
  { cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF &&
    cmake --build build-bench -j"$(nproc)" --target imgbuild; } >>"$logs/build.log" 2>&1 ||
    die "build/imgbuild is missing and building it into build-bench failed: see bench/out/logs/build.log (or run scripts/setup)"
  bin=$repo/build-bench/imgbuild
fi
"$bin" --version >/dev/null 2>&1 || die "$bin does not run (try scripts/setup)"
btype=$(build_type "$bin")
case ${btype:-unknown} in
  Release | RelWithDebInfo | MinSizeRel) ;;
  *) say "warning: $bin is a '${btype:-unknown}' build: timings will not be representative" ;;
esac
export BIN=$bin
# A binary older than the sources does not measure the commit the report names.
stale=$(find src lua stdlib cmake CMakeLists.txt -newer "$bin" -type f 2>/dev/null | wc -l)
((stale == 0)) || say "warning: $stale source file(s) are newer than $bin: rebuild it to measure the current sources"

# ---------------------------------------------------------------------------
# Measuring. Each command runs $runs times under /usr/bin/time (CPU time and
# maximum RSS) with its wall time taken around it; a prepare command (not
# timed) runs before each run, then `sync`, so no run pays for the previous
# one's write-back.
declare -A WALL=() WMIN=() WMAX=() CPU=() RSS=() STATUS=() SIZE=() OTHER=()
hz=$(getconf CLK_TCK)
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
median() { sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }

measure() {  # KEY PREPARE COMMAND
  local key=$1 prep=$2 cmd=$3 i t0 t1 b0 b1 rc u s m walls=() cpus=() rsss=() others=()
  say "measuring $key ($runs run(s))"
  for ((i = 1; i <= runs; i++)); do
    if [[ -n $prep ]] && ! bash -o pipefail -c "$prep" >>"$logs/$key.log" 2>&1; then
      STATUS[$key]="failed: preparing it failed (see bench/out/logs/$key.log)"
      return 0
    fi
    sync
    b0=$(busy_ticks)
    t0=$(date +%s%N)
    rc=0
    /usr/bin/time -f '%U %S %M' -o "$tmp/time" bash -o pipefail -c "$cmd" >>"$logs/$key.log" 2>&1 || rc=$?
    t1=$(date +%s%N)
    b1=$(busy_ticks)
    if ((rc)); then
      STATUS[$key]="failed: exit status $rc (see bench/out/logs/$key.log)"
      return 0
    fi
    read -r u s m < <(tail -n1 "$tmp/time")
    walls+=("$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.4f", (b - a) / 1e9}')")
    cpus+=("$(awk -v u="$u" -v s="$s" 'BEGIN {print u + s}')")
    rsss+=("$m")
    # CPU time the rest of the machine used meanwhile (other processes, steal), in cores
    others+=("$(awk -v b="$((b1 - b0))" -v hz="$hz" -v c="${cpus[-1]}" -v w="${walls[-1]}" \
      'BEGIN {x = (b / hz - c) / w; printf("%.2f", (x < 0 ? 0 : x))}')")
  done
  WALL[$key]=$(printf '%s\n' "${walls[@]}" | median)
  WMIN[$key]=$(printf '%s\n' "${walls[@]}" | sort -g | head -n1)
  WMAX[$key]=$(printf '%s\n' "${walls[@]}" | sort -g | tail -n1)
  CPU[$key]=$(printf '%s\n' "${cpus[@]}" | median)
  RSS[$key]=$(printf '%s\n' "${rsss[@]}" | sort -n | tail -n1)
  OTHER[$key]=$(printf '%s\n' "${others[@]}" | median | awk '{printf "%.2f", $1}')
  # /proc/stat counts in clock ticks (10 ms): meaningless for short commands
  if awk -v w="${WALL[$key]}" 'BEGIN {exit !(w < 0.5)}'; then OTHER[$key]="n/a"; fi
  STATUS[$key]=ok
}
ok() { [[ ${STATUS[$1]:-} == ok ]]; }

# Formatting: seconds, MB/s and MB are decimal (1 MB = 10^6 bytes).
fmt_s() { awk -v x="$1" 'BEGIN {if (x == 0) printf "< 0.01 s"; else if (x < 1) printf "%.3f s", x; else if (x < 100) printf "%.2f s", x; else printf "%.0f s", x}'; }
fmt_mb() { awk -v x="$1" 'BEGIN {printf "%.2f MB", x / 1e6}'; }
fmt_rss() { awk -v x="$1" 'BEGIN {printf "%.1f MB", x * 1024 / 1e6}'; }
mbps() { awk -v b="$1" -v t="$2" 'BEGIN {printf "%.1f", b / 1e6 / t}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }
range() { echo "$(fmt_s "${WMIN[$1]}")–$(fmt_s "${WMAX[$1]}")"; }

# ---------------------------------------------------------------------------
# Trees, generated once by bench/gen_tree.py and kept in bench/out while the
# generator does not change.
gen_stamp=$(sha256sum bench/gen_tree.py | cut -c1-16)
tree_ready() {  # KIND DIR
  local kind=$1 dir=$2
  if [[ -d $dir/tree && $(cat "$dir/stamp" 2>/dev/null) == "$gen_stamp" ]]; then return 0; fi
  say "generating the $kind tree in ${dir#"$repo"/}"
  rm -rf "$dir"
  mkdir -p "$dir"
  /usr/bin/python3 bench/gen_tree.py "$kind" "$dir/tree" || die "generating the $kind tree failed"
  echo "$gen_stamp" >"$dir/stamp"
}
tree_bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s}'; }
tree_files() { find "$1" -type f | wc -l; }
# Reads every file once (warming the page cache) and prints a fingerprint of
# the tree: names, sizes, modes and contents, not mtimes.
fingerprint() {
  (cd "$1" && { find . -printf '%p %y %s %m\n' | LC_ALL=C sort; find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum; } | sha256sum | cut -c1-16)
}
write_recipe() {  # CONTEXT
  printf '%s\n' '-- generated by bench/run.sh' 'image("bench", scratch:copy("tree", "/"))' >"$1/recipe.lua"
}
oci_layer_size() {  # LAYOUT NAME -> compressed size of the image's last layer
  local m
  m=$(jq -r --arg n "$2" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $n) | .digest' "$1/index.json")
  jq -r '.layers[-1].size' "$1/blobs/sha256/${m#sha256:}"
}

# umoci: an empty image unpacked into a bundle, the tree copied into its rootfs;
# only `umoci repack` is timed. Repacking the same bundle again diffs against the
# same unpacked state, so every run writes the same layer.
umoci_flags=""
[[ $(id -u) -eq 0 ]] || umoci_flags="--rootless"
umoci_prepare() {  # TREE DIR
  local tree=$1 dir=$2
  rm -rf "$dir"
  mkdir -p "$dir"
  umoci init --layout "$dir/img" &&
    umoci new --image "$dir/img:bench" &&
    umoci unpack $umoci_flags --image "$dir/img:bench" "$dir/bundle" &&
    cp -a "$tree/." "$dir/bundle/rootfs/"
}

# ===========================================================================
say "imgbuild: $bin (${btype:-unknown build type}); $runs run(s) per measurement"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
awk -v l="${load_start%% *}" 'BEGIN {exit !(l > 0.5)}' &&
  say "warning: the load average is $load_start: other processes will slow the measurements down (see the 'other load' columns)"

# --- 1. Layer assembly -------------------------------------------------------
export LCTX=$out/layer
tree_ready layer "$LCTX"
write_recipe "$LCTX"
layer_bytes=$(tree_bytes "$LCTX/tree")
layer_files=$(tree_files "$LCTX/tree")
say "warming the page cache: reading the whole layer tree once"
layer_fp=$(fingerprint "$LCTX/tree")
export T=$tmp
tar -C "$LCTX" -cf "$tmp/tree.tar" tree
tar_bytes=$(stat -c %s "$tmp/tree.tar")

measure tar-read "" 'tar -C "$LCTX" -cf - tree | cat >/dev/null'
measure sha-openssl "" 'openssl dgst -sha256 "$T/tree.tar"'
measure sha-coreutils "" 'sha256sum "$T/tree.tar"'
rm -f "$tmp/tree.tar"

measure imgbuild 'rm -rf "$T/data" "$T/cache"' \
  'XDG_DATA_HOME=$T/data XDG_CACHE_HOME=$T/cache "$BIN" build "$LCTX/recipe.lua"'
if ok imgbuild; then
  SIZE[imgbuild]=$(XDG_DATA_HOME=$tmp/data "$bin" inspect bench | jq -r '.manifest.layers[0].size')
  img_digests=$(grep -o '^bench  sha256:[0-9a-f]\{64\}' "$logs/imgbuild.log" | sort -u | wc -l)
fi
measure imgbuild-zstd 'rm -rf "$T/data" "$T/cache"' \
  'XDG_DATA_HOME=$T/data XDG_CACHE_HOME=$T/cache "$BIN" build "$LCTX/recipe.lua" --compression zstd'
ok imgbuild-zstd && SIZE[imgbuild-zstd]=$(XDG_DATA_HOME=$tmp/data "$bin" inspect bench | jq -r '.manifest.layers[0].size')
# the fixed cost of a build: the same recipe over a one-file tree
mkdir -p "$tmp/tiny/tree"
echo hello >"$tmp/tiny/tree/hello.txt"
write_recipe "$tmp/tiny"
measure imgbuild-tiny 'rm -rf "$T/data" "$T/cache"' \
  'XDG_DATA_HOME=$T/data XDG_CACHE_HOME=$T/cache "$BIN" build "$T/tiny/recipe.lua"'

measure tar-gzip "" 'tar -C "$LCTX" -cf - tree | gzip -6 | sha256sum'
ok tar-gzip && SIZE[tar-gzip]=$(tar -C "$LCTX" -cf - tree | gzip -6 | wc -c)

if [[ -n $pigz_ok ]]; then STATUS[tar-pigz]="unavailable: $pigz_ok"; else
  measure tar-pigz "" 'tar -C "$LCTX" -cf - tree | pigz -6 -p2 | sha256sum'
  ok tar-pigz && SIZE[tar-pigz]=$(tar -C "$LCTX" -cf - tree | pigz -6 -p2 | wc -c)
fi

if [[ -n $umoci_ok ]]; then STATUS[umoci]="unavailable: $umoci_ok"; else
  say "preparing the umoci bundle (init, new, unpack, copy the tree into rootfs)"
  if umoci_prepare "$LCTX/tree" "$tmp/umoci" >>"$logs/umoci.log" 2>&1; then
    measure umoci "" 'umoci repack --image "$T/umoci/img:bench" "$T/umoci/bundle"'
    ok umoci && SIZE[umoci]=$(oci_layer_size "$tmp/umoci/img" bench)
  else
    STATUS[umoci]="failed: preparing the bundle failed (see bench/out/logs/umoci.log)"
  fi
  rm -rf "$tmp/umoci"
fi
rm -rf "$tmp/data" "$tmp/cache"

# Small files: the Go toolchain's own source tree (the /usr/share tree its
# GOROOT/src points to: about 12 000 files, most under 4 KiB), where per-file
# costs (stat, open, the step key's per-file hash, the read-ahead) bound the
# layer, not compression. --no-cache: the copy is made every run.
if [[ -z $go_ok ]]; then
  GOSRC=$(dirname "$(readlink -f "$(go env GOROOT)/src")")
  export GOSRC GCTX=$tmp/gosrc
  mkdir -p "$GCTX"
  printf '%s\n' '-- generated by bench/run.sh' "image(\"bench\", scratch:copy(\"${GOSRC##*/}\", \"/\"))" >"$GCTX/recipe.lua"
  gosrc_bytes=$(tree_bytes "$GOSRC") gosrc_files=$(tree_files "$GOSRC")
  gosrc_small=$(find "$GOSRC" -type f -size -4k | wc -l)
  fingerprint "$GOSRC" >/dev/null
  measure gosrc-imgbuild 'rm -rf "$T/data" "$T/cache"' \
    'XDG_DATA_HOME=$T/data XDG_CACHE_HOME=$T/cache "$BIN" build "$GCTX/recipe.lua" --context "${GOSRC%/*}" --no-cache'
  ok gosrc-imgbuild && SIZE[gosrc-imgbuild]=$(XDG_DATA_HOME=$tmp/data "$bin" inspect bench | jq -r '.manifest.layers[0].size')
  measure gosrc-tar-gzip "" 'tar -C "${GOSRC%/*}" -cf - "${GOSRC##*/}" | gzip -6 | sha256sum'
  ok gosrc-tar-gzip && SIZE[gosrc-tar-gzip]=$(tar -C "${GOSRC%/*}" -cf - "${GOSRC##*/}" | gzip -6 | wc -c)
  rm -rf "$tmp/data" "$tmp/cache"
else
  STATUS[gosrc-imgbuild]="unavailable: $go_ok" STATUS[gosrc-tar-gzip]="unavailable: $go_ok"
fi

# --- 3. Peak memory on a 1 GB layer (before the builds: the tree is the biggest
# thing in the page cache) ------------------------------------------------------
export BCTX=$out/big
tree_ready big "$BCTX"
write_recipe "$BCTX"
big_bytes=$(tree_bytes "$BCTX/tree")
say "warming the page cache: reading the whole 1 GB tree once"
big_fp=$(fingerprint "$BCTX/tree")
measure big-imgbuild 'rm -rf "$T/data" "$T/cache"' \
  'XDG_DATA_HOME=$T/data XDG_CACHE_HOME=$T/cache "$BIN" build "$BCTX/recipe.lua"'
ok big-imgbuild && SIZE[big-imgbuild]=$(XDG_DATA_HOME=$tmp/data "$bin" inspect bench | jq -r '.manifest.layers[0].size')
rm -rf "$tmp/data" "$tmp/cache"
measure big-tar-gzip "" 'tar -C "$BCTX" -cf - tree | gzip -6 | sha256sum'
if [[ -n $umoci_ok ]]; then STATUS[big-umoci]="unavailable: $umoci_ok"; else
  if umoci_prepare "$BCTX/tree" "$tmp/umoci" >>"$logs/big-umoci.log" 2>&1; then
    measure big-umoci "" 'umoci repack --image "$T/umoci/img:bench" "$T/umoci/bundle"'
    ok big-umoci && SIZE[big-umoci]=$(oci_layer_size "$tmp/umoci/img" bench)
  else
    STATUS[big-umoci]="failed: preparing the bundle failed (see bench/out/logs/big-umoci.log)"
  fi
  rm -rf "$tmp/umoci"
fi

# Per-entry memory: the same recipe over trees of many small files.
declare -A FILES=()
entries_measure() {  # KIND: measures KIND-imgbuild over the KIND tree, counts its files in FILES[KIND]
  export ECTX=$out/$1
  tree_ready "$1" "$ECTX"
  write_recipe "$ECTX"
  FILES[$1]=$(tree_files "$ECTX/tree")
  fingerprint "$ECTX/tree" >/dev/null
  measure "$1-imgbuild" 'rm -rf "$T/data" "$T/cache"' \
    'XDG_DATA_HOME=$T/data XDG_CACHE_HOME=$T/cache "$BIN" build "$ECTX/recipe.lua"'
  rm -rf "$tmp/data" "$tmp/cache"
}
entries_measure many  # 60 000 empty files
entries_measure tiny  # a million files of 0-100 bytes: the scale issue 9 asks for

# The registry on 127.0.0.1 serves section 2 (multistage's Go builder image,
# under the name docker.io's mirror would give it) and section 4.
registry_up=""
if [[ -z $registry_ok ]]; then
  REG_WORK=$tmp/registry
  source tests/registry/lib.sh
  if registry_start open >>"$logs/registry.log" 2>&1; then
    registry_up=1
    export REG=$REGISTRY STORAGE=$REG_WORK/open/storage
  fi
fi

# --- 2. Builds of the examples --------------------------------------------------
# cold: empty store, empty imgbuild cache and empty Go build cache (GOCACHE), so
# the Go compile of the program and of the standard library is included; for
# multistage, the builder image is pulled and the steps run in it.
# rebuild: the same command again, nothing changed.
# go build: what imgbuild's go.build (multistage: its RUN step) runs, alone, cold then warm.
examples=(hello static-site multistage)
if [[ -n $registry_up ]] && ! seed_golang "$REG" library/golang:1.22-alpine >>"$logs/registry.log" 2>&1; then
  registry_up=""
  STATUS[multistage-cold]="failed: seeding the Go builder image failed (see bench/out/logs/registry.log)"
fi
if [[ -z $go_ok ]]; then
  for ex in "${examples[@]}"; do
    if [[ $ex == multistage && -z $registry_up ]]; then
      for k in cold rebuild go-cold go-warm; do STATUS[$ex-$k]=${STATUS[multistage-cold]:-"unavailable: ${registry_ok:-the registry did not start}"}; done
      continue
    fi
    export EX=$repo/examples/$ex EXT=$tmp/ex-$ex
    mkdir -p "$EXT"
    build='XDG_DATA_HOME=$EXT/data XDG_CACHE_HOME=$EXT/cache GOCACHE=$EXT/gocache "$BIN" build "$EX/recipe.lua"'
    [[ $ex == multistage ]] && build+=' --registry-mirror "docker.io=$REG" --no-push'
    measure "$ex-cold" 'rm -rf "$EXT/data" "$EXT/cache" "$EXT/gocache"' "$build"
    measure "$ex-rebuild" "" "$build"
    gobuild='cd "$EX" && CGO_ENABLED=0 GOCACHE=$EXT/gocache go build -buildvcs=false -ldflags="-s -w" -trimpath -o "$EXT/app" .'
    # The recipe's own RUN step: no flags.
    [[ $ex == multistage ]] && gobuild='cd "$EX" && CGO_ENABLED=0 GOCACHE=$EXT/gocache go build -o "$EXT/app" .'
    measure "$ex-go-cold" 'rm -rf "$EXT/gocache" "$EXT/app"' "$gobuild"
    measure "$ex-go-warm" "" "$gobuild"
    rm -rf "$EXT"
  done
else
  for ex in "${examples[@]}"; do
    for k in cold rebuild go-cold go-warm; do STATUS[$ex-$k]="unavailable: $go_ok"; done
  done
fi

# --- 4. Push and pull against skopeo copy, through a registry on 127.0.0.1 -------
# The image: four layers of 50 MiB of incompressible bytes (about 210 MB
# compressed), built once into a store both tools read: imgbuild pushes it by
# name, skopeo copies the same blobs from the store's OCI layout. Before each
# fresh push the registry's storage is emptied; a re-push finds every blob.
# Pulls start from an empty store / an empty destination layout.
# Build + push: the same image built from its files and pushed by one
# `imgbuild build` whose recipe pushes it (each layer goes up while the next is
# compressed), against `imgbuild build --no-push` then `imgbuild push`; empty
# store, cache and registry before each run.
push_keys=(push-imgbuild push-skopeo repush-imgbuild repush-skopeo pull-imgbuild pull-skopeo bp-overlap bp-then)
if [[ -n $registry_ok ]]; then
  for k in "${push_keys[@]}"; do STATUS[$k]="unavailable: $registry_ok"; done
else
  if [[ -n $registry_up ]]; then
    export PCTX=$tmp/push-image
    mkdir -p "$PCTX"
    for f in a b c d; do
      # AES-CTR of zeros: incompressible and the same every run; openssl dies
      # of SIGPIPE when head has enough, which is not a failure.
      { openssl enc -aes-128-ctr -nosalt -K "$(printf %032d 0)" -iv "$(printf %032d 0)" </dev/zero 2>/dev/null || true; } |
        head -c $((50 << 20)) >"$PCTX/$f.bin"
    done
    printf '%s\n' '-- generated by bench/run.sh' \
      'image("pushbench", scratch:copy("a.bin", "/a"):copy("b.bin", "/b"):copy("c.bin", "/c"):copy("d.bin", "/d"))' \
      >"$PCTX/recipe.lua"
    printf '%s\n' '-- generated by bench/run.sh' "image(\"pulled\", from(\"$REG/bench/push:1\"))" >"$PCTX/pull.lua"
    printf '%s\n' '-- generated by bench/run.sh' \
      'local img = scratch:copy("a.bin", "/a"):copy("b.bin", "/b"):copy("c.bin", "/c"):copy("d.bin", "/d")' \
      'image("pushbench", img)' "push(img, \"$REG/bench/bp:1\")" >"$PCTX/build-push.lua"
    if XDG_DATA_HOME=$tmp/push-store XDG_CACHE_HOME=$tmp/push-cache "$bin" build "$PCTX/recipe.lua" >>"$logs/push-image.log" 2>&1; then
      push_bytes=$(XDG_DATA_HOME=$tmp/push-store "$bin" inspect pushbench | jq '.size')
      export PSTORE=$tmp/push-store
      empty='rm -rf "$STORAGE/docker"'
      measure push-imgbuild "$empty" 'XDG_DATA_HOME=$PSTORE "$BIN" push pushbench "$REG/bench/push:1"'
      measure push-skopeo "$empty" 'skopeo copy -q --dest-tls-verify=false "oci:$PSTORE/imgbuild:pushbench" "docker://$REG/bench/push:1"'
      measure repush-imgbuild "" 'XDG_DATA_HOME=$PSTORE "$BIN" push pushbench "$REG/bench/push:1"'
      measure repush-skopeo "" 'skopeo copy -q --dest-tls-verify=false "oci:$PSTORE/imgbuild:pushbench" "docker://$REG/bench/push:1"'
      measure pull-imgbuild 'rm -rf "$T/pull-store"' 'XDG_DATA_HOME=$T/pull-store "$BIN" build "$PCTX/pull.lua" --ignore entrypoint'
      measure pull-skopeo 'rm -rf "$T/pull-oci"' 'skopeo copy -q --src-tls-verify=false "docker://$REG/bench/push:1" "oci:$T/pull-oci:pulled"'
      # Last: each run empties the registry the pulls above read from.
      fresh='rm -rf "$T/bp-store" "$T/bp-cache" "$STORAGE/docker"'
      bp='XDG_DATA_HOME=$T/bp-store XDG_CACHE_HOME=$T/bp-cache "$BIN"'
      measure bp-overlap "$fresh" "$bp build \"\$PCTX/build-push.lua\""
      measure bp-then "$fresh" "$bp build \"\$PCTX/build-push.lua\" --no-push && $bp push pushbench \"\$REG/bench/bp:1\""
    else
      for k in "${push_keys[@]}"; do STATUS[$k]="failed: building the image failed (see bench/out/logs/push-image.log)"; done
    fi
    rm -rf "$PCTX" "$tmp/push-store" "$tmp/push-cache" "$tmp/pull-store" "$tmp/pull-oci" "$tmp/bp-store" "$tmp/bp-cache"
  else
    for k in "${push_keys[@]}"; do STATUS[$k]="failed: the registry did not start (see bench/out/logs/registry.log)"; done
  fi
fi

# --- 5. The seed's job next to docker build (BuildKit) and buildah bud ------------
# bench/peers.sh, at least 3 alternating runs: it starts its own dockerd,
# registry and module proxy, and needs root.
peer_runs=$((runs < 3 ? 3 : runs))
peers_status=""
if [[ $(id -u) -ne 0 ]]; then
  peers_status="not measured: bench/peers.sh needs root (dockerd, buildah's storage)"
else
  if [[ -n $peers_from ]]; then
    say "section 5: the peer table of $peers_from (bench/peers.sh --output)"
    cp "$peers_from" "$tmp/peers.md"
  else
    say "section 5: bench/peers.sh --runs $peer_runs (log: bench/out/logs/peers.log)"
    IMGBUILD=$bin bench/peers.sh --runs "$peer_runs" --output "$tmp/peers.md" >"$logs/peers.log" 2>&1 ||
      peers_status="bench/peers.sh failed: see bench/out/logs/peers.log and bench/out/logs/peers/"
  fi
  say "section 5: where an edit rebuild's written bytes go (bench/peers.sh --trace-writes)"
  IMGBUILD=$bin bench/peers.sh --trace-writes "$tmp/trace" >"$logs/trace-writes.log" 2>&1 ||
    peers_status+="${peers_status:+; }bench/peers.sh --trace-writes failed: see bench/out/logs/trace-writes.log"
fi

# ===========================================================================
# Report.
commit=$(git log -1 --format='%h (%s, %cs)' 2>/dev/null || echo unknown)
dirty=$(git status --porcelain -- src lua stdlib cmake CMakeLists.txt 2>/dev/null | wc -l)
((dirty == 0)) || commit+=", plus uncommitted changes in $dirty file(s) under src/ lua/ stdlib/ cmake/"
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1)
[[ -n $cpu ]] || cpu=$(sed -n 's/^model name\t*: //p' /proc/cpuinfo | head -n1)
mem=$(awk '/MemTotal/ {printf "%.1f GB", $2 * 1024 / 1e9}' /proc/meminfo)
os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")
fstype=$(df -T "$out" | awk 'NR == 2 {print $2}')
ver() { "$@" 2>&1 | head -n1 || true; }
versions="$(ver gzip --version | awk '{print "gzip " $NF}'), $(ver tar --version | awk '{print "GNU tar " $NF}')"
versions+=", $(ver openssl version | awk '{print "OpenSSL " $2}')"
[[ -n $pigz_ok ]] || versions+=", $(ver pigz --version)"
[[ -n $umoci_ok ]] || versions+=", $(ver umoci --version | awk '{print "umoci " $NF}')"
[[ -n $go_ok ]] || versions+=", $(ver go version | awk '{print $3}')"
versions+=", zlib $(dpkg-query -W -f='${Version}' zlib1g 2>/dev/null || echo '?')"
[[ -n $registry_ok ]] || versions+=", $(ver skopeo --version), docker-registry $(dpkg-query -W -f='${Version}' docker-registry)"
elapsed=$(($(date +%s) - started))

# one row of the layer table: KEY LABEL INPUT_BYTES REFERENCE
layer_row() {  # KEY LABEL INPUT_BYTES|- REFERENCE [noratio]
  local key=$1 label=$2 bytes=$3 ref=$4 noratio=${5:-}
  if ! ok "$key"; then
    echo "| $label | ${STATUS[$key]:-not measured} | | | | | | | | $ref |"
    return
  fi
  local speed="" size="" vs="" vsz=""
  [[ $bytes == - ]] || speed="$(mbps "$bytes" "${WALL[$key]}") MB/s"
  [[ -z ${SIZE[$key]:-} ]] || size=$(fmt_mb "${SIZE[$key]}")
  if [[ $key != imgbuild* && -z $noratio ]] && ok imgbuild; then
    vs="imgbuild / $label = $(ratio "${WALL[$key]}" "${WALL[imgbuild]}") (throughput)"
    [[ -z ${SIZE[$key]:-} || -z ${SIZE[imgbuild]:-} ]] ||
      vsz="imgbuild / $label = $(ratio "${SIZE[imgbuild]}" "${SIZE[$key]}") (size)"
  fi
  echo "| $label | $(fmt_s "${WALL[$key]}") | $(range "$key") | $speed | $(fmt_s "${CPU[$key]}") | $(fmt_rss "${RSS[$key]}") | ${OTHER[$key]} | $size | $vs${vsz:+<br>$vsz} | $ref |"
}
met() {  # AWK_CONDITION -> **met** or **not met**
  if awk "BEGIN {exit !($1)}"; then echo "**met**"; else echo "**not met**"; fi
}

{
  echo "# Benchmarks"
  echo
  echo "Written by \`bench/run.sh$mode\` on $(date -u '+%Y-%m-%d %H:%M UTC'); the run took $((elapsed / 60)) min $((elapsed % 60)) s."
  echo "Do not edit by hand: run the script again (see \`bench/README.md\` for what is measured and how to read it)."
  echo
  echo "| | |"
  echo "|---|---|"
  echo "| imgbuild commit | $commit |"
  echo "| imgbuild binary | \`${bin#"$repo"/}\` (${btype:-unknown build type}), built $(date -u -r "$bin" '+%Y-%m-%d %H:%M UTC')$( ((stale == 0)) || echo "; **older than $stale source file(s)**: it may not match the commit above") |"
  echo "| machine | $cpu, \`nproc\` = $(nproc), $mem RAM, $os, Linux $(uname -r) |"
  echo "| file system | the trees: $fstype (\`bench/out\`); what the commands write (stores, layouts, bundles): $WORKFS |"
  echo "| tools | $versions |"
  echo "| load average | $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end |"
  echo "| method | $runs run$( ((runs == 1)) || echo s) per measurement; the **median** wall time, the range (min–max), the median CPU time (user + system, all processes) and the largest maximum RSS of one process over the runs; *other load*: the median number of cores that everything else on the machine (other processes, hypervisor steal) kept busy during the runs, from /proc/stat; \`sync\` before every run; MB = 10^6 bytes |"
  busy=$(for k in "${!OTHER[@]}"; do echo "${OTHER[$k]} $k"; done | awk '$1 != "n/a" && $1 > 0.2' | sort -gr | awk '{printf("%s%s (%s)", (NR > 1 ? ", " : ""), $2, $1)}')
  if [[ -n $busy ]]; then
    echo
    echo "**Warning: the machine was not idle.** Other processes kept more than 0.2 of a core busy during: $busy. On a $(nproc)-core machine this slows those measurements down, parallel ones (pigz, umoci, go build) most."
  fi
  echo
  echo "## 1. Layer assembly: a $(fmt_mb "$layer_bytes") tree into a gzip (or zstd) layer"
  echo
  echo "The tree (\`bench/gen_tree.py layer\`, deterministic): $layer_files files, $layer_bytes bytes: 20 000 text-like files of 1–16 KiB (log-uniform sizes) and 3 large files (40 MiB incompressible, 30 MiB alternating incompressible/text, 20 MiB text). Fingerprint \`$layer_fp\`."
  echo "**The page cache was warm**: every file was read once just before measuring. MB/s is the tree's file bytes divided by the wall time."
  echo "imgbuild's wall time is the whole \`imgbuild build\` command: evaluating the recipe, walking the context, the tar + gzip + both sha256, **fsync** of the blob, the config, manifest and index.json. The peers write nothing to disk (\`| sha256sum\`), except umoci, which writes its blobs without fsync."
  echo
  echo "| command | wall (median) | range | throughput | CPU | max RSS | other load | compressed layer | ratio | issue's reference |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  layer_row imgbuild "imgbuild build (copy tree /)" "$layer_bytes" "target ≥ 150 MB/s"
  layer_row imgbuild-zstd "imgbuild build --compression zstd" "$layer_bytes" "target ≥ 400 MB/s"
  layer_row tar-gzip "tar \| gzip -6" "$layer_bytes" "gzip -6: 34 MB/s"
  layer_row tar-pigz "tar \| pigz -6 -p2" "$layer_bytes" "pigz -6 -p2: 77 MB/s"
  layer_row umoci "umoci repack" "$layer_bytes" "101 MB/s"
  echo
  echo "Small files: the Go toolchain's source tree, \`${GOSRC:-the Go source tree}\` (${gosrc_files:-?} files, ${gosrc_bytes:-?} bytes, ${gosrc_small:-?} of them under 4 KiB), one \`copy\` of it built with \`--no-cache\`, page cache warm. Per-file costs (stat, open, the step key's per-file hash, the read-ahead) weigh more here than on the tree above. The issue's target: imgbuild at least 4x \`tar | gzip -6 | sha256sum\`."
  echo
  echo "| command | wall (median) | range | throughput | CPU | max RSS | other load | compressed layer | ratio | issue's reference |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  layer_row gosrc-imgbuild "imgbuild build --no-cache (copy Go's source tree /)" "${gosrc_bytes:--}" "target ≥ 4x tar \| gzip -6" noratio
  layer_row gosrc-tar-gzip "tar \| gzip -6 \| sha256sum (Go's source tree)" "${gosrc_bytes:--}" "issue: 3.34 s vs imgbuild 1.02 s (3.3x)" noratio
  if ok gosrc-tar-gzip && ok gosrc-imgbuild; then
    echo
    echo "imgbuild / tar | gzip -6 = $(ratio "${WALL[gosrc-tar-gzip]}" "${WALL[gosrc-imgbuild]}") (throughput), $(ratio "${CPU[gosrc-imgbuild]}" "${CPU[gosrc-tar-gzip]}") (CPU)$([[ -z ${SIZE[gosrc-imgbuild]:-} || -z ${SIZE[gosrc-tar-gzip]:-} ]] || echo ", $(ratio "${SIZE[gosrc-imgbuild]}" "${SIZE[gosrc-tar-gzip]}") (size: libdeflate level 5 makes layers as small as gzip -6)") on Go's source tree."
  fi
  echo
  echo "Building blocks, same tree (the tar stream is $tar_bytes bytes; the sha256 rows hash it from a file in the page cache):"
  echo
  echo "| command | wall (median) | range | throughput | CPU | max RSS | other load | | | issue's reference |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  layer_row imgbuild-tiny "imgbuild build, 1-file tree (fixed cost)" - ""
  layer_row tar-read "tar -c \| cat >/dev/null" "$layer_bytes" "tar read: 1200 MB/s" noratio
  layer_row sha-openssl "openssl dgst -sha256 (imgbuild's sha256)" "$tar_bytes" "sha256: ~2000 MB/s" noratio
  layer_row sha-coreutils "sha256sum (coreutils)" "$tar_bytes" "sha256: ~2000 MB/s" noratio
  if ok imgbuild; then
    if ((img_digests == 1)); then
      echo
      echo "imgbuild wrote the same manifest digest in every run (deterministic layers)."
    else
      echo
      echo "**imgbuild wrote $img_digests different manifest digests over $runs runs of the same tree** (see bench/out/logs/imgbuild.log)."
    fi
  fi
  echo
  echo "## 2. Builds of the examples"
  echo
  echo "*cold*: empty store, empty imgbuild cache and empty Go build cache (\`GOCACHE\`): includes compiling the program and the parts of Go's standard library it uses (\`-trimpath\` cannot reuse the prebuilt ones). *rebuild*: the same command again with nothing changed. The reference is what \`go.build\` runs, alone: \`CGO_ENABLED=0 go build -buildvcs=false -ldflags='-s -w' -trimpath\`, with an empty and with a warm Go build cache. examples/multistage pulls its Go builder image from the registry on 127.0.0.1 and runs its steps in it; its reference is the recipe's own \`CGO_ENABLED=0 go build\` on the host."
  echo
  echo "| example | imgbuild cold | range | go build, empty GOCACHE | imgbuild / go build | imgbuild rebuild | range | go build, warm GOCACHE | imgbuild / go build | other load (max) |"
  echo "|---|---|---|---|---|---|---|---|---|---|"
  for ex in "${examples[@]}"; do
    if [[ ${STATUS[$ex-cold]:-} == unavailable* ]]; then
      echo "| examples/$ex | ${STATUS[$ex-cold]} | | | | | | | | |"
      continue
    fi
    cells=()
    for pair in "cold go-cold" "rebuild go-warm"; do
      set -- $pair
      if ok "$ex-$1"; then cells+=("$(fmt_s "${WALL[$ex-$1]}")" "$(range "$ex-$1")"); else cells+=("${STATUS[$ex-$1]}" ""); fi
      if ok "$ex-$2"; then cells+=("$(fmt_s "${WALL[$ex-$2]}")"); else cells+=("${STATUS[$ex-$2]}"); fi
      if ok "$ex-$1" && ok "$ex-$2"; then cells+=("$(ratio "${WALL[$ex-$1]}" "${WALL[$ex-$2]}") (time)"); else cells+=(""); fi
    done
    load=$(for k in cold rebuild go-cold go-warm; do echo "${OTHER[$ex-$k]:-}"; done | grep -v n/a | sort -g | tail -n1)
    echo "| examples/$ex | ${cells[0]} | ${cells[1]} | ${cells[2]} | ${cells[3]} | ${cells[4]} | ${cells[5]} | ${cells[6]} | ${cells[7]} | $load |"
  done
  echo
  echo "## 3. Peak memory: a 1 GB layer"
  echo
  echo "The tree (\`bench/gen_tree.py big\`): $big_bytes bytes in 2 files, 512 MiB incompressible and 512 MiB text. Fingerprint \`$big_fp\`. Page cache warm. Max RSS is GNU time's \"Maximum resident set size\" (\`/usr/bin/time\`), the largest over the runs."
  echo
  echo "| command | max RSS | wall (median) | range | throughput | CPU | other load | compressed layer | ratio |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for key in big-imgbuild big-tar-gzip big-umoci many-imgbuild tiny-imgbuild; do
    bytes=$big_bytes
    case $key in
      big-imgbuild) label="imgbuild build" ;;
      big-tar-gzip) label="tar \| gzip -6 \| sha256sum" ;;
      big-umoci) label="umoci repack" ;;
      many-imgbuild) label="imgbuild build, ${FILES[many]} empty files (not 1 GB: per-entry memory)" bytes=- ;;
      tiny-imgbuild) label="imgbuild build, ${FILES[tiny]} files of 0-100 bytes (per-entry memory)" bytes=- ;;
    esac
    if ! ok $key; then echo "| $label | ${STATUS[$key]:-not measured} | | | | | | | |"; continue; fi
    vs="" sz="" speed=""
    [[ $key == *imgbuild ]] || ! ok big-imgbuild || vs="imgbuild / $label = $(ratio "${WALL[$key]}" "${WALL[big-imgbuild]}") (throughput)"
    [[ -z ${SIZE[$key]:-} ]] || sz=$(fmt_mb "${SIZE[$key]}")
    [[ $bytes == - ]] || speed="$(mbps "$bytes" "${WALL[$key]}") MB/s"
    echo "| $label | $(fmt_rss "${RSS[$key]}") | $(fmt_s "${WALL[$key]}") | $(range $key) | $speed | $(fmt_s "${CPU[$key]}") | ${OTHER[$key]} | $sz | $vs |"
  done
  echo
  echo "## 4. Push and pull: a ${push_bytes:-?}-byte image and Debian's docker-registry on 127.0.0.1"
  echo
  echo "The image: 4 layers of 50 MiB of incompressible bytes, built once into an imgbuild store. *push*: into an empty registry (its storage removed before each run); imgbuild pushes the stored image by name, skopeo copies the same blobs from the store's OCI layout (no recompression). *re-push*: the same again, every blob already there. *pull*: from an empty store; imgbuild's is a whole \`imgbuild build\` of \`image(\"pulled\", from(...))\` (recipe, pull, doctor, store with fsync), skopeo's a \`skopeo copy\` into an empty OCI layout."
  echo
  echo "| measurement | imgbuild | range | skopeo copy | range | imgbuild / skopeo | imgbuild CPU | skopeo CPU | issue's reference |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for pair in "push push 255 MB/s (skopeo), no slower than skopeo" "repush re-push 20 ms (skopeo), < 50 ms" "pull pull -"; do
    set -- $pair
    kind=$1 label=$2
    shift 2
    ref=$*
    [[ $ref == - ]] && ref=""
    a=$kind-imgbuild b=$kind-skopeo
    if ! ok $a || ! ok $b; then
      echo "| $label | ${STATUS[$a]:-not measured} | | ${STATUS[$b]:-not measured} | | | | | $ref |"
      continue
    fi
    speed=""
    [[ $kind == repush ]] || speed=" ($(mbps "$push_bytes" "${WALL[$a]}") MB/s vs $(mbps "$push_bytes" "${WALL[$b]}") MB/s)"
    echo "| $label | $(fmt_s "${WALL[$a]}") | $(range $a) | $(fmt_s "${WALL[$b]}") | $(range $b) | $(ratio "${WALL[$b]}" "${WALL[$a]}") faster$speed | $(fmt_s "${CPU[$a]}") | $(fmt_s "${CPU[$b]}") | $ref |"
  done
  echo
  echo "Build + push of the same image from its four 50 MiB files (empty store, cache and registry before each run): one \`imgbuild build\` whose recipe pushes the image, each layer uploaded while the next one is compressed, against \`imgbuild build --no-push\` then \`imgbuild push\`. On 2 cores and loopback the gain is bounded by CPU: compression keeps one core busy per layer, and the upload and the registry need the other."
  echo
  echo "| measurement | overlapped | range | build, then push | range | gain | overlapped CPU | build, then push CPU |"
  echo "|---|---|---|---|---|---|---|---|"
  if ok bp-overlap && ok bp-then; then
    echo "| build + push | $(fmt_s "${WALL[bp-overlap]}") | $(range bp-overlap) | $(fmt_s "${WALL[bp-then]}") | $(range bp-then) | $(ratio "${WALL[bp-then]}" "${WALL[bp-overlap]}") faster | $(fmt_s "${CPU[bp-overlap]}") | $(fmt_s "${CPU[bp-then]}") |"
  else
    echo "| build + push | ${STATUS[bp-overlap]:-not measured} | | ${STATUS[bp-then]:-not measured} | | | | |"
  fi
  echo
  if [[ -s $tmp/peers.md ]]; then cat "$tmp/peers.md"; else echo "## 5. The seed's job next to docker build (BuildKit) and buildah bud"; fi
  [[ -z $peers_status ]] || { echo; echo "**$peers_status**"; }
  if [[ -s $tmp/trace/attribution.md ]]; then
    echo
    echo "### Where an edit rebuild's written bytes go"
    echo
    echo "\`bench/peers.sh --trace-writes\`: bench/peers/blank.lua (no cache mounts) built cold, then rebuilt after an edit of version.go under GNU time: $(cat "$tmp/trace/time.txt"). Then edited and rebuilt again under \`strace -f -y\` of the write calls (write, pwrite64, writev, copy_file_range, sendfile, splice); \`bench/write_attribution.py\` sorts the bytes written to regular files by where they went. Paths inside the step are as its processes saw them (the overlay's merged view: they land in the step's upper folder). Writes the kernel makes by itself (an overlay copy-up, a hard link's none) are not calls and not counted."
    echo
    cat "$tmp/trace/attribution.md"
  fi
  echo
  echo "## Targets (from the issue)"
  echo
  echo "| target | goal | measured | status |"
  echo "|---|---|---|---|"
  if ok imgbuild; then
    s=$(mbps "$layer_bytes" "${WALL[imgbuild]}")
    echo "| gzip layer assembly throughput (section 1) | ≥ 150 MB/s | $s MB/s | $(met "$s >= 150") |"
  else
    echo "| gzip layer assembly throughput (section 1) | ≥ 150 MB/s | ${STATUS[imgbuild]:-not measured} | not measured |"
  fi
  if ok imgbuild-zstd; then
    s=$(mbps "$layer_bytes" "${WALL[imgbuild-zstd]}")
    echo "| zstd layer assembly throughput (section 1) | ≥ 400 MB/s | $s MB/s | $(met "$s >= 400") |"
  else
    echo "| zstd layer assembly throughput (section 1) | ≥ 400 MB/s | ${STATUS[imgbuild-zstd]:-not measured} | not measured |"
  fi
  if [[ -n ${SIZE[imgbuild]:-} && -n ${SIZE[tar-gzip]:-} ]]; then
    echo "| layer size vs \`gzip -6\` (section 1) | ≤ $(fmt_mb "${SIZE[tar-gzip]}") | $(fmt_mb "${SIZE[imgbuild]}") ($(ratio "${SIZE[imgbuild]}" "${SIZE[tar-gzip]}")) | $(met "${SIZE[imgbuild]} <= ${SIZE[tar-gzip]}") |"
  else
    echo "| layer size vs \`gzip -6\` (section 1) | ≤ gzip -6 | not measured | not measured |"
  fi
  if ok gosrc-imgbuild && ok gosrc-tar-gzip; then
    r=$(awk -v a="${WALL[gosrc-tar-gzip]}" -v b="${WALL[gosrc-imgbuild]}" 'BEGIN {printf "%.2f", a / b}')
    echo "| small files: Go's source tree, imgbuild / \`tar \| gzip -6\` (section 1) | ≥ 4x | ${r}x | $(met "$r >= 4") |"
  else
    echo "| small files: Go's source tree, imgbuild / \`tar \| gzip -6\` (section 1) | ≥ 4x | not measured | not measured |"
  fi
  if ok push-imgbuild && ok push-skopeo; then
    echo "| push of a fresh image (section 4) | no slower than skopeo copy | $(fmt_s "${WALL[push-imgbuild]}") vs $(fmt_s "${WALL[push-skopeo]}") | $(met "${WALL[push-imgbuild]} <= ${WALL[push-skopeo]}") |"
  else
    echo "| push of a fresh image (section 4) | no slower than skopeo copy | not measured | not measured |"
  fi
  if ok repush-imgbuild; then
    echo "| second push of the same image (section 4) | < 50 ms | $(fmt_s "${WALL[repush-imgbuild]}") | $(met "${WALL[repush-imgbuild]} < 0.05") |"
  else
    echo "| second push of the same image (section 4) | < 50 ms | not measured | not measured |"
  fi
  if ok big-imgbuild; then
    r=$(awk -v x="${RSS[big-imgbuild]}" 'BEGIN {print x * 1024 / 1e6}')
    echo "| peak RSS, 1 GB layer (section 3) | < 64 MB | $(fmt_rss "${RSS[big-imgbuild]}") | $(met "$r < 64") |"
  else
    echo "| peak RSS, 1 GB layer (section 3) | < 64 MB | ${STATUS[big-imgbuild]:-not measured} | not measured |"
  fi
  if ok multistage-rebuild; then
    echo "| unchanged rebuild of examples/multistage (section 2) | < 100 ms | $(fmt_s "${WALL[multistage-rebuild]}") | $(met "${WALL[multistage-rebuild]} < 0.1") |"
  else
    echo "| unchanged rebuild of examples/multistage (section 2) | < 100 ms | ${STATUS[multistage-rebuild]:-not measured} | not measured |"
  fi
} >"$tmp/benchmarks.md"

mkdir -p "$(dirname "$md")"
cp "$tmp/benchmarks.md" "$md.tmp" && mv "$md.tmp" "$md"
cat "$tmp/benchmarks.md"
echo
say "wrote $md in $((elapsed / 60)) min $((elapsed % 60)) s; the output of every command is in bench/out/logs/"
failed=0
for k in "${!STATUS[@]}"; do [[ ${STATUS[$k]} != failed* ]] || failed=1; done
exit $failed
