#!/usr/bin/python3
"""What imgbuild promises of the images it writes, beyond what the OCI spec asks
(the shared validator, ../shared/tools/oci_validate.py, checks the spec; the two
run together from tests/e2e/lib.sh's valid_image):

- every blob a descriptor names has the descriptor's size and digest;
- rootfs.diff_ids are the sha256 of the uncompressed layers, one per layer, and
  the config's history has one non-empty entry per layer;
- the layers the build wrote itself are deterministic tars: POSIX ustar headers
  with PAX extensions (no GNU ones), files, directories and symlinks only,
  entries sorted by path and each path once, one mtime for every entry of a
  layer (SOURCE_DATE_EPOCH, default 0) and none after the image's created
  time (the same, or the commit time of the context's git checkout when
  SOURCE_DATE_EPOCH is unset), no user or group names, and in a copy owner 0:0
  but for the one owner its chown gives; gzip layers carry no name and no time
  in their header;
- the first layer of an image built FROM scratch holds no whiteout;
- an image built on a pulled base names it (org.opencontainers.image.base.name
  and .digest annotations), and every image in the layout's index is named;
- the artifacts listed beside the images (an SBOM, a provenance, a
  signature: entries with an artifactType) are manifests whose subject is an
  image or a manifest of the layout, and no image.

The layers the build wrote are the trailing ones whose history entries have
the image's created time (imgbuild dates its own entries so); the ones before
are the base's, which only the first two promises cover. A pulled base whose
annotations are missing shows as layers of the build that break the tar
promises.

Usage: check_promises.py LAYOUT. Prints "FAIL where: what" for each broken
promise, then "OK" or "N error(s)"; exits 1 on an error."""
import datetime
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

INDEX = "application/vnd.oci.image.index.v1+json"
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
BASE_NAME = "org.opencontainers.image.base.name"
BASE_DIGEST = "org.opencontainers.image.base.digest"
# Regular file, directory, symlink; "x" is a PAX header for the entry after it.
ENTRY_TYPES = {b"0", b"5", b"2"}

errors = []


def fail(where, what):
    errors.append(f"{where}: {what}")


def blob(layout, desc, where):
    """The bytes of desc's blob, or None (with an error) when they do not match it."""
    alg, _, hexd = desc.get("digest", "").partition(":")
    try:
        with open(os.path.join(layout, "blobs", alg, hexd), "rb") as f:
            data = f.read()
    except OSError as e:
        fail(where, f"missing blob {desc.get('digest')}: {e.strerror}")
        return None
    if len(data) != desc.get("size"):
        fail(where, f"blob {desc['digest']} has {len(data)} bytes, its descriptor says {desc.get('size')}")
    if alg != "sha256" or hashlib.sha256(data).hexdigest() != hexd:
        fail(where, f"blob {desc['digest']} does not match its digest")
    return data


def uncompressed(data, media_type):
    if media_type.endswith("+gzip"):
        return gzip.decompress(data)
    if media_type.endswith("+zstd"):
        return subprocess.run(["zstd", "-dc"], input=data, capture_output=True, check=True).stdout
    return data


def rfc3339_seconds(text):
    return int(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())


def check_tar_headers(raw, where):
    """POSIX ustar headers and only the entry types the layer writer makes."""
    offset = 0
    while offset + 512 <= len(raw):
        header = raw[offset : offset + 512]
        if header == bytes(512):
            return
        kind, magic = header[156:157], header[257:265]
        if magic != b"ustar\x0000":
            fail(where, f"entry at byte {offset}: not a POSIX ustar header (magic {magic!r})")
            return
        if kind not in ENTRY_TYPES | {b"x"}:
            fail(where, f"entry at byte {offset}: type {kind!r} (only files, directories, symlinks and PAX headers)")
        size = int(header[124:136].rstrip(b"\0 ") or b"0", 8)
        offset += 512 + (size + 511) // 512 * 512


def check_own_layer(raw, created, where, first_of_scratch, copy):
    check_tar_headers(raw, where)
    previous, owners, mtimes = None, set(), set()
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for m in tar:
            name = m.name.encode("utf-8", "surrogateescape")
            if previous is not None and name <= previous:
                fail(where, f"{m.name!r} comes after {previous.decode('utf-8', 'replace')!r}: entries not sorted, or twice")
            previous = name
            if m.mtime > created:
                fail(where, f"{m.name!r}: mtime {m.mtime}, the image's created time is {created}")
            mtimes.add(m.mtime)
            if m.uname or m.gname:
                fail(where, f"{m.name!r}: owner names {m.uname!r}:{m.gname!r} (the build writes numbers only)")
            if (m.uid, m.gid) != (0, 0):
                owners.add((m.uid, m.gid))
            if first_of_scratch and os.path.basename(m.name).startswith(".wh."):
                fail(where, f"{m.name!r}: a whiteout in the first layer of an image built FROM scratch")
    if len(mtimes) > 1:
        fail(where, f"entries have mtimes {sorted(mtimes)}: one time (SOURCE_DATE_EPOCH) for all")
    if copy and len(owners) > 1:
        fail(where, f"a copy's entries have owners {sorted(owners)}: 0:0, or the one owner of its chown")


def check_manifest(layout, manifest, where):
    config_raw = blob(layout, manifest.get("config", {}), f"{where}/config")
    if config_raw is None:
        return
    config = json.loads(config_raw)
    layers = manifest.get("layers", [])
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    history = [h for h in config.get("history") or [] if not h.get("empty_layer")]
    if len(diff_ids) != len(layers):
        fail(where, f"{len(layers)} layers but {len(diff_ids)} rootfs.diff_ids")
    if len(history) != len(layers):
        fail(where, f"{len(layers)} layers but {len(history)} non-empty history entries")
    created_text = config.get("created", "")
    created = rfc3339_seconds(created_text)
    own = 0
    while own < len(history) and history[len(history) - 1 - own].get("created") == created_text:
        own += 1
    base = len(layers) - own
    annotations = manifest.get("annotations") or {}
    if base > 0 and not (annotations.get(BASE_NAME) and annotations.get(BASE_DIGEST)):
        fail(where, f"built on a base ({base} layers before the build's own) without the {BASE_NAME} and "
             f"{BASE_DIGEST} annotations")
    for i, desc in enumerate(layers):
        at = f"{where}/layers[{i}]"
        data = blob(layout, desc, at)
        if data is None:
            continue
        try:
            raw = uncompressed(data, desc.get("mediaType", ""))
        except Exception as e:  # corrupt compression: a finding, not a crash
            fail(at, f"unreadable layer: {e}")
            continue
        if i < len(diff_ids) and "sha256:" + hashlib.sha256(raw).hexdigest() != diff_ids[i]:
            fail(at, f"diff_id {diff_ids[i]} is not the sha256 of the uncompressed layer")
        if i >= base and i < len(history):
            # FLG (byte 3) 0: no file name or comment; MTIME (bytes 4-7) 0.
            if desc.get("mediaType", "").endswith("+gzip") and (data[3] != 0 or data[4:8] != bytes(4)):
                fail(at, "the gzip header carries a name, a comment or a time")
            copy = history[i].get("created_by", "").startswith("copy ")
            check_own_layer(raw, created, at, first_of_scratch=(i == 0), copy=copy)


def walk(layout, desc, where):
    data = blob(layout, desc, where)
    if data is None:
        return
    if desc.get("mediaType") == INDEX:
        for i, d in enumerate(json.loads(data).get("manifests", [])):
            walk(layout, d, f"{where}/manifests[{i}]")
    elif desc.get("mediaType") == MANIFEST:
        check_manifest(layout, json.loads(data), where)


def main(layout):
    with open(os.path.join(layout, "index.json")) as f:
        index = json.load(f)
    described = set()  # the images and the manifests they list: what an artifact may be about
    for desc in index.get("manifests", []):
        if "artifactType" not in desc:
            described.add(desc.get("digest"))
            if desc.get("mediaType") == INDEX and (data := blob(layout, desc, "index.json")) is not None:
                described.update(d.get("digest") for d in json.loads(data).get("manifests", []))
    for i, desc in enumerate(index.get("manifests", [])):
        where = f"index.json/manifests[{i}]"
        if "artifactType" in desc:
            data = blob(layout, desc, where)
            subject = (json.loads(data).get("subject") or {}).get("digest") if data is not None else None
            if desc.get("mediaType") != MANIFEST or subject not in described:
                fail(where, f"the artifact {desc.get('digest')} is about {subject}, no image of the layout")
            continue
        if not (desc.get("annotations") or {}).get(REF_NAME):
            fail(where, f"no {REF_NAME}: every image the build writes is named")
        walk(layout, desc, where)
    for e in errors:
        print("FAIL", e)
    print("OK" if not errors else f"{len(errors)} error(s)")
    return 1 if errors else 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: check_promises.py LAYOUT")
    sys.exit(main(sys.argv[1]))
