"""Conformance of the devcluster's Marathon API: status codes, error bodies, events, tasks.

Third-party clients (curl, requests) against a real devcluster process.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from tests.harness.devcluster import EventReader, http_app, wait_for

pytestmark = pytest.mark.integration


def _app(dc, app_id: str) -> dict:
    return requests.get(f"{dc.marathon_url}/v2/apps{app_id}", timeout=5).json()["app"]


def _no_deployments(dc) -> bool:
    return requests.get(f"{dc.marathon_url}/v2/deployments", timeout=5).json() == []


def test_bad_requests_get_marathon_errors_and_server_keeps_serving(devcluster):
    url = devcluster.marathon_url
    r = requests.get(f"{url}/v2/nothing/here", timeout=5)
    assert (r.status_code, r.json()) == (500, {"message": "URI not found"})
    r = requests.post(f"{url}/v2/apps", data=b'{"id": "/x", "cmd": ', timeout=5,
                      headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["message"] == "Invalid JSON" and isinstance(r.json()["details"], str)
    r = requests.post(f"{url}/v2/apps", json={"id": 5, "instances": "three", "cmd": "true"}, timeout=5)
    assert r.status_code == 422 and r.json()["message"] == "Invalid JSON"
    paths = {d["path"]: d["errors"] for d in r.json()["details"]}
    assert paths == {"/id": ["error.expected.jsstring"], "/instances": ["error.expected.jsnumber"]}
    for body in (b'{"id": "/x", "cmd": "x", "cpus": NaN}', b"[" * 100_000, b"\xff\xfe{}"):
        r = requests.post(f"{url}/v2/apps", data=body, timeout=5, headers={"Content-Type": "application/json"})
        assert (r.status_code, r.json()["message"]) == (400, "Invalid JSON")
    r = requests.post(f"{url}/v2/apps", json=["not", "an", "object"], timeout=5)
    assert r.status_code == 422
    r = requests.post(f"{url}/v2/apps", data=b"x" * (2 * 1024 * 1024), timeout=10)
    assert r.status_code == 413 and "message" in r.json()
    r = requests.get(f"{url}/v2/apps/missing", timeout=5)
    assert (r.status_code, r.json()) == (404, {"message": "App '/missing' does not exist"})
    r = requests.delete(f"{url}/v2/deployments/nope", timeout=5)
    assert (r.status_code, r.json()) == (404, {"message": "DeploymentPlan nope does not exist"})
    assert requests.get(f"{url}/ping", timeout=5).text == "pong"


def test_invalid_app_gets_422_with_details(devcluster):
    bad = {"id": "/Shop/Cart_1", "cmd": "x", "args": ["y"], "instances": -1,
           "upgradeStrategy": {"minimumHealthCapacity": 2, "maximumOverCapacity": -0.5},
           "healthChecks": [{"protocol": "GRPC", "portIndex": 3}]}
    r = requests.post(f"{devcluster.marathon_url}/v2/apps", json=bad, timeout=5)
    assert r.status_code == 422
    body = r.json()
    assert body["message"] == "Object is not valid"
    paths = {d["path"]: d["errors"] for d in body["details"]}
    assert "/id" in paths and "/" in paths and "/instances" in paths
    assert paths["/upgradeStrategy/minimumHealthCapacity"] == ["is greater than 1"]
    assert paths["/upgradeStrategy/maximumOverCapacity"] == ["is less than 0"]
    assert "/healthChecks(0)/protocol" in paths and "/healthChecks(0)" in paths
    assert requests.get(f"{devcluster.marathon_url}/v2/apps", timeout=5).json() == {"apps": []}


def test_sse_with_curl_gets_events_and_heartbeats(devcluster):
    curl = subprocess.Popen(
        ["curl", "-s", "-N", "-H", "Accept: text/event-stream", f"{devcluster.marathon_url}/v2/events"],
        stdout=subprocess.PIPE)
    try:
        time.sleep(0.5)
        r = requests.post(f"{devcluster.marathon_url}/v2/apps", json={"id": "/sse", "cmd": "sleep 100"}, timeout=5)
        assert r.status_code == 201
        time.sleep(2.6)  # heartbeat is 1s in tests
    finally:
        curl.terminate()
        out = curl.communicate(timeout=5)[0]
    assert out.startswith(b"event: event_stream_attached\r\ndata: {")
    assert b"event: api_post_event\r\n" in out and b"event: deployment_info\r\n" in out
    # heartbeats: bare CRLFs between events, i.e. a blank line right after an event's blank line
    assert out.count(b"\r\n\r\n\r\n") >= 1
    for block in out.split(b"\r\n\r\n"):
        for line in block.split(b"\r\n"):
            if line.startswith(b"data: "):
                doc = json.loads(line[6:])
                assert "eventType" in doc and "timestamp" in doc


def test_events_need_exact_accept_and_filter_by_type(devcluster):
    r = requests.get(f"{devcluster.marathon_url}/v2/events", headers={"Accept": "text/event-stream, */*"}, timeout=5)
    assert r.status_code == 405
    reader = EventReader(devcluster.marathon_url, ["deployment_success"])
    assert reader.resp.getheader("X-Marathon-Leader") == f"http://{devcluster.ident}"
    assert reader.resp.getheader("Content-Type") == "text/event-stream;charset=UTF-8"
    assert reader.resp.getheader("Transfer-Encoding") is None  # no chunking, as Jetty's EventSource
    try:
        requests.post(f"{devcluster.marathon_url}/v2/apps", json={"id": "/f", "cmd": "sleep 100"}, timeout=5)
        reader.wait("deployment_success")
        assert {e["eventType"] for e in reader.events} == {"deployment_success"}
    finally:
        reader.close()


def test_locked_app_409_then_force_supersedes(devcluster):
    url = devcluster.marathon_url
    reader = EventReader(url)
    try:
        never = http_app("/locked", 1, "/missing", grace=300)
        r = requests.post(f"{url}/v2/apps", json=never, timeout=5)
        assert r.status_code == 201 and r.headers["Location"] == "/locked"
        dep_id = r.headers["Marathon-Deployment-Id"]
        assert r.json()["deployments"] == [{"id": dep_id}]
        r = requests.post(f"{url}/v2/apps", json=never, timeout=5)
        assert (r.status_code, r.json()) == (409, {"message": "An app with id [/locked] already exists."})
        r = requests.put(f"{url}/v2/apps/locked", json={"instances": 2}, timeout=5)
        assert r.status_code == 409
        assert r.json()["deployments"] == [{"id": dep_id}]
        assert "locked by one or more deployments" in r.json()["message"]
        time.sleep(1.0)
        assert [d["id"] for d in requests.get(f"{url}/v2/deployments", timeout=5).json()] == [dep_id]
        r = requests.put(f"{url}/v2/apps/locked?force=true", json={"healthChecks": []}, timeout=5)
        assert r.status_code == 200 and r.json()["deploymentId"] != dep_id
        failed = reader.wait("deployment_failed", lambda e: e["id"] == dep_id)
        assert failed["plan"]["id"] == dep_id
        reader.wait("deployment_success", lambda e: e["id"] == r.json()["deploymentId"])
    finally:
        reader.close()


def test_put_without_change_is_a_deployment_without_steps(devcluster):
    url = devcluster.marathon_url
    reader = EventReader(url)
    try:
        r = requests.post(f"{url}/v2/apps", json={"id": "/same", "cmd": "sleep 100"}, timeout=5)
        reader.wait("deployment_success", lambda e: e["id"] == r.headers["Marathon-Deployment-Id"])
        before = _app(devcluster, "/same")
        r = requests.put(f"{url}/v2/apps/same", json={"cmd": "sleep 100"}, timeout=5)
        assert r.status_code == 200
        ok = reader.wait("deployment_success", lambda e: e["id"] == r.json()["deploymentId"])
        assert ok["plan"]["steps"] == []
        after = _app(devcluster, "/same")
        assert after["versionInfo"]["lastConfigChangeAt"] == before["versionInfo"]["lastConfigChangeAt"]
        assert after["tasks"][0]["id"] == before["tasks"][0]["id"]
    finally:
        reader.close()


def test_task_env_fetch_and_shapes(devcluster, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"#!/bin/sh\necho from-archive\n"
        info = tarfile.TarInfo("bin/hello.sh")
        info.size, info.mode = len(data), 0o755
        tf.addfile(info, io.BytesIO(data))
    (tmp_path / "bundle.tar.gz").write_bytes(buf.getvalue())
    (tmp_path / "tool").write_text("#!/bin/sh\necho tool\n")
    served = tmp_path / "www"
    served.mkdir()
    (served / "remote.txt").write_text("over-http\n")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(SimpleHTTPRequestHandler, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    app = {
        "id": "/envcheck",
        "cmd": "env > env.txt; ./bin/hello.sh > out.txt; ./tool >> out.txt; echo to-stderr >&2; exec sleep 100",
        "env": {"GREETING": "hi"}, "labels": {"team": "a"},
        "portDefinitions": [{"port": 0, "name": "http"}, {"port": 10555, "name": "admin"}],
        "fetch": [{"uri": f"file://{tmp_path}/bundle.tar.gz"}, {"uri": str(tmp_path / "tool"), "executable": True},
                  {"uri": f"http://127.0.0.1:{httpd.server_port}/remote.txt", "destPath": "conf/remote.txt"}],
    }
    r = requests.post(f"{devcluster.marathon_url}/v2/apps", json=app, timeout=5)
    assert r.status_code == 201
    task = wait_for(lambda: next((t for t in _app(devcluster, "/envcheck")["tasks"]
                                  if t["state"] == "TASK_RUNNING"), None), 20, "running task")
    sandbox = devcluster.state_dir / "marathon" / "sandboxes" / task["id"]
    env_file = sandbox / "env.txt"
    out = sandbox / "out.txt"
    wait_for(lambda: env_file.exists() and out.exists() and out.read_text().count("\n") == 2, 10, "env.txt")
    env = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    assert env["PORT0"] == str(task["ports"][0]) and env["PORT"] == env["PORT0"]
    assert env["PORTS"] == ",".join(map(str, task["ports"]))
    assert env["PORT_HTTP"] == env["PORT0"] and env["PORT_ADMIN"] == env["PORT1"] == env["PORT_10555"]
    assert env["HOST"] == "127.0.0.1" and env["MARATHON_APP_ID"] == "/envcheck"
    assert env["MARATHON_APP_VERSION"] == task["version"] and env["MESOS_TASK_ID"] == task["id"]
    assert env["MESOS_SANDBOX"] == str(sandbox) and env["GREETING"] == "hi"
    assert env["MARATHON_APP_LABEL_TEAM"] == "a"
    assert (sandbox / "out.txt").read_text() == "from-archive\ntool\n"
    assert (sandbox / "conf" / "remote.txt").read_text() == "over-http\n"
    httpd.shutdown()
    assert (sandbox / "stdout").is_file()  # per-task output files, as on Mesos
    wait_for(lambda: (sandbox / "stderr").read_text() == "to-stderr\n", 10, "stderr file")
    assert task["host"] == "127.0.0.1" and task["state"] == "TASK_RUNNING"
    assert task["servicePorts"][1] == 10555 and 10000 <= task["servicePorts"][0] < 20000
    assert task["ipAddresses"] == [{"ipAddress": "127.0.0.1", "protocol": "IPv4"}]
    assert all(31000 <= p <= 32000 for p in task["ports"])
    plain = requests.get(f"{devcluster.marathon_url}/v2/tasks", headers={"Accept": "text/plain"}, timeout=5).text
    assert plain.splitlines()[0].split("\t")[:3] == ["/envcheck", str(task["servicePorts"][0]),
                                                      f"127.0.0.1:{task['ports'][0]}"]
    listed = requests.get(f"{devcluster.marathon_url}/v2/apps?embed=apps.tasks&label=team==a", timeout=5).json()
    assert [a["id"] for a in listed["apps"]] == ["/envcheck"] and listed["apps"][0]["tasks"][0]["id"] == task["id"]
    none = requests.get(f"{devcluster.marathon_url}/v2/apps?label=team!=a", timeout=5).json()
    assert none == {"apps": []}


def test_unpullable_image_fails_clearly_and_keeps_retrying(devcluster):
    url = devcluster.marathon_url
    reader = EventReader(url, ["status_update_event"])
    try:
        app = {"id": "/docker", "container": {"type": "DOCKER", "docker": {"image": "nginx:1.25"}},
               "backoffSeconds": 1, "backoffFactor": 1.0}
        r = requests.post(f"{url}/v2/apps", json=app, timeout=5)
        assert r.status_code == 201
        wait_for(lambda: len([e for e in reader.of_type("status_update_event") if e["taskStatus"] == "TASK_FAILED"])
                 >= 2, 20, "two TASK_FAILED")
        failure = _app(devcluster, "/docker")["lastTaskFailure"]
        # no public registry answers here (and without an engine the message says what to install)
        assert failure["state"] == "TASK_FAILED" and failure["message"].startswith("Failed to launch container: ")
        assert "Failed to pull image nginx:1.25" in failure["message"] or "docker.io" in failure["message"]
        assert [d["id"] for d in requests.get(f"{url}/v2/deployments", timeout=5).json()] == [
            r.headers["Marathon-Deployment-Id"]]
    finally:
        reader.close()


def test_crashing_task_is_relaunched_with_backoff(devcluster):
    url = devcluster.marathon_url
    r = requests.post(f"{url}/v2/apps", json={"id": "/crash", "cmd": "exit 3", "backoffSeconds": 1,
                                              "backoffFactor": 2.0}, timeout=5)
    assert r.status_code == 201
    t0 = time.monotonic()
    wait_for(lambda: _app(devcluster, "/crash").get("lastTaskFailure"), 10, "a failure")
    first = _app(devcluster, "/crash")["lastTaskFailure"]
    assert first["message"] == "Command exited with status 3"
    wait_for(lambda: _app(devcluster, "/crash")["lastTaskFailure"]["taskId"] != first["taskId"], 10, "relaunch")
    assert time.monotonic() - t0 >= 0.9  # back-off of backoffSeconds before the relaunch
    queued = wait_for(lambda: [q for q in requests.get(f"{url}/v2/queue", timeout=5).json()["queue"]
                               if q["app"]["id"] == "/crash"], 10, "the app waiting in the launch queue")
    assert queued[0]["count"] == 1 and queued[0]["delay"]["timeLeftSeconds"] >= 0


def test_versions_restart_rollback_by_version_and_delete(devcluster):
    url = devcluster.marathon_url
    reader = EventReader(url)
    try:
        r = requests.post(f"{url}/v2/apps", json={"id": "/v", "cmd": "sleep 100", "env": {"A": "1"}}, timeout=5)
        v1 = r.json()["version"]
        reader.wait("deployment_success", lambda e: e["id"] == r.headers["Marathon-Deployment-Id"])
        r = requests.put(f"{url}/v2/apps/v", json={"env": {"A": "2"}}, timeout=5)
        reader.wait("deployment_success", lambda e: e["id"] == r.json()["deploymentId"])
        versions = requests.get(f"{url}/v2/apps/v/versions", timeout=5).json()["versions"]
        assert versions == [r.json()["version"], v1]
        assert requests.get(f"{url}/v2/apps/v/versions/{v1}", timeout=5).json()["env"] == {"A": "1"}
        r404 = requests.get(f"{url}/v2/apps/v/versions/2001-01-01T00:00:00.000Z", timeout=5)
        assert r404.json() == {"message": "App '/v' does not exist in version 2001-01-01T00:00:00.000Z"}
        r = requests.put(f"{url}/v2/apps/v", json={"version": v1}, timeout=5)
        reader.wait("deployment_success", lambda e: e["id"] == r.json()["deploymentId"])
        app = _app(devcluster, "/v")
        assert app["env"] == {"A": "1"} and app["tasks"][0]["version"] == app["version"]
        r = requests.put(f"{url}/v2/apps/v?partialUpdate=false", json={"cmd": "sleep 101"}, timeout=5)
        reader.wait("deployment_success", lambda e: e["id"] == r.json()["deploymentId"])
        replaced = _app(devcluster, "/v")
        assert replaced["env"] == {} and replaced["cmd"] == "sleep 101"  # the body replaced the definition
        r = requests.post(f"{url}/v2/apps/v/restart", timeout=5)
        ok = reader.wait("deployment_success", lambda e: e["id"] == r.json()["deploymentId"])
        assert ok["plan"]["steps"] == [{"actions": [{"action": "RestartApplication", "app": "/v"}]}]
        r = requests.delete(f"{url}/v2/apps/v", timeout=5)
        assert r.status_code == 200
        assert requests.get(f"{url}/v2/apps/v", timeout=5).status_code == 404
        reader.wait("app_terminated_event", lambda e: e["appId"] == "/v")
        wait_for(lambda: requests.get(f"{url}/v2/tasks", timeout=5).json() == {"tasks": []}, 10, "tasks gone")
    finally:
        reader.close()


def test_http_credentials_give_marathon_401(devcluster_factory):
    dc = devcluster_factory(start=False, extra_args=["--http-credentials", "ops:s3cret"])
    dc.start(wait_leader=False)
    r = requests.get(f"{dc.marathon_url}/v2/apps", timeout=5)
    assert (r.status_code, r.json()) == (401, {"message": "Invalid username or password."})
    assert r.headers["WWW-Authenticate"].startswith("Basic ")
    assert requests.get(f"{dc.marathon_url}/v2/apps", auth=("ops", "wrong"), timeout=5).status_code == 401
    wait_for(lambda: requests.get(f"{dc.marathon_url}/v2/apps", auth=("ops", "s3cret"), timeout=5).status_code
             == 200, 10, "authorized answer")


def test_a_finished_task_takes_its_background_children_with_it(devcluster):
    import os

    url = devcluster.marathon_url
    app = {"id": "/bg", "cmd": "sleep 300 & echo $! > child.pid; sleep 0.5; exit 1", "backoffSeconds": 60}
    requests.post(f"{url}/v2/apps", json=app, timeout=5)
    failure = wait_for(lambda: requests.get(f"{url}/v2/apps/bg", timeout=5).json()["app"].get("lastTaskFailure"),
                       20, "the task to exit")
    pid = int((devcluster.state_dir / "marathon" / "sandboxes" / failure["taskId"] / "child.pid").read_text())

    def gone() -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        return open(f"/proc/{pid}/stat").read().split()[2] == "Z"  # a zombie waiting for init is gone too

    wait_for(gone, 10, "the background child killed")
