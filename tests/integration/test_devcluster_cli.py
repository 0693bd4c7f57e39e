"""`deploykit local up|status|down`: the server, the Docker engine it uses and the registry it starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.harness.common import free_port, wait_until
from tests.harness.devcluster import wait_for

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEPLOYKIT = [sys.executable, "-m", "deploykit.cli"] if not (Path(sys.executable).parent / "deploykit").exists() \
    else [str(Path(sys.executable).parent / "deploykit")]


def run(*args: str, timeout: float = 60, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "220"}  # the status table, unfolded
    return subprocess.run([*DEPLOYKIT, *args], capture_output=True, text=True, timeout=timeout, cwd=cwd, env=env)


def test_local_up_status_down(tmp_path, docker_engine_ready, hello_image):
    state = tmp_path / "state"
    mport, cport, rport = free_port(), free_port(), free_port()
    up = run("local", "up", "--detach", "--marathon-port", str(mport), "--consul-port", str(cport),
             "--registry-port", str(rport), "--state-dir", "state", "--output", "json", cwd=tmp_path)  # relative
    try:
        assert up.returncode == 0, up.stderr
        info = json.loads(up.stdout)
        assert info["marathon_url"] == f"http://127.0.0.1:{mport}" and (state / "devcluster.log").exists()
        # the engine that answers is used and never ours to stop; the registry is ours, data in the state dir
        assert info["engine"]["version"] and info["engine"]["started_by_deploykit"] is False
        assert info["registry"]["url"] == f"127.0.0.1:{rport}" and (state / "registry" / "data").is_dir()
        assert urllib.request.urlopen(f"http://127.0.0.1:{rport}/v2/", timeout=5).status == 200
        again = run("local", "up", "--detach", "--marathon-port", str(mport), "--state-dir", str(state))
        assert again.returncode == 3 and "already runs" in again.stderr
        req = urllib.request.Request(f"http://127.0.0.1:{mport}/v2/apps", method="POST",
                                     data=json.dumps({"id": "/s", "cmd": "echo $MESOS_SANDBOX > sb; exec sleep 60",
                                                      "instances": 2}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).close()
        image_app = {"id": "/img", "container": {"type": "DOCKER", "docker": {"image": hello_image.pinned},
                                                 "portMappings": [{"containerPort": 8080}]}, "mem": 64, "cpus": 0.1}
        req = urllib.request.Request(f"http://127.0.0.1:{mport}/v2/apps", method="POST",
                                     data=json.dumps(image_app).encode(), headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).close()

        def all_running() -> dict | None:
            doc = json.loads(run("local", "status", "--state-dir", str(state), "--output", "json").stdout)
            apps = {a["id"]: a for a in doc["apps"]}
            ok = apps["/s"]["tasksRunning"] == 2 and apps.get("/img", {}).get("tasksRunning") == 1
            return doc if ok else None

        doc = wait_for(all_running, 60, "two command tasks and a container")
        assert doc["engine"]["answers"] and doc["registry"]["answers"]
        [container_task] = {a["id"]: a for a in doc["apps"]}["/img"]["tasks"]
        assert len(container_task["containerId"]) == 12
        assert all(t["containerId"] is None for t in {a["id"]: a for a in doc["apps"]}["/s"]["tasks"])
        text = run("local", "status", "--state-dir", str(state))
        assert text.returncode == 0 and "/s" in text.stdout and "running" in text.stdout
        assert container_task["containerId"] in text.stdout and f"registry 127.0.0.1:{rport} (up)" in text.stdout
        wait_until(lambda: len(list(state.glob("marathon/sandboxes/*/sb"))) == 2, 10, "sandboxes")
        for sb in state.glob("marathon/sandboxes/*/sb"):
            assert sb.read_text().strip() == str(sb.parent)  # MESOS_SANDBOX is absolute
    finally:
        down = run("local", "down", "--state-dir", str(state), "--output", "json")
    result = json.loads(down.stdout)
    assert down.returncode == 0 and result["stopped"] is True
    assert result["registry_stopped"] is True and result["dockerd_stopped"] is False
    assert not (state / "devcluster.json").exists()
    from deploykit.devcluster.docker_engine import devcluster_containers
    from deploykit.devcluster.local_registry import registry_answers

    assert devcluster_containers(state) == [] and not registry_answers(f"127.0.0.1:{rport}")
    gone = run("local", "status", "--state-dir", str(state))
    assert gone.returncode == 4 and "no devcluster running" in gone.stderr


def test_local_up_foreground_stops_on_sigterm(tmp_path):
    mport = free_port()
    proc = subprocess.Popen([*DEPLOYKIT, "local", "up", "--marathon-port", str(mport), "--consul-port", "0",
                             "--registry-port", "0", "--no-docker", "--state-dir", str(tmp_path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO, start_new_session=True)
    try:
        wait_until(lambda: urllib.request.urlopen(f"http://127.0.0.1:{mport}/ping", timeout=1).status == 200, 30,
                   "foreground devcluster")
        assert json.loads((tmp_path / "devcluster.json").read_text())["pid"] == proc.pid
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert not (tmp_path / "devcluster.json").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)


def test_local_up_rejects_bad_options_before_starting_anything(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = run("local", "up", "--detach", "--marathon-port", str(port), "--consul-port", "0", "--zk", "zk:/x",
                  "--registry-port", "0", "--state-dir", str(tmp_path / "s"), "--output", "json")
    assert res.returncode == 2
    paths = {p["path"] for p in json.loads(res.stdout)["problems"]}
    assert paths == {"--marathon-port", "--zk"}
    assert not (tmp_path / "s" / "devcluster.json").exists()


def test_local_up_after_kill9_adopts_containers_and_down_leaves_nothing(tmp_path, docker_engine_ready, hello_image):
    """kill -9 of the server with 3 containers running; `local up` on the same state dir adopts the same
    tasks (no second set); `local down` then leaves no container and no registry."""
    from deploykit.devcluster.docker_engine import devcluster_containers
    from deploykit.devcluster.local_registry import registry_answers

    state = tmp_path / "state"
    mport, rport = free_port(), free_port()
    flags = ["--marathon-port", str(mport), "--consul-port", "0", "--registry-port", str(rport), "--state-dir",
             str(state), "--output", "json"]
    up = run("local", "up", "--detach", *flags)
    assert up.returncode == 0, up.stderr
    base = f"http://127.0.0.1:{mport}"
    try:
        app = {"id": "/three", "instances": 3, "mem": 64, "cpus": 0.1,
               "container": {"type": "DOCKER", "docker": {"image": hello_image.pinned},
                             "portMappings": [{"containerPort": 8080}]},
               "healthChecks": [{"protocol": "HTTP", "path": "/health", "intervalSeconds": 1, "timeoutSeconds": 0}]}
        req = urllib.request.Request(f"{base}/v2/apps", method="POST", data=json.dumps(app).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).close()

        def healthy_ids() -> set[str] | None:
            with urllib.request.urlopen(f"{base}/v2/apps/three?embed=app.tasks", timeout=5) as resp:
                tasks = json.loads(resp.read())["app"].get("tasks", [])
            ids = {t["id"] for t in tasks if all(h["alive"] for h in t.get("healthCheckResults", [{"alive": 0}]))}
            return ids if len(ids) == 3 and len(tasks) == 3 else None

        before = wait_for(healthy_ids, 90, "3 healthy containers")
        os.kill(json.loads(up.stdout)["pid"], signal.SIGKILL)
        from deploykit.devcluster.util import port_free

        wait_until(lambda: port_free("127.0.0.1", mport), 10, "the killed server's port released (TIME_WAIT is fine)")
        assert {c["task"] for c in devcluster_containers(state) if c["state"] == "running"} == before
        again = run("local", "up", "--detach", *flags)
        assert again.returncode == 0, again.stderr
        assert wait_for(healthy_ids, 60, "the same 3 tasks healthy") == before
        assert {c["task"] for c in devcluster_containers(state)} == before  # adopted, no second set
    finally:
        down = run("local", "down", "--state-dir", str(state), "--output", "json")
    assert down.returncode == 0, down.stderr
    assert devcluster_containers(state) == [] and not registry_answers(f"127.0.0.1:{rport}")


def test_the_stop_hint_names_the_state_dir_and_down_without_it_says_where_it_looked(tmp_path):
    """Issue 17: after `local up --state-dir D` the hint said `local down`, which answered "no devcluster
    running" with exit 0 while the cluster kept running."""
    state = tmp_path / "my state"
    up = run("local", "up", "--detach", "--marathon-port", str(free_port()), "--consul-port", "0",
             "--registry-port", "0", "--no-docker", "--state-dir", str(state), cwd=tmp_path)
    try:
        assert up.returncode == 0, up.stderr
        hint = next(line for line in up.stdout.splitlines() if "stop it with:" in line)
        assert hint.strip() == f"stop it with: deploykit local down --state-dir '{state}'"
        wrong = run("local", "down", cwd=tmp_path)  # the default state dir: nothing runs there
        assert wrong.returncode == 4
        assert f"looked for {Path('.deploykit/devcluster/devcluster.json')}" in wrong.stderr
        assert "--state-dir" in wrong.stderr and "Traceback" not in wrong.stderr
        doc = json.loads(run("local", "down", "-o", "json", cwd=tmp_path).stdout)
        assert doc["ok"] is False and doc["exit_code"] == 4
        assert (state / "devcluster.json").exists()  # still running: nothing was stopped
    finally:
        down = run("local", "down", "--state-dir", str(state), cwd=tmp_path)
    assert down.returncode == 0 and "devcluster stopped" in down.stdout


def test_the_stop_hint_of_the_default_state_dir_has_no_flag(tmp_path):
    up = run("local", "up", "--detach", "--marathon-port", str(free_port()), "--consul-port", "0",
             "--registry-port", "0", "--no-docker", cwd=tmp_path)
    try:
        assert up.returncode == 0, up.stderr
        assert "stop it with: deploykit local down\n" in up.stdout
    finally:
        assert run("local", "down", cwd=tmp_path).returncode == 0
