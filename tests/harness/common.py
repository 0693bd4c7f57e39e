"""Small helpers shared by the service fixtures."""

from __future__ import annotations

import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import pytest

from tests.harness.procs import free_port, kill_group, stop_group

__all__ = ["free_port", "kill_group", "stop_group"]  # re-exported: fixtures and tests import them from here

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_binary(name: str) -> str:
    """Path of `name`; in CI a missing binary fails the test, elsewhere it skips."""
    path = shutil.which(name)
    if path:
        return path
    unavailable(f"{name} is not installed (run scripts/setup.sh)")


def unavailable(msg: str) -> NoReturn:
    """A service or tool a test needs is missing: a failure under CI=true (never a silent skip), else a skip."""
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)



def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception as exc:  # the service is still starting
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last_exc})")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def spawn(argv: Sequence[str], log_path: Path, **popen_kw) -> subprocess.Popen:
    """Start a service in its own process group (so stop/kill reach its children), output appended to a log."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(list(argv), stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **popen_kw)




class _NamedHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = (f"{self.server.name} {self.path}" if self.server.echo_path else self.server.name).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


class NamedHTTPServer(http.server.ThreadingHTTPServer):
    """A tiny backend on a free 127.0.0.1 port answering every GET with its name (and ' <path>' with echo_path),
    so a test can tell which server HAProxy routed to. Serves on a daemon thread until close()."""

    daemon_threads = True

    def __init__(self, name: str, *, echo_path: bool = False) -> None:
        super().__init__(("127.0.0.1", 0), _NamedHandler)
        self.name, self.echo_path = name, echo_path
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    def handle_error(self, request, client_address) -> None:  # HAProxy's checks reset connections; not an error
        pass

    def close(self) -> None:
        self.shutdown()
        self.server_close()
