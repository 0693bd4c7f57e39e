"""Run the Consul stand-in alone: `python -m deploykit.devcluster.consul --port 8500 --state-dir DIR`.

The options are parsed by deploykit.cli.servers (the CLI layer owns argument parsing); `run` serves.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys

from aiohttp import web

from deploykit.devcluster.consul.app import create_app


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


def run(args: argparse.Namespace) -> int:
    """Serve the Consul stand-in from parsed options (deploykit.cli.servers parses them)."""
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    from deploykit.cli.servers import consul_main

    sys.exit(consul_main())
