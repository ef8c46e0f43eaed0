#!/usr/bin/env bash
# bench/attest_cost.sh: what the SBOM, the provenance and the signature add to
# the hello build and push (issue 22: at most 200 ms). See bench/README.md.
#
#   bench/attest_cost.sh [RUNS]     RUNS build-and-push rounds (default 7)
#
# imgbuild has no switch that turns its attachments off (every image carries
# them, PRODUCT.md), so the comparison is within each push: the attaching
# phase (SBOM, provenance, signature, their uploads and the referrers index)
# starts when the push prints "pushed REF@DIGEST" and ends when it prints
# "attached ...". Each round builds examples/hello into a fresh store (the
# provenance is written then; its Go build is cached after the first round,
# as a developer's would be) and pushes it, with --sign-key, to a repository
# of its own on a registry on 127.0.0.1 (Debian's docker-registry: the
# referrers tag schema, the slower of the two ways), so every blob and
# referrer is uploaded anew. Prints the median of the rounds: build, push,
# the attaching phase, and its share; and the load average before and after.
#
# IMGBUILD=path/to/imgbuild picks the binary; default build/imgbuild.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
runs=${1:-7}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/attest_cost.sh [RUNS]" >&2; exit 2; }
IMGBUILD=$(realpath -e "${IMGBUILD:-build/imgbuild}") || { echo "bench: no imgbuild binary (build it, or set IMGBUILD)" >&2; exit 1; }
for tool in docker-registry openssl python3; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (apt-get install ${tool/python3/python3})" >&2; exit 1; }
done

tmp=$(mktemp -d /tmp/imgbuild-attest-cost.XXXXXX)
REG_WORK=$tmp/registry
trap 'rm -rf "$tmp"' EXIT  # before registry_start, which runs it after stopping the registry
source tests/registry/lib.sh
registry_start open >"$tmp/registry.log" 2>&1 || { cat "$tmp/registry.log" >&2; exit 1; }
openssl ecparam -name prime256v1 -genkey -noout 2>/dev/null | openssl pkcs8 -topk8 -nocrypt -out "$tmp/key.pem"
export XDG_CACHE_HOME=$tmp/cache GOCACHE=$tmp/gocache

# timed OUT CMD...: runs CMD, its output merged into OUT with each line's
# arrival in ms since the start; prints the whole run's ms.
timed() {
  python3 - "$@" <<'EOF'
import subprocess, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
start = time.monotonic()
with open(out, "w") as f:
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout:
        f.write("%.1f %s" % ((time.monotonic() - start) * 1000, line))
    rc = p.wait()
total = (time.monotonic() - start) * 1000
if rc != 0:
    sys.exit("bench: %s failed (exit %d): see %s" % (" ".join(cmd), rc, out))
print("%.1f" % total)
EOF
}

# median: the median of the numbers on standard input.
median() { sort -n | awk '{ v[NR] = $1 } END { print (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) }'; }

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
: >"$tmp/build.ms" && : >"$tmp/push.ms" && : >"$tmp/attach.ms"
for i in $(seq "$runs"); do
  export XDG_DATA_HOME=$tmp/data-$i
  timed "$tmp/build-$i.log" "$IMGBUILD" "$repo/examples/hello/recipe.lua" >>"$tmp/build.ms"
  timed "$tmp/push-$i.log" "$IMGBUILD" push hello "$REGISTRY/bench/hello-$i:1" --sign-key "$tmp/key.pem" >>"$tmp/push.ms"
  awk '$2 == "pushed" { p = $1 } $2 == "imgbuild:" && $3 == "attached" { a = $1 } END {
    if (p == "" || a == "") exit 1; printf "%.1f\n", a - p }' "$tmp/push-$i.log" >>"$tmp/attach.ms" ||
    { echo "bench: round $i: no 'pushed' then 'attached' line in $tmp/push-$i.log" >&2; cat "$tmp/push-$i.log" >&2; exit 1; }
  echo "bench: round $i: build $(tail -1 "$tmp/build.ms") ms, push $(tail -1 "$tmp/push.ms") ms, attaching $(tail -1 "$tmp/attach.ms") ms" >&2
done
build=$(median <"$tmp/build.ms") push=$(median <"$tmp/push.ms") attach=$(median <"$tmp/attach.ms")
echo "hello, $runs rounds, medians: build $build ms, push $push ms (of which attaching SBOM, provenance and signature $attach ms)"
awk -v a="$attach" -v b="$build" -v p="$push" 'BEGIN { printf "attachments add %.0f ms to the build and push (%.0f%% of %.0f ms); the issue allows 200 ms\n", a, 100 * a / (b + p), b + p }'
echo "load average: before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) cores)"
