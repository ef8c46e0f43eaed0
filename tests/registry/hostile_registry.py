#!/usr/bin/env python3
"""A fake registry that misbehaves on purpose, for tests of imgbuild's registry
client (tests/e2e/hostile_registry.sh). Every listener is on a loopback address.

It serves one small image (OCI manifest, config, one gzip layer made here,
deterministically) under any repository and tag, accepts any push, and on the
requests its rules match it redirects, hands out upload locations elsewhere or
trickles bytes instead.

  hostile_registry.py --config CONFIG --log LOG --port-file PORTS [--seed TEXT]

Each --seed makes another image (default "hostile"), so that registries of one
test do not serve blobs a store already holds from another.

CONFIG (JSON):
  {"architecture": "amd64",
   "listeners": [{"name": "main", "address": "127.0.0.1",
                  "tls": {"cert": "c.pem", "key": "k.pem"},      optional
                  "auth": "user:password",                         optional: Basic
                  "port_of": "NAME"}],       optional: the port of an earlier listener
   "rules": [{"listener": "main", "method": "GET", "path": "regex",
              "action": {...}}]}
Actions (the first rule whose listener, method and path regex match):
  {"redirect": "URL"}            307 to URL (URL/ + the request path when it ends in '/')
  {"upload_location": "URL"}     a POST to .../uploads/ answers 202 with Location URL
  {"trickle": [BYTES, SECONDS]}  a layer (a blob over 4 KiB): BYTES at a time, SECONDS apart
  {"delay": SECONDS}             wait that long before answering as usual
  {"close_listener": true}       answer as usual, then stop listening (and close
                                 this connection): a name resolving to this
                                 address and another reaches the other next
In URLs, {port:NAME} is that listener's port.

PORTS gets one "NAME PORT" line per listener once all listen. LOG gets one
JSON line per request: listener, method, path (no query), authorization (the
header as received, or null: the test's own canary credentials).
"""
import argparse
import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import random
import re
import socketserver
import ssl
import tarfile
import threading
import time

args = None
config = None
ports = {}
log_lock = threading.Lock()
blobs = {}
manifest = b""
servers = {}  # by listener name


def make_image(architecture, seed):
    """The layer, config and manifest, the same bytes on every run."""
    global manifest
    data = random.Random(seed).randbytes(256 * 1024)
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("payload.bin")
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        tar.addfile(info, io.BytesIO(data))
    layer_tar = tar_bytes.getvalue()
    layer = gzip.compress(layer_tar, mtime=0)
    cfg = json.dumps({"architecture": architecture, "os": "linux",
                      "config": {"Env": ["PATH=/bin"]},
                      "rootfs": {"type": "layers",
                                 "diff_ids": ["sha256:" + hashlib.sha256(layer_tar).hexdigest()]}},
                     sort_keys=True).encode()
    for blob in (layer, cfg):
        blobs["sha256:" + hashlib.sha256(blob).hexdigest()] = blob
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": "sha256:" + hashlib.sha256(cfg).hexdigest(), "size": len(cfg)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": "sha256:" + hashlib.sha256(layer).hexdigest(), "size": len(layer)}],
    }, sort_keys=True).encode()


def expand(url):
    return re.sub(r"\{port:(\w+)\}", lambda m: str(ports[m.group(1)]), url)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    listener = None  # set per server class

    def log_message(self, *_):
        pass

    def record(self):
        entry = {"listener": self.listener["name"], "method": self.command,
                 "path": self.path.split("?")[0], "authorization": self.headers.get("Authorization")}
        with log_lock, open(args.log, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def reply(self, status, body=b"", headers=None):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def drain(self):
        length = int(self.headers.get("Content-Length") or 0)
        while length > 0:
            chunk = self.rfile.read(min(length, 65536))
            if not chunk:
                break
            length -= len(chunk)

    def rule(self):
        for r in config.get("rules", []):
            if r.get("listener", "main") != self.listener["name"]:
                continue
            if r.get("method") and r["method"] != self.command:
                continue
            if re.search(r.get("path", ""), self.path):
                return r["action"]
        return None

    def handle_any(self):
        self.record()
        self.drain()
        auth = self.listener.get("auth")
        if auth:
            wanted = "Basic " + base64.b64encode(auth.encode()).decode()
            if self.headers.get("Authorization") != wanted:
                body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
                return self.reply(401, body, {"WWW-Authenticate": 'Basic realm="hostile"',
                                              "Content-Type": "application/json"})
        action = self.rule() or {}
        path = self.path.split("?")[0]
        time.sleep(action.get("delay", 0))
        if action.get("close_listener"):
            self.close_connection = True
            threading.Thread(target=servers[self.listener["name"]].shutdown).start()
        if "redirect" in action:
            target = expand(action["redirect"])
            location = target[:-1] + path if target.endswith("/") else target
            return self.reply(307, b"", {"Location": location})
        if path == "/v2/" or path == "/v2":
            return self.reply(200, b"{}", {"Content-Type": "application/json"})
        m = re.match(r"^/v2/(.+)/(manifests|blobs)/([^/]+)$", path)
        if m and m.group(2) == "manifests":
            if self.command == "PUT":
                return self.reply(201, b"", {"Location": path})
            return self.reply(200, manifest, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        if m and m.group(2) == "blobs" and m.group(3) in blobs:
            blob = blobs[m.group(3)]
            if "trickle" in action and self.command == "GET" and len(blob) > 4096:
                step, pause = action["trickle"]
                self.send_response(200)
                self.send_header("Content-Length", str(len(blob)))
                self.end_headers()
                try:
                    for i in range(0, len(blob), step):
                        self.wfile.write(blob[i:i + step])
                        self.wfile.flush()
                        time.sleep(pause)
                except OSError:
                    pass
                self.close_connection = True
                return
            return self.reply(200, blob, {"Content-Type": "application/octet-stream"})
        if m and m.group(2) == "blobs":
            return self.reply(404, b'{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}')
        if re.match(r"^/v2/.+/blobs/uploads/$", path) and self.command == "POST":
            location = expand(action.get("upload_location", path + "session-1?_state=CANARY-state"))
            return self.reply(202, b"", {"Location": location})
        if self.command in ("PUT", "PATCH"):
            return self.reply(201 if self.command == "PUT" else 202, b"", {"Location": path})
        return self.reply(404, b'{"errors":[{"code":"NAME_UNKNOWN","message":"not here"}]}')

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


def serve(server):
    """Until shut down (close_listener); then the port refuses connections."""
    server.serve_forever()
    server.socket.close()


def main():
    global args, config
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--seed", default="hostile")
    args = parser.parse_args()
    with open(args.config) as f:
        config = json.load(f)
    make_image(config.get("architecture", "amd64"), args.seed)
    for listener in config["listeners"]:
        handler = type("H", (Handler,), {"listener": listener})
        port = ports[listener["port_of"]] if "port_of" in listener else 0
        server = Server((listener.get("address", "127.0.0.1"), port), handler)
        if listener.get("tls"):
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(listener["tls"]["cert"], listener["tls"]["key"])
            server.socket = context.wrap_socket(server.socket, server_side=True)
        ports[listener["name"]] = server.server_address[1]
        servers[listener["name"]] = server
    for server in servers.values():
        threading.Thread(target=serve, args=(server,), daemon=True).start()
    with open(args.port_file + ".tmp", "w") as f:
        f.write("".join(f"{name} {port}\n" for name, port in ports.items()))
    os.rename(args.port_file + ".tmp", args.port_file)
    threading.Event().wait()


if __name__ == "__main__":
    main()
