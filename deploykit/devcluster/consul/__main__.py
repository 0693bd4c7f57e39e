"""Run the Consul stand-in alone: `python -m deploykit.devcluster.consul --port 8500 --state-dir DIR`."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from pathlib import Path

from aiohttp import web

from deploykit.devcluster.consul.app import create_app


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m deploykit.devcluster.consul", description=__doc__)
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


async def _serve(args: argparse.Namespace) -> None:
    acl = json.loads(args.acl_file.read_text()) if args.acl_file else {}
    app = create_app(
        args.state_dir, acl_tokens=acl.get("tokens"), default_policy=acl.get("default_policy", "allow"),
        session_ttl_min=args.session_ttl_min, session_ttl_multiplier=args.session_ttl_multiplier,
        tombstone_ttl=args.tombstone_ttl, compact_bytes=args.compact_bytes,
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)  # only record; the loop below acts
    print(f"consul stand-in listening on http://{args.host}:{args.port}", flush=True)
    await stop.wait()
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
