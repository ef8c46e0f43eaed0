#!/usr/bin/env python3
"""HTTP/1.1 reverse proxy that injects faults between a registry client and a
registry (the upstream), for end-to-end tests of the client.

Two listeners on 127.0.0.1, both written to --port-file as "MAIN OTHER":
  main   forwards every request to the upstream, applying the rules.
  other  is addressed as localhost:OTHER, a different host than the main one.
         It stands in for the storage host a registry redirects blob
         downloads to: it serves GET and HEAD only and never forwards the
         Authorization it receives; it authenticates upstream by itself with
         $FAULT_PROXY_UPSTREAM_CREDS (user:password, Basic or token auth).

Rules (--rules, a JSON list, re-read on every request, missing = none):
  {"method": "GET", "path": "regex", "times": 1, "listener": "main",
   "action": {...}}
method is optional (any), path is searched in path+query, times defaults to
1 (-1 = always), listener is main (default), other or any. The first rule
that matches and has not been used up applies. Counters reset whenever the
file is replaced. Actions:
  {"status": 500, "headers": {...}, "code": "UNKNOWN"}  reply instead of forwarding
  {"drop_after": N}       close the connection after N bytes of the body
  {"corrupt": true}       flip one bit in the middle of the body (with
                          drop_after: then cut it short)
  {"replace_body": "x"}   replace the body
  {"oversize": N}         pad the body with spaces to N bytes
  {"redirect_other": true}  307 to the same path on the other listener;
                          with "query": "X-Amz-Signature=..." that query is
                          added, as a storage service's signed URL carries one
  {"delay": SECONDS}      wait before handling the request (with or without
                          another action), e.g. to let a token expire
  {"ignore_range": true}  forward without the Range header: the whole body,
                          200, as a registry without range support answers

Every request is appended to --log as one JSON line: listener, method, path,
status, authorization (whether the header arrived; never its value), range,
fault, bytes (response body bytes sent), request_bytes.
"""
import argparse
import base64
import contextlib
import http.client
import json
import os
import re
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode

CHUNK = 64 * 1024
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "te", "trailer", "upgrade", "expect"}
ERROR_CODES = {401: "UNAUTHORIZED", 403: "DENIED", 405: "UNSUPPORTED", 429: "TOOMANYREQUESTS"}
FAULTS = ("status", "drop_after", "corrupt", "replace_body", "oversize", "redirect_other", "delay", "ignore_range")


class Rules:
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.used = {}

    def match(self, listener, method, path):
        try:
            with open(self.path, "rb") as f:
                # A new file (an atomic rename) has a new inode: its counters start afresh.
                stat = os.fstat(f.fileno())
                rules = json.loads(f.read() or b"[]")
        except FileNotFoundError:
            return None
        with self.lock:
            for index, rule in enumerate(rules):
                if rule.get("listener", "main") not in (listener, "any"):
                    continue
                if rule.get("method", method) != method or not re.search(rule.get("path", ""), path):
                    continue
                key = (stat.st_ino, stat.st_mtime_ns, index)
                times = rule.get("times", 1)
                if 0 <= times <= self.used.get(key, 0):
                    continue
                self.used[key] = self.used.get(key, 0) + 1
                return rule["action"]
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    expects_continue = False

    def log_message(self, *args):
        pass  # requests go to the JSON log

    def handle_expect_100(self):
        # Answer "100 Continue" only once the body is really wanted, so that an
        # injected error reaches a client that waits for it before uploading.
        self.expects_continue = True
        return True

    def do_ANY(self):
        self.sent = 0
        self.request_bytes = 0
        self.head_sent = False
        action = self.server.rules.match(self.server.listener, self.command, self.path)
        record = {
            "listener": self.server.listener, "method": self.command, "path": self.path,
            "authorization": "Authorization" in self.headers, "range": self.headers.get("Range"),
            "fault": next((k for k in FAULTS if k in action), None) if action else None,
        }
        if action and "delay" in action:
            time.sleep(action["delay"])
        try:
            if action and "status" in action:
                record["status"] = self.inject_status(action)
            elif action and action.get("redirect_other"):
                record["status"] = self.redirect_other(action.get("query"))
            elif self.server.listener == "other" and self.command not in ("GET", "HEAD"):
                record["status"] = self.reply_error(405, {}, "UNSUPPORTED")
            else:
                record["status"] = self.forward(action or {})
        except (OSError, ValueError, http.client.HTTPException) as e:  # ValueError: a malformed chunk size
            record["error"] = f"{type(e).__name__}: {e}"
            self.close_connection = True
            if not self.head_sent:
                with contextlib.suppress(OSError):
                    record["status"] = self.reply_error(502, {}, "UNKNOWN", drain=False)
        finally:
            self.expects_continue = False
            record["bytes"] = self.sent
            record["request_bytes"] = self.request_bytes
            self.server.log(record)

    do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = do_ANY

    def continue_if_expected(self):
        if self.expects_continue:
            self.expects_continue = False
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def request_body(self, sink):
        """Streams the request body to sink as it arrives. Chunked bodies are
        passed on with their framing, so the upstream sees what was sent."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.continue_if_expected()
            while True:
                line = self.rfile.readline()
                sink(line)
                size = int(line.split(b";")[0], 16)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        line = self.rfile.readline()
                        sink(line)
                        if line in (b"\r\n", b"\n", b""):
                            return
                self.request_bytes += size
                self.copy_exact(size + 2, sink)  # with the chunk's CRLF
        length = int(self.headers.get("Content-Length", 0))
        if length:
            self.continue_if_expected()
            self.request_bytes += length
            self.copy_exact(length, sink)

    def copy_exact(self, n, sink):
        while n > 0:
            data = self.rfile.read(min(n, CHUNK))
            if not data:
                raise ConnectionError("client closed the connection mid-body")
            sink(data)
            n -= len(data)

    def discard_body(self):
        """Reads the body so the connection stays usable, unless the client is
        waiting for 100 Continue: then it never sends it and must not reuse the
        connection."""
        if self.expects_continue:
            self.close_connection = True
        else:
            self.request_body(lambda data: None)

    def send_head(self, status, headers, length=None):
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        if length is not None:
            self.send_header("Content-Length", str(length))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.head_sent = True

    def send_body(self, data):
        if self.command != "HEAD":
            self.wfile.write(data)
            self.sent += len(data)

    def reply_error(self, status, headers, code, drain=True):
        if drain:
            self.discard_body()
        body = json.dumps({"errors": [{"code": code, "message": "injected by fault_proxy"}]}).encode()
        self.send_head(status, list(headers.items()) + [("Content-Type", "application/json")], len(body))
        self.send_body(body)
        return status

    def inject_status(self, action):
        status = action["status"]
        code = action.get("code", ERROR_CODES.get(status, "UNKNOWN"))
        return self.reply_error(status, action.get("headers", {}), code)

    def redirect_other(self, query=None):
        self.discard_body()
        location = f"http://{self.server.other_address}{self.path}"
        if query:
            location += ("&" if "?" in location else "?") + query
        self.send_head(307, [("Location", location)], 0)
        return 307

    def upstream_headers(self, ignore_range=False):
        dropped = HOP_BY_HOP | {"host"} | ({"range"} if ignore_range else set())
        headers = [(k, v) for k, v in self.headers.items() if k.lower() not in dropped]
        if self.server.listener == "other":
            headers = [(k, v) for k, v in headers if k.lower() != "authorization"]
        return [("Host", self.server.upstream)] + headers

    def send_upstream(self, headers, with_body):
        conn = http.client.HTTPConnection(self.server.upstream, timeout=60)
        conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        if with_body:
            # The upstream may answer (a 401, say) and stop reading before the
            # body ends; keep reading the client's body so its answer still gets
            # through, as it would without the proxy.
            upstream_reading = True

            def sink(data):
                nonlocal upstream_reading
                if upstream_reading:
                    try:
                        conn.send(data)
                    except OSError:
                        upstream_reading = False

            self.request_body(sink)
        return conn, conn.getresponse()

    def open_upstream(self, ignore_range=False):
        headers = self.upstream_headers(ignore_range)
        conn, resp = self.send_upstream(headers, with_body=True)
        creds = self.server.upstream_creds
        if self.server.listener == "other" and resp.status == 401 and creds:
            challenge = resp.getheader("WWW-Authenticate", "")
            resp.read()
            conn.close()
            headers.append(("Authorization", upstream_authorization(challenge, creds)))
            conn, resp = self.send_upstream(headers, with_body=False)
        return conn, resp

    def forward(self, action):
        conn, resp = self.open_upstream(action.get("ignore_range", False))
        try:
            headers = []
            for name, value in resp.getheaders():
                lower = name.lower()
                if lower in HOP_BY_HOP or lower == "transfer-encoding":
                    continue
                if lower == "location":
                    value = value.replace(f"http://{self.server.upstream}", f"http://{self.server.address}", 1)
                if lower == "content-length" and self.command != "HEAD":
                    continue  # set again below from the body actually sent
                headers.append((name, value))
            if self.command == "HEAD" or resp.status in (204, 304):
                self.send_head(resp.status, headers)
            elif any(k in action for k in ("corrupt", "replace_body", "oversize")):
                self.send_modified(resp, headers, action)
            else:
                self.send_streamed(resp, headers, action.get("drop_after"))
            return resp.status
        finally:
            conn.close()

    def send_modified(self, resp, headers, action):
        body = resp.read()
        if "replace_body" in action:
            body = action["replace_body"].encode()
        if "oversize" in action:
            body += b" " * max(0, action["oversize"] - len(body))
        if action.get("corrupt") and body:
            middle = len(body) // 2
            body = body[:middle] + bytes([body[middle] ^ 1]) + body[middle + 1:]
        self.send_head(resp.status, headers, len(body))
        if "drop_after" in action:
            # The length announced, then fewer bytes: a modified body cut short.
            self.send_body(body[:action["drop_after"]])
            self.close_connection = True
            return
        self.send_body(body)

    def send_streamed(self, resp, headers, drop_after):
        chunked = resp.length is None
        if chunked:
            headers.append(("Transfer-Encoding", "chunked"))
        self.send_head(resp.status, headers, resp.length)
        while data := resp.read(CHUNK):
            piece = data if drop_after is None else data[:max(0, drop_after - self.sent)]
            self.wfile.write(b"%x\r\n%s" % (len(data), piece) if chunked else piece)
            self.sent += len(piece)
            if len(piece) < len(data):
                self.close_connection = True
                return
            if chunked:
                self.wfile.write(b"\r\n")
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


def upstream_authorization(challenge, creds):
    basic = "Basic " + base64.b64encode(creds.encode()).decode()
    if not challenge.lower().startswith("bearer"):
        return basic
    params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
    query = urlencode({k: params[k] for k in ("service", "scope") if k in params})
    request = urllib.request.Request(f"{params['realm']}?{query}", headers={"Authorization": basic})
    with urllib.request.urlopen(request, timeout=30) as reply:
        return "Bearer " + json.load(reply)["token"]


class Listener(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name, shared):
        super().__init__(("127.0.0.1", 0), Handler)
        self.listener = name
        self.__dict__.update(shared)

    def log(self, record):
        with self.log_lock, open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--upstream", required=True, help="HOST:PORT of the registry")
    parser.add_argument("--rules", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--port-file", required=True)
    args = parser.parse_args()
    shared = {
        "upstream": args.upstream, "rules": Rules(args.rules), "log_path": args.log,
        "log_lock": threading.Lock(), "upstream_creds": os.environ.get("FAULT_PROXY_UPSTREAM_CREDS"),
    }
    main_listener, other = Listener("main", shared), Listener("other", shared)
    main_address = f"127.0.0.1:{main_listener.server_address[1]}"
    other_address = f"localhost:{other.server_address[1]}"
    for listener, address in ((main_listener, main_address), (other, other_address)):
        listener.address, listener.other_address = address, other_address
    with open(args.port_file + ".tmp", "w") as f:
        f.write(f"{main_listener.server_address[1]} {other.server_address[1]}\n")
    os.replace(args.port_file + ".tmp", args.port_file)
    threading.Thread(target=other.serve_forever, daemon=True).start()
    main_listener.serve_forever()


if __name__ == "__main__":
    main()
