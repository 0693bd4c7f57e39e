"""The devcluster (`python -m deploykit.devcluster`) as a real subprocess on free ports.

`devcluster` gives one started instance; `devcluster_factory(**kw)` makes more (e.g. two
on one ZooKeeper for failover, sharing a state dir). Each instance has its own temp state
dir (unless given one), log file and an env dir whose `local.json` points deploykit at it:
`deploykit deploy app.yaml --env local --env-dir <dc.env_dir>`. Everything is killed at
teardown, tasks included (the server's reaper kills them even after a SIGKILL, and the
fixture double-checks the task process groups it recorded).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.common import free_port, port_open, spawn, stop_group, wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]


def _get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


class Devcluster:
    """A devcluster process: `.marathon_url`, `.consul_url`, `.state_dir`, `.env_dir`, `.log_path`."""

    def __init__(self, workdir: Path, *, state_dir: Path | None = None, zk: str | None = None,
                 heartbeat: str = "1s", extra_args: list[str] | None = None, consul: bool = True,
                 env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.marathon_port = free_port()
        self.consul_port = free_port() if consul else 0
        self.state_dir = state_dir or workdir / "state"
        self.zk = zk
        self.heartbeat = heartbeat
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})  # extra environment for the server process (e.g. DOCKER_HOST)
        self.log_path = workdir / f"devcluster-{self.marathon_port}.log"
        self.env_dir = workdir / "env"
        self.proc: subprocess.Popen | None = None
        self._write_env()

    @property
    def marathon_url(self) -> str:
        return f"http://127.0.0.1:{self.marathon_port}"

    @property
    def consul_url(self) -> str:
        return f"http://127.0.0.1:{self.consul_port}"

    @property
    def ident(self) -> str:
        return f"127.0.0.1:{self.marathon_port}"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "marathon" / "run" / str(self.marathon_port)

    def _write_env(self) -> None:
        """local.json from chef_attrs with this instance's endpoints."""
        src = REPO_ROOT / "chef_attrs" / "local.json"
        doc = json.loads(src.read_text()) if src.exists() else {
            "name": "local", "json_class": "Chef::Environment", "chef_type": "environment",
            "default_attributes": {"deploykit": {}}, "override_attributes": {},
        }
        doc = copy.deepcopy(doc)
        dk = doc.setdefault("default_attributes", {}).setdefault("deploykit", {})
        dk.setdefault("marathon", {})["urls"] = [self.marathon_url]
        if self.zk:
            dk["marathon"]["zk"] = self.zk
        if self.consul_port:
            dk.setdefault("consul", {})["url"] = self.consul_url
        self.env_dir.mkdir(parents=True, exist_ok=True)
        (self.env_dir / "local.json").write_text(json.dumps(doc, indent=2))

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "deploykit.devcluster", "--marathon-port", str(self.marathon_port),
               "--consul-port", str(self.consul_port), "--state-dir", str(self.state_dir),
               "--event-heartbeat", self.heartbeat, "--log-level", "DEBUG", *self.extra_args]
        if self.zk:
            cmd += ["--zk", self.zk]
        return cmd

    def start(self, wait_leader: bool | None = None, timeout: float = 30) -> Devcluster:
        """Start the process; wait until it serves (and, without --zk, until it leads)."""
        self.proc = spawn(self.command(), self.log_path, cwd=REPO_ROOT, env={**os.environ, **self.env})
        wait_until(lambda: self._alive() and port_open(self.marathon_port), timeout, "devcluster Marathon port")
        if self.consul_port:
            wait_until(lambda: port_open(self.consul_port), timeout, "devcluster Consul port")
        if wait_leader if wait_leader is not None else not self.zk:
            self.wait_leader(timeout)
        return self

    def _alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError(f"devcluster exited; log:\n{self.log_tail()}")
        return True

    def is_leader(self) -> bool:
        """True when this instance is the elected Marathon leader."""
        try:
            return _get_json(f"{self.marathon_url}/v2/leader", timeout=3).get("leader") == self.ident
        except (OSError, urllib.error.URLError, ValueError):
            return False

    def wait_leader(self, timeout: float = 30) -> None:
        wait_until(lambda: self._alive() and self.is_leader(), timeout, f"devcluster {self.ident} as leader")

    def get(self, path: str) -> dict:
        return _get_json(self.marathon_url + path)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"

    def _recorded_task_groups(self) -> list[int]:
        out = []
        for f in self.run_dir.glob("*.pgid") if self.run_dir.is_dir() else []:
            with contextlib.suppress(OSError, ValueError):
                out.append(int(f.read_text()))
        return out

    def _kill_groups(self, pgids: list[int]) -> None:
        for pgid in pgids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, signal.SIGKILL)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM: the server stops its tasks and leaves ZooKeeper; SIGKILL if it hangs."""
        if self.proc is None:
            return
        groups = self._recorded_task_groups()
        stop_group(self.proc, timeout)
        self._kill_groups(groups)
        self.proc = None
        self.remove_containers()

    def containers(self) -> list[dict]:
        """This node's Docker containers (any state), from the engine."""
        from deploykit.devcluster.docker_engine import devcluster_containers

        return devcluster_containers(self.state_dir, self.marathon_port)

    def remove_containers(self) -> int:
        """Safety net at teardown: nothing this node started outlives the test."""
        from deploykit.devcluster.docker_engine import remove_devcluster_containers

        return remove_devcluster_containers(self.state_dir, self.marathon_port)

    def kill(self) -> None:
        """SIGKILL the server (a crash). Its reaper kills the tasks; we make sure of it."""
        if self.proc is None:
            return
        groups = self._recorded_task_groups()
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_group_alive(g) for g in groups):
            time.sleep(0.05)
        self._kill_groups(groups)
        self.proc = None

    def restart(self) -> Devcluster:
        self.stop()
        return self.start()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@pytest.fixture
def devcluster_factory() -> Iterator:
    """make(**kw) -> a started Devcluster; all are stopped at teardown."""
    made: list[Devcluster] = []
    with tempfile.TemporaryDirectory(prefix="dk-dc-") as tmp:
        def make(*, start: bool = True, **kw) -> Devcluster:
            dc = Devcluster(Path(tmp) / f"dc{len(made)}", **kw)
            made.append(dc)
            if start:
                dc.start()
            return dc

        try:
            yield make
        finally:
            for dc in made:
                dc.stop()
                dc.remove_containers()  # also after a kill() the test did not follow with a start()


@pytest.fixture
def devcluster(devcluster_factory) -> Devcluster:
    """One started devcluster (no ZooKeeper), leader of itself."""
    return devcluster_factory()


# --- helpers for tests that deploy apps to a devcluster -------------------------------------------------------
# examples/hello's `local` overlay for tests that want it as a command task (no Docker): its script is
# fetched into the sandbox and run with the host's python3, listening on $PORT0.
HELLO_AS_COMMAND = {"image": None, "build": None, "fetch": ["server.py"], "cmd": "python3 server.py"}


def http_app(app_id: str, instances: int = 1, health_path: str = "/health", *, grace: int = 30,
             interval: int = 1, max_failures: int = 3, **extra) -> dict:
    """A tiny HTTP app (busybox httpd serving its sandbox, which holds `health`) with an HTTP health check."""
    app = {
        "id": app_id, "instances": instances, "cpus": 0.01, "mem": 16,
        "cmd": "echo ok > health && exec busybox httpd -f -p 127.0.0.1:$PORT0 -h .",
        "portDefinitions": [{"port": 0, "name": "http"}],
        "healthChecks": [{"protocol": "HTTP", "path": health_path, "portIndex": 0, "gracePeriodSeconds": grace,
                          "intervalSeconds": interval, "timeoutSeconds": max(interval - 1, 1) if interval > 1 else 1,
                          "maxConsecutiveFailures": max_failures}],
    }
    if interval <= 1:
        app["healthChecks"][0]["timeoutSeconds"] = 0  # 0: the probe uses its default, smaller than any interval
    app.update(extra)
    return app


def wait_for(check, timeout: float = 30, what: str = "condition", interval: float = 0.1):
    """Poll `check()` until it returns something truthy; return that value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last value: {last!r})")


class EventReader:
    """Reads /v2/events (SSE) on a thread and keeps every event, for assertions."""

    def __init__(self, base_url: str, event_types: list[str] | None = None) -> None:
        import http.client
        import threading
        import urllib.parse

        parsed = urllib.parse.urlparse(base_url)
        query = urllib.parse.urlencode([("event_type", t) for t in event_types or []])
        self.conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        self.conn.request("GET", "/v2/events" + (f"?{query}" if query else ""),
                          headers={"Accept": "text/event-stream"})
        self.resp = self.conn.getresponse()  # http.client reads lines from a buffer: fast enough for bursts
        if self.resp.status != 200:
            raise AssertionError(f"/v2/events answered {self.resp.status}")
        self.events: list[dict] = []
        self.raw_lines: list[bytes] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        event_type = None
        try:
            for raw in iter(self.resp.readline, b""):
                line = raw.rstrip(b"\r\n")
                with self._lock:
                    self.raw_lines.append(line)
                if line.startswith(b"event: "):
                    event_type = line[7:].decode()
                elif line.startswith(b"data: "):
                    doc = json.loads(line[6:])
                    doc.setdefault("eventType", event_type)
                    with self._lock:
                        self.events.append(doc)
        except Exception:  # the stream is closed at teardown
            pass

    def of_type(self, event_type: str) -> list[dict]:
        with self._lock:
            return [e for e in self.events if e["eventType"] == event_type]

    def wait(self, event_type: str, pred=lambda e: True, timeout: float = 30) -> dict:
        return wait_for(lambda: next((e for e in self.of_type(event_type) if pred(e)), None), timeout,
                        f"event {event_type}")

    def close(self) -> None:
        import socket

        with contextlib.suppress(OSError):
            if self.conn.sock is not None:
                self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()
