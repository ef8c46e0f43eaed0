#!/usr/bin/python3
"""check_promises.py can fail: it passes a layout imgbuild just wrote (and that layout
dated as a git checkout dates it), and
rejects each copy of it that breaks one promise (a wrong diff_id, a blob whose
size lies, a layer out of order, with a build-time mtime or with mixed mtimes, an owner name, a
time in a gzip header, a whiteout in a scratch image, a second owner in a copy, a base without its
annotations, an unnamed image), with the line that names it. Every damaged
copy has its digests made consistent again, so only the one promise is broken.

Usage: check_promises_test.py IMGBUILD"""
import copy
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "check_promises.py")
failures = []


def check(layout):
    r = subprocess.run([sys.executable, CHECK, layout], capture_output=True, text=True)
    return r.returncode, r.stdout


def put_blob(layout, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(layout, "blobs", "sha256", digest), "wb") as f:
        f.write(data)
    return "sha256:" + digest, len(data)


def read_json(path):
    with open(path) as f:
        return json.load(f)


class Image:
    """The one image of a layout, its documents editable and written back with
    fresh digests by save()."""

    def __init__(self, layout):
        self.layout = layout
        self.index = read_json(os.path.join(layout, "index.json"))
        self.manifest = read_json(self.blob_path(self.index["manifests"][0]["digest"]))
        self.config = read_json(self.blob_path(self.manifest["config"]["digest"]))

    def blob_path(self, digest):
        return os.path.join(self.layout, "blobs", "sha256", digest[7:])

    def layer_tar(self, i):
        with open(self.blob_path(self.manifest["layers"][i]["digest"]), "rb") as f:
            return gzip.decompress(f.read())

    def set_layer(self, i, raw, gzip_mtime=0):
        """Layer i becomes `raw` (an uncompressed tar), with its diff_id."""
        digest, size = put_blob(self.layout, gzip.compress(raw, mtime=gzip_mtime))
        self.manifest["layers"][i].update(digest=digest, size=size)
        self.config["rootfs"]["diff_ids"][i] = "sha256:" + hashlib.sha256(raw).hexdigest()

    def save(self):
        digest, size = put_blob(self.layout, json.dumps(self.config).encode())
        self.manifest["config"].update(digest=digest, size=size)
        digest, size = put_blob(self.layout, json.dumps(self.manifest).encode())
        self.index["manifests"][0].update(digest=digest, size=size)
        # What was attached to the image as it was (its SBOM, its provenance)
        # is about another image now.
        self.index["manifests"] = [m for m in self.index["manifests"] if "artifactType" not in m]
        with open(os.path.join(self.layout, "index.json"), "w") as f:
            json.dump(self.index, f)


def retar(raw, change):
    """The tar `raw` with change(members) applied to its list of (TarInfo, bytes)."""
    members = []
    with tarfile.open(fileobj=io.BytesIO(raw), mode="r:") as tar:
        for m in tar:
            members.append((m, tar.extractfile(m).read() if m.isfile() else None))
    change(members)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:", format=tarfile.PAX_FORMAT) as tar:
        for m, data in members:
            tar.addfile(m, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def entry(name, data=b"x", **fields):
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.uname, info.gname = len(data), 0, "", ""
    for k, v in fields.items():
        setattr(info, k, v)
    return info, data


def wrong_diff_id(img):
    img.config["rootfs"]["diff_ids"][0] = "sha256:" + "0" * 64


def lying_size(img):
    img.manifest["layers"][0]["size"] += 1


def unsorted(img):
    img.set_layer(0, retar(img.layer_tar(0), lambda ms: ms.reverse()))


def build_time_mtime(img):
    img.set_layer(0, retar(img.layer_tar(0), lambda ms: setattr(ms[0][0], "mtime", 1700000000)))


def dated(img, when):
    """The image created at `when`, as a build in a git checkout dates it."""
    img.config["created"] = when
    for h in img.config["history"]:
        h["created"] = when


def mixed_mtimes(img):
    dated(img, "1970-01-01T00:00:10Z")
    img.set_layer(0, retar(img.layer_tar(0), lambda ms: setattr(ms[0][0], "mtime", 5)))


def owner_names(img):
    img.set_layer(0, retar(img.layer_tar(0), lambda ms: setattr(ms[0][0], "uname", "root")))


def gzip_time(img):
    img.set_layer(0, img.layer_tar(0), gzip_mtime=1700000000)


def whiteout(img):
    img.set_layer(0, retar(img.layer_tar(0), lambda ms: ms.insert(0, entry(".wh.gone", b""))))


def two_owners(img):
    def chown_two(ms):
        ms[0][0].uid, ms[0][0].gid = 1000, 1000
        ms[1][0].uid, ms[1][0].gid = 33, 33

    img.set_layer(0, retar(img.layer_tar(0), chown_two))


def unnamed_base(img):
    # A base layer before the build's own: a history entry dated otherwise.
    raw = retar(img.layer_tar(0), lambda ms: ms.__setitem__(slice(None), [entry("base", mtime=1600000000)]))
    img.manifest["layers"].insert(0, copy.deepcopy(img.manifest["layers"][0]))
    img.config["rootfs"]["diff_ids"].insert(0, "")
    img.config["history"].insert(0, {"created": "2020-09-13T12:26:40Z", "created_by": "base"})
    img.set_layer(0, raw)


def unnamed_image(img):
    del img.index["manifests"][0]["annotations"]


DAMAGES = [
    (wrong_diff_id, "is not the sha256 of the uncompressed layer"),
    (lying_size, "its descriptor says"),
    (unsorted, "entries not sorted, or twice"),
    (build_time_mtime, "mtime 1700000000, the image's created time is 0"),
    (mixed_mtimes, "entries have mtimes [0, 5]"),
    (owner_names, "owner names 'root'"),
    (gzip_time, "the gzip header carries a name, a comment or a time"),
    (whiteout, "a whiteout in the first layer of an image built FROM scratch"),
    (two_owners, "a copy's entries have owners [(33, 33), (1000, 1000)]"),
    (unnamed_base, "without the org.opencontainers.image.base.name"),
    (unnamed_image, "no org.opencontainers.image.ref.name"),
]


def main(imgbuild):
    with tempfile.TemporaryDirectory(prefix="imgbuild-oci-promises-") as work:
        context = os.path.join(work, "ctx")
        os.makedirs(os.path.join(context, "d"))
        for name in ("a.txt", "d/b.txt", "d/c.txt"):
            with open(os.path.join(context, name), "w") as f:
                f.write(name + "\n")
        with open(os.path.join(context, "recipe.lua"), "w") as f:
            f.write('image("t", scratch:copy({ "a.txt", "d" }, "/"))\n')
        env = dict(os.environ, XDG_DATA_HOME=os.path.join(work, "data"), XDG_CACHE_HOME=os.path.join(work, "cache"))
        env.pop("SOURCE_DATE_EPOCH", None)
        good = os.path.join(work, "good")
        built = subprocess.run([imgbuild, os.path.join(context, "recipe.lua"), "-o", "oci:" + good], env=env,
                               capture_output=True, text=True)
        if built.returncode != 0:
            sys.exit("imgbuild failed to write the layout to check:\n" + built.stderr)
        status, out = check(good)
        report(status == 0 and out == "OK\n", "the layout imgbuild wrote passes", out)
        committed = os.path.join(work, "committed")
        shutil.copytree(good, committed)
        img = Image(committed)
        dated(img, "2024-03-09T16:00:00Z")
        img.save()
        status, out = check(committed)
        report(status == 0 and out == "OK\n", "created at a commit's time, after its layers' times, passes", out)
        for damage, expected in DAMAGES:
            layout = os.path.join(work, damage.__name__)
            shutil.copytree(good, layout)
            img = Image(layout)
            damage(img)
            img.save()
            status, out = check(layout)
            report(status == 1 and expected in out, f"{damage.__name__} is rejected: {expected}", out)
    print(f"\n{len(DAMAGES) + 2 - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


def report(ok, what, out):
    print(("  ok    " if ok else "  FAIL  ") + what)
    if not ok:
        failures.append(what)
        print("".join("        " + line + "\n" for line in out.splitlines()[-10:]), end="")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
