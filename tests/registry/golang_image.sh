#!/usr/bin/env bash
# Adds a Go builder image to an OCI layout made by base_images.sh: the busybox
# image plus this machine's Debian Go toolchain at its own paths (GOROOT, the
# /usr/share tree its src, misc and test links point to, and the C library the
# go command needs), with the go command on PATH. It stands in for docker.io/library/golang in tests that
# cannot reach Docker Hub. Tagged golang; deterministic like the others. Like
# Docker Hub's golang images, its config sets no HOME: a RUN step gets it from
# /etc/passwd, as with Docker (go build fails without one).
#
#   tests/registry/golang_image.sh LAYOUT     (LAYOUT from base_images.sh: OUT/oci)
set -euo pipefail
layout=$1
when=2024-01-01T00:00:00Z
goroot=$(go env GOROOT)
shared=$(dirname "$(readlink -f "$goroot/src")")
rootless=()
[[ $(id -u) -eq 0 ]] || rootless=(--rootless)
bundle=$(mktemp -d "$(dirname "$layout")/golang.XXXXXX")
trap 'rm -rf "$bundle"' EXIT

umoci unpack "${rootless[@]}" --image "$layout:busybox" "$bundle/b"
mkdir -p "$bundle/b/rootfs$(dirname "$goroot")" "$bundle/b/rootfs$(dirname "$shared")" "$bundle/b/rootfs/root"
cp -a "$goroot" "$bundle/b/rootfs$goroot"
cp -a "$shared" "$bundle/b/rootfs$shared"
# Debian's go command is linked against glibc (the compiler and linker are
# static): its loader and libraries go in at their own paths.
for lib in $(ldd "$goroot/bin/go" | grep -o '/[^ ]*'); do
  mkdir -p "$bundle/b/rootfs$(dirname "$lib")"
  cp -L "$lib" "$bundle/b/rootfs$lib"
done
find "$bundle/b/rootfs" -newermt "$when" -exec touch -h -d "$when" {} +
umoci repack --image "$layout:golang" --history.created "$when" \
  --history.created_by "tests/registry/golang_image.sh: $goroot" "$bundle/b"
umoci config --image "$layout:golang" --no-history --created "$when" --clear=config.env \
  --config.env "PATH=$goroot/bin:/bin:/usr/bin" --config.env GOTOOLCHAIN=local
