"""Every acknowledged write survives kill -9 of the Consul stand-in, with and without snapshot compaction."""

from __future__ import annotations

import base64
import threading
import time

import consul
import pytest
import requests

pytestmark = pytest.mark.integration


def _writer(url: str, prefix: str, n: int, acked: list[str], stop: threading.Event) -> None:
    s = requests.Session()
    for i in range(n):
        if stop.is_set():
            return
        key = f"{prefix}/{i}"
        try:
            r = s.put(f"{url}/v1/kv/{key}", data=key.encode(), timeout=5)
        except requests.RequestException:
            return  # the server died under us: this write was never acknowledged
        if r.status_code == 200 and r.json() is True:
            acked.append(key)


@pytest.mark.parametrize("compact", [False, True], ids=["wal", "wal+snapshots"])
def test_kill9_loses_no_acknowledged_write(consul_factory, compact):
    args = ["--compact-bytes", "20000"] if compact else []
    srv = consul_factory(args=args)
    acked: list[list[str]] = [[] for _ in range(4)]
    stop = threading.Event()
    threads = [threading.Thread(target=_writer, args=(srv.url, f"w{t}", 100_000, acked[t], stop)) for t in range(4)]
    for t in threads:
        t.start()
    # let them write for a while (the journal compacts several times when compact=True), then crash mid-stream
    give_up = time.monotonic() + 60
    while sum(map(len, acked)) < 600 and time.monotonic() < give_up:
        time.sleep(0.05)
    srv.kill()
    stop.set()
    for t in threads:
        t.join(10)
    # a transaction acknowledged just before the crash too
    srv.start()
    c = consul.Consul(host=srv.host, port=srv.port)
    txn = [{"KV": {"Verb": "set", "Key": f"tx/{i}", "Value": base64.b64encode(b"t").decode()}} for i in range(64)]
    assert c.txn.put(txn)["Errors"] is None
    srv.kill()
    srv.start()
    _, keys = c.kv.get("", keys=True)
    present = set(keys)
    wanted = {k for lst in acked for k in lst}
    assert len(wanted) >= 600
    assert wanted - present == set()
    assert {f"tx/{i}" for i in range(64)} <= present
    for key in list(wanted)[:50]:
        assert c.kv.get(key)[1]["Value"] == key.encode()
    if compact:
        assert (srv.state_dir / "consul.snapshot").exists()
    # indexes keep growing after recovery
    index_before = int(c.kv.get("w0/0")[0])
    c.kv.put("after", "1")
    assert c.kv.get("after")[1]["ModifyIndex"] > index_before


def test_sessions_and_locks_survive_restart(consul_factory):
    srv = consul_factory()
    c = consul.Consul(host=srv.host, port=srv.port)
    sid = c.session.create(name="deploy-lock", lock_delay=0)
    assert c.kv.put("locks/app", "me", acquire=sid)
    srv.kill()
    srv.start()
    assert c.session.info(sid)[1]["Name"] == "deploy-lock"
    assert c.kv.get("locks/app")[1]["Session"] == sid
    other = c.session.create()
    assert c.kv.put("locks/app", "you", acquire=other) is False
    c.session.destroy(sid)
    srv.stop()  # a clean stop keeps everything too
    srv.start()
    assert c.session.info(sid)[1] is None
    assert "Session" not in c.kv.get("locks/app")[1]


def test_sigterm_answers_parked_blocking_queries_and_exits_promptly(consul_factory):
    srv = consul_factory()
    c = consul.Consul(host=srv.host, port=srv.port)
    c.kv.put("k", "v")
    index, _ = c.kv.get("k")
    answers: list[object] = []
    t = threading.Thread(target=lambda: answers.append(c.kv.get("k", index=index, wait="5m")), daemon=True)
    t.start()
    time.sleep(0.3)
    start = time.monotonic()
    srv.stop()
    assert time.monotonic() - start < 5
    t.join(5)
    assert answers and answers[0][1]["Value"] == b"v"
