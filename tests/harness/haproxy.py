"""A real HAProxy 2.6 in master-worker mode on free ports, for tests.

`haproxy_factory(config)` starts one; `config` is text or a callable taking the instance
(so the text can name the instance's socket/state paths and ports). Every instance is
killed at teardown, old workers included: HAProxy daemonises, so the fixture kills every
pid `show proc` ever reported plus the master from the pidfile.
Under CI=true a missing haproxy binary fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from deploykit.lb.haproxy import ProcTable, parse_show_proc, socket_command
from tests.harness.common import free_port, require_binary, wait_until

BASE_GLOBAL = """\
global
    master-worker
    stats socket {stats_socket} mode 600 level admin expose-fd listeners
    server-state-file {state_file}
    hard-stop-after 30s
    mworker-max-reloads 20

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 3
    option redispatch
    retry-on all-retryable-errors
    load-server-state-from-file global
"""


class HAProxyInstance:
    """Paths, ports and controls of one HAProxy started by the fixture."""

    def __init__(self, workdir: Path, binary: str):
        self.dir = workdir
        self.binary = binary
        self.config_path = workdir / "haproxy.cfg"
        self.master_socket = workdir / "master.sock"
        self.stats_socket = workdir / "stats.sock"
        self.state_file = workdir / "server-state"
        self.pidfile = workdir / "haproxy.pid"
        self.http_port = free_port()
        self.master_pid: int | None = None
        self._seen_pids: set[int] = set()

    def base_global(self) -> str:
        """global + defaults sections wired to this instance's sockets and state file."""
        return BASE_GLOBAL.format(stats_socket=self.stats_socket, state_file=self.state_file)

    def start(self, config: str) -> None:
        self.config_path.write_text(config)
        check = subprocess.run([self.binary, "-c", "-q", "-f", str(self.config_path)], capture_output=True, text=True)
        if check.returncode != 0:
            raise AssertionError(f"test config is invalid:\n{check.stdout}{check.stderr}")
        subprocess.run(
            [
                self.binary,
                "-W",
                "-S",
                str(self.master_socket),
                "-f",
                str(self.config_path),
                "-D",
                "-p",
                str(self.pidfile),
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        wait_until(lambda: bool(self.show_proc().workers), 10, "HAProxy worker")
        self.master_pid = self.show_proc().master.pid

    def show_proc(self) -> ProcTable:
        table = parse_show_proc(socket_command(self.master_socket, "show proc"))
        self._seen_pids.update(p.pid for p in (table.master, *table.workers, *table.old_workers))
        return table

    def reload_count(self) -> int:
        return self.show_proc().master.reloads

    def reload(self, timeout: float = 10.0) -> bool:
        """Reload through the master CLI; True when the master confirms a successful reload."""
        before = self.reload_count()
        socket_command(self.master_socket, "reload")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            time.sleep(0.02)
            with contextlib.suppress(Exception):
                table = self.show_proc()
                if table.master.reloads > before:
                    return not table.master.failed
        raise TimeoutError("HAProxy did not confirm the reload")

    def stats(self, command: str) -> str:
        return socket_command(self.stats_socket, command)

    def kill(self) -> None:
        with contextlib.suppress(Exception):
            self.show_proc()  # learn the current worker pids
        with contextlib.suppress(OSError, ValueError):
            self._seen_pids.add(int(self.pidfile.read_text().split()[0]))
        for pid in self._seen_pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def haproxy_factory():
    """Start HAProxy instances: `inst = haproxy_factory(lambda h: h.base_global() + "...")`."""
    binary = require_binary("haproxy")
    started: list[HAProxyInstance] = []
    tmp = tempfile.TemporaryDirectory(prefix="dk-haproxy-")

    def make(config: str | Callable[[HAProxyInstance], str] | None = None) -> HAProxyInstance:
        workdir = Path(tmp.name) / f"h{len(started)}"
        workdir.mkdir()
        inst = HAProxyInstance(workdir, binary)
        started.append(inst)
        if config is not None:
            inst.start(config(inst) if callable(config) else config)
        return inst

    try:
        yield make
    finally:
        for inst in started:
            inst.kill()
        tmp.cleanup()
