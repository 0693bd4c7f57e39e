"""Docker apps in the devcluster: real dockerd, real registry, the hello image built FROM the offline base.

What Mesos' Docker containerizer does, checked on the engine itself (`docker inspect`): ports
published on 127.0.0.1 only, env, labels, parameters (read-only root, dropped capabilities, user,
no-new-privileges), cpu-shares/memory, sandbox logs; `docker kill` -> TASK_FAILED + replacement;
a missing digest -> TASK_FAILED with the registry's message; a devcluster killed with -9 and
restarted adopts its containers and removes the rest.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
import requests

from deploykit.devcluster.docker_engine import DEVCLUSTER_LABEL, TASK_LABEL, docker_cli
from tests.harness.devcluster import EventReader, wait_for

pytestmark = pytest.mark.integration


def docker(*args: str) -> str:
    cli = docker_cli()
    assert cli is not None
    return subprocess.run([cli, *args], check=True, capture_output=True, text=True, timeout=60).stdout


def hello_app(app_id: str, image: str, instances: int = 1, **extra) -> dict:
    app = {
        "id": app_id, "instances": instances, "cpus": 0.1, "mem": 64,
        "container": {"type": "DOCKER", "docker": {"image": image, "parameters": [
            {"key": "read-only", "value": "true"}, {"key": "cap-drop", "value": "ALL"},
            {"key": "user", "value": "10001:10001"}, {"key": "security-opt", "value": "no-new-privileges:true"}]},
            "portMappings": [{"containerPort": 8080, "hostPort": 0, "name": "http"}]},
        "networks": [{"mode": "container/bridge"}],
        "env": {"GREETING": "from-docker"}, "labels": {"team": "web"},
        "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0, "gracePeriodSeconds": 30,
                          "intervalSeconds": 1, "timeoutSeconds": 1, "maxConsecutiveFailures": 3}],
        "taskKillGracePeriodSeconds": 2,
    }
    app.update(extra)
    return app


def put(dc, app: dict) -> None:
    r = requests.put(f"{dc.marathon_url}/v2/apps{app['id']}", json=app, timeout=10)
    assert r.status_code in (200, 201), r.text


def tasks(dc, app_id: str) -> list[dict]:
    return dc.get(f"/v2/apps{app_id}?embed=app.tasks")["app"].get("tasks", [])


def healthy(dc, app_id: str, n: int) -> list[dict]:
    ts = [t for t in tasks(dc, app_id) if t["state"] == "TASK_RUNNING"
          and all(h["alive"] for h in t.get("healthCheckResults", [{"alive": False}]))]
    return ts if len(ts) == n else []


def container_of(task_id: str) -> dict:
    out = docker("ps", "-a", "--no-trunc", "--filter", f"label={TASK_LABEL}={task_id}", "--format", "{{.ID}}")
    ids = out.split()
    assert len(ids) == 1, f"containers for {task_id}: {ids}"
    return json.loads(docker("inspect", ids[0]))[0]


@pytest.fixture
def dc(devcluster_factory, docker_engine_ready):
    return devcluster_factory()


def test_docker_task_runs_as_mesos_would(dc, hello_image):
    put(dc, hello_app("/dock/hello", hello_image.pinned))
    [task] = wait_for(lambda: healthy(dc, "/dock/hello", 1), 90, "a healthy container")
    port = task["ports"][0]
    answer = requests.get(f"http://127.0.0.1:{port}/", timeout=5)
    assert "greeting=from-docker" in answer.text and answer.headers["X-Task-Id"] == task["id"]
    info = container_of(task["id"])
    host = info["HostConfig"]
    assert host["PortBindings"] == {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(port)}]}
    assert host["ReadonlyRootfs"] is True and host["CapDrop"] == ["ALL"]
    assert info["Config"]["User"] == "10001:10001" and "no-new-privileges:true" in host["SecurityOpt"]
    assert host["CpuShares"] == 102 and host["Memory"] == 64 * 1024 * 1024
    env = dict(e.split("=", 1) for e in info["Config"]["Env"])
    assert env["PORT0"] == str(port) and env["MARATHON_APP_ID"] == "/dock/hello"
    assert env["MESOS_TASK_ID"] == task["id"] and env["MESOS_SANDBOX"] == "/mnt/mesos/sandbox"
    labels = info["Config"]["Labels"]
    assert labels["team"] == "web" and labels[DEVCLUSTER_LABEL] == str(dc.state_dir.resolve())
    # container stdout/stderr land in the task sandbox, as with the Mesos executor
    sandbox = dc.state_dir / "marathon" / "sandboxes" / task["id"]
    wait_for(lambda: "hello listening on 8080" in (sandbox / "stdout").read_text(), 10, "stdout in the sandbox")
    wait_for(lambda: "GET / " in (sandbox / "stderr").read_text(), 10, "request log in the sandbox stderr")
    # a scale to 0 stops and removes the container within the kill grace period
    r = requests.put(f"{dc.marathon_url}/v2/apps/dock/hello", json={"instances": 0}, timeout=10)
    assert r.status_code == 200
    wait_for(lambda: not dc.containers(), 20, "no container left")


def test_docker_kill_fails_the_task_and_a_replacement_gets_healthy(dc, hello_image):
    put(dc, hello_app("/dock/kill", hello_image.pinned))
    [task] = wait_for(lambda: healthy(dc, "/dock/kill", 1), 90, "a healthy container")
    events = EventReader(dc.marathon_url, ["status_update_event"])
    try:
        docker("kill", container_of(task["id"])["Id"])
        failed = wait_for(lambda: [e for e in events.events if e.get("taskId") == task["id"]
                                   and e.get("taskStatus") == "TASK_FAILED"], 20, "TASK_FAILED event")
        assert "Container exited with status 137" in failed[0]["message"]
    finally:
        events.close()
    [new] = wait_for(lambda: healthy(dc, "/dock/kill", 1), 60, "a healthy replacement")
    assert new["id"] != task["id"]
    failure = dc.get("/v2/apps/dock/kill?embed=app.lastTaskFailure")["app"]["lastTaskFailure"]
    assert failure["taskId"] == task["id"] and failure["state"] == "TASK_FAILED"
    assert {c["task"] for c in dc.containers()} == {new["id"]}  # the dead one was removed


def test_missing_digest_fails_with_the_registry_message(dc, hello_image):
    bad = hello_image.repository + "@sha256:" + "0" * 64
    put(dc, hello_app("/dock/missing", bad, backoffSeconds=30))
    failure = wait_for(lambda: dc.get("/v2/apps/dock/missing?embed=app.lastTaskFailure")["app"].get(
        "lastTaskFailure"), 30, "lastTaskFailure")
    assert failure["state"] == "TASK_FAILED" and "Failed to pull image" in failure["message"]
    assert "manifest unknown" in failure["message"] or "not found" in failure["message"]
    assert not dc.containers()


def test_kill9_restart_adopts_containers_and_removes_strays(devcluster_factory, docker_engine_ready, hello_image):
    dc = devcluster_factory()
    put(dc, hello_app("/dock/adopt", hello_image.pinned, instances=3))
    before = wait_for(lambda: healthy(dc, "/dock/adopt", 3), 120, "3 healthy containers")
    ids = {t["id"] for t in before}
    dc.kill()  # SIGKILL: the containers keep running, as tasks on a Mesos agent do
    assert {c["task"] for c in dc.containers() if c["state"] == "running"} == ids
    # a stray container carrying this node's labels but no task record: must be removed at recovery
    stray = docker("run", "-d", "--label", f"{DEVCLUSTER_LABEL}={dc.state_dir.resolve()}", "--label",
                   f"deploykit.devcluster.node={dc.marathon_port}", "--label", f"{TASK_LABEL}=stray.task",
                   hello_image.pinned).strip()
    dc.start()
    after = wait_for(lambda: healthy(dc, "/dock/adopt", 3), 60, "the same 3 tasks healthy again")
    assert {t["id"] for t in after} == ids
    time.sleep(2)  # the reconciler had every chance to start a second set
    assert {c["task"] for c in dc.containers()} == ids
    assert stray not in {c["id"] for c in dc.containers()}
    dc.stop()
    assert dc.containers() == []


def test_without_an_engine_docker_apps_fail_with_what_to_install_and_commands_run(devcluster_factory, tmp_path):
    dc = devcluster_factory(env={"DOCKER_HOST": f"unix://{tmp_path}/no-such-docker.sock"})
    put(dc, hello_app("/noengine/img", "127.0.0.1:5000/examples/hello:1", backoffSeconds=30))
    put(dc, {"id": "/noengine/cmd", "cmd": "exec sleep 60", "instances": 1, "cpus": 0.01, "mem": 16})
    failure = wait_for(lambda: dc.get("/v2/apps/noengine/img?embed=app.lastTaskFailure")["app"].get(
        "lastTaskFailure"), 20, "lastTaskFailure")
    assert failure["state"] == "TASK_FAILED"
    assert f"no Docker engine answers at unix://{tmp_path}/no-such-docker.sock" in failure["message"]
    assert "apt-get install docker.io" in failure["message"]
    wait_for(lambda: [t for t in tasks(dc, "/noengine/cmd") if t["state"] == "TASK_RUNNING"], 20, "command task")


def test_kill_grace_period_is_the_docker_stop_timeout(dc, docker_base):
    """Python as PID 1 ignores SIGTERM: the stop waits taskKillGracePeriodSeconds, then SIGKILL."""
    app = {"id": "/dock/stubborn", "instances": 1, "cpus": 0.1, "mem": 32, "taskKillGracePeriodSeconds": 3,
           "container": {"type": "DOCKER", "docker": {"image": docker_base}},
           "args": ["python3", "-c", "import time; print('up', flush=True); time.sleep(600)"]}
    put(dc, app)
    [task] = wait_for(lambda: [t for t in tasks(dc, "/dock/stubborn") if t["state"] == "TASK_RUNNING"], 60, "running")
    info = container_of(task["id"])
    assert info["HostConfig"]["NetworkMode"] == "host" and info["HostConfig"]["Memory"] == 32 * 1024 * 1024
    events = EventReader(dc.marathon_url, ["status_update_event"])
    try:
        t0 = time.monotonic()
        r = requests.delete(f"{dc.marathon_url}/v2/apps/dock/stubborn/tasks/{task['id']}", timeout=10)
        assert r.status_code == 200, r.text
        wait_for(lambda: [e for e in events.events if e.get("taskId") == task["id"]
                          and e.get("taskStatus") == "TASK_KILLED"], 20, "TASK_KILLED")
        elapsed = time.monotonic() - t0
    finally:
        events.close()
    assert 3 <= elapsed < 8, elapsed
    killed = [e for e in events.events if e.get("taskId") == task["id"] and e.get("taskStatus") == "TASK_KILLED"]
    assert "status 137" in killed[0]["message"]  # SIGKILL after the grace period
