"""The whole pipeline on one machine, as the quick start runs it, with real Docker everywhere.

examples/hello (a git copy) is built FROM the offline base with the docker backend and pushed to
the session registry by `deploykit build --push`, deployed by digest with `deploykit deploy
--from-build`, and routed by `deploykit lb run` (real HAProxy). Then: v2 rolls out container by
container with bounded load through HAProxy and no failed request; v3, whose /health fails, is
rolled back with v2's containers serving; a digest the registry does not have fails the deploy
with the registry's error and is rolled back; a spec asking for `privileged` never reaches Docker.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.harness.devcluster import EventReader, wait_for
from tests.harness.docker import git_copy
from tests.integration.test_lb_e2e import LbRun, task_ports

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEPLOYKIT = str(Path(sys.executable).parent / "deploykit")


def cli(*args: str, timeout: float = 180) -> tuple[int, dict, str]:
    proc = subprocess.run([DEPLOYKIT, *args, "--output", "json"], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "NO_COLOR": "1"}, cwd=REPO)
    try:
        doc = json.loads(proc.stdout)
    except ValueError:
        pytest.fail(f"stdout is not JSON:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc.returncode, doc, proc.stderr


class Load:
    """Bounded load through HAProxy on 127.0.0.1: one request every `period` s, at most `limit`."""

    def __init__(self, port: int, vhost: str, period: float = 0.05, limit: int = 4000) -> None:
        self.url, self.vhost, self.period, self.limit = f"http://127.0.0.1:{port}/", vhost, period, limit
        self.ok = 0
        self.failed: list[str] = []
        self.bodies: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        while not self._stop.is_set() and self.ok + len(self.failed) < self.limit:
            try:
                r = session.get(self.url, headers={"Host": self.vhost}, timeout=5)
                if r.status_code == 200:
                    self.ok += 1
                    self.bodies.append(r.text)
                else:
                    self.failed.append(f"HTTP {r.status_code}")
            except requests.RequestException as exc:
                self.failed.append(repr(exc)[:200])
            self._stop.wait(self.period)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(10)


@pytest.fixture
def pipeline(devcluster_factory, docker_engine_ready, docker_base, registry, tmp_path):
    """A devcluster, an env dir pointing at it and the session registry, and a git copy of examples/hello."""
    dc = devcluster_factory(extra_args=task_ports())
    env = json.loads((dc.env_dir / "local.json").read_text())
    env["default_attributes"]["deploykit"]["registry"]["url"] = registry.host
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    (env_dir / "local.json").write_text(json.dumps(env))
    app_dir = git_copy(REPO / "examples" / "hello", tmp_path / "hello")
    return dc, env_dir, app_dir


def set_spec(app_yaml: Path, **changes) -> None:
    doc = yaml.safe_load(app_yaml.read_text())
    doc["health"].update(grace="5s", interval="2s", timeout="1s")
    doc["readiness"].update(interval="2s", timeout="1s")
    doc.update(changes)
    app_yaml.write_text(yaml.safe_dump(doc))


def serving(dc, app_id: str) -> list[dict]:
    tasks = dc.get(f"/v2/apps{app_id}?embed=app.tasks")["app"].get("tasks", [])
    return [t for t in tasks if t["state"] == "TASK_RUNNING" and t.get("healthCheckResults")
            and all(h["alive"] for h in t["healthCheckResults"])]


def test_build_push_deploy_by_digest_route_roll_and_roll_back(pipeline, docker_base, registry, tmp_path):
    dc, env_dir, app_dir = pipeline
    app_yaml = app_dir / "app.yaml"
    set_spec(app_yaml)
    subprocess.run(["git", "-C", str(app_dir), "-c", "user.email=ci@example.com", "-c", "user.name=CI", "commit",
                    "-qam", "quick checks"], check=True)
    record = tmp_path / "build.json"
    rc, built, err = cli("build", str(app_yaml), "--env", "local", "--env-dir", str(env_dir), "--push", "--quiet",
                         "--backend", "docker", "--build-arg", f"BASE={docker_base}", "--build-record", str(record))
    assert rc == 0, (json.dumps(built), err)
    pinned = built["push"]["pinned"]
    assert pinned.startswith(f"{registry.host}/examples/hello@sha256:")

    rc, _, err = cli("deploy", str(app_yaml), "--env", "local", "--env-dir", str(env_dir), "--from-build", str(record))
    assert rc == 0, err
    app = dc.get("/v2/apps/examples/hello")["app"]
    assert app["container"]["docker"]["image"] == pinned and app["tasksHealthy"] == 2
    v1_tasks = {t["id"] for t in serving(dc, "/examples/hello")}
    assert {c["task"] for c in dc.containers() if c["state"] == "running"} == v1_tasks  # 2 real containers

    lb = LbRun(tmp_path / "lb", [dc.marathon_url])
    lb.start()
    try:
        wait_for(lambda: {lb.get("hello.local", "/").headers.get("X-Task-Id") for _ in range(10)} == v1_tasks, 30,
                 "both containers answering through HAProxy")

        # v2: rolled out container by container (minimumHealthCapacity 0.5) with traffic flowing
        set_spec(app_yaml, env={"GREETING": "v2"})
        events = EventReader(dc.marathon_url, ["status_update_event"])
        try:
            with Load(lb.http_port, "hello.local") as load:
                time.sleep(1)
                rc, _, err = cli("deploy", str(app_yaml), "--env", "local", "--env-dir", str(env_dir),
                                 "--from-build", str(record))
                assert rc == 0, err
                wait_for(lambda: "greeting=v2" in lb.get("hello.local", "/").text, 20, "v2 answering")
                time.sleep(1)
        finally:
            events.close()
        assert load.failed == [], load.failed[:10]
        # upgradeStrategy {minimumHealthCapacity 0.5, maximumOverCapacity 0.5} on 2 instances: never more
        # than floor(2 x 1.5) = 3 containers at once, old ones replaced as new ones get healthy
        live, most = set(v1_tasks), len(v1_tasks)
        for e in events.events:
            if e.get("taskStatus") in ("TASK_STAGING", "TASK_RUNNING"):
                live.add(e["taskId"])
            elif e.get("taskStatus") in ("TASK_KILLING", "TASK_KILLED", "TASK_FAILED", "TASK_FINISHED"):
                live.discard(e["taskId"])
            most = max(most, len(live))
        assert most <= 3 and {e["taskId"] for e in events.events if e.get("taskStatus") == "TASK_KILLED"} == v1_tasks
        assert load.ok >= 40 and any("greeting=hello" in b for b in load.bodies)
        v2_tasks = {t["id"] for t in serving(dc, "/examples/hello")}
        assert len(v2_tasks) == 2 and not v2_tasks & v1_tasks

        # v3: /health fails -> deploykit deploy rolls back; v2's containers keep serving
        set_spec(app_yaml, env={"GREETING": "v3", "HELLO_FAIL_HEALTH": "1"})
        with Load(lb.http_port, "hello.local") as load:
            rc, v3, err = cli("deploy", str(app_yaml), "--env", "local", "--env-dir", str(env_dir), "--from-build",
                              str(record))
        assert rc == 1, err
        assert load.failed == [] and load.ok >= 20, load.failed[:10]  # a v2 container answered all along
        assert v3["rollback"]["attempted"] is True and v3["rollback"]["ok"] is True, v3
        # v2's definition again, two healthy containers (the rollback is a new deployment of v2: Marathon
        # replaces the survivors too, one by one, never below minHealthy)
        assert len(serving(dc, "/examples/hello")) == 2
        assert all("greeting=v2" in lb.get("hello.local", "/").text for _ in range(6))

        # a digest the registry does not have: the pull fails with the registry's error, rolled back
        set_spec(app_yaml, env={"GREETING": "v2"})
        missing = "sha256:" + "0" * 64
        rc, bad, err = cli("deploy", str(app_yaml), "--env", "local", "--env-dir", str(env_dir), "--image-digest",
                           missing)
        assert rc == 1, err
        assert bad["failure"]["reason"] == "task_failed", bad
        message = bad["failure"]["message"]
        assert f"Failed to pull image {registry.host}/examples/hello@{missing}" in message, message
        assert "manifest unknown" in message, message
        assert bad["rollback"]["attempted"] is True and bad["rollback"]["ok"] is True, bad
        assert dc.get("/v2/apps/examples/hello")["app"]["container"]["docker"]["image"] == pinned
        assert all("greeting=v2" in lb.get("hello.local", "/").text for _ in range(6))
    finally:
        lb.stop()


def test_security_is_applied_and_privileged_never_reaches_docker(pipeline, hello_image, registry):
    dc, env_dir, app_dir = pipeline
    app_yaml = app_dir / "app.yaml"
    set_spec(app_yaml, id="/examples/secure", instances=1, security={
        "read_only_root": True, "cap_drop": ["ALL"], "user": "10001:10001"})
    rc, out, err = cli("deploy", str(app_yaml), "--env", "local", "--env-dir", str(env_dir), "--image-digest",
                       hello_image.digest)
    assert rc == 0, err
    [task] = serving(dc, "/examples/secure")
    [container] = [c for c in dc.containers() if c["task"] == task["id"]]
    from tests.integration.test_devcluster_docker import docker

    info = json.loads(docker("inspect", container["id"]))[0]
    assert info["HostConfig"]["ReadonlyRootfs"] is True and info["HostConfig"]["CapDrop"] == ["ALL"]
    assert info["Config"]["User"] == "10001:10001"
    assert "no-new-privileges:true" in info["HostConfig"]["SecurityOpt"] and info["HostConfig"]["Privileged"] is False
    proc_status = docker("exec", container["id"], "cat", "/proc/1/status")
    assert "NoNewPrivs:\t1" in proc_status and "CapEff:\t0000000000000000" in proc_status

    before = {c["id"] for c in dc.containers()}
    set_spec(app_yaml, id="/examples/privileged", security={"privileged": True})
    rc, out, err = cli("deploy", str(app_yaml), "--env", "local", "--env-dir", str(env_dir), "--image-digest",
                       hello_image.digest)
    assert rc == 2 and any(p["path"].startswith("security") for p in out["problems"]), out
    assert {c["id"] for c in dc.containers()} == before
    r = requests.get(f"{dc.marathon_url}/v2/apps/examples/privileged", timeout=5)
    assert r.status_code == 404
