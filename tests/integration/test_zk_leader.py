"""clients/zk.py against a real ZooKeeper: Curator latch layout, watcher, connection loss."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from deploykit.clients import zk as zkc
from deploykit.errors import UnreachableError
from tests.harness.common import free_port, wait_until
from tests.harness.zookeeper import ZooKeeper, require_zookeeper

pytestmark = pytest.mark.integration


def _candidate(client: KazooClient, zk_path: str, host_port: str) -> str:
    """Register like Curator's LeaderLatch does: protected ephemeral-sequential child with host:port data."""
    return client.create(
        f"{zkc.latch_path(zk_path)}/_c_{uuid.uuid4()}-latch-",
        host_port.encode(),
        ephemeral=True,
        sequence=True,
        makepath=True,
    )


class Recorder:
    def __init__(self):
        self.values: list[str | None] = []
        self.cond = threading.Condition()

    def __call__(self, value):
        with self.cond:
            self.values.append(value)
            self.cond.notify_all()

    def wait_for(self, value, timeout=10.0):
        with self.cond:
            ok = self.cond.wait_for(lambda: self.values and self.values[-1] == value, timeout)
        assert ok, f"leader never became {value!r}; saw {self.values}"


def test_connect_unreachable_is_translated():
    with pytest.raises(UnreachableError):
        zkc.connect(f"127.0.0.1:{free_port()}", timeout=1.0)


def test_connect_without_waiting_keeps_trying_in_background(tmp_path: Path):
    require_zookeeper()
    server = ZooKeeper(tmp_path)
    client = zkc.connect(server.hosts, timeout=0.5, wait=False)  # nothing listens yet
    try:
        assert not client.connected
        server.start()
        wait_until(lambda: client.connected, 30, "background connect")
    finally:
        client.stop()
        client.close()
        server.stop()


def test_leader_read_and_followed(zookeeper):
    zk_path = f"/m{uuid.uuid4().hex[:8]}"
    client = zkc.connect(zookeeper.hosts, timeout=10)
    other = zkc.connect(zookeeper.hosts, timeout=10)
    try:
        assert zkc.marathon_leader(client, zk_path) is None
        rec = Recorder()
        watcher = zkc.MarathonLeaderWatcher(client, zk_path, rec).start()
        rec.wait_for(None)

        # Latch node created by the first candidate: the exists watch must catch it.
        first = _candidate(other, zk_path, "127.0.0.1:8081")
        rec.wait_for("127.0.0.1:8081")
        second = _candidate(client, zk_path, "127.0.0.1:8082")
        assert zkc.marathon_leader(client, zk_path) == "127.0.0.1:8081"

        other.delete(first)  # leader steps down: the next sequence leads
        rec.wait_for("127.0.0.1:8082")
        assert watcher.current == "127.0.0.1:8082"
        client.delete(second)
        rec.wait_for(None)
        watcher.stop()
    finally:
        for c in (client, other):
            c.stop()
            c.close()


def test_leader_session_end_and_zk_restart(tmp_path: Path):
    """A leader whose session ends is replaced; a ZK outage keeps the last leader, then re-reads."""
    require_zookeeper()
    server = ZooKeeper(tmp_path)
    server.start()
    zk_path = "/marathon"
    watcher_client = zkc.connect(server.hosts, timeout=4)
    leader_client = zkc.connect(server.hosts, timeout=4)
    try:
        _candidate(leader_client, zk_path, "10.0.0.1:8080")
        rec = Recorder()
        watcher = zkc.MarathonLeaderWatcher(watcher_client, zk_path, rec).start()
        rec.wait_for("10.0.0.1:8080")

        leader_client.stop()  # ends the session: its ephemeral latch node vanishes
        rec.wait_for(None)
        standby = zkc.connect(server.hosts, timeout=4)
        _candidate(standby, zk_path, "10.0.0.2:8080")
        rec.wait_for("10.0.0.2:8080")

        server.stop()
        wait_until(lambda: not watcher.connected, 15, "watcher notices ZooKeeper is gone")
        assert watcher.current == "10.0.0.2:8080"  # last known leader kept during the outage
        server.start()
        wait_until(lambda: watcher.connected, 30, "watcher reconnects")
        # The standby's session may or may not have survived the outage; the watcher must agree with ZK.
        wait_until(
            lambda: watcher.current == zkc.marathon_leader(watcher_client, zk_path), 15, "watcher re-read the leader"
        )
        watcher.stop()
        standby.stop()
        standby.close()
    finally:
        for c in (watcher_client, leader_client):
            c.stop()
            c.close()
        server.stop()
