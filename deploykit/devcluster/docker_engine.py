"""The one place deploykit talks to a Docker engine: which client, which socket, dockerd, labels.

Why both a CLI and the Engine API: containers are started with `docker run` (as Mesos' Docker
containerizer does), so `docker.parameters` are passed verbatim as `--key=value` options and
mean exactly what they mean to Docker. Everything long-lived or frequent (wait for exit, follow
logs, stop, remove, pull, inspect) goes to the Engine API over its socket, so a running task
costs no client process. The CLI is `/usr/bin/docker` (Debian docker.io, the client of the
engine it ships with) unless `DEPLOYKIT_DOCKER` names another; a newer `docker` earlier on
PATH is only a fallback. The CLI side (`local up/down/status`, the test harness) uses only
the standard library.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from deploykit.devcluster.util import pid_alive

DEFAULT_SOCKET = "/var/run/docker.sock"
DEVCLUSTER_LABEL = "deploykit.devcluster"  # value: the devcluster's state dir (absolute)
NODE_LABEL = "deploykit.devcluster.node"  # value: the node's Marathon port (nodes may share a state dir)
TASK_LABEL = "deploykit.devcluster.task"  # value: the Marathon task id
SANDBOX_MOUNT = "/mnt/mesos/sandbox"  # where Mesos mounts the task sandbox in a Docker container
INSTALL_HINT = ("install the Docker engine (apt-get install docker.io) and start `dockerd`, or run "
                "`deploykit local up` as root, which starts one")


def docker_cli() -> str | None:
    """The docker client to run: $DEPLOYKIT_DOCKER, /usr/bin/docker, else `docker` on PATH."""
    override = os.environ.get("DEPLOYKIT_DOCKER")
    if override:
        return shutil.which(override) or override
    if os.access("/usr/bin/docker", os.X_OK):
        return "/usr/bin/docker"
    return shutil.which("docker")


def engine_address(environ: Mapping[str, str] | None = None) -> str:
    """`DOCKER_HOST`, or the default unix socket, as a URL (what status pages and messages show)."""
    environ = os.environ if environ is None else environ
    return environ.get("DOCKER_HOST") or f"unix://{DEFAULT_SOCKET}"


def socket_path(environ: Mapping[str, str] | None = None) -> str | None:
    """The unix socket the Engine API answers on, None for a tcp:// DOCKER_HOST."""
    address = engine_address(environ)
    if address.startswith("unix://"):
        return address[len("unix://"):]
    return None


def api_base(environ: Mapping[str, str] | None = None) -> str:
    """Base URL for Engine API requests (the host part is ignored on a unix socket)."""
    address = engine_address(environ)
    if address.startswith("tcp://"):
        return "http://" + address[len("tcp://"):]
    return "http://docker"


def task_container_name(task_id: str) -> str:
    """Mesos names containers `mesos-<container id>`; ours carry the task id, which is unique."""
    return f"mesos-{task_id}"


# --- synchronous side (CLI process, harness) --------------------------------------------------------
def _cli(args: list[str], timeout: float = 30.0, check: bool = False) -> subprocess.CompletedProcess:
    cli = docker_cli()
    if cli is None:
        raise FileNotFoundError("no docker client installed")
    return subprocess.run([cli, *args], capture_output=True, text=True, timeout=timeout, check=check,
                          stdin=subprocess.DEVNULL)


def engine_version(timeout: float = 5.0) -> str | None:
    """The engine's version when one answers, else None."""
    try:
        out = _cli(["version", "--format", "{{.Server.Version}}"], timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    version = out.stdout.strip()
    return version if out.returncode == 0 and version else None


@dataclass
class Engine:
    """The engine a devcluster uses; `pid` is set only when we started dockerd ourselves."""

    address: str
    version: str
    pid: int | None = None
    log: str | None = None

    def to_json(self) -> dict:
        return {"address": self.address, "version": self.version, "dockerd_pid": self.pid,
                "started_by_deploykit": self.pid is not None, "log": self.log}


def can_start_dockerd() -> bool:
    """Only as root, only on the default socket, only when dockerd is installed."""
    return os.geteuid() == 0 and shutil.which("dockerd") is not None and "DOCKER_HOST" not in os.environ


def start_dockerd(log_path: Path, timeout: float = 40.0) -> Engine:
    """Start dockerd in its own session on the default socket and wait until it answers.

    A dockerd killed a moment ago leaves its pid file for a while ("pid file found"): wait for
    the old pid to go first.
    """
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RuntimeError(f"dockerd is not installed: {INSTALL_HINT}")
    _wait_stale_pidfile(Path("/var/run/docker.pid"), 15.0)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen([dockerd, "--log-level", "warn"], stdin=devnull, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-10:])
            raise RuntimeError(f"dockerd exited at start (code {proc.returncode}); {log_path}:\n{tail}")
        version = engine_version(timeout=2.0)
        if version:
            return Engine(engine_address(), version, pid=proc.pid, log=str(log_path))
        time.sleep(0.2)
    stop_dockerd(proc.pid)
    raise RuntimeError(f"dockerd did not answer within {timeout:.0f}s; see {log_path}")


def _wait_stale_pidfile(pidfile: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(int(pidfile.read_text().strip()), 0)
        except (OSError, ValueError):
            return
        time.sleep(0.2)


def ensure_engine(log_path: Path) -> Engine:
    """The engine that answers, or one we start (root + dockerd installed); RuntimeError otherwise."""
    version = engine_version()
    if version:
        return Engine(engine_address(), version)
    if can_start_dockerd():
        return start_dockerd(log_path)
    raise RuntimeError(f"no Docker engine answers at {engine_address()}: {INSTALL_HINT}")


def stop_dockerd(pid: int, timeout: float = 30.0) -> bool:
    """SIGTERM the dockerd we started, SIGKILL after `timeout`; True if it had to be killed."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return False
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True


def devcluster_containers(state_dir: Path, node_port: int | None = None, timeout: float = 20.0) -> list[dict]:
    """Containers (running or not) labelled with this devcluster (and node): [{id, name, state, image, task}]."""
    sock = socket_path()
    if docker_cli() is None or (sock is not None and not os.path.exists(sock)):
        return []
    filters = ["--filter", f"label={DEVCLUSTER_LABEL}={Path(state_dir).resolve()}"]
    if node_port is not None:
        filters += ["--filter", f"label={NODE_LABEL}={node_port}"]
    fmt = "\t".join(["{{.ID}}", "{{.Names}}", "{{.State}}", "{{.Image}}", "{{.Label \"" + TASK_LABEL + "\"}}"])
    try:
        out = _cli(["ps", "-a", "--no-trunc", *filters, "--format", fmt], timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return []
    rows = []
    for line in out.stdout.splitlines() if out.returncode == 0 else []:
        cid, name, state, image, task = (line.split("\t") + [""] * 5)[:5]
        rows.append({"id": cid, "name": name, "state": state, "image": image, "task": task or None})
    return rows


def remove_devcluster_containers(state_dir: Path, node_port: int | None = None, timeout: float = 60.0) -> int:
    """Force-remove every container labelled with this devcluster (and node); returns how many."""
    ids = [c["id"] for c in devcluster_containers(state_dir, node_port)]
    if ids:
        _cli(["rm", "-f", *ids], timeout=timeout)
    return len(ids)
