"""MarathonClient and EventStream against the devcluster (Marathon-compatible) and a real ZooKeeper."""

from __future__ import annotations

import queue
import time

import pytest

from deploykit.clients import zk as zkc
from deploykit.clients.marathon import MarathonClient, MarathonLocked, MarathonRejected, zk_leader_provider
from deploykit.clients.marathon_events import Connected, Event
from tests.harness.common import free_port

pytestmark = pytest.mark.integration


def app(app_id: str, *, failing: bool = False, x_field: bool = False) -> dict:
    doc = {
        "id": app_id,
        "cmd": "python3 -m http.server $PORT0" if not failing else "sleep 3600",
        "instances": 1,
        "cpus": 0.01,
        "mem": 16,
        "portDefinitions": [{"port": 0, "name": "http"}],
        "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 30,
                          "intervalSeconds": 2, "timeoutSeconds": 1, "maxConsecutiveFailures": 3}],
    }
    if x_field:
        doc["unreachableStrategy"] = {"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120}
    return doc


def next_event(q: queue.Queue, etype: str, timeout: float = 15) -> Event:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        item = q.get(timeout=max(0.01, deadline - time.monotonic()))
        if isinstance(item, Event) and item.type == etype:
            return item
    raise AssertionError(f"no {etype} within {timeout}s")


def test_put_watch_409_and_422_against_devcluster(devcluster):
    m = MarathonClient([devcluster.marathon_url])
    stream = m.events(event_types=["deployment_success", "deployment_failed"], heartbeat_interval=1)
    thread, q = stream.start_thread()
    try:
        assert isinstance(q.get(timeout=5), Connected)
        res = m.put_app(app("/mc/web", x_field=True))
        assert res["deploymentId"] and res["version"] and res["created"]
        ev = next_event(q, "deployment_success")
        assert ev.data["id"] == res["deploymentId"]
        got = m.get_app("/mc/web")
        assert got["unreachableStrategy"] == {"inactiveAfterSeconds": 60, "expungeAfterSeconds": 120}
        assert got["tasks"] and m.app_versions("/mc/web")

        # a deployment that cannot finish holds the app: 409 with its id, unless forced
        stuck = m.put_app(app("/mc/web", failing=True))
        with pytest.raises(MarathonLocked) as ei:
            m.put_app(app("/mc/web"))
        assert ei.value.deployment_ids == [stuck["deploymentId"]]
        forced = m.put_app(app("/mc/web"), force=True)
        assert next_event(q, "deployment_failed").data["id"] == stuck["deploymentId"]
        assert next_event(q, "deployment_success").data["id"] == forced["deploymentId"]

        bad = app("/mc/bad")
        bad["upgradeStrategy"] = {"minimumHealthCapacity": 2}
        with pytest.raises(MarathonRejected) as ei:
            m.put_app(bad)
        assert ei.value.status == 422 and "minimumHealthCapacity" in str(ei.value)
    finally:
        stream.stop()
        thread.join(2)
        m.close()
    assert not thread.is_alive()


def test_leader_from_zookeeper_and_stream_survives_restart(zookeeper, devcluster_factory):
    dc = devcluster_factory(zk=f"zk://{zookeeper.hosts}/mc-leader")
    dc.wait_leader()
    kz = zkc.connect(zookeeper.hosts)
    try:
        dead = f"http://127.0.0.1:{free_port()}"
        m = MarathonClient(zk_leader_provider(kz, "/mc-leader", [dead]))
        assert m.candidates()[0] == dc.marathon_url
        assert m.ping() == dc.marathon_url
        stream = m.events(heartbeat_interval=1, backoff_initial=0.1, backoff_max=0.5)
        thread, q = stream.start_thread()
        try:
            assert q.get(timeout=5) == Connected(dc.marathon_url, False)
            dc.kill()  # a crash: the stream breaks without a goodbye
            dc.start(wait_leader=True)
            deadline = time.monotonic() + 30
            reconnected = None
            while time.monotonic() < deadline and reconnected is None:
                item = q.get(timeout=30)
                if isinstance(item, Connected):
                    reconnected = item
            assert reconnected is not None and reconnected.reconnect
        finally:
            stream.stop()
            thread.join(2)
            m.close()
    finally:
        kz.stop()
        kz.close()
