"""Shared by the devcluster benchmarks: start a devcluster subprocess and read its event stream."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from benchkit import free_port, stop_group, wait_http

REPO = Path(__file__).resolve().parents[1]


class Server:
    """A devcluster on free ports with a temp state dir; use as a context manager."""

    def __init__(self, heartbeat: str = "10s") -> None:
        self.tmp = tempfile.TemporaryDirectory(prefix="dk-bench-")
        self.state_dir = Path(self.tmp.name)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "deploykit.devcluster", "--marathon-port", str(self.port), "--consul-port", "0",
             "--state-dir", str(self.state_dir), "--event-heartbeat", heartbeat, "--log-level", "WARNING"],
            cwd=REPO, start_new_session=True, stdout=subprocess.DEVNULL,
            stderr=open(self.state_dir / "server.log", "wb"))  # noqa: SIM115
        wait_http(f"{self.url}/ping", 30, interval=0.05)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc) -> None:
        stop_group(self.proc, 30)
        self.tmp.cleanup()


class Events:
    """SSE reader recording (arrival time, event) pairs."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlparse(url)
        self.conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=120)
        self.conn.request("GET", "/v2/events", headers={"Accept": "text/event-stream"})
        self.resp = self.conn.getresponse()
        self.items: list[tuple[float, dict]] = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        try:
            for raw in iter(self.resp.readline, b""):
                if raw.startswith(b"data: "):
                    item = (time.perf_counter(), json.loads(raw[6:]))
                    with self.cond:
                        self.items.append(item)
                        self.cond.notify_all()
        except Exception:
            pass

    def wait(self, pred, since: int = 0, timeout: float = 60) -> tuple[float, dict]:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for item in self.items[since:]:
                    if pred(item[1]):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("event not seen")
                self.cond.wait(left)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.conn.sock is not None:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()
