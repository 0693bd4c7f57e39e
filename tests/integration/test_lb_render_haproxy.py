"""`deploykit lb render` output in a real HAProxy 2.6: valid, complete, routes by Host, survives bad labels."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.harness.common import NamedHTTPServer, free_port, require_binary, wait_until

pytestmark = pytest.mark.integration

DEPLOYKIT = [str(Path(sys.executable).parent / "deploykit")]


@pytest.fixture
def http_backends():
    """Three tiny local HTTP servers answering '<name> <path>'."""
    servers = [NamedHTTPServer(name, echo_path=True) for name in ("alpha", "beta", "gamma")]
    yield {s.name: s.port for s in servers}
    for s in servers:
        s.close()


def _task(tid: str, port: int) -> dict:
    return {"id": tid, "appId": "x", "host": "127.0.0.1", "ports": [port], "state": "TASK_RUNNING",
            "healthCheckResults": [{"alive": True, "consecutiveFailures": 0, "instanceId": tid}]}


def _app(app_id: str, labels: dict, service_port: int, tasks: list[dict]) -> dict:
    return {"id": app_id, "labels": {"HAPROXY_GROUP": "external", **labels}, "instances": len(tasks),
            "portDefinitions": [{"port": service_port, "protocol": "tcp"}],
            "healthChecks": [{"protocol": "MESOS_HTTP", "path": "/", "portIndex": 0}], "tasks": tasks}


EVIL_LABELS = [
    {"HAPROXY_0_VHOST": "evil.example.com\n    use_backend alpha_0"},
    {"HAPROXY_0_VHOST": "evil.example.com # x"},
    {"HAPROXY_0_PATH": "/x } || { always_true"},
    {"HAPROXY_0_BALANCE": "roundrobin\nlisten stolen\n    bind :1"},
    {"HAPROXY_0_MODE": "http\r\n"},
    {"HAPROXY_0_PORT": "1 bind :2"},
    {"DEPLOYKIT_0_CHECK_PATH": "/health\n    http-request deny"},
    {"DEPLOYKIT_0_CHECK_RISE": "2 fall 1"},
    {"HAPROXY_GROUP": "external\nfrontend x"},
]


def _env_dir(tmp: Path, http_port: int, stats: Path) -> Path:
    env_dir = tmp / "envs"
    env_dir.mkdir()
    (env_dir / "itest.json").write_text(json.dumps({
        "name": "itest", "json_class": "Chef::Environment", "chef_type": "environment",
        "default_attributes": {"deploykit": {
            "marathon": {"urls": ["http://127.0.0.1:1"]},
            "haproxy": {"config": str(tmp / "haproxy.cfg"), "stats_socket": str(stats), "http_port": http_port,
                        "app_id_port": 0, "bind_address": "127.0.0.1", "groups": ["external"]}}}}))
    return env_dir


def _get(port: int, host: str, path: str = "/") -> tuple[int, str]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Host": host})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _tcp_get(port: int) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /tcp HTTP/1.0\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(4096):
            data += chunk
    return data.decode().split("\r\n\r\n", 1)[1]


def test_rendered_config_routes_by_host_and_skips_bad_apps(haproxy_factory, http_backends, tmp_path):
    binary = require_binary("haproxy")
    inst = haproxy_factory()  # paths and ports only; started below from the rendered file
    tcp_port = free_port()
    apps = [
        _app("/shop/alpha", {"HAPROXY_0_VHOST": "alpha.example.com", "DEPLOYKIT_0_CHECK_PATH": "/health"}, free_port(),
             [_task("a1", http_backends["alpha"])]),
        _app("/shop/beta", {"HAPROXY_0_VHOST": "beta.example.com,www.beta.example.com",
                            "HAPROXY_0_FRONTEND_HEAD": "listen pwned\n bind :1"}, free_port(),
             [_task("b1", http_backends["beta"])]),
        _app("/shop/beta-api", {"HAPROXY_0_VHOST": "beta.example.com", "HAPROXY_0_PATH": "/api"}, free_port(),
             [_task("g1", http_backends["gamma"])]),
        _app("/raw", {}, tcp_port, [_task("r1", http_backends["gamma"])]),
        _app("/sick", {"HAPROXY_0_VHOST": "sick.example.com"}, free_port(),
             [{**_task("s1", http_backends["alpha"]), "healthCheckResults": [{"alive": False}]}]),
    ]
    apps += [_app(f"/evil{i}", labels, 11000 + i, [_task(f"e{i}", http_backends["alpha"])])
             for i, labels in enumerate(EVIL_LABELS)]
    apps_file = tmp_path / "apps.json"
    apps_file.write_text(json.dumps({"apps": apps}))
    env_dir = _env_dir(tmp_path, inst.http_port, inst.stats_socket)
    cfg = inst.config_path
    proc = subprocess.run([*DEPLOYKIT, "lb", "render", "--apps-json", str(apps_file), "--env", "itest",
                           "--env-dir", str(env_dir), "--out", str(cfg)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    skipped = {line.split()[1].rstrip(":") for line in proc.stderr.splitlines() if line.startswith("skipped ")}
    assert skipped == {f"/evil{i}" for i in range(len(EVIL_LABELS))}
    assert "ignored /shop/beta HAPROXY_0_FRONTEND_HEAD" in proc.stderr
    text = cfg.read_text()
    assert "pwned" not in text and "stolen" not in text and "deny" not in text
    check = subprocess.run([binary, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr

    inst.start(text)  # HAProxy from the rendered file alone
    wait_until(lambda: _get(inst.http_port, "alpha.example.com")[0] == 200, 10, "alpha routed")
    assert _get(inst.http_port, "alpha.example.com") == (200, "alpha /")
    assert _get(inst.http_port, "ALPHA.example.com:80") == (200, "alpha /")
    assert _get(inst.http_port, "beta.example.com") == (200, "beta /")
    assert _get(inst.http_port, "www.beta.example.com", "/x") == (200, "beta /x")
    assert _get(inst.http_port, "beta.example.com", "/api/v1") == (200, "gamma /api/v1")
    assert _get(inst.http_port, "nobody.example.com")[0] == 503
    assert _get(inst.http_port, "sick.example.com")[0] == 503  # unhealthy in Marathon: not routed
    assert _get(inst.http_port, "evil.example.com")[0] == 503
    assert _tcp_get(tcp_port) == "gamma /tcp"

    # spare slots are real servers: the Runtime API fills one without a reload
    answer = inst.stats(f"set server shop_alpha_0/s2 addr 127.0.0.1 port {http_backends['beta']}")
    assert "IP changed from '0.0.0.0' to '127.0.0.1'" in answer
    assert inst.stats("set server shop_alpha_0/s2 state ready").strip() == ""
    wait_until(lambda: {_get(inst.http_port, "alpha.example.com")[1] for _ in range(6)} == {"alpha /", "beta /"},
               10, "both servers in rotation")
    assert inst.reload_count() == 0


def test_wildcard_vhost_routes_any_name_under_it_and_exact_names_win(haproxy_factory, http_backends, tmp_path):
    """`*.example.com` (marathon-lb's wildcard vhost) routes every name under example.com, in a real HAProxy;
    an exact name of another app wins over it whatever the app ids' order, and the bare domain is not matched."""
    inst = haproxy_factory()
    apps = [
        _app("/a/wild", {"HAPROXY_0_VHOST": "*.example.com,wild.test"}, free_port(),
             [_task("w1", http_backends["alpha"])]),
        _app("/z/api", {"HAPROXY_0_VHOST": "api.example.com"}, free_port(), [_task("a1", http_backends["beta"])]),
    ]
    apps_file = tmp_path / "apps.json"
    apps_file.write_text(json.dumps({"apps": apps}))
    env_dir = _env_dir(tmp_path, inst.http_port, inst.stats_socket)
    proc = subprocess.run([*DEPLOYKIT, "lb", "render", "--apps-json", str(apps_file), "--env", "itest",
                           "--env-dir", str(env_dir), "--strict", "--out", str(inst.config_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    inst.start(inst.config_path.read_text())
    wait_until(lambda: _get(inst.http_port, "api.example.com")[0] == 200, 10, "api routed")
    assert _get(inst.http_port, "api.example.com") == (200, "beta /")
    assert _get(inst.http_port, "shop.example.com") == (200, "alpha /")
    assert _get(inst.http_port, "a.b.EXAMPLE.com:80") == (200, "alpha /")
    assert _get(inst.http_port, "wild.test") == (200, "alpha /")
    assert _get(inst.http_port, "example.com")[0] == 503
    assert _get(inst.http_port, "notexample.com")[0] == 503


def test_lb_render_cli_errors(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = subprocess.run([*DEPLOYKIT, "lb", "render", "--apps-json", str(bad)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr
    wrong = tmp_path / "wrong.json"
    wrong.write_text('{"app": []}')
    proc = subprocess.run([*DEPLOYKIT, "lb", "render", "--apps-json", str(wrong)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "expected a list of app objects" in proc.stderr
    ok = tmp_path / "ok.json"
    ok.write_text(json.dumps({"apps": [_app("/evil", EVIL_LABELS[0], 10001, [])]}))
    proc = subprocess.run([*DEPLOYKIT, "lb", "render", "--apps-json", str(ok), "--strict", "--out",
                           str(tmp_path / "x.cfg")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "/evil" in proc.stderr


def _fuzz_value(rng, key: str) -> str:
    nasty = "\n\r\t #{}'\"$\\;!%()[]*&|<>"
    plain = "abcdefghijklmnopqrstuvwxyz0123456789.-/:_,"
    good = {
        "VHOST": ["a.example.com", "b.example.com,c.example.com", "x-y.example.org"],
        "PATH": ["/", "/api", "/v1/items", "/a%20b"],
        "MODE": ["http", "tcp", "HTTP"],
        "BALANCE": ["roundrobin", "leastconn", "source"],
        "PORT": ["12001", "65535", "1"],
        "STICKY": ["true", "false"],
        "REDIRECT_TO_HTTPS": ["true", "0"],
        "CHECK_PATH": ["/health", "/"],
        "CHECK_INTERVAL_MS": ["500", "2000"],
        "CHECK_RISE": ["1", "3"],
        "CHECK_FALL": ["2", "9"],
    }[key]
    value = rng.choice(good)
    if rng.random() < 0.6:  # splice nasty characters into a plausible value
        for _ in range(rng.randrange(1, 4)):
            pos = rng.randrange(len(value) + 1)
            value = value[:pos] + rng.choice(nasty + plain) + value[pos:]
    return value


def test_fuzzed_labels_never_break_the_config(tmp_path):
    """Whatever the labels say, the rendered file is valid and holds only the sections the model has."""
    import random

    from deploykit.lb.model import build_model
    from deploykit.lb.render import render_config
    from deploykit.lb.settings import LbSettings

    binary = require_binary("haproxy")
    keys = ["VHOST", "PATH", "MODE", "BALANCE", "PORT", "STICKY", "REDIRECT_TO_HTTPS"]
    checks = ["CHECK_PATH", "CHECK_INTERVAL_MS", "CHECK_RISE", "CHECK_FALL"]
    for seed in range(3):
        rng = random.Random(seed)
        apps = []
        for i in range(150):
            labels = {}
            for key in rng.sample(keys, rng.randrange(0, 4)):
                labels[f"HAPROXY_0_{key}"] = _fuzz_value(rng, key)
            for key in rng.sample(checks, rng.randrange(0, 3)):
                labels[f"DEPLOYKIT_0_{key}"] = _fuzz_value(rng, key)
            tasks = [_task(f"t{i}", 30000 + i)]
            if i % 10 == 0:
                tasks.append({**_task(f"v6-{i}", 30000 + i), "host": "fd00::1"})
            apps.append(_app(f"/fuzz/app{i}", labels, 20000 + i, tasks))
        model = build_model(apps, LbSettings(http_port=free_port(), bind_address="127.0.0.1", app_id_port=0,
                                             stats_socket=str(tmp_path / "s.sock"),
                                             state_file=str(tmp_path / "state")))
        assert model.rejected and len(model.backends) > 20, (len(model.rejected), len(model.backends))
        cfg = tmp_path / f"fuzz{seed}.cfg"
        text = render_config(model)
        cfg.write_text(text)
        check = subprocess.run([binary, "-c", "-q", "-f", str(cfg)], capture_output=True, text=True, timeout=60)
        assert check.returncode == 0, check.stdout + check.stderr
        sections = [line.split()[0] for line in text.splitlines() if line and not line[0].isspace()
                    and not line.startswith("#")]
        assert sections.count("backend") == len(model.backends)
        assert sections.count("frontend") == 1 + len(model.port_frontends)
        assert set(sections) <= {"global", "defaults", "frontend", "backend"}
        assert "[fd00::1]:" in text


def test_idle_keepalive_connection_survives_a_reload(haproxy_factory, http_backends, tmp_path):
    """A client's idle keep-alive connection open across a reload still gets its next answer.

    Without `option idle-close-on-response` the old worker closes idle connections at once on a
    soft stop, and a client that sends on one just then sees "connection closed without response"
    (seen once in 6,000 requests in the zero-drop test). With it, the old worker answers that
    request with "Connection: close" first.
    """
    import http.client

    inst = haproxy_factory()
    apps = [_app("/shop/alpha", {"HAPROXY_0_VHOST": "alpha.example.com"}, free_port(),
                 [_task("a1", http_backends["alpha"])])]
    apps_file = tmp_path / "apps.json"
    apps_file.write_text(json.dumps({"apps": apps}))
    env_dir = _env_dir(tmp_path, inst.http_port, inst.stats_socket)
    proc = subprocess.run([*DEPLOYKIT, "lb", "render", "--apps-json", str(apps_file), "--env", "itest",
                           "--env-dir", str(env_dir), "--out", str(inst.config_path)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    inst.start(inst.config_path.read_text())
    wait_until(lambda: _get(inst.http_port, "alpha.example.com")[0] == 200, 10, "alpha routed")

    conn = http.client.HTTPConnection("127.0.0.1", inst.http_port, timeout=5)
    try:
        conn.request("GET", "/first", headers={"Host": "alpha.example.com"})
        first = conn.getresponse()
        assert (first.status, first.read().decode()) == (200, "alpha /first")
        assert inst.reload()
        time.sleep(0.3)  # the old worker has begun its soft stop; our connection sits idle in it
        conn.request("GET", "/second", headers={"Host": "alpha.example.com"})  # same, now idle, connection
        second = conn.getresponse()
        assert (second.status, second.read().decode()) == (200, "alpha /second")
        assert second.getheader("Connection", "").lower() == "close"
    finally:
        conn.close()
