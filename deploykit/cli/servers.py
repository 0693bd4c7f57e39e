"""Command lines of the stand-in servers (`python -m deploykit.devcluster`, `python -m deploykit.devcluster.consul`).

They are spawned by `deploykit local up` and by the test harness, not typed by people, but their options are
parsed here with the rest of the CLI, so no module outside deploykit/cli reads sys.argv.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from deploykit.devcluster.util import parse_zk_url  # ValueError, as argparse types raise
from deploykit.durations import parse_seconds


def _zk_url(text: str) -> str:
    try:
        parse_zk_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def parse_devcluster_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m deploykit.devcluster",
                                description="Local Marathon- and Consul-compatible server.")
    p.add_argument("--marathon-port", type=int, default=8080)
    p.add_argument("--consul-port", type=int, default=8500, help="0 = do not serve the Consul API")
    p.add_argument("--state-dir", type=Path, default=Path(".deploykit/devcluster"))
    p.add_argument("--zk", default=None, type=_zk_url, help="zk://host:port/marathon: take part in leader election")
    p.add_argument("--zk-session-timeout", type=parse_seconds, default=10.0, help="ZooKeeper session timeout (10s)")
    p.add_argument("--hostname", default="127.0.0.1", help="advertised host (leader address, X-Marathon-Leader)")
    p.add_argument("--bind", default="127.0.0.1")
    p.add_argument("--event-heartbeat", type=parse_seconds, default=10.0, help="SSE heartbeat interval (10s)")
    p.add_argument("--event-stream-max-outstanding", type=int, default=1000,
                   help="queued events after which a slow SSE consumer is disconnected")
    p.add_argument("--task-port-range", default="31000-32000", help="host ports for tasks, LOW-HIGH")
    p.add_argument("--max-body", type=int, default=1024 * 1024, help="largest request body in bytes")
    p.add_argument("--deployment-start-delay", type=parse_seconds, default=0.0,
                   help="delay before a deployment's first step (to reproduce client races)")
    p.add_argument("--health-early-poll", type=parse_seconds, default=0.25,
                   help="probe this often until a check first passes (0 = only every intervalSeconds, as Marathon)")
    p.add_argument("--consul-acl-file", type=Path, default=None,
                   help='Consul ACLs: JSON {"tokens": {TOKEN: RULES}, "default_policy": "allow"|"deny"}')
    p.add_argument("--http-credentials", default=None, metavar="USER:PASSWORD",
                   help="require HTTP basic auth on the Marathon API (Marathon's --http_credentials)")
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--log-file", type=Path, default=None, help="also log to this file")
    return p.parse_args(argv)


def parse_consul_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m deploykit.devcluster.consul",
                                description="Consul KV stand-in (the devcluster's Consul API, alone).")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8500)
    p.add_argument("--state-dir", type=Path, required=True, help="where the journal and snapshot live")
    p.add_argument("--acl-file", type=Path, help='JSON {"tokens": {TOKEN: RULES}, "default_policy": "allow"|"deny"}')
    p.add_argument("--session-ttl-min", type=float, default=10.0, help="smallest session TTL accepted (s)")
    p.add_argument("--session-ttl-multiplier", type=float, default=2.0, help="TTL x this = expiry (Consul: 2)")
    p.add_argument("--tombstone-ttl", type=float, default=900.0, help="seconds deletes keep raising prefix indexes")
    p.add_argument("--compact-bytes", type=int, default=16 * 1024 * 1024, help="log size that triggers a snapshot")
    p.add_argument("--log-level", default="WARNING")
    return p.parse_args(argv)



def devcluster_main(argv: list[str] | None = None) -> int:
    from deploykit.devcluster.__main__ import run

    return run(parse_devcluster_args(argv))


def consul_main(argv: list[str] | None = None) -> int:
    from deploykit.devcluster.consul.__main__ import run

    return run(parse_consul_args(argv))
