#!/usr/bin/env bash
# Faults: deep trees and many files. A context tree 1000 folders deep is
# copied whole; one 2500 deep (paths past PATH_MAX) fails with exit status 1
# and "File name too long", never a crash; a RUN step that makes a tree 2050
# deep either works or fails the same way; 20 000 tiny files are copied.
# The peak memory of each build is printed (no threshold: a figure to watch).
#
#   tests/faults/trees.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/../e2e/lib.sh"
e2e_workspace "$@"

# deep DIR DEPTH: DIR/d/d/.../d/leaf, made by descriptors (the path of the
# leaf may be longer than any system call takes).
deep() {
  python3 - "$1" "$2" <<'EOF'
import os, sys
os.makedirs(sys.argv[1])
fd = os.open(sys.argv[1], os.O_RDONLY)
for _ in range(int(sys.argv[2])):
    os.mkdir("d", dir_fd=fd)
    fd, old = os.open("d", os.O_RDONLY, dir_fd=fd), fd
    os.close(old)
with open(os.open("leaf", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "w") as f:
    f.write("leaf\n")
EOF
}
# build CONTEXT RECIPE: imgbuild under /usr/bin/time; $status, $work/last.{out,err}, $peak (kB).
build() {
  printf '%s\n' "$2" >"$work/recipe.lua"
  /usr/bin/time -f '%M' -o "$work/peak" "$IMGBUILD" "$work/recipe.lua" --context "$1" >"$work/last.out" 2>"$work/last.err"
  status=$?
  peak=$(tail -n 1 "$work/peak")
}
# clean_failure WHAT: the build failed with status 1 (an error, not a signal)
# and said why.
clean_failure() {
  check "$1: exit status 1 (no crash)" test "$status" = 1
  check "$1: says the name is too long" grep -q "File name too long" "$work/last.err"
}
copy_all='image("tree", scratch:copy(".", "/ctx"))'

step "a context 1000 folders deep"
deep "$work/deep1000" 1000
build "$work/deep1000" "$copy_all"
check "it is copied (peak memory ${peak} kB)" test "$status" = 0
outcome "the image is stored" "^tree  sha256:"

step "a context 2500 folders deep: paths longer than PATH_MAX"
deep "$work/deep2500" 2500
build "$work/deep2500" "$copy_all"
clean_failure "copying it"

step "a RUN step that makes a tree 2050 folders deep"
# The depth is what the case proves: recursion that deep and paths past
# PATH_MAX. It also keeps overlay_diff's opaque-folder check linear: it once
# built a path object per ancestor for each folder, cubic in the depth (this
# step took 340 s under the sanitizers; now seconds).
mkdir -p "$work/ctx"
cp /bin/busybox "$work/ctx/busybox"
# Two trees 1024 deep (paths of 2 kB, which a shell takes), one moved into the
# other: 2050 deep, with paths past PATH_MAX.
build "$work/ctx" 'image("tree", scratch:copy("busybox", "/bin/busybox"):run { "/bin/busybox", "sh", "-ec",
  "p=d; for i in 1 2 3 4 5 6 7 8 9 10; do p=$p/$p; done; /bin/busybox mkdir -p /t/a/$p /t/b/$p; /bin/busybox mv /t/a /t/b/$p/" })'
if [[ $status == 0 ]]; then
  pass "the step's tree is stored (peak memory ${peak} kB)"
else
  clean_failure "storing the step's tree"
fi

step "20 000 tiny files"
mkdir -p "$work/many/files"
(cd "$work/many/files" && seq -f 'f%05g' 20000 | xargs touch)
build "$work/many" "$copy_all"
check "they are copied (peak memory ${peak} kB)" test "$status" = 0

step "100 000 tiny files in bounded memory"
plain=$IMGBUILD
grep -qa __asan_init "$plain" && plain=$ROOT/build/imgbuild
if [[ ! -x $plain ]] || grep -qa __asan_init "$plain"; then
  fail "no plain (unsanitized) imgbuild to measure memory with: $IMGBUILD is sanitized and $plain is missing"
else
  # 100 folders of 1000 files of 0 to 100 bytes.
  python3 - "$work/tiny/tree" <<'EOF'
import os, sys
for d in range(100):
    folder = os.path.join(sys.argv[1], "d%03d" % d)
    os.makedirs(folder)
    for i in range(1000):
        with open(os.path.join(folder, "f%03d" % i), "wb") as f:
            f.write(b"x" * ((d * 7 + i * 13) % 101))
EOF
  # The baseline is one file, but a big one: its layer keeps the read-ahead,
  # the tar pipe and the compressors as full as the 100 000 files do, so the
  # difference is what each file costs, not the fixed buffers of a big layer.
  mkdir -p "$work/one/tree"
  head -c 16M /dev/urandom >"$work/one/tree/file"
  given=$IMGBUILD
  IMGBUILD=$plain
  build "$work/one" 'image("one", scratch:copy("tree", "/"))'
  base=$peak
  check "one file is copied (peak memory ${base} kB)" test "$status" = 0
  build "$work/tiny" 'image("tiny", scratch:copy("tree", "/"))'
  IMGBUILD=$given
  check "100 000 files are copied (peak memory ${peak} kB)" test "$status" = 0
  outcome "the image is stored" "^tiny  sha256:"
  per_file=$(((peak - base) * 1024 / 100000))
  check "each file costs less than 400 bytes of memory (it costs $per_file)" test "$per_file" -lt 400
fi

finish
