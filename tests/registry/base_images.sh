#!/usr/bin/env bash
# Builds the OCI layout seed_images pushes from: tags busybox (linux/amd64:
# static busybox with its applets as /bin symlinks, /etc/passwd with root and
# app 1000, PATH=/bin:/usr/bin, Cmd /bin/sh), arm64 (linux/arm64, only
# /etc/arch = "arm64") and multi (an image index of the two). Every mtime and
# timestamp is fixed, so the digests are the same on every run and machine
# with the same busybox-static.
#
#   tests/registry/base_images.sh OUT    (writes OUT/oci)
set -euo pipefail
out=$1
when=2024-01-01T00:00:00Z
rootless=()
[[ $(id -u) -eq 0 ]] || rootless=(--rootless)

umoci init --layout "$out/oci"
for arch in amd64 arm64; do
  umoci new --image "$out/oci:$arch"
  umoci unpack "${rootless[@]}" --image "$out/oci:$arch" "$out/$arch"
done

rootfs=$out/amd64/rootfs
mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
  [[ $applet == busybox ]] || ln -s busybox "$rootfs/bin/$applet"
done
printf '%s\n' root:x:0:0:root:/root:/bin/sh app:x:1000:1000:app:/home/app:/bin/sh >"$rootfs/etc/passwd"
printf '%s\n' root:x:0: app:x:1000: >"$rootfs/etc/group"
mkdir -p "$out/arm64/rootfs/etc"
echo arm64 >"$out/arm64/rootfs/etc/arch"

for arch in amd64 arm64; do
  find "$out/$arch/rootfs" -exec touch -h -d "$when" {} +
  umoci repack --image "$out/oci:$arch" --history.created "$when" \
    --history.created_by "tests/registry/base_images.sh $arch" "$out/$arch"
  umoci config --image "$out/oci:$arch" --no-history --created "$when" --os linux --architecture "$arch"
  rm -rf "${out:?}/$arch"
done
umoci config --image "$out/oci:amd64" --no-history --config.env PATH=/bin:/usr/bin --config.cmd /bin/sh --tag busybox
umoci rm --image "$out/oci:amd64"
umoci gc --layout "$out/oci"

# umoci cannot write an image index: add it by hand, tagged multi.
python3 - "$out/oci" <<'EOF'
import hashlib, json, sys
layout = sys.argv[1]
index = json.load(open(f"{layout}/index.json"))
tags = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in index["manifests"]}
manifests = [{k: v for k, v in tags[tag].items() if k != "annotations"}
             | {"platform": {"architecture": arch, "os": "linux"}}
             for tag, arch in (("busybox", "amd64"), ("arm64", "arm64"))]
blob = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                   "manifests": manifests}, separators=(",", ":")).encode()
digest = hashlib.sha256(blob).hexdigest()
with open(f"{layout}/blobs/sha256/{digest}", "wb") as f:
    f.write(blob)
index["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json", "digest": f"sha256:{digest}",
                           "size": len(blob), "annotations": {"org.opencontainers.image.ref.name": "multi"}})
with open(f"{layout}/index.json", "w") as f:
    json.dump(index, f)
EOF
