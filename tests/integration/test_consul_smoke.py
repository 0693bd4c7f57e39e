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
