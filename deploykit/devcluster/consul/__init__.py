"""A Consul-compatible KV server (KV, txn, sessions, ACL tokens) for the devcluster.

`create_app(state_dir)` returns an aiohttp application; `deploykit local up` serves it on
its Consul port, and `python -m deploykit.devcluster.consul --port P --state-dir D` runs
it alone. See docs/consul.md.
"""

from __future__ import annotations

from deploykit.devcluster.consul.app import create_app
from deploykit.devcluster.consul.server import APP_KEY, MAX_TXN_OPS, MAX_VALUE_SIZE, ConsulServer

__all__ = ["APP_KEY", "MAX_TXN_OPS", "MAX_VALUE_SIZE", "ConsulServer", "create_app"]
