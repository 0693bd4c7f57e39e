"""deploykit.clients.consul against the real Consul stand-in: KV, watch, txn, sessions, config versions, errors."""

from __future__ import annotations

import threading
import time

import consul
import pytest

from deploykit.clients.consul import ConsulClient, KeyNotFound, TxnDenied, TxnError
from deploykit.errors import AuthError, RemoteError, UnreachableError, ValidationError
from tests.harness.common import free_port

pytestmark = pytest.mark.integration


@pytest.fixture
def client(consul_server) -> ConsulClient:
    return ConsulClient(consul_server.url)


def test_kv_roundtrip(client):
    assert client.put("a/b/c", "1") and client.put("a/b/d", b"\x00") and client.put("a/e", "")
    assert client.get("a/b/c") == b"1" and client.get("a/e") == b"" and client.get("nope") is None
    meta = client.get("a/b/c", with_meta=True)
    assert meta["Key"] == "a/b/c" and meta["ModifyIndex"] > 0
    assert client.put("a/b/c", "2", cas=meta["ModifyIndex"]) is True
    assert client.put("a/b/c", "3", cas=meta["ModifyIndex"]) is False
    assert client.ls("a/") == ["a/b/", "a/e"]
    assert client.ls("a/", separator=None) == ["a/b/c", "a/b/d", "a/e"]
    assert client.ls("missing/") == []
    assert client.tree("a/b/") == {"a/b/c": b"2", "a/b/d": b"\x00"}
    assert client.delete("a/", recurse=True) and client.tree("a/") == {}
    assert KeyNotFound("x").exit_code == 2  # invalid input, not "deploy rolled back"


def test_unreachable_is_translated_quickly():
    c = ConsulClient(f"http://127.0.0.1:{free_port()}", timeout=2)
    start = time.monotonic()
    with pytest.raises(UnreachableError, match="did not answer"):
        c.get("k")
    assert time.monotonic() - start < 5


def test_auth_error_never_shows_the_token(consul_factory, monkeypatch):
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "env-token-must-not-win")
    srv = consul_factory(acl={"tokens": {"s3cr3t-ro": "read", "s3cr3t-rw": "write"}, "default_policy": "deny"})
    ro = ConsulClient(srv.url, token="s3cr3t-ro")
    rw = ConsulClient(srv.url, token="s3cr3t-rw")
    assert rw.put("k", "v") and ro.get("k") == b"v"
    with pytest.raises(AuthError) as info:
        ro.put("k", "x")
    assert info.value.status == 403 and "Permission denied" in str(info.value)
    assert "s3cr3t" not in str(info.value) and "s3cr3t" not in repr(ro)
    with pytest.raises(AuthError):
        ConsulClient(srv.url, token="wrong").get("k")
    with pytest.raises(AuthError):
        ConsulClient(srv.url).get("k")  # anonymous, default deny (the env token is ignored)


def test_txn_partly_denied_is_rolled_back_as_an_auth_error(consul_factory):
    """One op the token may not write rolls the whole transaction back (409): TxnDenied, exit 2 like a 403."""
    srv = consul_factory(acl={"tokens": {"cfg": {"": "read", "config/": "write"}, "admin": "management"},
                              "default_policy": "deny"})
    cfg = ConsulClient(srv.url, token="cfg")
    with pytest.raises(TxnDenied) as info:
        cfg.txn([{"Verb": "set", "Key": "config/a", "Value": b"1"}, {"Verb": "set", "Key": "other/b", "Value": b"2"}])
    assert info.value.exit_code == 2 and info.value.status == 409 and isinstance(info.value, TxnError)
    assert [e["OpIndex"] for e in info.value.errors] == [1] and "check the token" in str(info.value)
    assert ConsulClient(srv.url, token="admin").get("config/a") is None  # the allowed op was rolled back too
    assert cfg.txn([{"Verb": "set", "Key": "config/a", "Value": b"1"}])  # within its rights: fine


def test_txn_results_and_rollback(client):
    res = client.txn([{"Verb": "set", "Key": "t/a", "Value": b"1"}, {"Verb": "get", "Key": "t/a"}])
    assert res[1]["KV"]["Value"] == b"1"
    with pytest.raises(TxnError) as info:
        client.txn([{"Verb": "set", "Key": "t/b", "Value": b"2"}, {"Verb": "check-not-exists", "Key": "t/a"}])
    assert info.value.status == 409 and info.value.errors[0]["OpIndex"] == 1
    assert client.get("t/b") is None
    with pytest.raises(ValueError):
        client.txn([{"Verb": "get", "Key": "x"}] * 65)


def test_sessions_and_locks(client):
    s1 = client.session_create("one", ttl=10, lock_delay=0)
    s2 = client.session_create("two", behavior="delete", lock_delay=0)
    assert client.acquire("lock/k", s1, b"me") is True
    assert client.acquire("lock/k", s2, b"you") is False
    assert client.session_renew(s1)["ID"] == s1
    assert client.get("lock/k", with_meta=True)["Session"] == s1
    assert client.release("lock/k", s2) is False
    assert client.release("lock/k", s1) is True and client.get("lock/k") == b"me"
    assert client.acquire("lock/k", s2, b"you") is True
    assert client.session_destroy(s2) is True
    assert client.get("lock/k") is None  # behavior=delete
    assert client.session_renew(s2) is None and client.session_info(s2) is None
    with pytest.raises(RemoteError):
        client.acquire("lock/x", "00000000-0000-0000-0000-000000000000")
    client.session_destroy(s1)


def _later(delay: float, fn, *args) -> threading.Thread:
    t = threading.Thread(target=lambda: (time.sleep(delay), fn(*args)), daemon=True)
    t.start()
    return t


def test_watch_prefix_yields_changes_only(client):
    client.put("w/a", "1")
    events = client.watch("w/", wait="5s")
    first = next(events)
    assert first.items == {"w/a": b"1"} and first.changed == {"w/a": b"1"}
    threads = [_later(0.2, client.put, "other", "x"), _later(0.4, client.put, "w/b", "2")]
    second = next(events)
    assert second.changed == {"w/b": b"2"} and second.index > first.index
    threads.append(_later(0.2, client.delete, "w/a"))
    third = next(events)
    assert third.changed == {"w/a": None} and third.items == {"w/b": b"2"}
    for t in threads:
        t.join()


def test_watch_key_and_index_going_backwards(consul_factory):
    srv = consul_factory(args=["--tombstone-ttl", "0.5"])
    client = ConsulClient(srv.url)
    client.put("p/a", "1")
    client.put("p/b", "2")
    client.delete("p/b")  # the prefix index now comes from the tombstone; once reaped it goes backwards
    events = client.watch("p/", wait="1s")
    first = next(events)
    assert first.items == {"p/a": b"1"}
    c = consul.Consul(host=srv.host, port=srv.port)
    time.sleep(1.0)
    assert int(c.kv.get("p/", recurse=True)[0]) < first.index  # the server's index really went backwards
    _later(0.3, client.put, "p/c", "3")
    nxt = next(events)  # the watch reset its index and still sees the new key
    assert nxt.changed == {"p/c": b"3"}
    key_events = client.watch("p/a", prefix=False, wait="5s")
    assert next(key_events).items == {"p/a": b"1"}
    _later(0.2, client.put, "p/a", "new")
    assert next(key_events).changed == {"p/a": b"new"}


def test_write_config_tree_chunks_skips_and_verifies(client):
    items = {f"k{i:03d}": f"v{i}".encode() for i in range(150)}
    res = client.write_config_tree("config/app/h1", items)
    assert (res.written, res.keys, res.txns) == (True, 150, 3)  # 150 keys + the marker in <=64-op txns
    assert client.tree("config/app/h1/") == {f"config/app/h1/{k}": v for k, v in items.items()}
    assert client.get("config/app/h1/") is not None  # the completion marker
    again = client.write_config_tree("config/app/h1", items)
    assert (again.written, again.txns) == (False, 0)
    # a half-written tree (crash before the last transaction) does not count as present
    client.txn([{"Verb": "set", "Key": "config/app/h2/a", "Value": b"partial"}])
    res = client.write_config_tree("config/app/h2", {"a": b"1", "b": b"2"})
    assert res.written and client.tree("config/app/h2/") == {"config/app/h2/a": b"1", "config/app/h2/b": b"2"}
    client.put("config/app/h2/a", "tampered")
    with pytest.raises(RemoteError, match="does not read back"):
        client.write_config_tree("config/app/h2", {"a": b"1", "b": b"2"})
    with pytest.raises(ValidationError, match="524288"):
        client.write_config_tree("config/app/h3", {"big": b"x" * (512 * 1024 + 1)})
    assert client.ls("config/app/h3/") == []
    # large values go in more, smaller transactions
    big = {f"f{i}": b"y" * 200_000 for i in range(5)}
    assert client.write_config_tree("config/app/h4", big).txns >= 3


def test_versions_and_gc(client):
    for h in ("aaa", "bbb", "ccc", "ddd"):
        client.write_config_tree(f"config/shop/cart/{h}", {"x": h.encode()})
    client.txn([{"Verb": "set", "Key": "config/shop/cart/eee/x", "Value": b"half"}])  # incomplete
    assert [h for h, _ in client.list_config_versions("config/shop/cart")] == ["ddd", "ccc", "bbb", "aaa"]
    gone = client.gc_config("config/shop/cart", keep=2, referenced={"aaa"})
    assert gone == ["bbb", "eee"]
    assert [h for h, _ in client.list_config_versions("config/shop/cart/")] == ["ddd", "ccc", "aaa"]
    assert client.tree("config/shop/cart/aaa/") == {"config/shop/cart/aaa/x": b"aaa"}


def test_watch_survives_a_server_restart(consul_server):
    client = ConsulClient(consul_server.url, timeout=2)
    client.put("r/a", "1")
    events = client.watch("r/", wait="2s", retry_for=30)
    assert next(events).items == {"r/a": b"1"}
    consul_server.kill()

    def restart_and_write() -> None:
        time.sleep(0.5)
        consul_server.start()
        client.put("r/b", "2")

    t = threading.Thread(target=restart_and_write)
    t.start()
    assert next(events).changed == {"r/b": b"2"}
    t.join()
    consul_server.kill()
    with pytest.raises(UnreachableError):
        next(client.watch("r/", retry_for=0))
