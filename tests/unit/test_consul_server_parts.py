"""Pure parts of the Consul stand-in: durations, store rules, watcher index, journal framing, ACL rules."""

from __future__ import annotations

import asyncio
import time

import pytest

from deploykit.devcluster.consul.acl import Acl, UnknownToken
from deploykit.devcluster.consul.journal import WAL_NAME, Journal, read_state
from deploykit.devcluster.consul.store import Session, Store
from deploykit.devcluster.consul.watch import WatchHub
from deploykit.durations import format_go_duration as format_duration
from deploykit.durations import parse_go_duration as parse_duration


@pytest.mark.parametrize(("text", "seconds"), [("10s", 10), ("5m", 300), ("1m30s", 90), ("250ms", 0.25),
                                               ("1h", 3600), ("0", 0), ("1.5s", 1.5)])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "10x", "1m bogus"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


def test_format_duration():
    assert [format_duration(x) for x in (10, 90, 3600, 1.5)] == ["10s", "1m30s", "1h0m0s", "1.5s"]


def _commit(store: Store, tx) -> None:
    store.apply(tx.index, tx.changes)


def test_store_indexes_and_tombstones():
    st = Store()
    assert st.key_index("anything") == 1 and st.prefix_index("") == 1
    tx = st.begin()
    tx.set("a/1", b"x", 0)
    tx.set("a/2", b"y", 0)
    _commit(st, tx)
    assert st.prefix_index("a/") == 2 and st.key_index("missing") == 2  # an empty store is at index 1
    tx = st.begin()
    tx.delete("a/2")
    _commit(st, tx)
    assert st.prefix_index("a/") == 3  # the delete counts
    assert [e.key for e in st.scan("a/")] == ["a/1"]
    # reaping the tombstone makes the prefix index go backwards, as in Consul
    st.reap_tombstones(time.time() + 1)
    assert st.prefix_index("a/") == 2
    assert st.prefix_index("zzz/") == st.kv_index == 3  # nothing there: the table index


def test_store_lock_rules_and_snapshot_roundtrip():
    st = Store()
    tx = st.begin()
    tx.put_session(Session(id="s1", lock_delay_ns=0))
    tx.put_session(Session(id="s2", lock_delay_ns=int(5e9)))
    _commit(st, tx)
    tx = st.begin()
    assert tx.lock("k", b"v", 0, "s2", time.monotonic()) is not None
    _commit(st, tx)
    tx = st.begin()
    assert tx.lock("k", b"v", 0, "s1", time.monotonic()) is None  # held by s2
    tx.set("k", b"plain", 7)  # plain writes ignore (and keep) the lock
    _commit(st, tx)
    assert st.entries["k"].session == "s2" and st.entries["k"].lock_index == 1
    tx = st.begin()
    tx.destroy_session("s2", time.monotonic())
    _commit(st, tx)
    assert st.entries["k"].session is None
    tx = st.begin()
    assert tx.lock("k", b"v", 0, "s1", time.monotonic()) is None  # lock-delay of the invalidated holder
    assert tx.lock("k", b"v", 0, "s1", time.monotonic() + 6) is not None
    copy = Store()
    copy.load_snapshot(st.snapshot())
    assert copy.entries == st.entries and set(copy.sessions) == {"s1"} and copy.index == st.index


def test_watch_hub_wakes_only_affected_watchers():
    async def run():
        hub = WatchHub()
        exact = hub.watch("app/x", prefix=False)
        pre = hub.watch("app/", prefix=True)
        other = hub.watch("other/", prefix=True)
        root = hub.watch("", prefix=True)
        hub.notify(["app/y"])
        assert pre.done() and root.done() and not exact.done() and not other.done()
        hub.notify(["app/x"])
        assert exact.done() and not other.done()
        hub.unwatch("other/", other, prefix=True)
        assert hub.waiting() == 0

    asyncio.run(run())


def test_journal_replays_and_cuts_torn_tail(tmp_path):
    async def write():
        j = Journal(tmp_path)
        j.open(lambda: {})
        j.start()
        await j.append(1, [["p", "k", "dg==", 0, 1, 1, 0, None]])
        await j.append(2, [["d", "k", 0.0]])
        await j.close()

    asyncio.run(write())
    with open(tmp_path / WAL_NAME, "ab") as f:
        f.write(b"\x00\x00\x01\x00garbage")  # a record torn by a crash
    snap, records = read_state(tmp_path)
    assert snap is None and [r["i"] for r in records] == [1, 2]
    size = (tmp_path / WAL_NAME).stat().st_size
    assert read_state(tmp_path)[1] == records and (tmp_path / WAL_NAME).stat().st_size == size


def test_acl_rules():
    acl = Acl({"t": {"": "read", "app/": "write", "app/secret/": "deny"}, "m": "management"}, "deny")
    t = acl.authorize("t")
    assert t.can_read("x") and not t.can_write("x") and t.can_write("app/a") and not t.can_read("app/secret/k")
    assert not t.can_write_prefix("app/") and t.can_write_prefix("app/a/")
    assert acl.authorize("m").can_write_prefix("")
    assert not acl.authorize(None).can_read("x")
    with pytest.raises(UnknownToken):
        acl.authorize("nope")
    assert Acl(None).authorize("whatever").can_write("x")


def test_wait_is_capped_defaulted_and_jittered(tmp_path):
    from aiohttp.test_utils import make_mocked_request

    from deploykit.devcluster.consul.server import ConsulServer

    srv = ConsulServer(tmp_path)
    for query, low, high in (("index=5&wait=20m", 600, 600 * 17 / 16), ("index=5", 300, 300 * 17 / 16),
                             ("index=5&wait=2s", 2, 2 * 17 / 16)):
        waits = [srv.blocking_params(make_mocked_request("GET", f"/v1/kv/k?{query}"))[1] for _ in range(50)]
        assert all(low <= w <= high for w in waits), query
        assert len(set(waits)) > 1  # jitter
    assert srv.blocking_params(make_mocked_request("GET", "/v1/kv/k?index=7"))[0] == 7
    asyncio.run(srv.journal.close())
