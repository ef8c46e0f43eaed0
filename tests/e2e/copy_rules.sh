#!/usr/bin/env bash
# :copy and :add follow Docker's COPY and ADD rules (imgbuild-recipe(5), COPY
# SEMANTICS and :add): every row of the table, and ADD of each archive format,
# is built twice from one context, by imgbuild and by `buildah bud` from the
# Dockerfile that says the same, and the two images' file trees (paths,
# types, modes, owners, link targets, sizes) must be equal. What imgbuild
# refuses on purpose fails at the recipe line naming the rule. Hostile
# archives are refused or kept inside the image, never written outside it;
# a URL is fetched over verified TLS from a loopback server, checked against
# its checksum and cached by it.
#
#   tests/e2e/copy_rules.sh IMGBUILD REPO_ROOT
set -uo pipefail
source "$(dirname "$0")/lib.sh"
e2e_workspace "$@"
command -v buildah >/dev/null || skip "needs buildah (scripts/setup installs it)"
[[ $(id -u) -eq 0 ]] || skip "buildah bud with its own storage root needs root here"

ctx=$work/ctx
mkdir -p "$ctx/base/app" "$ctx/base/etc" "$ctx/base/usr/bin" "$ctx/dir/sub" "$ctx/bin"
printf 'kept\n' >"$ctx/base/app/keep.txt"
printf 'root:x:0:0::/root:/bin/sh\n' >"$ctx/base/etc/passwd"
printf '#!/bin/sh\n' >"$ctx/base/usr/bin/true"
chmod 0755 "$ctx/base/usr/bin/true"
ln -s usr/bin "$ctx/base/bin"
ln -s app "$ctx/base/lnk"
printf 'a\n' >"$ctx/a.txt"
printf 'bb\n' >"$ctx/b.txt"
printf 'x\n' >"$ctx/dir/x"
printf 'yy\n' >"$ctx/dir/sub/y"
printf '#!/bin/sh\necho hello\n' >"$ctx/bin/hello"
chmod 0755 "$ctx/bin/hello"
chmod -R go-w "$ctx"

# One line per row of the table (the row's number first), as a Dockerfile
# instruction and as the recipe's method call.
rows=(
  "1|WORKDIR /app|:workdir \"/app\""
  "1|COPY a.txt sub/|:copy(\"a.txt\", \"sub/\")"
  "2|COPY dir /d1|:copy(\"dir\", \"/d1\")"
  "2|COPY dir/ /d2/|:copy(\"dir/\", \"/d2/\")"
  "3|COPY a.txt /r3/|:copy(\"a.txt\", \"/r3/\")"
  "4|COPY bin/hello /app|:copy(\"bin/hello\", \"/app\")"
  "4|COPY b.txt /lnk|:copy(\"b.txt\", \"/lnk\")"
  "5|COPY a.txt /r5|:copy(\"a.txt\", \"/r5\")"
  "5|COPY b.txt /etc/passwd|:copy(\"b.txt\", \"/etc/passwd\")"
  "6|COPY a.txt b.txt /six/|:copy({ \"a.txt\", \"b.txt\" }, \"/six/\")"
  "6|COPY *.txt /glob/|:copy(\"*.txt\", \"/glob/\")"
  "7|COPY a.txt /m7/deep/er/a.txt|:copy(\"a.txt\", \"/m7/deep/er/a.txt\")"
  "7|COPY dir /m7/made|:copy(\"dir\", \"/m7/made\")"
  "8|COPY bin/hello /bin/tool|:copy(\"bin/hello\", \"/bin/tool\")"
  "8|COPY a.txt /lnk/inside/|:copy(\"a.txt\", \"/lnk/inside/\")"
)
{
  echo "FROM scratch"
  echo "COPY base/ /"
  for row in "${rows[@]}"; do IFS='|' read -r _ docker _ <<<"$row"; echo "$docker"; done
} >"$ctx/Dockerfile"
{
  echo "local img = scratch"
  echo "  :copy(\"base/\", \"/\")"
  for row in "${rows[@]}"; do IFS='|' read -r _ _ lua <<<"$row"; echo "  $lua"; done
  echo "image(\"rules\", img)"
} >"$ctx/rules.lua"

# buildah with storage of its own, never the machine's.
echo '{}' >"$DOCKER_CONFIG/config.json"
bh() { buildah --root "$work/buildah/root" --runroot "$work/buildah/run" --storage-driver vfs "$@"; }
at_exit "buildah --root '$work/buildah/root' --runroot '$work/buildah/run' --storage-driver vfs rmi -a -f >/dev/null 2>&1"

# tree LAYOUT: the image's file tree, its layers applied in order (whiteouts
# honoured): one line per path with its type, mode, owner, link target and size.
tree() {
  python3 - "$1" <<'PY'
import json, sys, tarfile
d = sys.argv[1]
blob = lambda digest: f"{d}/blobs/sha256/{digest.split(':')[1]}"
index = json.load(open(f"{d}/index.json"))
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
files = {}
for layer in manifest["layers"]:
    with tarfile.open(blob(layer["digest"])) as t:
        for m in t.getmembers():
            path = m.name.lstrip("./").rstrip("/")
            if not path:
                continue
            parent, _, base = path.rpartition("/")
            if base.startswith(".wh."):
                gone = (parent + "/" if parent else "") + base[4:]
                files = {p: v for p, v in files.items() if p != gone and not p.startswith(gone + "/")}
                continue
            if not m.isdir():
                files = {p: v for p, v in files.items() if not p.startswith(path + "/")}
            kind = "d" if m.isdir() else "l" if m.issym() else "f" if m.isfile() else "?"
            files[path] = f"{kind} {m.mode & 0o7777:04o} {m.uid}:{m.gid} {m.linkname if m.issym() else ''} {m.size if m.isfile() else ''}"
for path in sorted(files):
    print(path, files[path])
PY
}

step "buildah bud builds the Dockerfile"
mkdir -p "$work/buildah"
check "buildah bud" bh bud --isolation chroot --network host -f "$ctx/Dockerfile" -t copy-rules "$ctx"
check "buildah writes an OCI layout" bh push copy-rules "oci:$work/buildah-oci"
tree "$work/buildah-oci" >"$work/buildah.tree" 2>&1

step "imgbuild builds the recipe"
SOURCE_DATE_EPOCH=1700000000 check_cmd "$IMGBUILD" "$ctx/rules.lua" -o "oci:$work/imgbuild-oci"
check "oci_validate.py and check_promises.py say OK" valid_image "$work/imgbuild-oci"
tree "$work/imgbuild-oci" >"$work/imgbuild.tree" 2>&1

step "the two file trees are the same"
check "same paths, types, modes, owners, link targets and sizes" diff -u "$work/buildah.tree" "$work/imgbuild.tree"
has() { grep -qx -- "$1" "$work/imgbuild.tree"; }
check "row 1: a relative destination is taken from the workdir" has "app/sub/a.txt f 0644 0:0  2"
check "row 2: a folder's contents go into the destination" has "d1/sub/y f 0644 0:0  3"
check "row 4: a file onto an existing folder goes inside it" has "app/hello f 0755 0:0  21"
check "row 4: a symlink to a folder counts as the folder" has "app/b.txt f 0644 0:0  3"
check "row 5: a file replaces a file" has "etc/passwd f 0644 0:0  3"
check "row 8: /bin/tool lands in /usr/bin and /bin stays a link" has "usr/bin/tool f 0755 0:0  21"
check "row 8: /bin is still a link" has "bin l 0777 0:0 usr/bin "

step "rebuilt: the answers come from the kept layer listings, the image is the same"
first=$(grep -o 'sha256:[0-9a-f]*' "$work/last.out" | head -1)
SOURCE_DATE_EPOCH=1700000000 check_cmd "$IMGBUILD" "$ctx/rules.lua"
check "same image digest" grep -q "$first" "$work/last.out"

step "refused on purpose, at the recipe line, naming the rule"
refused() {
  local name=$1 lua=$2 message=$3
  ! build_recipe "$name" "local img = scratch:copy(\"base/\", \"/\")
image(\"$name\", img$lua)" && grep -qxF -- "$message" "$work/$name.err"
}
check "row 6: several sources onto a folder without /" refused six ':copy({ "a.txt", "b.txt" }, "/app")' \
  "imgbuild: six.lua:2: copy: copying 2 sources to /app: the destination must be a directory ending in /"
check "row 6: a pattern matching several files without /" refused glob ':copy("*.txt", "/g")' \
  "imgbuild: glob.lua:2: copy: copying 2 sources to /g: the destination must be a directory ending in /"
check "row 8: a destination through a file" refused through ':copy("a.txt", "/etc/passwd/x")' \
  "imgbuild: through.lua:2: copy: copying to /etc/passwd/x: /etc/passwd: a file in the image stands on the way"
printf 'FROM scratch\nCOPY base/ /\nCOPY a.txt /etc/passwd/x\n' >"$ctx/Dockerfile.through"
check "row 8: buildah refuses it too" sh -c "! buildah --root '$work/buildah/root' --runroot '$work/buildah/run' --storage-driver vfs bud --isolation chroot --network host -f '$ctx/Dockerfile.through' '$ctx' >/dev/null 2>&1"

step ":add extracts local tar archives, told by content, as buildah's ADD does"
python3 - "$ctx" <<'PY'
import io, sys, tarfile
ctx = sys.argv[1]
def archive(path, mode):
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as t:
        def add(name, kind, perm, data=b"", link="", uid=0):
            i = tarfile.TarInfo(name)
            i.type, i.mode, i.uid, i.gid, i.mtime = kind, perm, uid, uid, 1700000000
            i.linkname = link
            i.size = len(data)
            t.addfile(i, io.BytesIO(data) if data else None)
        add("tool", tarfile.DIRTYPE, 0o750, uid=1000)
        add("tool/run", tarfile.REGTYPE, 0o700, b"#!/bin/sh\n", uid=1000)
        add("tool/notes", tarfile.REGTYPE, 0o600, b"notes\n")
        add("tool/current", tarfile.SYMTYPE, 0o777, link="run")
archive(f"{ctx}/plain.data", "w")
archive(f"{ctx}/gzip.data", "w:gz")
archive(f"{ctx}/bzip2.data", "w:bz2")
archive(f"{ctx}/xz.data", "w:xz")
archive(f"{ctx}/zstd-src.tar", "w")
open(f"{ctx}/fake.tar.gz", "w").write("not an archive, whatever its name\n")
PY
zstd -q "$ctx/zstd-src.tar" -o "$ctx/zstd.data" && rm "$ctx/zstd-src.tar"
adds=(plain:/x/plain/ gzip:/x/gzip bzip2:/x/bzip2/ xz:/x/xz zstd:/x/zstd/)
{
  echo "FROM scratch"
  for a in "${adds[@]}"; do echo "ADD ${a%%:*}.data ${a#*:}"; done
  echo "ADD fake.tar.gz /x/fake.tar.gz"
  echo "ADD a.txt /x/a.txt"
} >"$ctx/Dockerfile.add"
{
  echo "local img = scratch"
  for a in "${adds[@]}"; do echo "  :add(\"${a%%:*}.data\", \"${a#*:}\")"; done
  echo "  :add(\"fake.tar.gz\", \"/x/fake.tar.gz\")"
  echo "  :add(\"a.txt\", \"/x/a.txt\")"
  echo "image(\"adds\", img)"
} >"$ctx/adds.lua"
check "buildah bud" bh bud --isolation chroot --network host -f "$ctx/Dockerfile.add" -t adds "$ctx"
check "buildah writes an OCI layout" bh push adds "oci:$work/buildah-add"
tree "$work/buildah-add" >"$work/buildah-add.tree" 2>&1
SOURCE_DATE_EPOCH=1700000000 check_cmd "$IMGBUILD" "$ctx/adds.lua" -o "oci:$work/imgbuild-add"
tree "$work/imgbuild-add" >"$work/imgbuild-add.tree" 2>&1
check "same paths, types, modes, owners, link targets and sizes" diff -u "$work/buildah-add.tree" "$work/imgbuild-add.tree"
has() { grep -qx -- "$1" "$work/imgbuild-add.tree"; }
for a in "${adds[@]}"; do
  check "${a%%:*}: extracted, modes and owners as the archive has them" has "x/${a%%:*}/tool/run f 0700 1000:1000  10"
done
check "a file named like an archive is copied as it is" has "x/fake.tar.gz f 0644 0:0  34"
check "the history says add" grep -rqF '"created_by":"add gzip.data /x/gzip"' "$work/imgbuild-add/blobs/sha256"

step ":add of a hostile archive: refused, or kept inside the image; nothing written outside it"
outside=$work/outside
mkdir -p "$outside"
python3 - "$ctx" "$outside" <<'PY'
import io, sys, tarfile
ctx, outside = sys.argv[1], sys.argv[2]
def archive(name, entries):
    with tarfile.open(f"{ctx}/{name}", "w:gz") as t:
        for n, kind, link, data in entries:
            i = tarfile.TarInfo(n)
            i.type, i.linkname, i.size, i.mode = kind, link, len(data), 0o644
            if kind == tarfile.CHRTYPE:
                i.devmajor, i.devminor = 8, 0
            t.addfile(i, io.BytesIO(data) if data else None)
archive("climb.tgz", [("ok", tarfile.REGTYPE, "", b"ok"), (f"../../../../../..{outside}/climbed", tarfile.REGTYPE, "", b"x")])
archive("absolute.tgz", [(f"{outside}/absolute", tarfile.REGTYPE, "", b"x")])
archive("symlink.tgz", [("escape", tarfile.SYMTYPE, outside, b""), ("escape/through-link", tarfile.REGTYPE, "", b"x")])
archive("device.tgz", [("dev", tarfile.DIRTYPE, "", b""), ("dev/sda", tarfile.CHRTYPE, "", b"")])
archive("fifo.tgz", [("pipe", tarfile.FIFOTYPE, "", b"")])
archive("hardlink.tgz", [("h", tarfile.LNKTYPE, f"{outside}/../../etc/passwd", b"")])
PY
hostile() {
  local name=$1 message=$2
  ! build_recipe "$name" "image(\"$name\", scratch
  :add(\"$name.tgz\", \"/h/\"))" && grep -qxF -- "$message" "$work/$name.err"
}
check "an entry climbing out with .." hostile climb \
  "imgbuild: climb.lua:2: add: climb.tgz: entry \"../../../../../..$outside/climbed\": path escapes the image root"
check "a hard link to a file outside" hostile hardlink \
  "imgbuild: hardlink.lua:2: add: hardlink.tgz: entry \"h\": hardlink target \"$outside/../../etc/passwd\" does not exist"
check "a file through a symlink to the host" hostile symlink \
  "imgbuild: symlink.lua:2: add: symlink.tgz: entry \"escape/through-link\": cannot open directory \"escape\": No such file or directory"
check "a device node" hostile device \
  "imgbuild: device.lua:2: add: device.tgz: entry \"dev/sda\": a device node: an archive holds only files, folders and links here"
check "a fifo" hostile fifo \
  "imgbuild: fifo.lua:2: add: fifo.tgz: entry \"pipe\": a fifo: an archive holds only files, folders and links here"
build_recipe absolute 'image("absolute", scratch:add("absolute.tgz", "/h/"))' -o "oci:$work/absolute-oci"
check "an absolute entry lands inside the image" sh -c "tar -tzf $work/absolute-oci/blobs/sha256/\$(jq -r '.layers[0].digest[7:]' $work/absolute-oci/blobs/sha256/\$(jq -r '.manifests[0].digest[7:]' $work/absolute-oci/index.json)) | grep -qx 'h${outside}/absolute'"
check "nothing was written outside the image (climb, absolute, symlink)" sh -c "[ -z \"\$(ls -A '$outside')\" ]"

step ":add of a URL: fetched over verified TLS from loopback, checked, cached by its checksum, never extracted"
serve=$work/serve
mkdir -p "$serve"
cp "$ctx/gzip.data" "$serve/tool.tar.gz"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  -keyout "$work/https.key" -out "$work/https.crt" 2>/dev/null
port=$(free_port)
_reg_spawn "https file server" "$work/https.log" python3 -c '
import http.server, ssl, sys, functools
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[2])), handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(sys.argv[3], sys.argv[4])
server.socket = context.wrap_socket(server.socket, server_side=True)
server.serve_forever()' "$serve" "$port" "$work/https.crt" "$work/https.key"
_reg_wait_for curl -sf --cacert "$work/https.crt" -o /dev/null "https://127.0.0.1:$port/tool.tar.gz"
url="https://127.0.0.1:$port/tool.tar.gz"
sum="sha256:$(sha256sum "$serve/tool.tar.gz" | cut -d' ' -f1)"
wrong="sha256:$(printf 'other' | sha256sum | cut -d' ' -f1)"
build_recipe untrusted "image(\"untrusted\", scratch:add(\"$url\", \"/opt/\", { checksum = \"$sum\" }))"
check "a certificate this machine does not trust is refused" grep -q "^imgbuild: untrusted.lua:1: add: $url: .*certificate" "$work/untrusted.err"
export SSL_CERT_FILE=$work/https.crt
build_recipe wrong "image(\"wrong\", scratch:add(\"$url\", \"/opt/\", { checksum = \"$wrong\" }))"
check "a file that is not the checksum's is refused at the line" grep -qxF \
  "imgbuild: wrong.lua:1: add: $url: the file fetched is $sum, not $wrong as the recipe's checksum says: nothing was added (check the URL, or the checksum)" "$work/wrong.err"
build_recipe fetched "image(\"fetched\", scratch:add(\"$url\", \"/opt/\", { checksum = \"$sum\" }))" -o "oci:$work/fetched-oci"
tree "$work/fetched-oci" >"$work/fetched.tree" 2>&1
check "the file is at /opt/tool.tar.gz, mode 0600, not extracted" grep -qx "opt/tool.tar.gz f 0600 0:0  $(stat -c %s "$serve/tool.tar.gz")" "$work/fetched.tree"
hport=$(free_port)
_reg_spawn "http file server" "$work/http.log" python3 -c '
import http.server, sys, functools
class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/to/"):
            self.send_response(302)
            self.send_header("Location", self.path[len("/to/"):])
            self.end_headers()
            return
        super().do_GET()
handler = functools.partial(Handler, directory=sys.argv[1])
http.server.HTTPServer(("127.0.0.1", int(sys.argv[2])), handler).serve_forever()' "$serve" "$hport"
_reg_wait_for curl -sf -o /dev/null "http://127.0.0.1:$hport/tool.tar.gz"
rm -rf "$XDG_CACHE_HOME/imgbuild/downloads"
check "http from loopback is fetched" build_recipe plain \
  "image(\"plain\", scratch:add(\"http://127.0.0.1:$hport/tool.tar.gz\", \"/p\", { checksum = \"$sum\" }))"
rm -rf "$XDG_CACHE_HOME/imgbuild/downloads"
https_gets=$(grep -c "GET /tool.tar.gz" "$work/https.log")
check "a redirect to https is followed" build_recipe redirected \
  "image(\"redirected\", scratch:add(\"http://127.0.0.1:$hport/to/$url\", \"/r\", { checksum = \"$sum\" }))"
check "and reached the https server" test "$(grep -c "GET /tool.tar.gz" "$work/https.log")" -gt "$https_gets"
rm -rf "$XDG_CACHE_HOME/imgbuild/downloads"
build_recipe ftp "image(\"ftp\", scratch:add(\"http://127.0.0.1:$hport/to/ftp://127.0.0.1/x\", \"/f\", { checksum = \"$sum\" }))"
check "a redirect to anything but https (or loopback http) is refused" grep -qxF \
  "imgbuild: ftp.lua:1: add: ftp://127.0.0.1/x: only https URLs are fetched (http only from this machine's loopback)" "$work/ftp.err"
build_recipe fetched-again "image(\"fetched\", scratch:add(\"$url\", \"/opt/\", { checksum = \"$sum\" }))"
rm "$serve/tool.tar.gz"
build_recipe cached "image(\"cached\", scratch:add(\"$url\", \"/elsewhere\", { checksum = \"$sum\" }))" -o "oci:$work/cached-oci"
tree "$work/cached-oci" >"$work/cached.tree" 2>&1
check "fetched once: the next build takes it from the cache by its checksum" grep -q "^elsewhere f 0600" "$work/cached.tree"
unset SSL_CERT_FILE

finish
