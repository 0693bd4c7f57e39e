"""The Consul stand-in starts as a subprocess, serves KV to py-consul, and keeps data across a kill -9."""

from __future__ import annotations

import consul
import pytest

pytestmark = pytest.mark.integration


def test_put_get_survives_kill(consul_server):
    c = consul.Consul(host=consul_server.host, port=consul_server.port)
    assert c.kv.put("smoke/a", b"1") is True
    index, entry = c.kv.get("smoke/a")
    assert entry["Value"] == b"1" and int(index) >= 1
    consul_server.kill()
    consul_server.start()
    _, entry = c.kv.get("smoke/a")
    assert entry["Value"] == b"1"


def test_first_write_to_a_fresh_store_wakes_a_blocked_reader(consul_server):
    import threading
    import time

    c = consul.Consul(host=consul_server.host, port=consul_server.port)
    index, value = c.kv.get("first")
    assert value is None and int(index) >= 1
    t = threading.Thread(target=lambda: (time.sleep(0.3), c.kv.put("first", "1")))
    t.start()
    start = time.monotonic()
    new_index, entry = c.kv.get("first", index=index, wait="10s")
    t.join()
    assert entry["Value"] == b"1" and int(new_index) > int(index)
    assert time.monotonic() - start < 5  # woken by the write, not by the end of the wait
