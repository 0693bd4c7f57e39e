"""The devcluster's Consul stand-in as a real subprocess on a free port, with its state in a temp dir."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import requests

from tests.harness.common import free_port, kill_group, spawn, stop_group, wait_until


class ConsulServerProcess:
    """`python -m deploykit.devcluster.consul`: `.url`, `.kill()` (SIGKILL), `.stop()`, `.start()` on the same dir."""

    def __init__(self, state_dir: Path, *, port: int | None = None, args: Sequence[str] = (),
                 acl: dict | None = None) -> None:
        self.state_dir = state_dir
        self.port = port or free_port()
        self.args = list(args)
        if acl is not None:
            acl_file = state_dir.parent / f"acl-{self.port}.json"
            acl_file.write_text(json.dumps(acl))
            self.args += ["--acl-file", str(acl_file)]
        self.proc: subprocess.Popen | None = None
        self.log_path = state_dir.parent / f"consul-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def start(self, timeout: float = 20) -> None:
        self.proc = spawn([sys.executable, "-m", "deploykit.devcluster.consul", "--port", str(self.port),
                           "--state-dir", str(self.state_dir), *self.args], self.log_path)

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"consul stand-in exited: {self.log_path.read_text()[-2000:]}")
            return requests.get(self.url + "/v1/status/leader", timeout=1).status_code == 200

        wait_until(ready, timeout, "consul stand-in")

    def kill(self) -> None:
        """SIGKILL: what a crash looks like (no flush, no cleanup)."""
        kill_group(self.proc)
        self.proc = None

    def stop(self) -> None:
        stop_group(self.proc)
        self.proc = None


@pytest.fixture
def consul_factory(tmp_path: Path) -> Iterator:
    """Make extra servers with options: `consul_factory(args=[...], acl={...})`; all are stopped afterwards."""
    made: list[ConsulServerProcess] = []

    def make(*, args: Sequence[str] = (), acl: dict | None = None, start: bool = True) -> ConsulServerProcess:
        state = tmp_path / f"consul-state-{len(made)}"
        state.mkdir()
        srv = ConsulServerProcess(state, args=args, acl=acl)
        made.append(srv)
        if start:
            srv.start()
        return srv

    yield make
    for srv in made:
        srv.stop()


@pytest.fixture
def consul_server(consul_factory) -> ConsulServerProcess:
    """A running Consul stand-in with a fresh state dir (`.url`, `.port`, `.kill()`, `.start()`)."""
    return consul_factory()
