"""A real Docker registry 2.8 (Debian `docker-registry`) on a free 127.0.0.1 port.

`registry`: open, plain HTTP (what an environment with `registry.insecure: true` talks to).
`auth_registry`: the same with htpasswd (Basic) auth, user/password in `.username/.password`.
`token_registry`: Bearer token auth, the scheme Harbor/GitLab/Docker Hub use: the registry
verifies RS256 JWTs against a self-signed certificate (made with the openssl CLI); a small token
service in this process checks Basic credentials and signs tokens for the requested scope.
All are session-scoped; each is stopped (its process group killed) at teardown.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import secrets
import ssl
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.common import free_port, require_binary, spawn, stop_group, wait_until


class Registry:
    def __init__(self, workdir: Path, *, auth: tuple[str, str] | None = None, token: TokenService | None = None,
                 tls: bool = False):
        self.workdir = workdir
        self.tls = tls
        self.port = free_port()
        self.auth = auth
        self.proc: subprocess.Popen | None = None
        config = [
            "version: 0.1",
            "log: {level: warn, accesslog: {disabled: true}}",
            f"storage: {{filesystem: {{rootdirectory: {workdir / 'data'}}}, delete: {{enabled: true}}}}",
            f"http: {{addr: 127.0.0.1:{self.port}}}",
        ]
        if tls:  # a self-signed certificate for 127.0.0.1, as on-premises registries often have
            crt, key = workdir / "tls.crt", workdir / "tls.key"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                            str(crt), "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                           check=True, capture_output=True, timeout=60)
            config[-1] = f"http: {{addr: 127.0.0.1:{self.port}, tls: {{certificate: {crt}, key: {key}}}}}"
        if auth:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                import crypt  # bcrypt via libxcrypt (the registry's htpasswd wants bcrypt); gone in 3.13

                hashed = crypt.crypt(auth[1], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=1 << 4))
            (workdir / "htpasswd").write_text(f"{auth[0]}:{hashed}\n")
            config.append(f"auth: {{htpasswd: {{realm: deploykit-tests, path: {workdir / 'htpasswd'}}}}}")
        if token:
            self.auth = token.auth
            config.append(f"auth: {{token: {{realm: '{token.realm}', service: {token.service}, "
                          f"issuer: {token.issuer}, rootcertbundle: {token.cert}}}}}")
        self.config = workdir / "registry.yml"
        self.config.write_text("\n".join(config) + "\n")

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def username(self) -> str | None:
        return self.auth[0] if self.auth else None

    @property
    def password(self) -> str | None:
        return self.auth[1] if self.auth else None

    def _answers(self) -> bool:
        scheme, context = ("https", ssl._create_unverified_context()) if self.tls else ("http", None)
        try:
            urllib.request.urlopen(f"{scheme}://{self.host}/v2/", timeout=1, context=context).close()
        except urllib.error.HTTPError as exc:
            return exc.code == 401  # up, asking for credentials
        return True

    def start(self) -> None:
        binary = require_binary("docker-registry")
        self.proc = spawn([binary, "serve", str(self.config)], self.workdir / "registry.log")
        wait_until(self._answers, 30, "docker-registry")

    def stop(self) -> None:
        stop_group(self.proc)
        self.proc = None


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """Docker token auth: GET /token?service=&scope= with Basic credentials -> {"token": <RS256 JWT>}."""

    service = "dk-test-registry"
    issuer = "dk-test-token-issuer"

    def __init__(self, workdir: Path, auth: tuple[str, str]):
        self.auth = auth
        self.key, self.cert = workdir / "token.key", workdir / "token.crt"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(self.key),
                        "-out", str(self.cert), "-days", "2", "-subj", "/CN=dk-token-issuer"],
                       check=True, capture_output=True, timeout=60)
        der = subprocess.run(["openssl", "x509", "-in", str(self.cert), "-outform", "DER"], check=True,
                             capture_output=True, timeout=30).stdout
        self.x5c = base64.b64encode(der).decode()
        self.issued = 0
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                expected = "Basic " + base64.b64encode(f"{service.auth[0]}:{service.auth[1]}".encode()).decode()
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.end_headers()
                    return
                body = json.dumps({"token": service.sign(service.auth[0], query.get("scope", []))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.realm = f"http://127.0.0.1:{self.server.server_address[1]}/token"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, subject: str, scopes: list[str]) -> str:
        access = []
        for scope in scopes:
            for one in scope.split(" "):
                kind, _, rest = one.partition(":")
                name, _, actions = rest.rpartition(":")
                access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + 600, "nbf": now - 60,
                  "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", str(self.key)], input=signing_input.encode(),
                             check=True, capture_output=True, timeout=30).stdout
        self.issued += 1
        return f"{signing_input}.{_b64url(sig)}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def _running(prefix: str, *, token_auth: tuple[str, str] | None = None, **kw) -> Iterator[Registry]:
    """A started Registry in a fresh temp dir (behind a token service with `token_auth`), stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        token = TokenService(Path(tmp), token_auth) if token_auth else None
        reg = Registry(Path(tmp), token=token, **kw)
        if token is not None:
            reg.token_service = token
        try:
            reg.start()
            yield reg
        finally:
            reg.stop()
            if token is not None:
                token.close()


@pytest.fixture(scope="session")
def registry():
    with _running("dk-registry-") as reg:
        yield reg


@pytest.fixture(scope="session")
def auth_registry():
    with _running("dk-registry-auth-", auth=("ci-bot", secrets.token_urlsafe(12))) as reg:
        yield reg


@pytest.fixture(scope="session")
def token_registry():
    """A registry behind Bearer token auth; `.token_service.issued` counts the tokens handed out."""
    require_binary("openssl")
    with _running("dk-registry-token-", token_auth=("ci-bot", secrets.token_urlsafe(12))) as reg:
        yield reg


@pytest.fixture(scope="session")
def tls_registry():
    """A registry serving HTTPS with a self-signed certificate (needs `registry.insecure` to be used)."""
    require_binary("openssl")
    with _running("dk-registry-tls-", tls=True) as reg:
        yield reg
