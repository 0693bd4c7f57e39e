"""Conformance of the devcluster's Consul stand-in, driven by the real py-consul client (and requests/curl shapes).

One server per module keeps this fast; each test works under its own key prefix.
"""

from __future__ import annotations

import base64
import json
import threading
import time

import consul
import pytest
import requests

from tests.harness.consul import ConsulServerProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def srv(tmp_path_factory) -> ConsulServerProcess:
    base = tmp_path_factory.mktemp("consul-conf")
    (base / "state").mkdir()
    server = ConsulServerProcess(base / "state", args=["--session-ttl-min", "0.2", "--session-ttl-multiplier", "0.2"])
    server.start()
    yield server
    server.stop()


@pytest.fixture
def c(srv) -> consul.Consul:
    return consul.Consul(host=srv.host, port=srv.port, token=None)


def test_put_get_recurse_keys_separator_raw_flags(c, srv):
    assert c.kv.put("web/foo", "bar") is True
    assert c.kv.put("web/sub/x", b"\x00\xffbin", flags=42) is True
    assert c.kv.put("web/sub/y", "y") is True
    assert c.kv.put("webby", "not under web/") is True
    index, entry = c.kv.get("web/foo")
    assert entry["Value"] == b"bar" and entry["Flags"] == 0 and entry["Key"] == "web/foo"
    assert entry["CreateIndex"] == entry["ModifyIndex"] == int(index)
    assert "Session" not in entry
    _, entry = c.kv.get("web/sub/x")
    assert entry["Value"] == b"\x00\xffbin" and entry["Flags"] == 42
    # a plain PUT resets flags to 0 and keeps CreateIndex
    c.kv.put("web/sub/x", b"v2")
    _, again = c.kv.get("web/sub/x")
    assert again["Flags"] == 0 and again["CreateIndex"] == entry["CreateIndex"] and again["ModifyIndex"] > entry[
        "ModifyIndex"]
    index, entries = c.kv.get("web/", recurse=True)
    assert [e["Key"] for e in entries] == ["web/foo", "web/sub/x", "web/sub/y"]
    assert int(index) == max(e["ModifyIndex"] for e in entries)
    _, keys = c.kv.get("web/", keys=True)
    assert keys == ["web/foo", "web/sub/x", "web/sub/y"]
    _, keys = c.kv.get("web/", keys=True, separator="/")
    assert keys == ["web/foo", "web/sub/"]
    _, keys = c.kv.get("we", keys=True, separator="/")
    assert keys == ["web/", "webby"]
    # ?raw: the bytes themselves, served as inert text
    r = requests.get(f"{srv.url}/v1/kv/web/foo?raw", timeout=5)
    assert r.status_code == 200 and r.content == b"bar"
    assert r.headers["Content-Type"].startswith("text/plain") and r.headers["X-Content-Type-Options"] == "nosniff"
    # empty value is null
    c.kv.put("web/empty", None)
    r = requests.get(f"{srv.url}/v1/kv/web/empty", timeout=5)
    assert r.json()[0]["Value"] is None
    # missing: 404 with an index; keys on a missing prefix 404, on the root []
    assert c.kv.get("web/missing") [1] is None
    assert requests.get(f"{srv.url}/v1/kv/nothing-here/?keys", timeout=5).status_code == 404


def test_404_carries_index_and_errors_are_plain_text(c, srv):
    r = requests.get(f"{srv.url}/v1/kv/no/such/key", timeout=5)
    assert r.status_code == 404 and r.content == b"" and int(r.headers["X-Consul-Index"]) >= 1
    index, value = c.kv.get("no/such/key")
    assert value is None and int(index) >= 1
    r = requests.put(f"{srv.url}/v1/kv/", data=b"x", timeout=5)
    assert r.status_code == 400 and r.text == "Missing key name"
    r = requests.put(f"{srv.url}/v1/kv/k?cas=0&acquire=abc", timeout=5)
    assert r.status_code == 400 and r.text.startswith("Conflicting flags: ")
    r = requests.get(f"{srv.url}/v1/kv/k?index=abc", timeout=5)
    assert r.status_code == 400 and r.text == "Invalid index"
    r = requests.get(f"{srv.url}/v1/kv/k?dc=elsewhere", timeout=5)
    assert r.status_code == 500 and r.text == "No path to datacenter"
    assert requests.get(f"{srv.url}/v1/kv/no/such/key?dc=dc1", timeout=5).status_code == 404


def test_cas_success_and_conflict_and_delete_cas(c):
    assert c.kv.put("cas/k", "v0", cas=0) is True
    assert c.kv.put("cas/k", "again", cas=0) is False  # create-only: exists
    _, entry = c.kv.get("cas/k")
    assert c.kv.put("cas/k", "v1", cas=entry["ModifyIndex"]) is True
    assert c.kv.put("cas/k", "v2", cas=entry["ModifyIndex"]) is False  # stale index
    assert c.kv.get("cas/k")[1]["Value"] == b"v1"
    _, entry = c.kv.get("cas/k")
    assert c.kv.delete("cas/k", cas=entry["ModifyIndex"] + 100) is False
    assert c.kv.get("cas/k")[1] is not None
    assert c.kv.delete("cas/k", cas=entry["ModifyIndex"]) is True
    assert c.kv.get("cas/k")[1] is None


def test_delete_recurse_and_tombstone_index(c):
    for k in ("del/a", "del/b/c", "del/b/d", "delx"):
        c.kv.put(k, "1")
    before, _ = c.kv.get("del/", recurse=True)
    assert c.kv.delete("del/b/", recurse=True) is True
    index, entries = c.kv.get("del/", recurse=True)
    assert [e["Key"] for e in entries] == ["del/a"]
    assert int(index) > int(before)  # the delete raised the prefix's index (tombstones)
    assert c.kv.delete("del/", recurse=True) is True
    assert c.kv.get("del/", recurse=True)[1] is None
    assert c.kv.get("delx")[1]["Value"] == b"1"


def _put_later(c: consul.Consul, key: str, value: str, delay: float) -> threading.Thread:
    t = threading.Thread(target=lambda: (time.sleep(delay), c.kv.put(key, value)), daemon=True)
    t.start()
    return t


def test_blocking_query_woken_by_put(c):
    c.kv.put("blk/key", "one")
    index, _ = c.kv.get("blk/key")
    t = _put_later(c, "blk/key", "two", 0.3)
    start = time.monotonic()
    new_index, entry = c.kv.get("blk/key", index=index, wait="20s")
    elapsed = time.monotonic() - start
    t.join()
    assert entry["Value"] == b"two" and int(new_index) > int(index)
    assert 0.25 <= elapsed < 5


def test_blocking_query_on_prefix_ignores_other_keys(c):
    c.kv.put("blkp/a", "1")
    c.kv.put("other/z", "1")
    index, _ = c.kv.get("blkp/", recurse=True)
    t1 = _put_later(c, "other/z", "2", 0.1)  # must not wake the prefix watcher
    t2 = _put_later(c, "blkp/b", "new", 0.6)
    start = time.monotonic()
    new_index, entries = c.kv.get("blkp/", recurse=True, index=index, wait="20s")
    elapsed = time.monotonic() - start
    t1.join()
    t2.join()
    assert [e["Key"] for e in entries] == ["blkp/a", "blkp/b"]
    assert int(new_index) > int(index) and elapsed >= 0.5


def test_blocking_query_times_out_with_same_index(c):
    c.kv.put("blkt/k", "v")
    index, _ = c.kv.get("blkt/k")
    start = time.monotonic()
    new_index, entry = c.kv.get("blkt/k", index=index, wait="1s")
    elapsed = time.monotonic() - start
    assert new_index == index and entry["Value"] == b"v"
    assert 1.0 <= elapsed < 1.0 + 1 / 16 + 2.0  # wait plus at most wait/16 jitter (and a loaded machine)


def test_blocking_on_missing_key_woken_when_created(c):
    index, value = c.kv.get("blkm/new")
    assert value is None
    t = _put_later(c, "blkm/new", "here", 0.2)
    _, entry = c.kv.get("blkm/new", index=index, wait="20s")
    t.join()
    assert entry is not None and entry["Value"] == b"here"


def test_wait_is_capped_and_parsed(srv):
    r = requests.get(f"{srv.url}/v1/kv/x?index=1&wait=bogus", timeout=5)
    assert r.status_code == 400 and r.text == "Invalid wait time"


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_txn_success_and_rollback_with_per_op_errors(c, srv):
    ops = [{"KV": {"Verb": "set", "Key": f"txn/k{i}", "Value": _b64(f"v{i}")}} for i in range(3)]
    ops.append({"KV": {"Verb": "get", "Key": "txn/k1"}})
    res = c.txn.put(ops)
    assert res["Errors"] is None
    assert [r["KV"]["Key"] for r in res["Results"]] == ["txn/k0", "txn/k1", "txn/k2", "txn/k1"]
    assert res["Results"][0]["KV"]["Value"] is None and base64.b64decode(res["Results"][3]["KV"]["Value"]) == b"v1"
    indexes = {r["KV"]["ModifyIndex"] for r in res["Results"][:3]}
    assert len(indexes) == 1  # one transaction, one index
    stale = res["Results"][0]["KV"]["ModifyIndex"] - 1
    bad = [
        {"KV": {"Verb": "set", "Key": "txn/new", "Value": _b64("x")}},
        {"KV": {"Verb": "cas", "Key": "txn/k0", "Value": _b64("y"), "Index": stale}},
        {"KV": {"Verb": "get", "Key": "txn/absent"}},
    ]
    r = requests.put(f"{srv.url}/v1/txn", json=bad, timeout=5)
    assert r.status_code == 409
    body = r.json()
    assert body["Results"] is None
    assert [e["OpIndex"] for e in body["Errors"]] == [1, 2]
    assert "index is stale" in body["Errors"][0]["What"] and "doesn't exist" in body["Errors"][1]["What"]
    with pytest.raises(consul.ConsulException, match="409"):  # py-consul sees it as a client error
        c.txn.put(bad)
    assert c.kv.get("txn/new")[1] is None  # rolled back: nothing applied
    assert c.kv.get("txn/k0")[1]["Value"] == b"v0"


def test_txn_limits_and_parse_errors(srv):
    too_many = [{"KV": {"Verb": "set", "Key": f"lim/{i}", "Value": _b64("x")}} for i in range(65)]
    r = requests.put(f"{srv.url}/v1/txn", json=too_many, timeout=5)
    assert r.status_code == 413 and r.text == "Transaction contains too many operations (65 > 64)"
    r = requests.put(f"{srv.url}/v1/txn", json=too_many[:64], timeout=5)
    assert r.status_code == 200
    r = requests.put(f"{srv.url}/v1/txn", data=b"{not json", timeout=5)
    assert r.status_code == 400 and r.text.startswith("Failed to parse body: ")
    r = requests.put(f"{srv.url}/v1/txn", json=[{"KV": {"Verb": "set", "Key": "b", "Value": "!!notb64"}}], timeout=5)
    assert r.status_code == 400
    r = requests.put(f"{srv.url}/v1/txn", json=[{"KV": {"Verb": "explode", "Key": "b"}}], timeout=5)
    assert r.status_code == 409 and "unknown KV verb" in r.json()["Errors"][0]["What"]


def test_txn_tree_check_and_delete_verbs(c):
    c.kv.put("tv/a", "1")
    c.kv.put("tv/b", "2")
    _, a = c.kv.get("tv/a")
    res = c.txn.put([
        {"KV": {"Verb": "check-index", "Key": "tv/a", "Index": a["ModifyIndex"]}},
        {"KV": {"Verb": "check-not-exists", "Key": "tv/zzz"}},
        {"KV": {"Verb": "get-tree", "Key": "tv/"}},
        {"KV": {"Verb": "delete-cas", "Key": "tv/a", "Index": a["ModifyIndex"]}},
        {"KV": {"Verb": "delete-tree", "Key": "tv/"}},
    ])
    assert [r["KV"]["Key"] for r in res["Results"]] == ["tv/a", "tv/a", "tv/b"]
    assert c.kv.get("tv/", recurse=True)[1] is None


def test_session_acquire_release_contention(c):
    s1 = c.session.create(name="one", lock_delay=0)
    s2 = c.session.create(name="two", lock_delay=0)
    assert c.kv.put("lock/k", "holder-1", acquire=s1) is True
    assert c.kv.put("lock/k", "holder-2", acquire=s2) is False
    _, entry = c.kv.get("lock/k")
    assert entry["Session"] == s1 and entry["LockIndex"] == 1 and entry["Value"] == b"holder-1"
    assert c.kv.put("lock/k", "x", release=s2) is False  # not the holder
    assert c.kv.put("lock/k", "free", release=s1) is True
    _, entry = c.kv.get("lock/k")
    assert "Session" not in entry and entry["LockIndex"] == 1
    assert c.kv.put("lock/k", "holder-2", acquire=s2) is True
    assert c.kv.get("lock/k")[1]["LockIndex"] == 2
    # destroying the holder releases the lock (behavior=release)
    assert c.session.destroy(s2) is True
    _, entry = c.kv.get("lock/k")
    assert "Session" not in entry and entry["Value"] == b"holder-2"
    assert c.kv.put("lock/k", "again", acquire=s1) is True
    _, info = c.session.info(s1)
    assert info["ID"] == s1 and info["Name"] == "one" and info["Behavior"] == "release"
    _, sessions = c.session.list()
    assert s1 in {s["ID"] for s in sessions} and s2 not in {s["ID"] for s in sessions}
    _, on_node = c.session.node(c.agent.self()["Config"]["NodeName"])
    assert s1 in {s["ID"] for s in on_node}
    c.session.destroy(s1)


def test_session_invalid_lock_delay_and_delete_behavior(c, srv):
    r = requests.put(f"{srv.url}/v1/kv/lockd/k?acquire=00000000-0000-0000-0000-000000000000", timeout=5)
    assert r.status_code == 500 and "invalid session" in r.text
    s1 = c.session.create(lock_delay=15)
    assert c.kv.put("lockd/k", "v", acquire=s1)
    c.session.destroy(s1)
    s2 = c.session.create(lock_delay=0)
    assert c.kv.put("lockd/k", "v", acquire=s2) is False  # within s1's 15 s lock-delay
    eph = c.session.create(behavior="delete", lock_delay=0)
    assert c.kv.put("lockd/eph", "here", acquire=eph)
    c.session.destroy(eph)
    assert c.kv.get("lockd/eph")[1] is None
    c.session.destroy(s2)


def test_session_ttl_expiry_and_renew(c, srv):
    r = requests.put(f"{srv.url}/v1/session/create", json={"TTL": "0.1s"}, timeout=5)
    assert r.status_code == 400 and "Invalid Session TTL" in r.text
    # py-consul insists on TTL >= 10 s; this server expires sessions at TTL x 0.2 = 2 s (Consul: x 2)
    sid = c.session.create(ttl=10, lock_delay=0)
    assert c.kv.put("ttl/k", "v", acquire=sid)
    for _ in range(3):  # renewing keeps it alive past its TTL
        time.sleep(0.5)
        renewed = c.session.renew(sid)
        assert renewed["ID"] == sid and renewed["TTL"] == "10s"
    time.sleep(3.0)
    assert c.session.info(sid)[1] is None
    assert "Session" not in c.kv.get("ttl/k")[1]
    with pytest.raises(consul.NotFound):
        c.session.renew(sid)


def test_value_limit_413(c, srv):
    assert c.kv.put("big/ok", b"x" * 524288) is True
    with pytest.raises(consul.ConsulException, match="413"):
        c.kv.put("big/no", b"x" * 524289)
    r = requests.put(f"{srv.url}/v1/kv/big/no", data=b"x" * 524289, timeout=5)
    assert r.status_code == 413 and "524288" in r.text
    assert c.kv.get("big/no")[1] is None


def test_status_and_agent_self(c):
    assert c.status.leader() == "127.0.0.1:8300"
    me = c.agent.self()
    assert me["Config"]["Datacenter"] == "dc1" and me["Config"]["Server"] is True and me["Member"]["Name"]


def test_acl_tokens(consul_factory):
    srv = consul_factory(acl={
        "tokens": {"root-secret": "management", "app-secret": {"": "read", "app/": "write", "app/private/": "deny"}},
        "default_policy": "deny",
    })
    root = consul.Consul(host=srv.host, port=srv.port, token="root-secret")
    app = consul.Consul(host=srv.host, port=srv.port, token="app-secret")
    anon = consul.Consul(host=srv.host, port=srv.port)
    anon.token = None  # ignore CONSUL_HTTP_TOKEN from the environment
    assert root.kv.put("app/private/secret", "s") and root.kv.put("other/x", "o")
    assert app.kv.put("app/config", "c") is True
    with pytest.raises(consul.ACLPermissionDenied, match="Permission denied"):
        app.kv.put("other/x", "nope")
    with pytest.raises(consul.ACLPermissionDenied, match="Permission denied"):
        app.kv.get("app/private/secret")
    with pytest.raises(consul.ACLPermissionDenied):
        anon.kv.get("other/x")
    assert app.kv.get("other/x")[1]["Value"] == b"o"
    # recursive reads silently filter what the token cannot read
    _, entries = app.kv.get("app/", recurse=True)
    assert [e["Key"] for e in entries] == ["app/config"]
    r = requests.get(f"{srv.url}/v1/kv/app/config", headers={"X-Consul-Token": "wrong"}, timeout=5)
    assert r.status_code == 403 and r.text == "ACL not found"
    r = requests.get(f"{srv.url}/v1/kv/app/config?token=app-secret", timeout=5)
    assert r.status_code == 200
    r = requests.get(f"{srv.url}/v1/kv/app/config", headers={"Authorization": "Bearer app-secret"}, timeout=5)
    assert r.status_code == 200
    r = requests.put(f"{srv.url}/v1/txn", headers={"X-Consul-Token": "app-secret"},
                     json=[{"KV": {"Verb": "set", "Key": "other/y", "Value": _b64("1")}}], timeout=5)
    assert r.status_code == 409 and r.json()["Errors"][0]["What"] == "Permission denied"
    with pytest.raises(consul.ACLPermissionDenied):
        app.kv.delete("app/", recurse=True)  # app/private/ is denied inside the prefix


def test_keys_with_special_characters(c):
    for key in ("odd/sp ace/ü%x", "odd/q?x#y", "odd/a+b"):
        assert c.kv.put(key, key) is True
        assert c.kv.get(key)[1]["Value"] == key.encode()
    assert c.kv.get("odd/", keys=True)[1] == ["odd/a+b", "odd/q?x#y", "odd/sp ace/ü%x"]


def test_index_ahead_of_the_server_blocks_until_wait(c):
    c.kv.put("ahead/k", "v")
    index, _ = c.kv.get("ahead/k")
    start = time.monotonic()
    new_index, entry = c.kv.get("ahead/k", index=int(index) + 1000, wait="0.5s")
    assert time.monotonic() - start >= 0.5 and new_index == index and entry["Value"] == b"v"


def test_txn_body_limit_413(srv):
    chunk = _b64("x" * 10_000)
    ops = [{"KV": {"Verb": "set", "Key": f"tb/{i}", "Value": chunk}} for i in range(64)]  # ~850 KB of JSON
    r = requests.put(f"{srv.url}/v1/txn", json=ops, timeout=10)
    assert r.status_code == 413 and r.text == "Request body too large, max size: 524288 bytes"
    big = [{"KV": {"Verb": "set", "Key": "tb/big", "Value": _b64("y" * 524_289)}}]
    r = requests.put(f"{srv.url}/v1/txn", data=json.dumps(big).encode(), timeout=10)
    assert r.status_code == 413


def test_a_write_wakes_only_the_watchers_it_concerns(srv):
    import asyncio

    import aiohttp

    async def run() -> tuple[int, int, list[str]]:
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as s:
            for i in range(100):
                await s.put(f"{srv.url}/v1/kv/fan/k{i:03d}", data=b"x")
            async with s.get(f"{srv.url}/v1/kv/fan/k099") as r:
                index = r.headers["X-Consul-Index"]
            returned: list[str] = []

            async def watch(path: str) -> None:
                async with s.get(f"{srv.url}/v1/kv/{path}index={index}&wait=20s") as r:
                    await r.read()
                    returned.append(path)

            paths = [f"fan/k{i:03d}?" for i in range(100)] + [f"fan/k0{d}?recurse&" for d in range(10)]
            paths += ["fan/?recurse&", "other/?recurse&"]
            tasks = [asyncio.create_task(watch(p)) for p in paths]
            await asyncio.sleep(1.0)
            async with s.get(f"{srv.url}/v1/agent/self") as r:
                before = (await r.json())["Stats"]["blocking"]
            await s.put(f"{srv.url}/v1/kv/fan/k042", data=b"changed")
            await asyncio.sleep(1.0)
            async with s.get(f"{srv.url}/v1/agent/self") as r:
                after = (await r.json())["Stats"]["blocking"]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return int(before["waiting"]), int(after["wakeups"]) - int(before["wakeups"]), sorted(returned)

    waiting, woken, returned = asyncio.run(run())
    assert waiting >= 112
    assert woken == 3  # the key's own watcher, fan/k04 and fan/; not the 99 other keys nor the 9 other prefixes
    assert returned == sorted(["fan/?recurse&", "fan/k04?recurse&", "fan/k042?"])


def test_concurrent_cas_increments_lose_nothing(srv):
    def bump(times: int) -> None:
        c = consul.Consul(host=srv.host, port=srv.port)
        done = 0
        while done < times:
            _, entry = c.kv.get("counter")
            if entry is None:
                ok = c.kv.put("counter", "1", cas=0)
            else:
                ok = c.kv.put("counter", str(int(entry["Value"]) + 1), cas=entry["ModifyIndex"])
            done += bool(ok)

    threads = [threading.Thread(target=bump, args=(25,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    c = consul.Consul(host=srv.host, port=srv.port)
    assert c.kv.get("counter")[1]["Value"] == b"100"
