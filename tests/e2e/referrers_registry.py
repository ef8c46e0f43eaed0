#!/usr/bin/env python3
"""A registry with the referrers API of distribution-spec 1.1, in memory, on
loopback: Debian's docker-registry (2.8) has none, so the tests that need one
use this stand-in. It serves what imgbuild pushes and pulls back (blobs in one
PUT, manifests by tag and digest) and indexes every manifest with a subject,
answering GET /v2/NAME/referrers/DIGEST with an image index of them and
OCI-Subject on the PUT, as a registry with the API must. Every request is
logged as "METHOD PATH" to the log file, so a test can tell what was asked.

    referrers_registry.py PORT_FILE LOG_FILE
"""
import hashlib
import http.server
import json
import os
import re
import sys
import uuid

blobs = {}      # (repo, digest) -> bytes
manifests = {}  # (repo, digest) -> (media type, bytes)
tags = {}       # (repo, tag) -> digest
referrers = {}  # (repo, subject digest) -> {digest: descriptor}
uploads = {}    # id -> repo

ROUTE = re.compile(r"^/v2/(?P<repo>.+?)/(?P<kind>blobs/uploads|blobs|manifests|referrers)/?(?P<ref>[^/?]*)$")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def body(self):
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def route(self):
        with open(LOG, "a") as log:
            log.write(f"{self.command} {self.path}\n")
        path, _, query = self.path.partition("?")
        if path == "/v2/":
            return self.answer(200, b"{}")
        m = ROUTE.match(path)
        if not m:
            return self.answer(404, b'{"errors":[{"code":"NOT_FOUND"}]}')
        getattr(self, "do_" + m["kind"].replace("/", "_"))(m["repo"], m["ref"], query)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = route

    def do_blobs(self, repo, digest, _):
        data = blobs.get((repo, digest))
        if data is None:
            return self.answer(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')
        self.answer(200, data, {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest})

    def do_blobs_uploads(self, repo, upload, query):
        if self.command == "POST":
            self.body()
            upload = uuid.uuid4().hex
            uploads[upload] = bytearray()
            return self.answer(202, b"", {"Location": f"/v2/{repo}/blobs/uploads/{upload}", "Range": "0-0"})
        if upload not in uploads:
            return self.answer(404, b'{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}')
        uploads[upload] += self.body()
        if self.command == "PATCH":
            return self.answer(202, b"", {"Location": f"/v2/{repo}/blobs/uploads/{upload}"})
        digest = re.search(r"digest=([^&]+)", query).group(1).replace("%3A", ":")
        data = bytes(uploads.pop(upload))
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            return self.answer(400, b'{"errors":[{"code":"DIGEST_INVALID"}]}')
        blobs[(repo, digest)] = data
        self.answer(201, b"", {"Location": f"/v2/{repo}/blobs/{digest}", "Docker-Content-Digest": digest})

    def do_manifests(self, repo, ref, _):
        if self.command == "PUT":
            data = self.body()
            digest = "sha256:" + hashlib.sha256(data).hexdigest()
            media_type = self.headers.get("Content-Type")
            manifests[(repo, digest)] = (media_type, data)
            if not ref.startswith("sha256:"):
                tags[(repo, ref)] = digest
            headers = {"Docker-Content-Digest": digest, "Location": f"/v2/{repo}/manifests/{digest}"}
            doc = json.loads(data)
            if isinstance(doc.get("subject"), dict):
                subject = doc["subject"]["digest"]
                entry = {"mediaType": media_type, "digest": digest, "size": len(data),
                         "artifactType": doc.get("artifactType") or doc["config"]["mediaType"]}
                if doc.get("annotations"):
                    entry["annotations"] = doc["annotations"]
                referrers.setdefault((repo, subject), {})[digest] = entry
                headers["OCI-Subject"] = subject
            return self.answer(201, b"", headers)
        digest = ref if ref.startswith("sha256:") else tags.get((repo, ref))
        found = manifests.get((repo, digest))
        if found is None:
            return self.answer(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
        self.answer(200, found[1], {"Content-Type": found[0], "Docker-Content-Digest": digest})

    def do_referrers(self, repo, subject, _):
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                 "manifests": list(referrers.get((repo, subject), {}).values())}
        self.answer(200, json.dumps(index).encode(), {"Content-Type": "application/vnd.oci.image.index.v1+json"})


if __name__ == "__main__":
    PORT_FILE, LOG = sys.argv[1], sys.argv[2]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    with open(PORT_FILE + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(PORT_FILE + ".tmp", PORT_FILE)
    server.serve_forever()
