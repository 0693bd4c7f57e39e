"""Readiness gating, TCP and COMMAND health checks, task kills with and without scale, multi-app PUT."""

from __future__ import annotations

import pytest
import requests

from tests.harness.devcluster import EventReader, http_app, wait_for

pytestmark = pytest.mark.integration


def test_readiness_gates_the_deployment_and_shows_in_current_actions(devcluster):
    url = devcluster.marathon_url
    reader = EventReader(url)
    try:
        app = http_app("/ready", 2, readinessChecks=[{"name": "r", "path": "/ready", "portName": "http",
                                                      "intervalSeconds": 1, "preserveLastResponse": True}])
        r = requests.post(f"{url}/v2/apps", json=app, timeout=5)
        dep_id = r.headers["Marathon-Deployment-Id"]

        def results():
            deps = requests.get(f"{url}/v2/deployments", timeout=5).json()
            acts = deps[0]["currentActions"] if deps else []
            res = [x for a in acts for x in a["readinessCheckResults"]]
            return res if len(res) == 2 and all(x["lastResponse"]["status"] == 404 for x in res) else None

        res = wait_for(results, 20, "readiness results of both tasks")
        assert all(x["ready"] is False and x["name"] == "r" for x in res)
        wait_for(lambda: requests.get(f"{url}/v2/apps/ready", timeout=5).json()["app"]["tasksHealthy"] == 2, 20,
                 "healthy but not ready")
        assert [d["id"] for d in requests.get(f"{url}/v2/deployments", timeout=5).json()] == [dep_id]
        for x in res:  # busybox serves the sandbox: create the file the check asks for
            (devcluster.state_dir / "marathon" / "sandboxes" / x["taskId"] / "ready").write_text("ok")
        reader.wait("deployment_success", lambda e: e["id"] == dep_id, 20)
    finally:
        reader.close()


def test_tcp_and_command_checks(devcluster):
    url = devcluster.marathon_url
    app = http_app("/checks", 1)
    app["healthChecks"] = [
        {"protocol": "TCP", "portIndex": 0, "intervalSeconds": 1, "gracePeriodSeconds": 30},
        {"protocol": "COMMAND", "command": {"value": "test -f health && test -n \"$PORT0\""},
         "intervalSeconds": 1, "gracePeriodSeconds": 30},
    ]
    requests.post(f"{url}/v2/apps", json=app, timeout=5)
    task = wait_for(lambda: next((t for t in requests.get(f"{url}/v2/apps/checks", timeout=5).json()["app"]["tasks"]
                                  if len(t.get("healthCheckResults", [])) == 2
                                  and all(h["alive"] for h in t["healthCheckResults"])), None), 20, "two checks")
    assert task["healthCheckResults"][0]["instanceId"] == task["id"].rsplit("._app.", 1)[0]


def test_failing_command_check_kills_and_replaces(devcluster):
    url = devcluster.marathon_url
    reader = EventReader(url, ["unhealthy_instance_kill_event", "status_update_event"])
    try:
        app = {"id": "/sick", "cmd": "exec sleep 100", "backoffSeconds": 0,
               "healthChecks": [{"protocol": "COMMAND", "command": {"value": "false"}, "intervalSeconds": 1,
                                 "gracePeriodSeconds": 0, "maxConsecutiveFailures": 1}]}
        requests.post(f"{url}/v2/apps", json=app, timeout=5)
        kill = reader.wait("unhealthy_instance_kill_event", timeout=20)
        reader.wait("status_update_event", lambda e: e["taskId"] == kill["taskId"] and e["taskStatus"] == "TASK_KILLED")
        wait_for(lambda: any(t["id"] != kill["taskId"] for t in
                             requests.get(f"{url}/v2/apps/sick/tasks", timeout=5).json()["tasks"]), 20, "replacement")
    finally:
        reader.close()


def test_kill_tasks_with_and_without_scale(devcluster):
    url = devcluster.marathon_url
    requests.post(f"{url}/v2/apps", json={"id": "/k", "cmd": "exec sleep 100", "instances": 3}, timeout=5)
    tasks = wait_for(lambda: (lambda ts: ts if len(ts) == 3 and all(t["state"] == "TASK_RUNNING" for t in ts)
                              else None)(requests.get(f"{url}/v2/apps/k/tasks", timeout=5).json()["tasks"]), 20, "3")
    r = requests.delete(f"{url}/v2/apps/k/tasks/{tasks[0]['id']}", timeout=5)
    assert r.json()["task"]["id"] == tasks[0]["id"]
    wait_for(lambda: len([t for t in requests.get(f"{url}/v2/apps/k/tasks", timeout=5).json()["tasks"]
                          if t["state"] == "TASK_RUNNING" and t["id"] != tasks[0]["id"]]) == 3, 20, "replaced")
    r = requests.post(f"{url}/v2/tasks/delete?scale=true", json={"ids": [tasks[1]["id"]]}, timeout=5)
    assert "deploymentId" in r.json()
    wait_for(lambda: requests.get(f"{url}/v2/apps/k", timeout=5).json()["app"]["instances"] == 2
             and len(requests.get(f"{url}/v2/apps/k/tasks", timeout=5).json()["tasks"]) == 2, 20, "scaled to 2")
    assert requests.delete(f"{url}/v2/apps/k/tasks/nope", timeout=5).status_code == 404


def test_put_of_several_apps_is_one_deployment(devcluster):
    url = devcluster.marathon_url
    reader = EventReader(url, ["deployment_success"])
    try:
        r = requests.put(f"{url}/v2/apps", json=[{"id": "/m/a", "cmd": "exec sleep 100"},
                                                 {"id": "/m/b", "cmd": "exec sleep 100", "instances": 2}], timeout=5)
        assert r.status_code == 200
        ok = reader.wait("deployment_success", lambda e: e["id"] == r.json()["deploymentId"], 20)
        assert [a["app"] for a in ok["plan"]["steps"][0]["actions"]] == ["/m/a", "/m/b"]
        group = requests.get(f"{url}/v2/apps/m/*", timeout=5).json()["*"]
        assert sorted(a["id"] for a in group) == ["/m/a", "/m/b"]
        root = requests.get(f"{url}/v2/groups", timeout=5).json()
        assert root["id"] == "/" and root["apps"] == [] and [g["id"] for g in root["groups"]] == ["/m"]
        m = requests.get(f"{url}/v2/groups/m", timeout=5).json()
        assert [a["id"] for a in m["apps"]] == ["/m/a", "/m/b"] and m["groups"] == []
        r404 = requests.get(f"{url}/v2/groups/nope", timeout=5)
        assert (r404.status_code, r404.json()) == (404, {"message": "Group '/nope' does not exist"})
    finally:
        reader.close()


def test_marathon_health_cadence_when_early_polling_is_off(devcluster_factory):
    import time

    dc = devcluster_factory(extra_args=["--health-early-poll", "0"])
    t0 = time.monotonic()
    requests.post(f"{dc.marathon_url}/v2/apps", json=http_app("/cadence", 1, interval=2), timeout=5)
    wait_for(lambda: requests.get(f"{dc.marathon_url}/v2/apps/cadence", timeout=5).json()["app"]["tasksHealthy"]
             == 1, 20, "healthy")
    assert time.monotonic() - t0 >= 1.9  # first check only after intervalSeconds
