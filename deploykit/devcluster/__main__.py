"""`python -m deploykit.devcluster --marathon-port P --consul-port Q --state-dir D [--zk URL]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from deploykit.devcluster.server import Config, DevclusterNode
from deploykit.devcluster.util import parse_zk_url
from deploykit.durations import parse_seconds


def _zk_url(text: str) -> str:
    try:
        parse_zk_url(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if args.log_file:
        args.log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(args.log_file))
    logging.basicConfig(level=args.log_level.upper(), handlers=handlers,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("kazoo").setLevel(logging.WARNING)
    low, high = (int(x) for x in args.task_port_range.split("-"))
    cfg = Config(
        marathon_port=args.marathon_port, consul_port=args.consul_port or None, state_dir=args.state_dir.resolve(),
        zk=args.zk, zk_session_timeout=args.zk_session_timeout, hostname=args.hostname, bind=args.bind,
        event_heartbeat=args.event_heartbeat, event_max_outstanding=args.event_stream_max_outstanding,
        port_range=(low, high), max_body=args.max_body,
        deployment_start_delay=args.deployment_start_delay, health_early_poll=args.health_early_poll,
        http_credentials=args.http_credentials,
    )
    if args.consul_acl_file:
        try:
            acl = json.loads(args.consul_acl_file.read_text())
        except (OSError, ValueError) as exc:
            raise SystemExit(f"--consul-acl-file {args.consul_acl_file}: {exc}") from exc
        cfg.consul_options = {"acl_tokens": acl.get("tokens"), "default_policy": acl.get("default_policy", "allow")}
    cfg.state_dir.mkdir(parents=True, exist_ok=True)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)  # only record; run() acts
        await DevclusterNode(cfg).run(stop)

    asyncio.run(_main())
    return 0


if __name__ == "__main__":
    sys.exit(main())
