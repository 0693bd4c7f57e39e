"""Small helpers: Marathon timestamps, ids, atomic file writes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import urllib.parse
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from deploykit.atomicfile import atomic_write
from deploykit.pids import pid_alive  # noqa: F401  (re-exported: devcluster modules import it from here)


def iso_ms(ts: float | None = None) -> str:
    """Marathon's timestamp format: ISO-8601 UTC with milliseconds."""
    dt = datetime.fromtimestamp(time.time() if ts is None else ts, tz=timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


class VersionClock:
    """Hands out strictly increasing version timestamps (two PUTs in one ms must differ)."""

    def __init__(self) -> None:
        self._last_ms = 0

    def next(self) -> str:
        ms = max(int(time.time() * 1000), self._last_ms + 1)
        self._last_ms = ms
        return iso_ms(ms / 1000)


def parse_zk_url(url: str) -> tuple[str, str]:
    """`zk://h1:2181,h2:2181/marathon` -> ("h1:2181,h2:2181", "/marathon"); ValueError for flags and argparse."""
    from deploykit.errors import ValidationError
    from deploykit.zkurl import parse_zk_url as parse

    try:
        parsed = parse(url, key="--zk", default_path="/marathon")
    except ValidationError as exc:
        raise ValueError("; ".join(f"{p.message} ({p.hint})" for p in exc.problems)) from None
    return parsed.hosts, parsed.path


def port_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (we can bind it ourselves).

    SO_REUSEADDR as servers bind: connections in TIME_WAIT (a server killed with clients connected) do
    not make a port look taken; a listening socket still does.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_holder(port: int) -> str | None:
    """Who listens on TCP `port` on this host ("pid 123 (haproxy)"), from /proc; None when unknown.

    For the "port in use" message: a port refused for a real listener names it, so nobody goes hunting.
    """
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(cols[9])
    if not inodes:
        return None
    wanted = {f"socket:[{i}]" for i in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    name = (proc / "comm").read_text().strip()
                    return f"pid {proc.name} ({name})"
    return None


def new_uuid() -> str:
    return str(uuid.uuid4())


def app_id_slug(app_id: str) -> str:
    """`/shop/cart` -> `shop_cart`, the prefix Marathon 1.10 puts on instance ids."""
    return app_id.strip("/").replace("/", "_")


def instance_id_for(app_id: str) -> str:
    return f"{app_id_slug(app_id)}.instance-{new_uuid()}"


def atomic_write_json(path: Path, doc: Any) -> None:
    """Write-then-rename so a crash never leaves a half-written state file."""
    atomic_write(path, json.dumps(doc, indent=1, sort_keys=True), mode=0o600, fsync=True)


async def wait_or_timeout(aw, timeout: float):
    """Await `aw` for at most `timeout` seconds; returns (done, result).

    Unlike asyncio.wait_for on Python < 3.12, this never swallows a cancellation that races
    with the inner future finishing (which left cancelled loops running forever).
    """
    fut = asyncio.ensure_future(aw)
    try:
        done, _ = await asyncio.wait({fut}, timeout=timeout)
    except asyncio.CancelledError:
        fut.cancel()
        raise
    if fut in done:
        return True, fut.result()
    fut.cancel()
    return False, None


# A file name's limit on Linux file systems (NAME_MAX): the store keeps one file per app.
NAME_MAX = 255


def app_state_name(app_id: str) -> str:
    """The file name an app's definition and versions are stored under (one directory for all apps)."""
    return urllib.parse.quote(app_id.strip("/"), safe="") + ".json"
