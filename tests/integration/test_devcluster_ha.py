"""The devcluster in ZooKeeper: Curator-compatible leader latch, standby proxying, failover, restarts."""

from __future__ import annotations

import uuid

import pytest
import requests
from kazoo.client import KazooClient

from tests.harness.devcluster import EventReader, http_app, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture
def zk_url(zookeeper) -> str:
    return f"zk://{zookeeper.hosts}/dk-{uuid.uuid4().hex[:8]}/marathon"


def _latch_leader(hosts: str, path: str) -> tuple[list[str], str]:
    zk = KazooClient(hosts=hosts)
    zk.start(timeout=10)
    try:
        children = zk.get_children(path)
        first = sorted(children, key=lambda c: int(c.rsplit("-", 1)[1]))[0]
        return children, zk.get(f"{path}/{first}")[0].decode()
    finally:
        zk.stop()
        zk.close()


def test_kazoo_reads_leader_address_from_the_curator_latch(devcluster_factory, zookeeper, zk_url):
    dc = devcluster_factory(zk=zk_url, consul=False)
    dc.wait_leader()
    root = zk_url.split("/", 3)[3]
    children, leader = _latch_leader(zookeeper.hosts, f"/{root}/leader-curator")
    assert leader == dc.ident
    assert len(children) == 1
    name = children[0]
    assert name.startswith("_c_") and "-latch-" in name and len(name.rsplit("-", 1)[1]) == 10
    r = requests.get(f"{dc.marathon_url}/v2/info", timeout=5)
    assert r.json()["leader"] == dc.ident and r.json()["elected"] is True
    assert r.headers["X-Marathon-Leader"] == f"http://{dc.ident}"


def test_standby_proxies_redirects_events_and_takes_over_after_leader_crash(devcluster_factory, zookeeper,
                                                                           zk_url, tmp_path):
    shared = tmp_path / "shared-state"
    extra = ["--zk-session-timeout", "2s"]
    a = devcluster_factory(zk=zk_url, state_dir=shared, consul=False, extra_args=extra)
    a.wait_leader()
    b = devcluster_factory(zk=zk_url, state_dir=shared, consul=False, extra_args=extra)
    assert not b.is_leader() and b.get("/v2/leader") == {"leader": a.ident}
    # a request to the standby is served by the leader
    r = requests.post(f"{b.marathon_url}/v2/apps", json=http_app("/ha", 2), timeout=10)
    assert r.status_code == 201 and r.headers["X-Marathon-Via"] == f"1.1 {b.ident}"
    assert r.headers["X-Marathon-Leader"] == f"http://{a.ident}"
    r = requests.get(f"{b.marathon_url}/v2/events", headers={"Accept": "text/event-stream"},
                     allow_redirects=False, timeout=5)
    assert r.status_code == 302 and r.headers["Location"] == f"http://{a.ident}/v2/events"
    wait_for(lambda: a.get("/v2/apps/ha")["app"]["tasksHealthy"] == 2, 20, "app healthy on the leader")
    old_ids = {t["id"] for t in a.get("/v2/apps/ha")["app"]["tasks"]}
    a.kill()  # crash: no goodbye, the standby waits for the session to expire
    b.wait_leader(timeout=30)
    app = wait_for(lambda: (lambda x: x if x["tasksHealthy"] == 2 else None)(b.get("/v2/apps/ha")["app"]), 30,
                   "app healthy on the new leader")
    assert not old_ids & {t["id"] for t in app["tasks"]}
    assert b.get("/v2/info")["elected"] is True


def test_graceful_stop_hands_over_at_once_and_abdication(devcluster_factory, zk_url, tmp_path):
    shared = tmp_path / "shared-state"
    a = devcluster_factory(zk=zk_url, state_dir=shared, consul=False)
    a.wait_leader()
    b = devcluster_factory(zk=zk_url, state_dir=shared, consul=False)
    assert requests.delete(f"{a.marathon_url}/v2/leader", timeout=5).json() == {"message": "Leadership abdicated"}
    b.wait_leader(timeout=15)
    wait_for(lambda: a.get("/v2/leader") == {"leader": b.ident}, 10, "a follows b")
    b.stop()
    a.wait_leader(timeout=15)


def test_apps_and_versions_survive_down_and_up(devcluster):
    url = devcluster.marathon_url
    reader = EventReader(url)
    try:
        r = requests.post(f"{url}/v2/apps", json=http_app("/keep", 2), timeout=5)
        reader.wait("deployment_success", lambda e: e["id"] == r.headers["Marathon-Deployment-Id"])
        r = requests.put(f"{url}/v2/apps/keep", json={"labels": {"x": "1"}}, timeout=5)
        reader.wait("deployment_success", lambda e: e["id"] == r.json()["deploymentId"], 30)
    finally:
        reader.close()
    before = devcluster.get("/v2/apps/keep")["app"]
    versions = devcluster.get("/v2/apps/keep/versions")
    devcluster.stop()
    assert not list(devcluster.run_dir.glob("*.pgid"))
    devcluster.start()
    after = wait_for(lambda: (lambda x: x if x["tasksHealthy"] == 2 else None)(devcluster.get("/v2/apps/keep")["app"]),
                     20, "tasks restarted on up")
    assert after["version"] == before["version"] and after["labels"] == {"x": "1"}
    assert devcluster.get("/v2/apps/keep/versions") == versions
    assert not {t["id"] for t in before["tasks"]} & {t["id"] for t in after["tasks"]}


def _task_ids(dc) -> set[str]:
    return {t["id"] for t in dc.get("/v2/apps/gc")["app"]["tasks"]}


def _pause(dc, seconds: float) -> None:
    """SIGSTOP the server longer than its ZooKeeper session (a long GC pause); its tasks keep running."""
    import os
    import signal
    import time

    os.kill(dc.proc.pid, signal.SIGSTOP)
    time.sleep(seconds)
    os.kill(dc.proc.pid, signal.SIGCONT)


def test_lost_session_suspends_and_the_reelected_leader_adopts_its_tasks(devcluster_factory, zk_url):
    dc = devcluster_factory(zk=zk_url, consul=False, extra_args=["--zk-session-timeout", "2s"])
    dc.wait_leader()
    requests.post(f"{dc.marathon_url}/v2/apps", json=http_app("/gc", 2), timeout=5)
    wait_for(lambda: dc.get("/v2/apps/gc")["app"]["tasksHealthy"] == 2, 20, "healthy")
    before = _task_ids(dc)
    _pause(dc, 5)
    wait_for(lambda: "ZooKeeper session lost" in dc.log_path.read_text(), 20, "session loss seen")
    dc.wait_leader(timeout=20)
    wait_for(lambda: dc.get("/v2/apps/gc")["app"]["tasksHealthy"] == 2, 20, "healthy again")
    assert _task_ids(dc) == before  # the same processes, adopted


def test_suspended_leader_stops_its_tasks_when_another_node_leads(devcluster_factory, zk_url, tmp_path):
    shared = tmp_path / "shared-state"
    extra = ["--zk-session-timeout", "2s"]
    a = devcluster_factory(zk=zk_url, state_dir=shared, consul=False, extra_args=extra)
    a.wait_leader()
    b = devcluster_factory(zk=zk_url, state_dir=shared, consul=False, extra_args=extra)
    requests.post(f"{a.marathon_url}/v2/apps", json=http_app("/gc", 2), timeout=5)
    wait_for(lambda: a.get("/v2/apps/gc")["app"]["tasksHealthy"] == 2, 20, "healthy on a")
    a_groups = [int(f.read_text()) for f in a.run_dir.glob("*.pgid")]
    assert len(a_groups) == 2
    _pause(a, 5)
    b.wait_leader(timeout=20)
    wait_for(lambda: b.get("/v2/apps/gc")["app"]["tasksHealthy"] == 2, 20, "healthy on b")

    def a_tasks_gone() -> bool:
        import os

        for g in a_groups:
            try:
                os.killpg(g, 0)
                return False
            except ProcessLookupError:
                pass
        return True

    wait_for(a_tasks_gone, 20, "a's tasks stopped")
    assert a.get("/v2/leader") == {"leader": b.ident}


def test_running_deployment_is_resumed_after_down_and_up(devcluster):
    url = devcluster.marathon_url
    reader = EventReader(url)
    try:
        r = requests.post(f"{url}/v2/apps", json=http_app("/resume", 1), timeout=5)
        reader.wait("deployment_success", lambda e: e["id"] == r.headers["Marathon-Deployment-Id"])
        r = requests.put(f"{url}/v2/apps/resume", json=http_app("/resume", 1, "/missing", grace=300), timeout=5)
        dep_id = r.json()["deploymentId"]
        wait_for(lambda: requests.get(f"{url}/v2/deployments", timeout=5).json(), 10, "deployment listed")
    finally:
        reader.close()
    devcluster.stop()
    devcluster.start()
    wait_for(lambda: [d["id"] for d in requests.get(f"{url}/v2/deployments", timeout=5).json()] == [dep_id], 10,
             "the same deployment, resumed")
    reader = EventReader(url)
    try:
        r = requests.delete(f"{url}/v2/deployments/{dep_id}", timeout=5)
        assert r.status_code == 200
        reader.wait("deployment_success", lambda e: e["id"] == r.json()["deploymentId"], 30)
        assert requests.get(f"{url}/v2/apps/resume", timeout=5).json()["app"]["healthChecks"][0]["path"] == "/health"
    finally:
        reader.close()
    assert requests.get(f"{url}/v2/deployments", timeout=5).json() == []
    assert not list((devcluster.state_dir / "marathon" / "deployments").glob("*.json"))
