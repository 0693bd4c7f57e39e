"""lb.daemon pure helpers: JSON-line logs, settings from an environment file, metrics/healthz endpoint."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request

import pytest

from deploykit.envs import load_environment
from deploykit.lb.daemon import task_ids
from deploykit.lb.metrics import Metrics, MetricsServer
from deploykit.lb.model import build_model
from deploykit.lb.run import JsonLineFormatter
from deploykit.lb.settings import LbSettings, settings_from_environment


def test_json_line_formatter_carries_fields():
    record = logging.LogRecord("deploykit.lb", logging.WARNING, __file__, 1, "sync_held", (), None)
    record.fields = {"removed": 3, "servers": 4}
    doc = json.loads(JsonLineFormatter().format(record))
    assert doc["event"] == "sync_held" and doc["level"] == "warning"
    assert doc["removed"] == 3 and doc["servers"] == 4


def test_settings_from_local_environment(repo_root, tmp_path):
    env = load_environment("local", repo_root / "chef_attrs")
    s = settings_from_environment(env)
    assert s.http_port == 8000 and s.groups == ("external",)
    assert s.config.endswith("haproxy.cfg") and s.config.startswith("/")
    assert s.master_socket.startswith("/") and s.state_file.startswith("/")
    cfg = tmp_path / "h" / "haproxy.cfg"
    s2 = settings_from_environment(env, config_path=str(cfg), groups=("internal",))
    assert s2.config == str(cfg)
    assert s2.master_socket == str(cfg.parent / "master.sock")
    assert s2.stats_socket == str(cfg.parent / "stats.sock")
    assert s2.state_file == str(cfg.parent / "server-state")
    assert s2.groups == ("internal",)


def test_settings_take_server_slots_from_the_environment(tmp_path, repo_root):
    doc = json.loads((repo_root / "chef_attrs" / "local.json").read_text())
    doc["default_attributes"]["deploykit"]["haproxy"]["server_slots"] = 32
    (tmp_path / "local.json").write_text(json.dumps(doc))
    s = settings_from_environment(load_environment("local", tmp_path))
    assert s.min_slots == 32


def test_task_ids_of_model():
    apps = [
        {
            "id": "/a",
            "labels": {"HAPROXY_GROUP": "external"},
            "portDefinitions": [{"port": 10001}],
            "tasks": [{"id": "a.1", "host": "10.0.0.1", "ports": [31000], "state": "TASK_RUNNING"}],
        }
    ]
    assert task_ids(build_model(apps, LbSettings(groups=("external",)))) == {"a.1"}
    assert task_ids(None) == set()


def test_healthz_degraded_is_served_but_not_ok():
    metrics = Metrics()
    detail = {"status": "degraded", "degraded": ["last sync failed: connection refused"]}
    server = MetricsServer("127.0.0.1:0", metrics, lambda: (True, detail)).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/healthz", timeout=5) as resp:
            assert resp.status == 200
            body = json.loads(resp.read())
        assert body["ok"] is False and body["status"] == "degraded"
    finally:
        server.stop()


@pytest.mark.parametrize("healthy", [True, False])
def test_metrics_server_serves_metrics_and_healthz(healthy):
    metrics = Metrics()
    metrics.reloads.labels("ok").inc()
    server = MetricsServer("127.0.0.1:0", metrics, lambda: (healthy, {"leader": "m1:8080"})).start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        with urllib.request.urlopen(base + "/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert 'deploykit_lb_reloads_total{result="ok"} 1.0' in text
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=5) as resp:
                status, body = resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as err:
            status, body = err.code, json.loads(err.read())
        assert status == (200 if healthy else 503)
        assert body["ok"] is healthy and body["leader"] == "m1:8080"
    finally:
        server.stop()


def test_runtime_commands_serve_first_then_leave_and_force_health_up():
    from deploykit.lb.changes import ServerOp, runtime_commands

    ops = [
        ServerOp("be", "s1", "state", state="maint"),  # old task leaves
        ServerOp("be", "s2", "state", state="maint"),  # slot reused: out, move, in
        ServerOp("be", "s2", "addr", address="10.0.0.2", port=31002),
        ServerOp("be", "s2", "state", state="ready"),
        ServerOp("be", "s3", "state", state="drain"),  # being killed
    ]
    assert runtime_commands(ops) == [
        "set server be/s2 state maint",
        "set server be/s2 addr 10.0.0.2 port 31002",
        "set server be/s2 state ready",
        "set server be/s2 health up",
        "set server be/s1 state maint",
        "set server be/s3 state drain",
    ]


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["--zk", "http://zk1/marathon"], "--zk"),
        (["--resync-interval", "60"], "--resync-interval"),
        (["--env", "nosuch"], "--env"),
        (["--metrics-addr", "9090"], "--metrics-addr"),
        (["--metrics-addr", "localhost:http"], "--metrics-addr"),
    ],
)
def test_lb_run_rejects_bad_input_before_starting_anything(args, where, tmp_path, monkeypatch):
    from click.testing import CliRunner

    from deploykit.cli.lb_run_cmd import run

    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(run, ["--metrics-addr", "", "--haproxy-config", str(tmp_path / "h.cfg"), *args])
    assert result.exit_code == 2, result.output
    assert where in result.output
    assert not (tmp_path / "h.cfg").exists()


def test_lb_run_with_its_metrics_port_taken_is_invalid_input_with_a_hint(tmp_path, monkeypatch):
    """Issue 17: a port in use (9090 is Prometheus's default) was OSError [Errno 98] with a traceback, exit 1."""
    import socket

    from click.testing import CliRunner

    from deploykit.cli import main

    monkeypatch.chdir(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        args = ["lb", "run", "--metrics-addr", f"127.0.0.1:{port}", "--haproxy-config", str(tmp_path / "h.cfg"),
                "--marathon", "http://127.0.0.1:9", "--zk", ""]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and "--metrics-addr" in result.stderr
        assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "127.0.0.1:0" in result.stderr
    assert not (tmp_path / "h.cfg").exists()


def test_saved_routes_round_trip_and_a_broken_file_is_reported(tmp_path):
    from deploykit.lb import routes_file

    path = routes_file.path_for(tmp_path / "haproxy.cfg")
    assert path.name == "haproxy.cfg.routes.json" and routes_file.load(path) is None
    claims = {("port", 10001): "/a", ("vhost", "web.example.com", "/"): "/b"}
    routes_file.save(path, claims)
    assert routes_file.load(path) == claims
    path.write_text("{not json")
    with pytest.raises(ValueError):
        routes_file.load(path)
