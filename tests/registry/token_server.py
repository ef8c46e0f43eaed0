#!/usr/bin/env python3
"""Token server for a docker-registry (distribution 2.8) run with `auth.token`.

GET /token?service=S&scope=repository:NAME:pull,push[&scope=...] with optional
HTTP Basic auth answers {"token", "access_token", "expires_in", "issued_at"}.
The ACL: alice ($REG_PASSWORD) may pull and push everywhere, bob
($REG_PASSWORD_BOB) may pull everywhere, anonymous may pull under public/.
Each request is appended to --log as one JSON line (account, requested and
granted scopes); passwords are never written anywhere. With --tokens FILE,
every token issued is appended to FILE, one a line: the canary test greps
imgbuild's outputs for them.

On start it creates --dir/token-key.pem and --dir/token-cert.pem (the
registry's rootcertbundle) unless they exist, then binds 127.0.0.1 on a free
port and writes that port to --port-file.
"""
import argparse
import base64
import datetime
import hmac
import json
import os
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

# distribution accepts a token until exp + 60 s (registry/auth/token Leeway).
# exp is moved back by as much so that the registry stops accepting a token
# exactly expires_in seconds after issue, which is what expiry tests rely on.
REGISTRY_LEEWAY = 60


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def load_or_create_key(directory):
    key_path = os.path.join(directory, "token-key.pem")
    cert_path = os.path.join(directory, "token-cert.pem")
    if os.path.exists(key_path) and os.path.exists(cert_path):
        key = serialization.load_pem_private_key(open(key_path, "rb").read(), None)
        return key, x509.load_pem_x509_certificate(open(cert_path, "rb").read())
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imgbuild test token issuer")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for path, data in ((key_path, pem_key), (cert_path, cert.public_bytes(serialization.Encoding.PEM))):
        with open(path + ".tmp", "wb") as f:
            f.write(data)
        os.replace(path + ".tmp", path)
    return key, cert


def allowed_actions(account, resource_type, name):
    if resource_type != "repository":
        return set()
    if account == "alice":
        return {"pull", "push"}
    if account == "bob" or name.startswith("public/"):
        return {"pull"}
    return set()


def parse_scope(scope):
    """type:name:actions, where only the name may contain colons."""
    resource_type, _, rest = scope.partition(":")
    name, _, actions = rest.rpartition(":")
    return resource_type, name, [a for a in actions.split(",") if a]


class TokenHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass  # one JSON line per request goes to --log instead

    def reply(self, status, body, headers=()):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def authenticate(self):
        """Returns (ok, account); account None means anonymous."""
        header = self.headers.get("Authorization")
        if header is None:
            return True, None
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return False, None
        try:
            user, _, password = base64.b64decode(value).decode().partition(":")
        except ValueError:
            return False, None
        expected = self.server.passwords.get(user)
        ok = expected is not None and hmac.compare_digest(password.encode(), expected.encode())
        return ok, user

    def do_GET(self):
        url = urlsplit(self.path)
        ok, account = self.authenticate()
        self.answer(url.path, parse_qs(url.query), ok, account)

    def do_POST(self):
        """The OAuth2 refresh-token grant: docker's identity tokens."""
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        token = form.get("refresh_token", [""])[0]
        ok = form.get("grant_type", [""])[0] == "refresh_token" and hmac.compare_digest(
            token.encode(), self.server.refresh_token.encode())
        self.answer(urlsplit(self.path).path, form, ok, "alice" if ok else None)

    def answer(self, path, query, ok, account):
        requested = [s for param in query.get("scope", []) for s in param.split()]
        record = {"path": path, "method": self.command, "account": account, "requested": requested, "granted": []}
        if path != "/token":
            record["status"] = 404
            self.reply(404, {"errors": [{"code": "NOT_FOUND", "message": "only /token is served"}]})
        elif not ok:
            record["status"] = 401
            self.reply(401, {"errors": [{"code": "UNAUTHORIZED", "message": "wrong user name, password or token"}]},
                       [("WWW-Authenticate", 'Basic realm="imgbuild test token server"')])
        elif query.get("service", [self.server.service])[0] != self.server.service:
            record["status"] = 400
            self.reply(400, {"errors": [{"code": "UNSUPPORTED", "message": "unknown service"}]})
        else:
            access = []
            for scope in requested:
                resource_type, name, actions = parse_scope(scope)
                allowed = allowed_actions(account, resource_type, name)
                granted = [a for a in actions if a in allowed]
                if granted:
                    access.append({"type": resource_type, "name": name, "actions": granted})
                    record["granted"].append(f"{resource_type}:{name}:{','.join(granted)}")
            token, issued_at = self.server.issue(account, access)
            record["status"] = 200
            self.reply(200, {"token": token, "access_token": token,
                             "expires_in": self.server.expires_in, "issued_at": issued_at})
        self.server.log(record)


class TokenServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, args):
        super().__init__(("127.0.0.1", 0), TokenHandler)
        self.service, self.issuer, self.expires_in = args.service, args.issuer, args.expires_in
        self.key, cert = load_or_create_key(args.dir)
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.passwords = {"alice": os.environ["REG_PASSWORD"], "bob": os.environ["REG_PASSWORD_BOB"]}
        # alice's identity token, as `docker login` stores for OAuth registries.
        self.refresh_token = os.environ["REG_IDENTITY_TOKEN"]
        self.log_path, self.tokens_path = args.log, args.tokens
        self.log_lock = threading.Lock()

    def issue(self, account, access):
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": self.x5c}
        claims = {
            "iss": self.issuer, "sub": account or "", "aud": self.service,
            "iat": now, "nbf": now, "exp": now + self.expires_in - REGISTRY_LEEWAY,
            "jti": uuid.uuid4().hex, "access": access,
        }
        signing_input = ".".join(b64url(json.dumps(part, separators=(",", ":")).encode())
                                 for part in (header, claims))
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        issued_at = datetime.datetime.fromtimestamp(now, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        token = signing_input + "." + b64url(signature)
        if self.tokens_path:
            with self.log_lock, open(self.tokens_path, "a") as f:
                f.write(token + "\n")
        return token, issued_at

    def log(self, record):
        record["time"] = time.strftime("%H:%M:%S")
        with self.log_lock, open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--expires-in", type=int, default=300)
    parser.add_argument("--log", required=True)
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--tokens", help="append every token issued to this file")
    args = parser.parse_args()
    server = TokenServer(args)
    with open(args.port_file + ".tmp", "w") as f:
        f.write(f"{server.server_address[1]}\n")
    os.replace(args.port_file + ".tmp", args.port_file)
    server.serve_forever()


if __name__ == "__main__":
    main()
