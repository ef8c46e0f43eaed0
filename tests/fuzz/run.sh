#!/bin/sh
# Builds the libFuzzer targets with clang in build-fuzz/ and runs each one for a
# bounded time over a corpus seeded here (nothing is committed): real ELF files
# for elf, real-world strings and a dictionary for each registry parser
# (reference, www_authenticate, credentials, documents) and for .dockerignore. Exits non-zero on any finding:
# crash, sanitizer report, broken property, uncaught exception other than the
# target's documented error, leak, timeout or out of memory. The
# input that caused it is left in build-fuzz/findings/; once the bug is fixed,
# the input goes into tests/fuzz/regressions/TARGET/ (committed), which every
# run replays before it explores, so a fixed finding stays fixed.
#
#   tests/fuzz/run.sh                 20 s per target
#   FUZZ_SECONDS=600 tests/fuzz/run.sh
#   FUZZ_JOBS=4 tests/fuzz/run.sh     parallel build jobs (default 2)
#   FUZZ_PARALLEL=1 tests/fuzz/run.sh targets fuzzed at once (default: nproc)
#
# Needs clang-14 with its runtime libraries (installed from Debian when missing,
# as root), go and the project's build dependencies.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
build="$root/build-fuzz"
seconds=${FUZZ_SECONDS:-20}
targets="elf reference www_authenticate credentials documents dockerignore unpack layer_stream"

say() { printf '%s\n' "fuzz: $*" >&2; }
die() { say "$*"; exit 2; }

# -fsanitize=fuzzer links libclang_rt.fuzzer, which Debian ships in
# libclang-rt-14-dev (only recommended by clang-14); libfuzzer-14-dev holds the
# standalone libFuzzer.a, which this build does not use. Whether the toolchain
# works is tested by linking an empty target, not by asking dpkg.
toolchain_ok() {
  command -v clang++-14 >/dev/null 2>&1 || return 1
  probe=$(mktemp -d)
  printf '%s\n' '#include <cstddef>' '#include <cstdint>' \
    'extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t*, std::size_t) { return 0; }' >"$probe/p.cpp"
  ok=0
  clang++-14 -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" >/dev/null 2>&1 || ok=1
  rm -rf "$probe"
  return $ok
}

if ! toolchain_ok; then
  say "installing clang-14 and libclang-rt-14-dev"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; elif command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    die "clang-14 with libFuzzer is missing and this is not root: apt-get install clang-14 libclang-rt-14-dev"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends clang-14 libclang-rt-14-dev
  toolchain_ok || die "clang++-14 -fsanitize=fuzzer still cannot link a fuzz target"
fi
command -v go >/dev/null 2>&1 || die "go is not on PATH (apt-get install golang-go): it builds the Go seed"

# ---- build ------------------------------------------------------------------
# A build dir of its own: the whole project is configured with clang there.
# Line tables only (-g1): the same code as -g, file:line in a finding's stack
# trace, less to compile; ccache when installed, as scripts/test uses it.
mkdir -p "$build"
launcher=""
command -v ccache >/dev/null 2>&1 && launcher="-DCMAKE_CXX_COMPILER_LAUNCHER=ccache"
CC=clang-14 CXX=clang++-14 cmake -S "$root" -B "$build" -DIMGBUILD_FUZZ=ON -DBUILD_TESTING=OFF $launcher \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O2 -g1 -DNDEBUG" >"$build/configure.log" 2>&1 ||
  { cat "$build/configure.log" >&2; die "cmake configure failed"; }
if ! grep -q '^IMGBUILD_FUZZ:BOOL=ON' "$build/CMakeCache.txt" || [ ! -d "$build/tests/fuzz" ]; then
  die "the top-level CMakeLists.txt has no IMGBUILD_FUZZ option / add_subdirectory(tests/fuzz)"
fi
grep -q '^CMAKE_CXX_COMPILER:[A-Z]*=.*clang' "$build/CMakeCache.txt" ||
  die "$build was configured with another compiler: remove it and run again"
cmake --build "$build" --target fuzz_targets -j"${FUZZ_JOBS:-2}"

# ---- seed corpus ---------------------------------------------------------------
seeds="$build/seeds"
rm -rf "$seeds"
mkdir -p "$seeds/go"
cat >"$seeds/go/go.mod" <<'EOF'
module example.com/seed

go 1.19
EOF
# Small on purpose (no fmt, no net/http: 1.3 MB instead of 6.6 MB), since every
# run copies and parses the whole input; it keeps its symbol table and links
# time.LoadLocation, so those paths are in the corpus from the start.
cat >"$seeds/go/main.go" <<'EOF'
package main

import "time"

func main() {
	loc, err := time.LoadLocation("Europe/Berlin")
	println(loc.String(), err == nil)
}
EOF
(cd "$seeds/go" && env -u GOFLAGS GOENV=off GOPROXY=off GOWORK=off GO111MODULE=on CGO_ENABLED=0 \
  GOCACHE="$build/gocache" GOPATH="$build/gopath" go build -trimpath -o "$seeds/go-static" .) ||
  die "cannot build the Go seed"
printf 'int main(void) { return 0; }\n' >"$seeds/t.c"
clang-14 -o "$seeds/c-dynamic" "$seeds/t.c" || die "cannot build the C seed"

corpus="$build/corpus/elf"
mkdir -p "$corpus"
cp "$seeds/go-static" "$corpus/seed-go-static"
cp "$seeds/c-dynamic" "$corpus/seed-c-dynamic"
cp /bin/true "$corpus/seed-bin-true"
# The first half: headers intact, tables and section headers cut off.
c_size=$(wc -c <"$seeds/c-dynamic")
head -c $((c_size / 2)) "$seeds/c-dynamic" >"$corpus/seed-c-truncated"

# libFuzzer caps inputs at its -max_len (1 MiB unless the corpus says more);
# the Go seed is larger, and a cut copy would never reach the build info.
elf_max_len=0
for f in "$corpus"/*; do
  n=$(wc -c <"$f")
  [ "$n" -gt "$elf_max_len" ] && elf_max_len=$n
done

# The text targets: one seed per line, and a dictionary of the tokens their
# grammars turn on, so that a short run gets past the punctuation.
seed_lines() {
  mkdir -p "$build/corpus/$1"
  i=0
  while IFS= read -r line; do
    i=$((i + 1))
    printf '%s' "$line" >"$build/corpus/$1/seed-$i"
  done
}
write_dict() {
  mkdir -p "$build/dict"
  cat >"$build/dict/$1.dict"
}

seed_lines reference <<'EOF'
alpine
alpine:3.20
library/alpine
docker.io/library/alpine:3.20
index.docker.io/library/debian
localhost:5000/a/b:tag
127.0.0.1:5000/debian
[::1]:5000/a/b
[fc00:1:2:3:4:5:6:7]:5000/library/debian
ghcr.io/o/r@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa
busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa
Foo/bar
docker---rules/dock__er.x_y:_V1.2-rc
a:b:c
EOF
write_dict reference <<'EOF'
"/"
":"
"@"
"."
"__"
"--"
"sha256:"
"sha512:"
"docker.io/"
"index.docker.io/"
"library/"
"localhost"
":5000/"
"[::1]"
"86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
EOF

seed_lines www_authenticate <<'EOF'
Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"
Basic realm="https://123456789012.dkr.ecr.us-east-1.amazonaws.com/",service="ecr.amazonaws.com"
Bearer realm="https://harbor.example.com/service/token",service="harbor-registry",scope="repository:a/b:pull,push"
Bearer realm="https://a/token", service="reg", scope="repository:a/b:pull", error="insufficient_scope"
Negotiate, NTLM, Basic realm=x
Negotiate YIIGhgYJKoZIhvcSAQICAQBugg==, Basic realm="say \"hi\" \\ bye"
 ,, Bearer   realm = "r" ,, service= s ,  ,
EOF
write_dict www_authenticate <<'EOF'
"Bearer"
"Basic"
"realm="
"service="
"scope="
"error="
"\""
"\\"
", "
"=="
EOF

seed_lines credentials <<'EOF'
{"auths":{"https://index.docker.io/v1/":{"auth":"dXNlcjpwYXNz"},"ghcr.io":{"username":"u","password":"p"}}}
{"auths":{"http://localhost:5000/v2/":{"auth":"YTpi","identitytoken":"t"},"quay.io":{}},"credsStore":"desktop"}
{"credHelpers":{"ghcr.io":"gcloud","registry-1.docker.io":"pass"},"auths":null}
{"auths":{"docker.io":{"auth":"YT\npi"},"index.docker.io":{"auth":"Yzpk"}}}
EOF
write_dict credentials <<'EOF'
"auths"
"auth"
"username"
"password"
"identitytoken"
"credHelpers"
"credsStore"
"https://index.docker.io/v1/"
"ghcr.io"
"localhost:5000"
"=="
EOF

# Registry documents as the pull reads them: a Docker manifest and config, an
# OCI one with a zstd layer and carried-over config fields, an index.
seed_lines documents <<'EOF'
{"manifest":{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":10},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":100}]},"config":{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"],"WorkingDir":"","OnBuild":null},"rootfs":{"type":"layers","diff_ids":["sha256:3333333333333333333333333333333333333333333333333333333333333333"]},"history":[{"created":"2024-01-01T00:00:00Z","created_by":"ADD x /"}]}}
{"manifest":{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":10},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+zstd","digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222","size":7,"annotations":{"a":"b"}}]},"config":{"architecture":"arm64","variant":"v8","os":"linux","config":{"Entrypoint":["/app"],"ExposedPorts":{"80/tcp":{}},"Labels":{"l":"v"},"Healthcheck":{"Test":["CMD","true"]},"Shell":["/bin/sh","-c"]},"rootfs":{"type":"layers","diff_ids":["sha256:3333333333333333333333333333333333333333333333333333333333333333"]},"history":[{"empty_layer":true}]}}
{"index":{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:4444444444444444444444444444444444444444444444444444444444444444","size":500,"platform":{"architecture":"arm","os":"linux","variant":"v7"}}]}}
EOF
write_dict documents <<'EOF'
"manifest"
"config"
"index"
"manifests"
"layers"
"mediaType"
"digest"
"size"
"platform"
"rootfs"
"diff_ids"
"history"
"Env"
"Entrypoint"
"Cmd"
"ExposedPorts"
"Labels"
"empty_layer"
"sha256:"
"application/vnd.docker.image.rootfs.diff.tar.gzip"
"application/vnd.oci.image.layer.v1.tar"
EOF

# .dockerignore files, each followed by a NUL and the context paths to match.
mkdir -p "$build/corpus/dockerignore"
python3 - "$build/corpus/dockerignore" <<'EOF'
import os, sys
seeds = {
    "go-service": ("# build output\n*.md\n!README.md\nbin/\n.git\n**/*_test.go\nvendor/**\n!vendor/modules.txt\n",
                   ["README.md", "CHANGES.md", "bin/app", "main.go", "pkg/x_test.go", "vendor/a/b.go",
                    "vendor/modules.txt", ".git/HEAD"]),
    "classes": ("[a-c]?/[!x]*\n\\*literal\nsrc/**/gen[0-9].go\n  spaced/ \n./dot/../clean\n",
                ["a1/y", "b2/x", "*literal", "src/gen1.go", "src/a/b/gen9.go", "spaced", "clean/f"]),
    "exceptions": ("*\n!keep/**\nkeep/drop\n!**/important\n**.log\n",
                   ["x", "keep/a", "keep/drop", "deep/dir/important", "a/b.log", "keep/c.log"]),
    "unicode": ("d\u00e9j\u00e0/*\n[\u00e0-\u00ff]\n?\n",
                ["d\u00e9j\u00e0/vu", "\u00e9", "x", "ab"]),
}
for name, (rules, paths) in seeds.items():
    with open(os.path.join(sys.argv[1], "seed-" + name), "wb") as f:
        f.write(rules.encode() + b"\0" + "\n".join(paths).encode())
EOF
write_dict dockerignore <<'EOF'
"*"
"**"
"**/"
"?"
"!"
"["
"]"
"[!"
"-"
"\\"
"/"
"#"
"\x00"
"\x0a"
EOF

# Layers: small PAX tars (normal, whiteouts and an opaque folder, links aimed
# out of the root, xattrs, nodes and long names, a hostile "..") and a gzip one.
# Cut after the end-of-archive blocks: the record padding would only eat -max_len.
mkdir -p "$build/corpus/unpack"
python3 - "$build/corpus/unpack" <<'EOF'
import gzip, io, os, sys, tarfile

def layer(name, items):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, kind, data, extra in items:
            info = tarfile.TarInfo(path)
            info.mode, info.mtime = 0o755 if kind == "d" else 0o644, 1700000000
            info.type = {"f": tarfile.REGTYPE, "d": tarfile.DIRTYPE, "l": tarfile.SYMTYPE,
                         "h": tarfile.LNKTYPE, "c": tarfile.CHRTYPE, "p": tarfile.FIFOTYPE}[kind]
            if kind in "lh":
                info.linkname = data
            if kind == "c":
                info.devmajor, info.devminor = 1, 3
            info.pax_headers = extra
            body = data.encode() if kind == "f" else b""
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    data = buf.getvalue().rstrip(b"\0")
    data += b"\0" * (-len(data) % 512) + b"\0" * 1024
    with open(os.path.join(sys.argv[1], "seed-" + name), "wb") as f:
        f.write(data)
    return data

# struct vfs_cap_data revision 2: cap_net_bind_service, effective.
cap = "\x01\x00\x00\x02\x00\x04" + "\x00" * 14
normal = layer("normal", [("./", "d", "", {}), ("./etc/", "d", "", {}), ("./etc/hostname", "f", "box\n", {}),
                          ("./bin/sh", "f", "#!", {}), ("./lib", "l", "usr/lib", {})])
layer("whiteouts", [("etc/.wh.passwd", "f", "", {}), ("d/new", "f", "n", {}), ("d/.wh..wh..opq", "f", "", {}),
                    (".wh.lib", "f", "", {}), ("d/sub/later", "f", "l", {})])
layer("links", [("abs/x", "f", "x", {}), ("up/y", "f", "y", {}), ("bin/sh2", "h", "bin/sh", {}),
                ("pw", "h", "/etc/passwd", {}), ("esc", "l", "../../../etc", {}), ("esc/z", "f", "z", {})])
layer("pax", [("usr/share/" + "long-name-" * 20, "f", "long", {}),
              ("ping", "f", "cap", {"SCHILY.xattr.user.test": "v", "SCHILY.xattr.security.capability": cap}),
              ("dev/null", "c", "", {}), ("run/fifo", "p", "", {})])
layer("hostile", [("a/../../escape", "f", "x", {}), ("bin", "f", "replaces a folder", {})])
layer("aufs", [(".wh..wh.plnk/", "d", "", {}), (".wh..wh.plnk/12.34", "f", "x", {}), (".wh..wh.aufs", "f", "", {}),
               (".wh..wh.orph/o", "l", "/", {}), ("d/.wh..wh.aufs", "f", "", {}), ("bin/ln", "h", ".wh..wh.plnk/12.34", {})])
with open(os.path.join(sys.argv[1], "seed-normal.gz"), "wb") as f:
    f.write(gzip.compress(normal, mtime=0))
EOF
write_dict unpack <<'EOF'
"ustar\x0000"
"ustar  \x00"
".wh."
".wh..wh..opq"
".wh..wh.plnk/"
"../"
"/"
"path="
"linkpath="
"size="
"uid="
"mtime="
"SCHILY.xattr.user.x="
"SCHILY.xattr.security.capability="
"GNU.sparse.map="
"\x1f\x8b\x08"
"\x28\xb5\x2f\xfd"
EOF

# Layer blobs: gzip (one member, a named one, several), zstd (two frames) and a
# plain tar, each of a small tar's bytes.
mkdir -p "$build/corpus/layer_stream"
python3 - "$build/corpus/layer_stream" "$build/corpus/unpack/seed-normal" <<'EOF'
import gzip, os, sys
out, tar = sys.argv[1], open(sys.argv[2], "rb").read()
def seed(name, data):
    with open(os.path.join(out, "seed-" + name), "wb") as f:
        f.write(data)
seed("gzip", gzip.compress(tar, mtime=0))
seed("gzip-many", gzip.compress(tar[:700], mtime=0) + gzip.compress(tar[700:], mtime=0))
with open(os.path.join(out, "seed-gzip-named"), "wb") as f, gzip.GzipFile("layer.tar", "wb", fileobj=f, mtime=0) as g:
    g.write(tar)
seed("plain", tar)
EOF
command -v zstd >/dev/null 2>&1 &&
  { zstd -q -c "$build/corpus/unpack/seed-normal"; zstd -q -c "$build/corpus/unpack/seed-normal"; } >"$build/corpus/layer_stream/seed-zstd"
write_dict layer_stream <<'EOF'
"\x1f\x8b\x08"
"\x28\xb5\x2f\xfd"
"\x50\x2a\x4d\x18"
"\x00\x00\x00\x00"
"\xff\xff"
EOF

# ---- run ------------------------------------------------------------------------
# run_target TARGET: fuzzes TARGET for $seconds; writes its report line to
# $build/TARGET.summary, and the sanitizer's or libFuzzer's words to
# $build/TARGET.finding when it found something.
run_target() {
  t=$1
  bin="$build/tests/fuzz/${t}_fuzz"
  corpus="$build/corpus/$t"
  findings="$build/findings/$t"
  log="$build/$t.log"
  rm -rf "$findings" "$build/$t.finding" "$build/$t.summary"
  mkdir -p "$corpus" "$findings"
  # The text targets' inputs are header- and file-sized, and need the tokens.
  if [ "$t" = elf ]; then options="-max_len=$elf_max_len"; else options="-max_len=4096 -dict=$build/dict/$t.dict"; fi
  # A tar needs 512 bytes a header, PAX records another 1024.
  if [ "$t" = unpack ]; then options="-max_len=16384 -dict=$build/dict/$t.dict"; fi
  say "running ${t}_fuzz for ${seconds}s (log: $log)"
  # libFuzzer reads every corpus folder given and only writes to the first.
  regressions="$root/tests/fuzz/regressions/$t"
  [ -d "$regressions" ] || regressions=""
  rc=0
  ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=0:${ASAN_OPTIONS:-}" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}" \
    "$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 $options \
    -print_final_stats=1 -artifact_prefix="$findings/" "$corpus" $regressions >"$log" 2>&1 || rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  per_sec=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  files=$(find "$corpus" -type f | wc -l)
  bytes=$(du -sk "$corpus" | cut -f1)
  line="$t: ${execs:-?} runs, ${per_sec:-?} exec/s, corpus $files files ($bytes KiB)"
  if [ "$rc" -ne 0 ] || [ -n "$(ls -A "$findings")" ]; then
    line="$line: FINDING (exit $rc), see $log and $findings/ (fixed, it belongs in tests/fuzz/regressions/$t/)"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|.*runtime error|.*terminate called|.*Test unit written)' "$log" >"$build/$t.finding" ||
      tail -n 30 "$log" >"$build/$t.finding"
  fi
  printf '%s\n' "$line" >"$build/$t.summary"
}

# FUZZ_PARALLEL targets at a time (default: one per core). Each target is one
# process on one core, so running them side by side gives each the same
# seconds, and about the same executions, as running them one after another.
parallel=${FUZZ_PARALLEL:-$(nproc)}
pids=""
running=0
for t in $targets; do
  run_target "$t" &
  pids="$pids $!"
  running=$((running + 1))
  if [ "$running" -ge "$parallel" ]; then
    for pid in $pids; do wait "$pid"; done
    pids=""
    running=0
  fi
done
for pid in $pids; do wait "$pid"; done

status=0
for t in $targets; do
  if [ -s "$build/$t.finding" ]; then
    status=1
    cat "$build/$t.finding" >&2
  fi
  cat "$build/$t.summary" 2>/dev/null || { status=1; echo "$t: no report (the run did not finish)"; }
done
exit $status
