"""Deploy locks on a real ZooKeeper: one holder, identity shown to the loser, session loss noticed."""

from __future__ import annotations

import time

import pytest
from kazoo.client import KazooClient

from deploykit.clients import zk as zkc
from deploykit.clients.locks import Holder, LockHeld, LockLost, ZkDeployLock

pytestmark = pytest.mark.integration


def holder(user: str, build: str | None = None) -> Holder:
    return Holder(user=user, host="h", pid=1, build_url=build, started_at="2026-01-01T00:00:00+00:00")


def test_second_deployer_gets_holder_identity(zookeeper):
    a = zkc.connect(zookeeper.hosts)
    b = zkc.connect(zookeeper.hosts)
    try:
        la = ZkDeployLock(a, "/deploykit/locks", "prod", "/shop/cart", holder("alice", "https://ci/job/7/"))
        lb = ZkDeployLock(b, "/deploykit/locks", "prod", "/shop/cart", holder("bob"))
        la.acquire(1)
        la.check()
        t0 = time.monotonic()
        with pytest.raises(LockHeld) as ei:
            lb.acquire(0.5)
        assert time.monotonic() - t0 >= 0.4
        assert ei.value.exit_code == 3
        assert ei.value.holder.user == "alice" and "https://ci/job/7/" in str(ei.value)
        # other apps and environments are independent
        other = ZkDeployLock(b, "/deploykit/locks", "staging", "/shop/cart", holder("bob"))
        other.acquire(0)
        other.release()
        la.release()
        lb.acquire(2)
        lb.release()
    finally:
        for c in (a, b):
            c.stop()
            c.close()


def test_expired_session_is_lost_and_check_refuses(zookeeper):
    a = zkc.connect(zookeeper.hosts, timeout=4)
    try:
        lock = ZkDeployLock(a, "/deploykit/locks", "prod", "/expire/me", holder("alice"))
        lock.acquire(1)
        # expire alice's session the way ZooKeeper does for a dead client: another
        # connection with the same session id + password, closed
        sid, pw = a.client_id
        thief = KazooClient(hosts=zookeeper.hosts, client_id=(sid, pw))
        thief.start(5)
        thief.stop()
        thief.close()
        deadline = time.monotonic() + 15
        while lock.lost is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert lock.lost
        with pytest.raises(LockLost, match="stopped before any further change"):
            lock.check()
        lock.release()
        # the ephemeral node is gone: a new deployer gets the lock at once
        b = zkc.connect(zookeeper.hosts)
        try:
            nxt = ZkDeployLock(b, "/deploykit/locks", "prod", "/expire/me", holder("bob"))
            nxt.acquire(2)
            nxt.release()
        finally:
            b.stop()
            b.close()
    finally:
        a.stop()
        a.close()


def test_consul_session_lock_same_semantics(consul_server):
    from deploykit.clients.consul import ConsulClient
    from deploykit.clients.locks import ConsulDeployLock

    a, b = ConsulClient(consul_server.url), ConsulClient(consul_server.url)
    la = ConsulDeployLock(a, "deploykit/locks", "local", "/shop/cart", holder("alice", "https://ci/job/3/"), ttl=10)
    lb = ConsulDeployLock(b, "deploykit/locks", "local", "/shop/cart", holder("bob"), ttl=10, poll=0.1)
    la.acquire(1)
    la.check()
    with pytest.raises(LockHeld) as ei:
        lb.acquire(0.5)
    assert ei.value.holder.user == "alice" and "https://ci/job/3/" in str(ei.value)
    # the session vanishing (expired, or destroyed by an operator) is noticed and refuses further changes
    a.session_destroy(la._session)
    with pytest.raises(LockLost):
        la.check()
    la.release()
    # behavior=delete + lock-delay 0: the next deployer gets it at once
    lb.acquire(2)
    assert lb.current_holder().user == "bob"
    lb.release()
    assert b.get("deploykit/locks/local/shop/cart") is None


def test_zookeeper_outage_blocks_changes_and_becomes_a_loss(zookeeper):
    a = zkc.connect(zookeeper.hosts, timeout=4)
    try:
        lock = ZkDeployLock(a, "/deploykit/locks", "prod", "/outage/app", holder("alice"), suspend_grace=1.0)
        lock.acquire(1)
        zookeeper.stop()
        try:
            deadline = time.monotonic() + 15
            while not lock._suspended.is_set() and time.monotonic() < deadline:
                time.sleep(0.05)
            assert lock._suspended.is_set()
            assert lock.lost is None  # a blip is not yet a loss: waiting is harmless
            with pytest.raises(LockLost, match=r"cannot be confirmed|expired"):
                lock.check()  # but no change may be made without the lock confirmed
            time.sleep(1.1)
            assert lock.lost and "ZooKeeper" in lock.lost
        finally:
            zookeeper.start()
        lock.release()
    finally:
        a.stop()
        a.close()
