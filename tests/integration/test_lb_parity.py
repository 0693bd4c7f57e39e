"""marathon-lb parity in a real HAProxy 2.6 started from `deploykit lb render --ssl-certs`: TLS with SNI and
HTTP/2, redirect to https, HSTS, basic auth, source-network allow lists, Marathon-derived HAProxy checks,
service-port frontends for vhost apps, retries that never repeat an app's own 500, and marathon-lb's
operational endpoints (/_haproxy_health_check, stats + Prometheus, X-Marathon-App-Id).

Certificates are self-signed, made by the test with openssl; clients are curl and Python's ssl.
"""

from __future__ import annotations

import csv
import http.server
import io
import json
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.harness.common import free_port, require_binary, wait_until

pytestmark = pytest.mark.integration

DEPLOYKIT = [str(Path(sys.executable).parent / "deploykit")]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        srv: Backend = self.server  # type: ignore[assignment]
        if self.path != "/health":
            srv.hits += 1
        status = srv.health_status if self.path == "/health" else srv.status
        body = f"{srv.name} {self.path}".encode()
        self.send_response(status)
        if self.path == "/" and srv.location:
            self.send_header("Location", srv.location)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args) -> None:
        pass


class Backend(http.server.ThreadingHTTPServer):
    """A task: answers `status` with '<name> <path>' (and /health with `health_status`), counts requests."""

    daemon_threads = True

    def __init__(self, name: str, status: int = 200, health_status: int = 200, location: str = ""):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.name, self.status, self.health_status, self.location, self.hits = name, status, health_status, location, 0
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def handle_error(self, request, client_address) -> None:
        pass

    @property
    def port(self) -> int:
        return self.server_address[1]


def _cert(folder: Path, name: str, cn: str) -> Path:
    """A self-signed certificate + key in one PEM file, as HAProxy's `crt` wants it."""
    key, crt, pem = folder / f"{name}.key.tmp", folder / f"{name}.crt.tmp", folder / f"{name}.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(crt),
                    "-days", "2", "-subj", f"/CN={cn}", "-addext", f"subjectAltName=DNS:{cn}"],
                   check=True, capture_output=True, timeout=60)
    pem.write_bytes(crt.read_bytes() + key.read_bytes())
    key.unlink()
    crt.unlink()
    return pem


def _task(tid: str, port: int) -> dict:
    return {"id": tid, "host": "127.0.0.1", "ports": [port], "state": "TASK_RUNNING",
            "healthCheckResults": [{"alive": True}]}


def _app(app_id: str, labels: dict, service_port: int, tasks: list[dict], checks: list[dict] | None = None) -> dict:
    return {"id": app_id, "labels": {"HAPROXY_GROUP": "external", **labels}, "instances": len(tasks),
            "portDefinitions": [{"port": service_port}], "healthChecks": checks or [], "tasks": tasks}


def _curl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["curl", "-s", "-k", "--max-time", "5", *args], capture_output=True, text=True, timeout=15)


def _sni_cert(port: int, server_name: str) -> bytes:
    """The certificate HAProxy presents for `server_name` (DER)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            ctx.wrap_socket(raw, server_hostname=server_name) as tls:
        return tls.getpeercert(binary_form=True)


def _der(pem: Path) -> bytes:
    text = pem.read_text()
    return ssl.PEM_cert_to_DER_cert(text[: text.index("-----END CERTIFICATE-----") + 25])


def _stat(inst, backend: str) -> list[dict]:
    rows = csv.DictReader(io.StringIO(inst.stats("show stat").lstrip("# ")))
    return [r for r in rows if r["pxname"] == backend and r["svname"] not in ("FRONTEND", "BACKEND")]


def test_marathon_lb_features_through_a_live_haproxy(haproxy_factory, tmp_path):
    binary = require_binary("haproxy")
    require_binary("curl")
    require_binary("openssl")
    inst = haproxy_factory()
    certs = tmp_path / "certs"
    certs.mkdir()
    default_pem = _cert(certs, "default", "default.test")  # the folder is the operator's --ssl-certs
    secure_pem = _cert(tmp_path, "secure", "secure.example.com")  # an app's HAPROXY_0_SSL_CERT
    password_hash = subprocess.run(["openssl", "passwd", "-6", "s3cret"], capture_output=True, text=True,
                                   check=True).stdout.strip()

    web = [Backend("web1"), Backend("web2"), Backend("web-sick", health_status=503)]
    secure, auth, private = Backend("secure"), Backend("auth"), Backend("private")
    failing = Backend("failing", status=500)
    alive = Backend("alive")
    dead_port = free_port()  # nothing listens: connections are refused
    rewrite = Backend("rewrite", location="/login")
    web_sp = free_port()
    marathon_http = [{"protocol": "MESOS_HTTP", "path": "/health", "portIndex": 0, "intervalSeconds": 1,
                      "timeoutSeconds": 1, "maxConsecutiveFailures": 1}]
    apps = [
        _app("/web", {"HAPROXY_0_VHOST": "web.example.com"}, web_sp,
             [_task(f"w{i}", b.port) for i, b in enumerate(web)], marathon_http),
        _app("/secure", {"HAPROXY_0_VHOST": "secure.example.com", "HAPROXY_0_REDIRECT_TO_HTTPS": "true",
                         "HAPROXY_0_USE_HSTS": "true", "HAPROXY_0_SSL_CERT": str(secure_pem)}, free_port(),
             [_task("s1", secure.port)]),
        _app("/auth", {"HAPROXY_0_VHOST": "auth.example.com", "HAPROXY_0_AUTH": f"ops:alice:{password_hash}"},
             free_port(), [_task("a1", auth.port)]),
        _app("/private", {"HAPROXY_0_VHOST": "private.example.com", "HAPROXY_0_NETWORK_ALLOWED": "127.0.0.1/32"},
             free_port(), [_task("p1", private.port)]),
        _app("/failing", {"HAPROXY_0_VHOST": "failing.example.com"}, free_port(), [_task("f1", failing.port)]),
        _app("/flaky", {"HAPROXY_0_VHOST": "flaky.example.com", "DEPLOYKIT_0_CHECK_INTERVAL_MS": "3600000"},
             free_port(), [_task("d1", dead_port), _task("d2", alive.port)]),
        _app("/rewrite", {"HAPROXY_0_VHOST": "rewrite.example.com", "HAPROXY_0_HTTP_BACKEND_PROXYPASS_PATH": "/app",
                          "HAPROXY_0_HTTP_BACKEND_REVPROXY_PATH": "/app"}, free_port(), [_task("r1", rewrite.port)]),
    ]
    apps_file = tmp_path / "apps.json"
    apps_file.write_text(json.dumps({"apps": apps}))
    http_port, https_port, stats_port, appid_port = free_port(), free_port(), free_port(), free_port()
    env_dir = tmp_path / "envs"
    env_dir.mkdir()
    (env_dir / "itest.json").write_text(json.dumps({
        "name": "itest", "json_class": "Chef::Environment", "chef_type": "environment",
        "default_attributes": {"deploykit": {
            "marathon": {"urls": ["http://127.0.0.1:1"]},
            "haproxy": {"config": str(inst.config_path), "stats_socket": str(inst.stats_socket),
                        "http_port": http_port, "https_port": https_port, "stats_port": stats_port,
                        "app_id_port": appid_port, "bind_address": "127.0.0.1", "groups": ["external"]}}}}))
    proc = subprocess.run([*DEPLOYKIT, "lb", "render", "--apps-json", str(apps_file), "--env", "itest", "--env-dir",
                           str(env_dir), "--ssl-certs", str(certs), "--strict", "--out", str(inst.config_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = inst.config_path.read_text()
    # the check marathon-lb derives from the Marathon health check: path, expectation, interval, falls
    assert "    option httpchk GET /health\n    http-check expect status 200-399\n    timeout check 1000ms" in text
    assert "default-server check inter 1000ms rise 2 fall 2" in text
    check = subprocess.run([binary, "-c", "-q", "-f", str(inst.config_path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    inst.start(text)

    https = f"https://web.example.com:{https_port}/"
    resolve = ["--resolve", f"web.example.com:{https_port}:127.0.0.1"]
    wait_until(lambda: _curl(*resolve, https).stdout.startswith("web"), 10, "https routed")
    # HTTP/2 negotiated by ALPN, routed by Host like http
    h2 = _curl("--http2", *resolve, "-w", " %{http_version}", https)
    assert h2.stdout.endswith(" 2") and h2.stdout.startswith("web"), h2
    # SNI picks the app's own certificate; other names get the operator's default
    assert _sni_cert(https_port, "secure.example.com") == _der(secure_pem)
    assert _sni_cert(https_port, "web.example.com") == _der(default_pem)

    # redirect to https: 301 on http, served on https (with HSTS)
    red = _curl("-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", "-H", "Host: secure.example.com",
                f"http://127.0.0.1:{http_port}/x")
    assert red.stdout == f"301 https://secure.example.com:{https_port}/x", red.stdout
    served = _curl("-i", "--resolve", f"secure.example.com:{https_port}:127.0.0.1",
                   f"https://secure.example.com:{https_port}/x")
    assert served.stdout.startswith("HTTP/2 200") and "secure /x" in served.stdout, served.stdout
    assert "strict-transport-security: max-age=15768000" in served.stdout.lower()

    def code(*args: str) -> str:
        return _curl("-o", "/dev/null", "-w", "%{http_code}", *args).stdout

    http = f"http://127.0.0.1:{http_port}/"
    # basic auth from HAPROXY_0_AUTH: refused without, accepted with the credentials
    assert code("-H", "Host: auth.example.com", http) == "401"
    assert code("-H", "Host: auth.example.com", "-u", "alice:wrong", http) == "401"
    assert code("-H", "Host: auth.example.com", "-u", "alice:s3cret", http) == "200"
    # NETWORK_ALLOWED: 127.0.0.1 allowed, another loopback source (127.0.0.2) refused
    assert code("-H", "Host: private.example.com", http) == "200"
    assert code("--interface", "127.0.0.2", "-H", "Host: private.example.com", http) == "403"
    assert code("--interface", "127.0.0.2", "-H", "Host: web.example.com", http) == "200"

    # retries: an app's own 500 reaches the client and is sent once; a refused connection is retried
    assert [code("-H", "Host: failing.example.com", http) for _ in range(5)] == ["500"] * 5
    assert failing.hits == 5
    assert [code("-H", "Host: flaky.example.com", http) for _ in range(6)] == ["200"] * 6
    assert [code("-X", "POST", "-H", "Host: flaky.example.com", http) for _ in range(4)] == ["200"] * 4
    dead = {r["svname"]: r for r in _stat(inst, "flaky_0")}["s1"]
    assert int(dead["wredis"]) + int(dead["wretr"]) >= 10  # each request that met the dead task went on to s2

    # proxypass strips the prefix on the way in; revproxy puts it back on Location
    rw = _curl("-i", "-H", "Host: rewrite.example.com", f"http://127.0.0.1:{http_port}/app/")
    assert "rewrite /" in rw.stdout and "location: /app/login" in rw.stdout.lower(), rw.stdout

    # the vhost app's service port is bound too (east-west), to the same backend
    assert _curl(f"http://127.0.0.1:{web_sp}/x").stdout in ("web1 /x", "web2 /x")
    # the HAProxy-side check is real: the task whose /health answers 503 is taken out
    wait_until(lambda: {r["svname"]: r["status"] for r in _stat(inst, "web_0")}.get("s3") == "DOWN", 10,
               "sick task marked down by HAProxy's own check")
    assert {r["svname"]: r["check_status"] for r in _stat(inst, "web_0")}["s1"] == "L7OK"
    assert {_curl("-H", "Host: web.example.com", http).stdout for _ in range(8)} == {"web1 /", "web2 /"}

    # marathon-lb's operational endpoints
    assert code(f"http://127.0.0.1:{http_port}/_haproxy_health_check") == "200"
    assert code(f"http://127.0.0.1:{stats_port}/_haproxy_health_check") == "200"
    assert "haproxy_process_" in _curl(f"http://127.0.0.1:{stats_port}/metrics").stdout
    assert code(f"http://127.0.0.1:{stats_port}/haproxy?stats") == "200"
    assert _curl("-H", "X-Marathon-App-Id: /auth", "-u", "alice:s3cret", f"http://127.0.0.1:{appid_port}/").stdout \
        == "auth /"
    assert inst.reload_count() == 0
