"""Real deployments on the devcluster: rolling upgrades under upgradeStrategy, stuck deployments, rollback."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.harness.devcluster import EventReader, http_app, wait_for

pytestmark = pytest.mark.integration


def _deploy_and_wait(reader: EventReader, resp: requests.Response, timeout: float = 30) -> str:
    dep_id = resp.headers["Marathon-Deployment-Id"]
    reader.wait("deployment_success", lambda e: e["id"] == dep_id, timeout)
    return dep_id


class Sampler:
    """Samples /v2/apps every few ms while a deployment runs."""

    def __init__(self, url: str, app_id: str) -> None:
        self.url, self.app_id = url, app_id
        self.samples: list[tuple[int, int]] = []  # (healthy tasks, tasks not being killed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        s = requests.Session()
        while not self._stop.is_set():
            apps = s.get(f"{self.url}/v2/apps?embed=apps.tasks", timeout=5).json()["apps"]
            app = next(a for a in apps if a["id"] == self.app_id)
            live = [t for t in app["tasks"] if t["state"] != "TASK_KILLING"]
            self.samples.append((app["tasksHealthy"], len(live)))
            time.sleep(0.005)

    def stop(self) -> list[tuple[int, int]]:
        self._stop.set()
        self._thread.join(10)
        return self.samples


def test_rolling_upgrade_keeps_minimum_health_capacity(devcluster):
    url = devcluster.marathon_url
    reader = EventReader(url)
    try:
        app = http_app("/roll", 4, upgradeStrategy={"minimumHealthCapacity": 0.5, "maximumOverCapacity": 0.5})
        _deploy_and_wait(reader, requests.post(f"{url}/v2/apps", json=app, timeout=5))
        assert requests.get(f"{url}/v2/apps/roll", timeout=5).json()["app"]["tasksHealthy"] == 4
        sampler = Sampler(url, "/roll")
        r = requests.put(f"{url}/v2/apps/roll", json={"env": {"RELEASE": "2"}}, timeout=5)
        new_version = r.json()["version"]
        _deploy_and_wait(reader, r)
        samples = sampler.stop()
        assert len(samples) >= 5, samples
        assert min(h for h, _ in samples) >= 2, samples
        # floor(4 * 1.5): never over capacity (tasks in TASK_KILLING are on their way out, not counted)
        assert max(n for _, n in samples) <= 6, samples
        final = requests.get(f"{url}/v2/apps/roll", timeout=5).json()["app"]
        assert final["tasksHealthy"] == 4 and {t["version"] for t in final["tasks"]} == {new_version}
        # 4 - ceil(4 * 0.5) = 2 old instances are killed at once, before any new one is healthy
        events = list(reader.events)
        first_new_healthy = next(i for i, e in enumerate(events) if e["eventType"] == "health_status_changed_event"
                                 and e["alive"] and e["version"] == new_version)
        early_kills = [e for e in events[:first_new_healthy] if e["eventType"] == "status_update_event"
                       and e["taskStatus"] == "TASK_KILLING" and e["version"] != new_version]
        assert len(early_kills) == 2
        kinds = [e["eventType"] for e in reader.events]
        assert "deployment_info" in kinds and "deployment_step_success" in kinds
        assert "health_status_changed_event" in kinds
    finally:
        reader.close()


def test_failing_version_stays_deploying_until_rolled_back(devcluster):
    url = devcluster.marathon_url
    reader = EventReader(url)
    try:
        good = http_app("/stuck", 2)
        r = requests.post(f"{url}/v2/apps", json=good, timeout=5)
        v1 = r.json()["version"]
        _deploy_and_wait(reader, r)
        bad = http_app("/stuck", 2, "/missing", grace=1, max_failures=2)
        r = requests.put(f"{url}/v2/apps/stuck", json=bad, timeout=5)
        dep_id = r.json()["deploymentId"]
        reader.wait("unhealthy_instance_kill_event", lambda e: e["appId"] == "/stuck", 20)
        time.sleep(1.0)
        deps = requests.get(f"{url}/v2/deployments", timeout=5).json()
        assert [d["id"] for d in deps] == [dep_id]
        assert deps[0]["currentActions"][0]["action"] == "RestartApplication"
        app = requests.get(f"{url}/v2/apps/stuck", timeout=5).json()["app"]
        assert app["deployments"] == [{"id": dep_id}]
        assert sum(t["version"] == v1 for t in app["tasks"]) == 2  # minimumHealthCapacity 1: old ones stay
        r = requests.delete(f"{url}/v2/deployments/{dep_id}", timeout=5)
        assert r.status_code == 200 and r.json()["deploymentId"] != dep_id
        reader.wait("deployment_failed", lambda e: e["id"] == dep_id)
        reader.wait("deployment_success", lambda e: e["id"] == r.json()["deploymentId"], 30)
        app = requests.get(f"{url}/v2/apps/stuck", timeout=5).json()["app"]
        assert app["version"] == v1 and app["healthChecks"][0]["path"] == "/health"
        wait_for(lambda: requests.get(f"{url}/v2/apps/stuck", timeout=5).json()["app"]["tasksHealthy"] == 2, 20,
                 "two healthy tasks")
        tasks = requests.get(f"{url}/v2/apps/stuck/tasks", timeout=5).json()["tasks"]
        assert {t["version"] for t in tasks} == {v1} and len(tasks) == 2
    finally:
        reader.close()


def test_force_cancel_leaves_app_as_is(devcluster):
    url = devcluster.marathon_url
    reader = EventReader(url)
    try:
        _deploy_and_wait(reader, requests.post(f"{url}/v2/apps", json=http_app("/cancel", 1), timeout=5))
        r = requests.put(f"{url}/v2/apps/cancel", json=http_app("/cancel", 1, "/missing", grace=300), timeout=5)
        dep_id = r.json()["deploymentId"]
        time.sleep(0.5)
        r = requests.delete(f"{url}/v2/deployments/{dep_id}?force=true", timeout=5)
        assert r.status_code == 202 and r.text == ""
        reader.wait("deployment_failed", lambda e: e["id"] == dep_id)
        assert requests.get(f"{url}/v2/deployments", timeout=5).json() == []
        assert requests.get(f"{url}/v2/apps/cancel", timeout=5).json()["app"]["healthChecks"][0]["path"] == "/missing"
    finally:
        reader.close()


def test_deployment_listed_only_after_the_answer_but_locked_at_once(devcluster_factory):
    dc = devcluster_factory(extra_args=["--deployment-start-delay", "1.5s"])
    url = dc.marathon_url
    r = requests.post(f"{url}/v2/apps", json=http_app("/late", 1, "/missing", grace=300), timeout=5)
    dep_id = r.headers["Marathon-Deployment-Id"]
    assert requests.get(f"{url}/v2/deployments", timeout=5).json() == []  # a client polling now sees nothing
    assert requests.put(f"{url}/v2/apps/late", json={"instances": 2}, timeout=5).status_code == 409
    wait_for(lambda: [d["id"] for d in requests.get(f"{url}/v2/deployments", timeout=5).json()] == [dep_id], 10,
             "deployment listed")
