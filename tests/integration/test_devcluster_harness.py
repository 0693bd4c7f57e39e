"""The devcluster fixture itself: it starts, serves both APIs, points an env file at itself, cleans up."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.integration


def _post(url: str, doc: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_fixture_serves_marathon_and_consul_and_env(devcluster):
    assert devcluster.get("/v2/info")["elected"] is True
    env = json.loads((devcluster.env_dir / "local.json").read_text())
    dk = env["default_attributes"]["deploykit"]
    assert dk["marathon"]["urls"] == [devcluster.marathon_url]
    assert dk["consul"]["url"] == devcluster.consul_url
    with urllib.request.urlopen(f"{devcluster.consul_url}/v1/status/leader", timeout=5) as resp:
        assert resp.status == 200


def test_sigkill_of_server_leaves_no_tasks(devcluster):
    _post(f"{devcluster.marathon_url}/v2/apps",
          {"id": "/sleeper", "cmd": "sleep 300 & sleep 300; wait", "instances": 2})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and devcluster.get("/v2/apps/sleeper")["app"]["tasksRunning"] < 2:
        time.sleep(0.1)
    pgids = [int(f.read_text()) for f in devcluster.run_dir.glob("*.pgid")]
    assert len(pgids) == 2
    server_pid = devcluster.proc.pid
    os.kill(server_pid, 9)
    devcluster.proc.wait()
    deadline = time.monotonic() + 10

    def alive(g: int) -> bool:
        try:
            os.killpg(g, 0)
            return True
        except ProcessLookupError:
            return False

    while time.monotonic() < deadline and any(alive(g) for g in pgids):
        time.sleep(0.05)
    assert not any(alive(g) for g in pgids), "tasks outlived a SIGKILLed server"
    devcluster.proc = None


def test_consul_acls_pass_through(devcluster_factory, tmp_path):
    acl = tmp_path / "acl.json"
    acl.write_text(json.dumps({"tokens": {"root-token": "management"}, "default_policy": "deny"}))
    dc = devcluster_factory(extra_args=["--consul-acl-file", str(acl)])
    req = urllib.request.Request(f"{dc.consul_url}/v1/kv/x", data=b"1", method="PUT")
    try:
        urllib.request.urlopen(req, timeout=5)
        raise AssertionError("an anonymous write was allowed")
    except urllib.error.HTTPError as exc:
        assert exc.code == 403
    req = urllib.request.Request(f"{dc.consul_url}/v1/kv/x", data=b"1", method="PUT",
                                 headers={"X-Consul-Token": "root-token"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.read().strip() == b"true"


def test_nodes_sharing_a_state_dir_keep_separate_consul_journals(devcluster_factory, tmp_path):
    shared = tmp_path / "shared"
    a = devcluster_factory(state_dir=shared)
    b = devcluster_factory(state_dir=shared)
    for dc, value in ((a, b"from-a"), (b, b"from-b")):
        req = urllib.request.Request(f"{dc.consul_url}/v1/kv/who", data=value, method="PUT")
        urllib.request.urlopen(req, timeout=5).close()
    for dc, value in ((a, b"from-a"), (b, b"from-b")):
        with urllib.request.urlopen(f"{dc.consul_url}/v1/kv/who?raw", timeout=5) as resp:
            assert resp.read() == value
    assert (shared / "consul").is_dir() and (shared / f"consul-{b.marathon_port}").is_dir()
