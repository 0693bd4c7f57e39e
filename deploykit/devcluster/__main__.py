"""`python -m deploykit.devcluster --marathon-port P --consul-port Q --state-dir D [--zk URL]`.

The options are parsed by deploykit.cli.servers (the CLI layer owns argument parsing); `run` starts the node.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from deploykit.devcluster.server import Config, DevclusterNode


def run(args: argparse.Namespace) -> int:
    """Start one devcluster node from parsed command-line options (deploykit.cli.servers parses them)."""
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
    from deploykit.cli.servers import devcluster_main

    sys.exit(devcluster_main())
